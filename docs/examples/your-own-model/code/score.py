# docs/examples/your-own-model/code/score.py
import json
import os

import joblib
import numpy as np

SPECIES = ["setosa", "versicolor", "virginica"]


def init():  # once per replica, before the first request
    global model
    model = joblib.load(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model.pkl"))


def run(raw_data):  # once per request, with the body as text
    rows = np.array(json.loads(raw_data)["data"], dtype=float)
    probabilities = model.predict_proba(rows)
    return {"species": [SPECIES[i] for i in probabilities.argmax(axis=1)],
            "confidence": probabilities.max(axis=1).round(3).tolist()}
