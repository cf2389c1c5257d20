"""MLflow tracking: one place that knows the tracking store, runs, and the model registry."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow
from pydantic import BaseModel

EXPERIMENT = "replyqa"
DEFAULT_STORE = Path("experiments")


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI when set, else a SQLite store under experiments/ (it supports the registry)."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    DEFAULT_STORE.mkdir(exist_ok=True)
    return f"sqlite:///{(DEFAULT_STORE / 'mlflow.db').resolve()}"


def use_store() -> None:
    mlflow.set_tracking_uri(tracking_uri())
    mlflow.set_registry_uri(tracking_uri())
    if mlflow.get_experiment_by_name(EXPERIMENT) is None:
        artifacts = (DEFAULT_STORE / "artifacts").resolve().as_uri()
        mlflow.create_experiment(EXPERIMENT, artifact_location=artifacts)
    mlflow.set_experiment(EXPERIMENT)


@contextmanager
def start_run(stage: str) -> Iterator[mlflow.ActiveRun]:
    use_store()
    with mlflow.start_run(run_name=stage, tags={"stage": stage}) as run:
        yield run


def log_config(config: BaseModel) -> None:
    flat = {key: str(value) for key, value in config.model_dump().items()}
    mlflow.log_params(flat)


def log_artifacts(folder: Path, exclude: tuple[str, ...] = ()) -> None:
    """Log a model directory's files under `model/` of the active run, leaving out `exclude`."""
    for item in sorted(Path(folder).iterdir()):
        if item.name in exclude:
            continue
        if item.is_dir():
            mlflow.log_artifacts(str(item), artifact_path=f"model/{item.name}")
        else:
            mlflow.log_artifact(str(item), artifact_path="model")


def promote(name: str, version: str, alias: str = "champion") -> None:
    """Point `alias` (default `champion`) at a registered version: `models:/NAME@champion`."""
    use_store()
    mlflow.MlflowClient().set_registered_model_alias(name, alias, version)
