"""Metrics of your own from a scoring script, exposed on ``modelport serve``'s ``/metrics``.

::

    from modelport.metrics import counter, gauge, histogram

    SCORED = counter("rows_scored", "Rows scored", labels=["outcome"])
    BATCH = gauge("last_batch_rows", "Rows in the last request", combine="max")
    SECONDS = histogram("predict_seconds", "Time in model.predict", buckets=[0.001, 0.01, 0.1, 1])

    def run(raw):
        rows = json.loads(raw)["data"]
        began = time.perf_counter()
        answer = model.predict(rows)
        SECONDS.observe(time.perf_counter() - began)
        SCORED.labels(outcome="ok").inc(len(rows))
        BATCH.set(len(rows))
        return answer.tolist()

Each becomes ``modelport_script_<name>`` (counters ``..._total``) labelled with the model and,
for an endpoint's replica, the endpoint and deployment. See
:mod:`modelport.serving.script_metrics` for the rules.
"""

from modelport.serving.script_metrics import Counter, Gauge, Histogram, counter, gauge, histogram

__all__ = ["Counter", "Gauge", "Histogram", "counter", "gauge", "histogram"]
