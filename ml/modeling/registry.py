"""The model in MLflow: a trained model directory logged as a small pyfunc model of the active run,
and registered under a name (`replyqa promote` then points an alias at a version)."""

from __future__ import annotations

from pathlib import Path

import mlflow


class ReplyQAPyfunc(mlflow.pyfunc.PythonModel):
    """MLflow's transformers flavour does not cover transformers 5, so the model directory is logged
    as an artifact of this small pyfunc: predict() takes a frame with `text` (and `context`)."""

    def load_context(self, context) -> None:
        from ml.modeling.scorer import Scorer

        self.scorer = Scorer.load(context.artifacts["model_dir"])

    def predict(self, context, model_input, params=None):
        import pandas as pd

        from ml.labels import LABELS

        contexts = model_input["context"].fillna("").tolist() if "context" in model_input else None
        probabilities = self.scorer.predict_proba(model_input["text"].tolist(), contexts)
        return pd.DataFrame(probabilities, columns=[f"p_{label}" for label in LABELS])


def log_model(model_dir: Path, registered_name: str | None) -> str | None:
    """Log the model directory as a pyfunc model of the active run; register it when a name is given."""
    info = mlflow.pyfunc.log_model(
        name="model",
        python_model=ReplyQAPyfunc(),
        artifacts={"model_dir": str(model_dir)},
        pip_requirements=["replyqa"],
        registered_model_name=registered_name,
    )
    return str(info.registered_model_version) if registered_name else None
