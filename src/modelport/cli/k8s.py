"""``modelport k8s``: an online endpoint as Kubernetes or KServe manifests."""

from __future__ import annotations

from pathlib import Path

import click

from modelport.cli.context import AppContext, pass_app
from modelport.cli.examples import examples
from modelport.core.errors import ValidationError


@click.group(
    "k8s",
    epilog=examples(
        (
            "Render a stored endpoint and apply it",
            "modelport k8s render -e web --output-dir ./web-k8s\nkubectl apply -k ./web-k8s",
        ),
    ),
)
def k8s() -> None:
    """Run endpoints on Kubernetes: render them as manifests for kubectl apply -k."""


@k8s.command(
    "render",
    epilog=examples(
        (
            "A stored endpoint as Kubernetes objects, applied with kubectl",
            "modelport k8s render -e web --target kubernetes --output-dir ./web-k8s\nkubectl apply -k ./web-k8s",
        ),
        (
            "Definition files for KServe, images from your registry",
            "modelport k8s render -f endpoint.yml -f blue.yml -f green.yml --target kserve "
            "--image registry.example.com/{endpoint}-{deployment}:1 --output-dir ./web-kserve",
        ),
        (
            "CPU and memory from the profiler where the deployment sets none",
            "modelport k8s render -e web --profile blue=profile.json --output-dir ./web-k8s",
        ),
    ),
)
@click.option("--endpoint", "-e", "endpoint", metavar="ENDPOINT", default=None, help="A stored endpoint.")
@click.option(
    "--file",
    "-f",
    "files",
    multiple=True,
    type=click.Path(path_type=Path),
    help="An endpoint.yml and its deployment.yml files (repeat -f), instead of -e.",
)
@click.option(
    "--target",
    type=click.Choice(["kubernetes", "kserve"]),
    default="kubernetes",
    show_default=True,
    help="Plain Kubernetes objects, or KServe's.",
)
@click.option("--output-dir", "-o", type=click.Path(path_type=Path), required=True, help="A new or empty folder.")
@click.option(
    "--image",
    default=None,
    help="The deployments' image; {endpoint} and {deployment} are replaced "
    "[default: ENDPOINT-DEPLOYMENT:latest, as modelport package tags it].",
)
@click.option("--router-image", default=None, help="The router's image [default: the first deployment's image].")
@click.option("--namespace", "-n", default=None, help="Put every object in this namespace [default: kubectl's].")
@click.option(
    "--profile",
    "profiles",
    multiple=True,
    metavar="[DEPLOYMENT=]FILE",
    help="A profile saved by modelport profile --save: its CPU and memory recommendation fills the "
    "requests (and memory limit) a deployment does not set. Without DEPLOYMENT=, for every deployment.",
)
@click.option(
    "--storage-uri",
    default=None,
    help="KServe's storageUri of each deployment; {endpoint} and {deployment} are replaced (the packaged "
    "image carries its model and does not read it) [default: pvc://modelport-models/{endpoint}/{deployment}].",
)
@click.option(
    "--no-router",
    is_flag=True,
    help="KServe: refuse an endpoint with a mirror or key auth instead of putting the router in front.",
)
@pass_app
def render(
    app: AppContext,
    endpoint: str | None,
    files: tuple[Path, ...],
    target: str,
    output_dir: Path,
    image: str | None,
    router_image: str | None,
    namespace: str | None,
    profiles: tuple[str, ...],
    storage_uri: str | None,
    no_router: bool,
) -> None:
    """Render an online endpoint — stored (-e) or as definition files (-f) — as manifests in a
    new folder with a kustomization.yaml: per deployment a Deployment, Service,
    PodDisruptionBudget and (autoscaled) HorizontalPodAutoscaler, and the router in front
    (ConfigMap router.yml, Secret with the keys); or, with --target kserve, a ServingRuntime and
    an InferenceService per deployment and the split as a canary or an InferenceGraph. The same
    input gives the same files (except new keys for an endpoint read from files)."""
    from modelport.kube.render import render as render_manifests

    result = render_manifests(
        app.workspace,
        endpoint,
        files=files,
        target=target,
        output_dir=output_dir,
        image=image,
        router_image=router_image,
        namespace=namespace,
        profiles=_profiles(profiles),
        storage_uri=storage_uri,
        no_router=no_router,
    )
    for line in result.notes:
        click.echo(line, err=True)
    for name in result.files:
        click.echo(str(result.output_dir / name))


def _profiles(items: tuple[str, ...]) -> dict[str | None, Path]:
    """``DEPLOYMENT=FILE`` or ``FILE`` (for every deployment) items, each key once."""
    profiles: dict[str | None, Path] = {}
    for item in items:
        name, equals, file = item.rpartition("=")
        key = name if equals else None
        if key in profiles:
            raise ValidationError(f"--profile: {'every deployment' if key is None else key} is given twice")
        profiles[key] = Path(file)
    return profiles
