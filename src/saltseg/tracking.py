"""MLflow set-up and the links between pipeline stages.

Fold stages run as separate processes, so the parent run cannot be handed over in
memory: every stage derives the same *pipeline key* from the configuration, the data
fingerprint and the fold file, and finds the parent run by that tag (creating it the
first time). Nothing here runs at import time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import mlflow
import yaml
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from saltseg.config import Params, TrackingConfig, flat_params
from saltseg.project import project_root
from saltseg.reachability import check_reachable

PIPELINE_KEY_TAG = "saltseg.pipeline_key"
FOLD_TAG = "saltseg.fold"
DATA_TAG = "data_hash"
PSEUDO_TAG = "pseudo_hash"  # the pseudo-label set the folds trained with (absent: none)
PSEUDO_NOTE_TAG = "saltseg.pseudo_labels"  # what that set is, and why out-of-fold scores are optimistic
# Makes the MLflow 3 UI open the experiment on its training runs, not on the GenAI overview.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
# The sections that decide what a fold model is. From `runtime`, the hardware policy it resolves
# to (device type, precision, memory format, compilation: other kernels, other sums) joins them;
# workers and fold_jobs, `tracking`, `evaluate` and `register` do not start a new pipeline run;
# `synth` does through the data fingerprint, and `pseudo` through the pseudo-label set's.
_KEY_SECTIONS = ("data", "split", "model", "augment", "train")
# Files a pipeline run writes into the repository itself: they do not make the code dirty.
_RECORDS = ("dvc.lock", "metrics", "plots", "registry.json", ".gitignore", "**/.gitignore")


def tracking_uri(cfg: TrackingConfig) -> str:
    if cfg.uri:
        return cfg.uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{project_root() / cfg.db}"


@contextlib.contextmanager
def _store_lock(uri: str) -> Iterator[None]:
    """Serialise the first touch of a SQLite store: parallel queue workers would both
    try to create its tables and the experiment.

    A server keeps concurrent writes apart but not our search-then-create of the parent run:
    the fold processes of one pipeline share its repository, so they queue on a lock there.
    """
    from filelock import FileLock

    if uri.startswith("sqlite:///"):
        lock = Path(uri.removeprefix("sqlite:///") + ".lock")
    else:
        lock = project_root() / ".dvc" / "tmp" / "mlflow-parent.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(lock), timeout=300):
        yield


def configure(cfg: TrackingConfig) -> str:
    """Point MLflow at the store and experiment of `cfg`; returns the tracking URI."""
    uri = tracking_uri(cfg)
    check_reachable(uri)  # a server that is down: one line now, not minutes of retries
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    with _store_lock(uri):
        experiment = mlflow.get_experiment_by_name(cfg.experiment)
        if experiment is None:
            # Artifacts beside the database, at an absolute path: MLflow's default
            # (./mlruns of whichever folder a command happens to run in) scatters them.
            location = None
            if uri.startswith("sqlite:///"):
                location = (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").as_uri()
            try:
                mlflow.create_experiment(cfg.experiment, artifact_location=location, tags=EXPERIMENT_KIND)
            except MlflowException as exc:  # another project on the same server created it first
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
        elif any(experiment.tags.get(k) != v for k, v in EXPERIMENT_KIND.items()):
            for key, value in EXPERIMENT_KIND.items():
                MlflowClient().set_experiment_tag(experiment.experiment_id, key, value)
    mlflow.set_experiment(cfg.experiment)
    return uri


def runs_link(experiment: str, ui: str = "http://127.0.0.1:5000") -> str:
    """The MLflow UI page of `experiment`'s runs in "Model training" mode: MLflow 3.17 opens an
    experiment on an empty GenAI overview otherwise, whatever the experiment's tags say."""
    found = mlflow.get_experiment_by_name(experiment)
    return f"{ui}/#/experiments/{found.experiment_id}/runs?workflowType=machine_learning"


def pipeline_key(params: Params, folds_csv: Path, data_hash: str, pseudo_hash: str | None = None) -> str:
    """The identity of a pipeline run. The `pseudo` section joins through the fingerprint of
    the pseudo-label set it made (`pseudo_hash`, None for none), not through its params: a
    teacher alias that moves changes the set but not the params. Without pseudo-labels the
    key is what it was before they existed. The hardware policy is the one resolved on this
    machine for the stage's train steps (saltseg.hardware.for_params), as training records it."""
    from saltseg import hardware
    from saltseg.data.folds import load_folds, stage_train_steps

    sections = {name: dataclasses.asdict(getattr(params, name)) for name in _KEY_SECTIONS}
    policy = hardware.for_params(params, stage_train_steps(params, load_folds(folds_csv)))
    identity = {"data_hash": data_hash, "policy": policy.describe()}
    identity |= {"pseudo_hash": pseudo_hash} if pseudo_hash else {}
    digest = hashlib.sha256(json.dumps({**identity, **sections}, sort_keys=True).encode())
    digest.update(Path(folds_csv).read_bytes())
    return digest.hexdigest()[:16]


def run_name(params: Params, data_hash: str) -> str:
    """What the MLflow runs table shows: the profile (marked if edited) and the data."""
    from saltseg.profiles import label

    return f"{label(params, Path('configs'))} · {params.data.source}@{data_hash[:8]}"


def describe_parent(params: Params, data_hash: str, metrics: dict) -> None:
    """Name and describe the active parent run so the MLflow UI shows the result without set-up:
    the runs table shows names (metric and param columns start hidden), the run page its note."""
    tuned, nested = metrics["score"], metrics.get("score_nested", float("nan"))
    # The score first: the runs table cuts names at its default width.
    mlflow.set_tag("mlflow.runName", f"{nested:.3f} nested · {run_name(params, data_hash)}")
    rows = [
        ("out of fold, nested selection", nested),
        ("out of fold, tuned on itself (optimistic)", tuned),
        ("out of fold, threshold 0.5, no min area", metrics.get("score_default", float("nan"))),
        *((f"held-out {fold}", score) for fold, score in metrics.get("folds", {}).items()),
    ]
    model, train = params.model, params.train
    stages = ", ".join(f"{s.loss} {s.epochs} epochs at lr {s.lr:g}" for s in train.stages)
    note = [
        "| competition score | |",
        "| --- | ---: |",
        *(f"| {label} | {value:.4f} |" for label, value in rows),
        "",
        f"{model.name}, {model.input_size} px ({model.fit}), {model.start_filters} start filters, "
        f"depth {model.depth}; batch {train.batch_size}; {stages}.",
    ]
    mlflow.set_tag("mlflow.note.content", "\n".join(note))


def parent_run_id(params: Params, folds_csv: Path, data_hash: str, pseudo_hash: str | None = None) -> str:
    """The parent run of this pipeline configuration: found by tag, created if missing."""
    key = pipeline_key(params, folds_csv, data_hash, pseudo_hash)
    experiment = mlflow.get_experiment_by_name(params.tracking.experiment)
    # Folds trained at the same time (one process each) must find one parent, not make one each.
    with _store_lock(mlflow.get_tracking_uri()):
        found = MlflowClient().search_runs(
            [experiment.experiment_id], filter_string=f"tags.`{PIPELINE_KEY_TAG}` = '{key}'", max_results=1
        )
        if found:
            return found[0].info.run_id
        tags = {PIPELINE_KEY_TAG: key, **lineage_tags(params, data_hash)}
        if pseudo_hash:
            tags[PSEUDO_TAG] = pseudo_hash
        with mlflow.start_run(run_name=run_name(params, data_hash), tags=tags) as run:
            mlflow.log_params(flat_params(params))
        return run.info.run_id


def fold_runs(parent_id: str, experiment_name: str) -> dict[int, str]:
    """{fold: run id} of the live child runs under a parent run."""
    experiment = mlflow.get_experiment_by_name(experiment_name)
    runs = MlflowClient().search_runs(
        [experiment.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'"
    )
    return {int(r.data.tags[FOLD_TAG]): r.info.run_id for r in runs if FOLD_TAG in r.data.tags}


def git_commit() -> str:
    """HEAD, with "-dirty" when tracked files other than the pipeline's own records changed."""
    records = [f":(exclude,glob){pattern}" for pattern in _RECORDS]
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", *records],
            capture_output=True,
            text=True,
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


def experiment_tags() -> dict[str, str]:
    """The DVC experiment a stage runs in (`dvc exp run`, --temp, --queue): the way from
    `dvc exp show` to the MLflow run and back."""
    names = {"DVC_EXP_NAME": "dvc_exp_name", "DVC_EXP_BASELINE_REV": "dvc_exp_baseline_rev"}
    return {tag: os.environ[var] for var, tag in names.items() if os.environ.get(var)}


def lineage_tags(params: Params, data_hash: str, device: str | None = None) -> dict[str, str]:
    import torch

    from saltseg.profiles import label

    return {
        "git_commit": git_commit(),
        DATA_TAG: data_hash,
        "dvc_data_hash": dvc_data_hash(params.data.source),
        "data_source": params.data.source,
        "profile": label(params, Path("configs")),
        "torch_version": torch.__version__,
        "device": device or ("cuda" if torch.cuda.is_available() else "cpu"),
        **experiment_tags(),
    }
