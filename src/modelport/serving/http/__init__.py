"""HTTP front ends: Open Inference Protocol v2 routes, Azure-ML-compatible ``/score``, metrics."""
