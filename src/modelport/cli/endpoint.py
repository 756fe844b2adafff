"""``modelport endpoint ...`` and ``modelport deployment ...``, shaped like ``az ml online-endpoint``
and ``az ml online-deployment``; every command talks to the daemon's management API."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from modelport.cli.daemon import with_client
from modelport.cli.examples import examples
from modelport.cli.output import (
    confirm_delete,
    note_ignored,
    output_option,
    print_fields,
    print_json,
    print_table,
    yes_option,
)
from modelport.core.errors import ValidationError
from modelport.core.overrides import split_override


def _definition(file: Path | None, overrides: tuple[str, ...], **names: str | None) -> dict[str, Any]:
    """The API's definition request, with ``-n``/``-e`` as overrides of ``name``/``endpoint_name``
    (the daemon applies them, so ``update`` can apply them to the stored definition); names are
    quoted so that ``-n 007`` stays a string."""
    from modelport.online import request_body

    sets = list(overrides) + [f"{key}={json.dumps(value)}" for key, value in names.items() if value is not None]
    return request_body(file, sets)


def _named(request: dict[str, Any], key: str, option: str) -> str:
    """``key`` of the definition once the overrides (``-n``/``-e`` among them) are applied: the
    file names what an update changes, as in ``az ml online-endpoint update -f``."""
    from modelport.core.overrides import apply_overrides

    value = apply_overrides(request["definition"] or {}, request["set"]).get(key)
    if not value:
        raise ValidationError(f"{key}: required (in the file or with {option})")
    return str(value)


def _done(result: dict[str, Any], output: str, summary: str) -> None:
    """A create/update answer: the ignored cloud-only keys on stderr, then JSON or one line."""
    note_ignored(result.get("ignored") or [])
    if output == "json":
        print_json(result)
    else:
        click.echo(summary)


def _show(result: dict[str, Any], output: str, title: str) -> None:
    if output == "json":
        print_json(result)
    else:
        print_fields({key: value for key, value in result.items() if key != "ignored"}, title=title)


file_option = click.option(
    "--file",
    "-f",
    "file",
    type=click.Path(path_type=Path),
    default=None,
    help="YAML definition (Azure ML CLI v2 style).",
)


def set_option(example: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--set``, whose help shows a field of the command's own definition."""
    return click.option(
        "--set",
        "overrides",
        multiple=True,
        metavar="KEY=VALUE",
        help=f"Override a field, e.g. --set {example} (repeatable).",
    )


endpoint_set_option = set_option("description='which iris is it', or --set traffic.blue=90 --set traffic.green=10")
deployment_set_option = set_option("instance_count=2")


# -- endpoints ---------------------------------------------------------------------------------


@click.group(
    epilog=examples(
        (
            "An endpoint with two deployments, 90/10",
            "modelport endpoint create -f endpoint.yml\n"
            "modelport deployment create -f blue.yml --all-traffic\nmodelport deployment create -f green.yml\n"
            "modelport endpoint update -n iris --traffic 'blue=90 green=10'",
        ),
        ("Score a request with the endpoint's key", "modelport endpoint invoke -n iris --request-file request.json"),
    )
)
def endpoint() -> None:
    """Online endpoints: a stable URL and keys in front of deployments (needs `modelport up`)."""


@endpoint.command(
    "create",
    epilog=examples(
        ("Create an endpoint from its YAML file", "modelport endpoint create -f endpoint.yml"),
        (
            "The same file under another name, without keys",
            "modelport endpoint create -f endpoint.yml -n iris-dev --set auth_mode=none",
        ),
    ),
)
@file_option
@click.option("--name", "-n", default=None, help="Endpoint name (overrides the file's).")
@endpoint_set_option
@output_option
@with_client
def create_endpoint(client: Any, file: Path | None, name: str | None, overrides: tuple[str, ...], output: str) -> None:
    """Create an endpoint from endpoint.yml."""
    result = client.call("POST", "endpoints", _definition(file, overrides, name=name))
    _done(
        result, output, f"created endpoint {result['name']}: {result['scoring_uri']} (auth_mode {result['auth_mode']})"
    )


@endpoint.command(
    "update",
    epilog=examples(
        ("Send 10 % of requests to green", "modelport endpoint update -n iris --traffic 'blue=90 green=10'"),
        (
            "Copy 20 % of requests to green, which takes no live traffic (its answers are dropped)",
            "modelport endpoint update -n iris --mirror-traffic green=20",
        ),
        ("Apply an edited file (the name comes from it)", "modelport endpoint update -f endpoint.yml"),
    ),
)
@click.option("--name", "-n", default=None, help="Endpoint name [default: the file's].")
@file_option
@endpoint_set_option
@click.option(
    "--traffic", default=None, metavar="'D1=P1 D2=P2'", help="Replace the traffic split, e.g. 'blue=90 green=10'."
)
@click.option(
    "--mirror-traffic", default=None, metavar="'D=P'", help="Replace the mirror, e.g. 'green=20' ('' for none)."
)
@output_option
@with_client
def update_endpoint(
    client: Any,
    name: str | None,
    file: Path | None,
    overrides: tuple[str, ...],
    traffic: str | None,
    mirror_traffic: str | None,
    output: str,
) -> None:
    """Change an endpoint: a whole new endpoint.yml (-f), or fields of the current one (--set, --traffic)."""
    shares = {"traffic": traffic, "mirror_traffic": mirror_traffic}
    overrides += tuple(split_override(key, value) for key, value in shares.items() if value is not None)
    request = _definition(file, overrides, name=name)
    name = _named(request, "name", "-n")
    result = client.call("PUT", f"endpoints/{name}", request)
    _done(
        result,
        output,
        f"updated endpoint {name}: traffic {_percent(result['traffic']) or 'none'}, "
        f"mirror {_percent(result['mirror_traffic']) or 'none'}",
    )


@endpoint.command(
    "show",
    epilog=examples(
        ("Traffic, keys' mode and deployments of iris", "modelport endpoint show -n iris"),
        ("As JSON, for scripts", "modelport endpoint show -n iris -o json"),
    ),
)
@click.option("--name", "-n", required=True, help="Endpoint name.")
@output_option
@with_client
def show_endpoint(client: Any, name: str, output: str) -> None:
    """Show an endpoint, its traffic and its deployments."""
    result = client.call("GET", f"endpoints/{name}")
    if output != "json":
        result["deployments"] = [f"{d['name']} ({d['provisioning_state']})" for d in result["deployments"]]
    _show(result, output, f"endpoint {name}")


@endpoint.command(
    "list",
    epilog=examples(
        ("Every endpoint with its traffic and scoring URI", "modelport endpoint list"),
    ),
)
@output_option
@with_client
def list_endpoints(client: Any, output: str) -> None:
    """List endpoints."""
    result = client.call("GET", "endpoints")
    if output == "json":
        print_json(result)
        return
    print_table(
        ["name", "auth", "traffic", "mirror", "scoring uri"],
        (
            (e["name"], e["auth_mode"], _percent(e["traffic"]), _percent(e["mirror_traffic"]), e["scoring_uri"])
            for e in result
        ),
    )


def _percent(shares: dict[str, int]) -> str:
    return " ".join(f"{name}={value}%" for name, value in shares.items())


@endpoint.command(
    "delete",
    epilog=examples(
        ("Delete iris, its deployments and their replicas", "modelport endpoint delete -n iris --yes"),
    ),
)
@click.option("--name", "-n", required=True, help="Endpoint name.")
@yes_option
@with_client
def delete_endpoint(client: Any, name: str, yes: bool) -> None:
    """Delete an endpoint and all its deployments (asks first unless --yes)."""
    confirm_delete(f"endpoint {name} and all its deployments", yes)
    result = client.call("DELETE", f"endpoints/{name}")
    click.echo(f"deleted endpoint {name} and {len(result['deployments'])} deployment(s)")


@endpoint.command(
    "get-credentials",
    epilog=examples(
        ("Both keys of iris", "modelport endpoint get-credentials -n iris"),
        (
            "The primary key alone, for curl",
            "modelport endpoint get-credentials -n iris -o json | "
            "python -c 'import json, sys; print(json.load(sys.stdin)[\"primaryKey\"])'",
        ),
    ),
)
@click.option("--name", "-n", required=True, help="Endpoint name.")
@output_option
@with_client
def get_credentials(client: Any, name: str, output: str) -> None:
    """Show the endpoint's two keys (send one as Authorization: Bearer <key>)."""
    _show(client.call("GET", f"endpoints/{name}/keys"), output, f"endpoint {name} keys")


@endpoint.command(
    "regenerate-keys",
    epilog=examples(
        (
            "Replace the secondary key (clients on the primary one keep working)",
            "modelport endpoint regenerate-keys -n iris --key secondary",
        ),
    ),
)
@click.option("--name", "-n", required=True, help="Endpoint name.")
@click.option(
    "--key",
    "--key-type",
    "key",
    required=True,
    type=click.Choice(["primary", "secondary"]),
    help="Which key to replace.",
)
@with_client
def regenerate_keys(client: Any, name: str, key: str) -> None:
    """Replace one key; the old one stops working at once, the other keeps working."""
    client.call("POST", f"endpoints/{name}/keys/regenerate", {"key": key})
    click.echo(f"regenerated the {key} key of endpoint {name} (see modelport endpoint get-credentials)")


@endpoint.command(
    "invoke",
    epilog=examples(
        (
            "POST request.json to /score; the traffic split picks the deployment",
            "modelport endpoint invoke -n iris --request-file request.json",
        ),
        (
            "Ask green, whatever the split",
            "modelport endpoint invoke -n iris --request-file request.json --deployment green",
        ),
        (
            "A v2 inference request",
            "modelport endpoint invoke -n iris --request-file infer.json --route v2/models/iris/infer",
        ),
    ),
)
@click.option("--name", "-n", required=True, help="Endpoint name.")
@click.option(
    "--request-file",
    "-r",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Request body (JSON) to POST.",
)
@click.option(
    "--deployment",
    "--deployment-name",
    "-d",
    "deployment",
    default=None,
    help="Send to this deployment whatever the traffic split.",
)
@click.option("--route", default="score", show_default=True, help="Scoring route: score or v2/models/<m>/infer.")
@with_client
def invoke(client: Any, name: str, request_file: Path, deployment: str | None, route: str) -> None:
    """POST a request to the endpoint (with its key) and print the answer."""
    from modelport.online import OnlineEndpoints

    try:
        body = request_file.read_bytes()
    except OSError as exc:
        raise ValidationError(f"--request-file: cannot read {request_file} ({exc.strerror})") from None
    text = OnlineEndpoints(client=client).invoke_raw(name, body, deployment=deployment, route=route).text
    sys.stdout.write(text + ("" if text.endswith("\n") else "\n"))


# -- deployments -------------------------------------------------------------------------------


@click.group(
    epilog=examples(
        (
            "Deploy a model behind the endpoint iris with all its traffic",
            "modelport deployment create -f blue.yml --all-traffic",
        ),
        ("Where are its replicas?", "modelport deployment show -e iris -n blue"),
    )
)
def deployment() -> None:
    """Deployments of an online endpoint: model + code + environment + replicas (needs `modelport up`)."""


endpoint_option = click.option("--endpoint-name", "-e", "endpoint_name", default=None, help="Endpoint name.")


@deployment.command(
    "create",
    epilog=examples(
        (
            "Create blue and send it all of the endpoint's traffic once ready",
            "modelport deployment create -f blue.yml --all-traffic",
        ),
        (
            "A second deployment, at 0 % until the endpoint's traffic says otherwise",
            "modelport deployment create -f green.yml",
        ),
        (
            "The same file as another deployment, with two replicas",
            "modelport deployment create -f green.yml -n green2 --set instance_count=2",
        ),
    ),
)
@file_option
@click.option("--name", "-n", default=None, help="Deployment name (overrides the file's).")
@endpoint_option
@deployment_set_option
@click.option("--all-traffic", is_flag=True, help="Send it 100 % of the endpoint's traffic once it is ready.")
@output_option
@with_client
def create_deployment(
    client: Any,
    file: Path | None,
    name: str | None,
    endpoint_name: str | None,
    overrides: tuple[str, ...],
    all_traffic: bool,
    output: str,
) -> None:
    """Create a deployment from deployment.yml; returns when its replicas are ready."""
    request = _definition(file, overrides, name=name, endpoint_name=endpoint_name)
    endpoint_name = _named(request, "endpoint_name", "-e")
    result = client.call("POST", f"endpoints/{endpoint_name}/deployments", {**request, "all_traffic": all_traffic})
    _done(
        result,
        output,
        f"created deployment {endpoint_name}/{result['name']}: model {result['model']}, "
        f"{len(result['replicas'])} replica(s) ready",
    )


@deployment.command(
    "update",
    epilog=examples(
        ("Roll out an edited blue.yml", "modelport deployment update -f blue.yml"),
        (
            "Scale the stored deployment out to three replicas, no request dropped",
            "modelport deployment update -e iris -n blue --set instance_count=3",
        ),
    ),
)
@file_option
@click.option("--name", "-n", default=None, help="Deployment name [default: the file's].")
@endpoint_option
@deployment_set_option
@output_option
@with_client
def update_deployment(
    client: Any, file: Path | None, name: str | None, endpoint_name: str | None, overrides: tuple[str, ...], output: str
) -> None:
    """Change a deployment (rolling: each new replica is ready before an old one stops)."""
    request = _definition(file, overrides, name=name, endpoint_name=endpoint_name)
    name, endpoint_name = _named(request, "name", "-n"), _named(request, "endpoint_name", "-e")
    result = client.call("PUT", f"endpoints/{endpoint_name}/deployments/{name}", request)
    _done(
        result,
        output,
        f"updated deployment {endpoint_name}/{name}: revision {result['revision']}, "
        f"{len(result['replicas'])} replica(s)",
    )


@deployment.command(
    "show",
    epilog=examples(
        ("Settings and replicas (state, pid, port, restarts) of blue", "modelport deployment show -e iris -n blue"),
        ("As JSON, for scripts: each replica's metrics_url too", "modelport deployment show -e iris -n blue -o json"),
    ),
)
@click.option("--name", "-n", required=True, help="Deployment name.")
@click.option("--endpoint-name", "-e", "endpoint_name", required=True, help="Endpoint name.")
@output_option
@with_client
def show_deployment(client: Any, name: str, endpoint_name: str, output: str) -> None:
    """Show a deployment, its settings and its replicas."""
    result = client.call("GET", f"endpoints/{endpoint_name}/deployments/{name}")
    if output != "json":
        result["replicas"] = [
            f"{r['slot']}: {r['state']} pid {r['pid']} port {r['port']} restarts {r['restarts']}"
            for r in result["replicas"]
        ]
    _show(result, output, f"deployment {endpoint_name}/{name}")


@deployment.command(
    "list",
    epilog=examples(
        ("The deployments of iris and their ready replicas", "modelport deployment list -e iris"),
    ),
)
@click.option("--endpoint-name", "-e", "endpoint_name", required=True, help="Endpoint name.")
@output_option
@with_client
def list_deployments(client: Any, endpoint_name: str, output: str) -> None:
    """List an endpoint's deployments."""
    result = client.call("GET", f"endpoints/{endpoint_name}/deployments")
    if output == "json":
        print_json(result)
        return
    print_table(
        ["name", "model", "replicas", "state", "ready"],
        (
            (
                d["name"],
                d["model"],
                f"{d['current_replicas']}/{d['desired_replicas']}",
                d["provisioning_state"],
                sum(r["state"] == "ready" for r in d["replicas"]),
            )
            for d in result
        ),
    )


@deployment.command(
    "delete",
    epilog=examples(
        (
            "Take green's traffic away, then delete it",
            "modelport endpoint update -n iris --traffic 'blue=100'\nmodelport deployment delete -e iris -n green --yes",
        ),
    ),
)
@click.option("--name", "-n", required=True, help="Deployment name.")
@click.option("--endpoint-name", "-e", "endpoint_name", required=True, help="Endpoint name.")
@yes_option
@with_client
def delete_deployment(client: Any, name: str, endpoint_name: str, yes: bool) -> None:
    """Delete a deployment (it must get no traffic; asks first unless --yes); its replicas finish what
    they have, then stop."""
    confirm_delete(f"deployment {endpoint_name}/{name}", yes)
    client.call("DELETE", f"endpoints/{endpoint_name}/deployments/{name}")
    click.echo(f"deleted deployment {endpoint_name}/{name}")


@deployment.command(
    "logs",
    epilog=examples(
        (
            "The last 50 console lines of each replica, then new ones as they come",
            "modelport deployment logs -e iris -n blue --lines 50 --follow",
        ),
        ("The last 20 request log lines (JSON)", "modelport deployment logs -e iris -n blue --requests --lines 20"),
    ),
)
@click.option("--name", "-n", required=True, help="Deployment name.")
@click.option("--endpoint-name", "-e", "endpoint_name", required=True, help="Endpoint name.")
@click.option(
    "--lines",
    "-l",
    default=100,
    show_default=True,
    type=click.IntRange(min=0),
    help="How many of the last lines per replica.",
)
@click.option("--follow", is_flag=True, help="Keep printing new lines until Ctrl-C.")
@click.option(
    "--requests",
    is_flag=True,
    help="The request logs instead: one JSON line per request (id, status, latency, queue time, batch).",
)
@with_client
def deployment_logs(client: Any, name: str, endpoint_name: str, lines: int, follow: bool, requests: bool) -> None:
    """The replicas' console output (print and logging), or their request logs."""
    path = f"endpoints/{endpoint_name}/deployments/{name}/logs"
    for chunk in client.stream(path, {"lines": lines, "follow": int(follow), "requests": int(requests)}):
        sys.stdout.buffer.write(chunk)
        sys.stdout.flush()
