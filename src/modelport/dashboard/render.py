"""What a group of pages gets to answer with a template: ``Pages.render``, the one place that
adds the title, the session's CSRF token and the path to every page."""

from __future__ import annotations

from collections.abc import Callable

from starlette.responses import Response

Render = Callable[..., Response]  # render(request, template, context, *, title, status=200)
