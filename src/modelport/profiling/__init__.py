"""``modelport profile``: measure a model behind the real server and recommend its resources and
batching settings (Azure ML's ``Model.profile`` plus Triton's batching and instance knobs).

``load`` drives a server with a closed-loop load over loopback; ``trials`` starts and measures one
``modelport serve`` process per settings tried; ``sweep`` runs the phases (concurrency, batching
grid, verification); ``recommend`` chooses among the measured trials and shapes the document, as
pure functions.
"""
