"""The compiled gRPC descriptors that ship with the package: they match the .proto files, and
they load beside tritonclient's own ``inference.*`` messages in either import order."""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from modelport.serving.grpc import descriptors

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_descriptors_were_generated_from_these_protos() -> None:
    assert descriptors.SOURCES, "no .proto listed"
    for name, digest in descriptors.SOURCES.items():
        assert hashlib.sha256((ROOT / "src" / name).read_bytes()).hexdigest() == digest, (
            f"{name} changed since descriptors.py was generated: run scripts/gen_grpc.py"
        )


@pytest.mark.skipif(importlib.util.find_spec("grpc_tools") is None, reason="grpcio-tools is not installed")
def test_shipped_descriptors_match_what_protoc_compiles() -> None:
    checked = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_grpc.py"), "--check"], capture_output=True, text=True, timeout=120
    )
    assert checked.returncode == 0, checked.stderr


def test_no_protoc_at_import() -> None:
    """Serving gRPC needs neither grpcio-tools nor a compile step."""
    code = (
        "import sys; sys.modules['grpc_tools'] = None\n"
        "from modelport.serving.grpc.stubs import pb2\n"
        "print(type(pb2.ModelInferRequest(model_name='m')).__name__)"
    )
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "ModelInferRequest"


@pytest.mark.parametrize("ours_first", [True, False], ids=["ours-first", "tritonclient-first"])
def test_coexists_with_tritonclients_messages(ours_first: bool) -> None:
    pytest.importorskip("tritonclient.grpc")
    imports = ["from modelport.serving.grpc.stubs import pb2", "from tritonclient.grpc import service_pb2"]
    code = "\n".join(
        [
            *(imports if ours_first else imports[::-1]),
            "ours = pb2.ModelInferRequest(model_name='m', id='7')",
            "theirs = service_pb2.ModelInferRequest.FromString(ours.SerializeToString())",
            "print(theirs.model_name, theirs.id)",
        ]
    )
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split() == ["m", "7"]
