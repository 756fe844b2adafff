"""``render``: the one call behind ``modelport k8s render`` and ``Workspace.render_k8s``.

Everything that can refuse the request runs before anything is written: the inputs, the
profiles, the output folder; then the objects are made and the folder is written whole.

Keys: a stored endpoint's Secret holds its keys (the ones ``endpoint get-credentials`` shows);
an endpoint read from files has none yet, so new ones are made (or ``keys`` given) — the one
part of the output that is not the same for the same input.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelport.core.enums import StrEnum
from modelport.core.errors import ValidationError
from modelport.kube import core, kserve, writer
from modelport.kube.inputs import EndpointInput, from_files, stored, with_profiles
from modelport.kube.names import is_dns_label
from modelport.packaging.context import check_output
from modelport.schema.choices import AuthMode

if TYPE_CHECKING:
    from modelport.registry.stores import WorkspaceStores

DEFAULT_STORAGE_URI = "pvc://modelport-models/{endpoint}/{deployment}"
ROLLOUT_STABLE = "rollout-stable.yaml"


class Target(StrEnum):
    KUBERNETES = "kubernetes"
    KSERVE = "kserve"


@dataclass(frozen=True)
class RenderResult:
    """What was written: the folder, its files (sorted) and what the caller should be told."""

    output_dir: Path
    files: tuple[str, ...]
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {"output_dir": str(self.output_dir), "files": list(self.files), "notes": list(self.notes)}


def render(
    ws: WorkspaceStores,
    endpoint: str | None = None,
    *,
    files: Sequence[str | Path] = (),
    target: Target | str = Target.KUBERNETES,
    output_dir: str | Path,
    image: str | None = None,
    router_image: str | None = None,
    namespace: str | None = None,
    profiles: Mapping[str | None, str | Path] | None = None,
    storage_uri: str | None = None,
    no_router: bool = False,
    keys: tuple[str, str] | None = None,
) -> RenderResult:
    """Render ``endpoint`` (stored) or ``files`` (an endpoint.yml and its deployment.yml files)
    for ``target`` into the new folder ``output_dir``. ``image`` overrides each deployment's
    packaged image (``{endpoint}`` and ``{deployment}`` are replaced); ``profiles`` maps a
    deployment's name (``None``: every deployment) to a saved profile whose recommendation fills
    the resources it does not set; ``storage_uri`` is KServe's (:data:`DEFAULT_STORAGE_URI`,
    with the same placeholders); ``no_router`` refuses rather than put the router in front of
    KServe; ``keys`` are the Secret's for an endpoint read from files (new ones when not given;
    a stored endpoint's own are always used)."""
    chosen = _target(target)
    if (endpoint is None) == (not files):
        raise ValidationError("render: give an ENDPOINT (-e) or its files (-f endpoint.yml -f deployment.yml...)")
    if namespace is not None and not is_dns_label(namespace):
        raise ValidationError(f"--namespace: {namespace!r} is not a Kubernetes namespace name (a DNS label)")
    output = Path(output_dir)
    check_output(output)
    read = stored(ws, endpoint) if endpoint is not None else from_files(ws, [Path(file) for file in files])
    read = with_profiles(read, {name: Path(file) for name, file in (profiles or {}).items()})
    notes: list[str] = []
    if read.spec.auth_mode is AuthMode.KEY and read.keys is None:
        from modelport.core.keys import new_key

        read = replace(read, keys=keys or (new_key(), new_key()))
        if keys is None:
            notes.append("keys: the endpoint is not stored, so new keys were made; they are in the Secret")
    place = _placement(read, image, router_image, namespace)
    storage_uri = storage_uri or DEFAULT_STORAGE_URI
    if chosen is Target.KUBERNETES:
        rendered = _kubernetes(read, place)
    else:
        rendered = _kserve(read, place, storage_uri, no_router, notes.append)
    writer.write(output, rendered)
    return RenderResult(output, tuple(rendered), tuple(notes))


def _target(target: Target | str) -> Target:
    try:
        return Target(target)
    except ValueError:
        raise ValidationError(f"--target: {target!r} is not one of {', '.join(Target)}") from None


def _placement(
    read: EndpointInput, image: str | None, router_image: str | None, namespace: str | None
) -> core.Placement:
    def image_of(name: str, packaged: str) -> str:
        return packaged if image is None else image.replace("{endpoint}", read.spec.name).replace("{deployment}", name)

    images = {served.name: image_of(served.name, served.image) for served in read.deployments}
    # the router runs from any modelport image: the first deployment's unless told otherwise
    return core.Placement(namespace, images, router_image or images[read.deployments[0].name])


def _router_config(read: EndpointInput, hosts: Mapping[str, str], port: int) -> str:
    """``router.yml`` (:class:`modelport.schema.router_config.RouterConfig`), checked by reading it back."""
    from modelport.schema.base import parse
    from modelport.schema.router_config import RouterConfig

    data = {
        "endpoint": read.spec.name,
        "auth_mode": read.spec.auth_mode.value,
        "traffic": dict(read.spec.traffic),
        "mirror_traffic": {name: pct for name, pct in read.spec.mirror_traffic.items() if pct > 0},
        "deployments": {
            served.name: {
                "urls": [f"http://{hosts[served.name]}:{port}"],
                "request_timeout_ms": served.spec.request_settings.request_timeout_ms,
                "max_in_flight": served.spec.max_in_flight,
            }
            for served in read.deployments
        },
    }
    if read.spec.auth_mode is AuthMode.KEY:
        data["keys_dir"] = core.KEYS_DIR
    return writer.dump(parse(RouterConfig, data).value.to_dict())


def _kubernetes(read: EndpointInput, place: core.Placement) -> dict[str, str]:
    objects = [obj for served in read.deployments for obj in core.deployment_objects(read, served, place)]
    hosts = {served.name: place.host(core.server_name(read, served)) for served in read.deployments}
    config = _router_config(read, hosts, core.PORTS[0][1])
    objects += core.router_objects(read, place, config, read.keys if read.spec.auth_mode is AuthMode.KEY else None)
    return writer.files_of(objects)


def _kserve(
    read: EndpointInput, place: core.Placement, storage_uri: str, no_router: bool, note: Callable[[str], None]
) -> dict[str, str]:
    objects = [
        obj for served in read.deployments for obj in kserve.deployment_objects(read, served, place, storage_uri)
    ]
    unexpressed = _unexpressed(read)
    if unexpressed:
        if no_router:
            raise ValidationError(f"--no-router: KServe cannot express {unexpressed}; render without --no-router")
        note(f"kserve: KServe cannot express {unexpressed}; the standalone router is rendered in front")
        hosts = {served.name: kserve.predictor_host(read, served, place) for served in read.deployments}
        config = _router_config(read, hosts, 80)
        keys = read.keys if read.spec.auth_mode is AuthMode.KEY else None
        return writer.files_of([*objects, *core.router_objects(read, place, config, keys)])
    live = {name: pct for name, pct in sorted(read.spec.traffic.items()) if pct > 0}
    by_name = {served.name: served for served in read.deployments}
    if len(live) > 2:
        return writer.files_of([*objects, kserve.graph(read, live, place)])
    if len(live) == 2:
        stable, canary = sorted(live, key=lambda name: (-live[name], name))
        first, second = kserve.canary(read, by_name[stable], by_name[canary], live[canary], place, storage_uri)
        note(f"kserve: apply {ROLLOUT_STABLE} first and wait until it is ready: the canary splits against it")
        return writer.files_of([*objects, second], {ROLLOUT_STABLE: writer.dump(first)})
    return writer.files_of(objects)


def _unexpressed(read: EndpointInput) -> str:
    """What of the endpoint KServe has no field for, in words (empty when nothing)."""
    reasons = []
    if any(pct > 0 for pct in read.spec.mirror_traffic.values()):
        reasons.append("mirror_traffic (a mirror)")
    if read.spec.auth_mode is AuthMode.KEY:
        reasons.append("auth_mode key (key auth on the predictor)")
    return " and ".join(reasons)
