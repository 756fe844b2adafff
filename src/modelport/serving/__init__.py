"""The scoring server: model sources → loaded models → protocol front ends (HTTP, gRPC, /score).

Request path, one straight line: front end decodes the wire into an ``InferenceRequest``
(``modelport.protocol``) → ``inference.infer`` checks it against the model → the model's
scheduler runs a ``Predictor`` instance in a worker thread → outputs are selected / classified
→ the front end encodes the ``InferenceResponse``.
"""
