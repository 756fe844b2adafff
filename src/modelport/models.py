"""Call the models served beside your scoring script, in process, from ``init()`` and ``run()``.

::

    import json
    import numpy as np
    from modelport import models

    MODELPORT_CONCURRENCY = 8  # run()s at once: their model calls batch together

    def init():
        print(models.metadata("classifier")["inputs"])  # name, datatype, shape of each input

    def run(raw):
        rows = np.asarray(json.loads(raw)["data"], dtype=np.float32)
        scaled = models.infer("scaler", {"x": rows})["z"]
        probabilities = models.infer("classifier", {"z": scaled}, outputs=["probabilities"])["probabilities"]
        return {"probabilities": probabilities.tolist()}

The models are the server's: ``modelport serve --entry-script score.py scaler:1 classifier@prod``,
or an online deployment's ``models:`` list. Each call goes through the model's own scheduler, so
it is batched with every other request to that model (HTTP, gRPC, other calls) and counted in
its statistics. ``await models.infer_async(...)`` does the same from a coroutine. Inputs are sent
as their arrays' datatypes, widened only where that is exact (FP32 to FP64, not back), as over
HTTP; failures raise :class:`ModelCallError` with one line saying why. See
:mod:`modelport.serving.script_models` for the rules.
"""

from modelport.serving.script_models import ModelCallError, infer, infer_async, metadata

__all__ = ["ModelCallError", "infer", "infer_async", "metadata"]
