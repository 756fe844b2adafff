# docs/examples/your-own-model/train.py
import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

iris = load_iris(as_frame=True)  # ships with scikit-learn: nothing to download
model = LogisticRegression(max_iter=500).fit(iris.data, iris.target)
joblib.dump(model, "model.pkl")
iris.data.iloc[::10].to_csv("flowers.csv", index=False)  # 15 flowers for the batch job
