"""MLflow set-up and the links between pipeline stages.

Fold stages run as separate processes, so the parent run cannot be handed over in
memory: every stage derives the same *pipeline key* from the configuration and the
fold file, and finds the parent run by that tag (creating it the first time).
Nothing here runs at import time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
from pathlib import Path

import mlflow
import yaml
from mlflow.tracking import MlflowClient

from saltseg.config import Params, TrackingConfig, flat_params

PIPELINE_KEY_TAG = "saltseg.pipeline_key"
FOLD_TAG = "saltseg.fold"
# The sections that decide what a fold model is; evaluate/register settings do not
# start a new pipeline run.
_KEY_SECTIONS = ("data", "split", "model", "augment", "train")


def tracking_uri(cfg: TrackingConfig) -> str:
    if cfg.uri:
        return cfg.uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{Path(cfg.db).resolve()}"


def configure(cfg: TrackingConfig) -> str:
    """Point MLflow at the store and experiment of `cfg`; returns the tracking URI."""
    uri = tracking_uri(cfg)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    if mlflow.get_experiment_by_name(cfg.experiment) is None and uri.startswith("sqlite:///"):
        # Artifacts beside the database, at an absolute path: MLflow's default
        # (./mlruns of whichever folder a command happens to run in) scatters them.
        store = Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts"
        mlflow.create_experiment(cfg.experiment, artifact_location=store.as_uri())
    mlflow.set_experiment(cfg.experiment)
    return uri


def pipeline_key(params: Params, folds_csv: Path) -> str:
    sections = {name: dataclasses.asdict(getattr(params, name)) for name in _KEY_SECTIONS}
    digest = hashlib.sha256(json.dumps(sections, sort_keys=True).encode())
    digest.update(Path(folds_csv).read_bytes())
    return digest.hexdigest()[:16]


def parent_run_id(params: Params, folds_csv: Path) -> str:
    """The parent run of this pipeline configuration: found by tag, created if missing."""
    key = pipeline_key(params, folds_csv)
    experiment = mlflow.get_experiment_by_name(params.tracking.experiment)
    found = MlflowClient().search_runs(
        [experiment.experiment_id], filter_string=f"tags.`{PIPELINE_KEY_TAG}` = '{key}'", max_results=1
    )
    if found:
        return found[0].info.run_id
    with mlflow.start_run(run_name=f"pipeline-{key[:8]}", tags={PIPELINE_KEY_TAG: key}) as run:
        mlflow.log_params(flat_params(params))
        mlflow.set_tags(lineage_tags(params))
    return run.info.run_id


def fold_runs(parent_id: str, experiment_name: str) -> dict[int, str]:
    """{fold: run id} of the live child runs under a parent run."""
    experiment = mlflow.get_experiment_by_name(experiment_name)
    runs = MlflowClient().search_runs(
        [experiment.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'"
    )
    return {int(r.data.tags[FOLD_TAG]): r.info.run_id for r in runs if FOLD_TAG in r.data.tags}


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
        )
        return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def dvc_data_hash(source: str) -> str:
    """The md5 DVC recorded for the data folder: from `<source>.dvc`, else from dvc.lock."""
    pointer = Path(f"{source}.dvc")
    if pointer.exists():
        outs = yaml.safe_load(pointer.read_text()).get("outs", [])
        return next((o["md5"] for o in outs if o.get("path") == Path(source).name), "unknown")
    lock = Path("dvc.lock")
    if lock.exists():
        for stage in (yaml.safe_load(lock.read_text()) or {}).get("stages", {}).values():
            for out in stage.get("outs", []):
                if out.get("path") == source:
                    return out.get("md5", "unknown")
    return "unknown"


def lineage_tags(params: Params, device: str | None = None) -> dict[str, str]:
    import torch

    return {
        "git_commit": git_commit(),
        "dvc_data_hash": dvc_data_hash(params.data.source),
        "data_source": params.data.source,
        "torch_version": torch.__version__,
        "device": device or ("cuda" if torch.cuda.is_available() else "cpu"),
    }
