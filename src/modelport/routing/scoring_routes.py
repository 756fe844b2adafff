"""Which requests the router passes to a replica: an endpoint's scoring surface, nothing else.

A replica is a whole ``modelport serve``: besides inference it answers the model repository
extension (index, load, unload), statistics, ``/metrics`` and its own OpenAPI document. Those
belong to whoever runs the daemon and stay on the replica's loopback port; an endpoint key is a
caller's credential and buys inference only. So this is an allow-list, not a deny-list: a route
not named here, one a later replica grows included, answers 404 without reaching a replica.
``/v2/openapi.json`` is left out too: it describes the replica's whole surface, routes the
router refuses among them; an endpoint's contract is its ``/swagger.json``.

``path`` is the part after ``/endpoints/<name>/``, percent-decoded, and it is matched segment
by segment against exact shapes, so neither ``..`` nor an encoded ``/`` can carry another route
through a model name.
"""

from __future__ import annotations

from functools import lru_cache

from modelport.core.errors import ValidationError
from modelport.core.names import validate_name

_GET, _POST = frozenset({"GET"}), frozenset({"POST"})

# GET /score runs a script's run() with the query as its input, as azmlinfsrv does (no-code
# replicas answer it 405). OPTIONS is not passed: the daemon answers no CORS preflight.
_FIXED: dict[tuple[str, ...], frozenset[str]] = {
    ("score",): frozenset({"GET", "POST"}),
    ("swagger.json",): _GET,
    ("v2",): _GET,
    ("v2", "health", "live"): _GET,
    ("v2", "health", "ready"): _GET,
}
# What may follow /v2/models/{model}[/versions/{version}].
_PER_MODEL: dict[tuple[str, ...], frozenset[str]] = {
    (): _GET,  # metadata
    ("ready",): _GET,
    ("config",): _GET,
    ("infer",): _POST,
}
_STATS = "stats"  # GET /v2/models/stats is every model's statistics, not a model named "stats"


@lru_cache(maxsize=1024)  # an endpoint's requests name a few routes, asked again on every request
def is_scoring_route(method: str, path: str) -> bool:
    """Whether the router forwards ``method`` ``/path`` (relative to the endpoint) to a replica."""
    parts = tuple(path.split("/"))
    if parts in _FIXED:
        return method in _FIXED[parts]
    if parts[:2] != ("v2", "models") or len(parts) < 3 or not _model_name(parts[2]):
        return False
    rest = parts[3:]
    if rest[:1] == ("versions",):
        if len(rest) < 2 or not (rest[1].isascii() and rest[1].isdigit()):
            return False
        rest = rest[2:]
    allowed = _PER_MODEL.get(rest)
    return allowed is not None and method in allowed


def _model_name(segment: str) -> bool:
    """A name the registry could have given a served model (which rules out ``.`` and ``..``)."""
    if segment == _STATS:
        return False
    try:
        validate_name(segment)
    except ValidationError:
        return False
    return True
