"""Triton's model config schema as protobuf descriptors: what a ``config.pbtxt`` may contain.

``model_config.proto`` beside this module is Triton's ``ModelConfig`` plus modelport's own
fields, compiled into :mod:`.triton_descriptors` by ``scripts/gen_grpc.py``. Its messages live in
a private descriptor pool, as the gRPC service's do (see ``modelport.serving.grpc.stubs``):
tritonclient registers its own ``inference.*`` messages in protobuf's default pool.

Two readers: ``runtime.pbtxt`` parses text into :data:`ModelConfigMessage`, and the model
config definitions take from :func:`field_names` the Triton fields they keep without acting on
(``optimization``, ``model_warmup``...), so a YAML file may carry exactly what Triton accepts.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor

from modelport.schema.triton_descriptors import SERIALIZED

PACKAGE = "inference"


def _build_pool() -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    for file in descriptor_pb2.FileDescriptorSet.FromString(SERIALIZED).file:
        pool.Add(file)
    return pool


POOL = _build_pool()
ModelConfigMessage: Any = message_factory.GetMessageClass(POOL.FindMessageTypeByName(f"{PACKAGE}.ModelConfig"))
"""Triton's ``inference.ModelConfig`` (with modelport's fields) as a message class."""


def message(name: str) -> Descriptor:
    """The descriptor of ``inference.<name>`` (``ModelInput``, ``ModelDynamicBatching``...)."""
    return POOL.FindMessageTypeByName(f"{PACKAGE}.{name}")


def field_names(name: str) -> frozenset[str]:
    """The fields of message ``inference.<name>``: the keys a file may give it."""
    return frozenset(field.name for field in message(name).fields)
