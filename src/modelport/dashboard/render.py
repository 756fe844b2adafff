"""What a group of pages gets to answer with a template: ``Pages.render``, the one place that
adds the title, the session's CSRF token and the path to every page; and how a value is shown."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from starlette.responses import Response

Render = Callable[..., Response]  # render(request, template, context, *, title, status=200)


def shown(value: Any) -> str:
    """A value as a page shows it (the ``shown`` filter), so a test can read it back and compare it
    with ``--output json``: JSON for booleans, lists and objects, nothing for null, else ``str``."""
    if value is None:
        return ""
    return json.dumps(value) if isinstance(value, bool | list | dict) else str(value)
