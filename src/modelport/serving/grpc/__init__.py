"""The Open Inference Protocol v2 over gRPC: Triton's ``inference.GRPCInferenceService``.

:mod:`.stubs` loads the ``.proto`` files beside it (shipped compiled, in :mod:`.descriptors`) into
a private descriptor pool, so tritonclient's own stubs can live in the same process; :mod:`.codec`
translates inference messages to :mod:`modelport.protocol.types`, :mod:`.service` serves the RPCs and
:mod:`.transport` carries them (the C core's server, its completion queue drained by one thread).
"""

from modelport.serving.grpc.service import GrpcServer, InferenceServicer, start_grpc_server

__all__ = ["GrpcServer", "InferenceServicer", "start_grpc_server"]
