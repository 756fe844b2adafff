"""Write tests/data/kserve/*.json: the openAPIV3Schema of KServe's CRDs, cut to what modelport renders.

    python scripts/kserve_schemas.py KSERVE_CHECKOUT/config/crd/full

Each CRD's storage version is read; the subtrees modelport writes (``KEEP``) are kept whole, every
other property keeps its name and type only (its own subtree is left out, which keeps the
InferenceService's 600 kB of pod fields out of the repository). The tests make every object
schema strict (no properties beyond the CRD's) when they check rendered objects against these.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "kserve"
# CRD file → (kind, the property paths modelport writes, kept whole)
KEEP = {
    "serving.kserve.io_inferenceservices.yaml": (
        "InferenceService",
        ("spec.predictor.model", "spec.predictor.minReplicas", "spec.predictor.maxReplicas"),
    ),
    "serving.kserve.io_servingruntimes.yaml": (
        "ServingRuntime",
        ("spec.containers", "spec.supportedModelFormats", "spec.protocolVersions", "spec.multiModel"),
    ),
    "serving.kserve.io_inferencegraphs.yaml": ("InferenceGraph", ("",)),
}


def prune(node: dict[str, Any], path: str, keep: tuple[str, ...]) -> dict[str, Any]:
    if any(path == k or path.startswith(f"{k}.") for k in keep if k) or "" in keep:
        return node
    if not any(k.startswith(f"{path}.") or not path for k in keep):
        return {
            key: node[key] for key in ("type", "enum", "format", "anyOf", "x-kubernetes-int-or-string") if key in node
        }
    out = {key: value for key, value in node.items() if key not in ("properties", "items")}
    if "properties" in node:
        out["properties"] = {
            name: prune(child, f"{path}.{name}".lstrip("."), keep) for name, child in node["properties"].items()
        }
    if "items" in node:
        out["items"] = prune(node["items"], path, keep)
    return out


def main(folder: Path) -> None:
    for file, (kind, keep) in KEEP.items():
        crd = yaml.safe_load((folder / file).read_text(encoding="utf-8"))
        (version,) = [v for v in crd["spec"]["versions"] if v.get("storage")]
        schema = prune(version["schema"]["openAPIV3Schema"], "", keep)
        document = {"apiVersion": f"{crd['spec']['group']}/{version['name']}", "kind": kind, "schema": schema}
        (OUT / f"{kind.lower()}.json").write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
