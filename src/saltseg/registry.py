"""Register the fold models and the ensemble in the MLflow Model Registry; promote by score.

There is one champion per data set: the alias is `<register.alias>-<data fingerprint>`
(e.g. `champion-3fa9c2e14b7d0a55`), so a model is only ever compared with, promoted
over, and used to predict for models trained on the same data. Folds that also trained
on pseudo-labels have optimistic out-of-fold scores (the teacher saw their held-out
images), so they compete for a champion of their own, `<alias>-<fingerprint>-pseudo`,
and never displace an honestly scored one. The ensemble version is tagged with its
nested out-of-fold score (`score_nested`: no image chose its own threshold or minimum area)
and its data; the alias moves to it only when that score beats the current champion's. The
tuned score selects on the very predictions it scores, so it is recorded but decides nothing.
Registering the same files again (an identical rerun) reuses their version instead of adding one.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import mlflow
import numpy as np
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST, ErrorCode
from mlflow.tracking import MlflowClient

from saltseg.atomic import write_text
from saltseg.config import Params
from saltseg.errors import SaltError
from saltseg.inference import Members, fold_members, load_thresholds
from saltseg.models import checkpoint_config, load_checkpoint_model
from saltseg.records import read_json
from saltseg.serving import (
    MODEL_CODE,
    PACKAGE_DIR,
    THRESHOLDS_KEY,
    ensemble_signature,
    fold_key,
    input_example,
    member_key,
)
from saltseg.tracking import DATA_TAG

# What promotion compares. Versions registered before it was the nested score carry only
# "oof_score" (tuned): read as unscored, they never block a newly scored version.
SCORE_TAG = "oof_score_nested"
TUNED_TAG = "oof_score_tuned"
FOLD_SCORE_TAG = "oof_score"  # a fold version: its held-out images, the ensemble's post-processing
CONTENT_TAG = "content_hash"


@dataclass(frozen=True)
class Promotion:
    champion_version: int
    promoted: bool
    message: str


def requirements() -> list[str]:
    """Pinned pip requirements of the served model (skips MLflow's slow inference of them)."""
    out = []
    for package in ("mlflow", "torch", "timm", "numpy", "pyyaml"):
        try:
            out.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            out.append(package)
    return out


def read_metrics(metrics_path: Path) -> dict:
    """metrics/evaluate.json, checked for finite out-of-fold `score` and `score_nested`."""
    metrics = read_json(metrics_path, "run `salt evaluate` first")
    for key in ("score", "score_nested"):
        value = metrics.get(key)
        if not isinstance(value, int | float) or not math.isfinite(value):
            raise SaltError(f"{metrics_path}: needs a numeric {key!r}, got {value!r} (rerun `salt evaluate`)")
    return metrics


def _takes_depths(checkpoints: Members) -> bool:
    return any(checkpoint_config(p).depth_channel for paths in checkpoints.values() for p in paths)


def log_ensemble(name: str, checkpoints: Members, thresholds_json: Path, batch_size: int):  # noqa: ANN201
    """Log the models-from-code pyfunc in the active run and register it as `name`; ModelInfo."""
    artifacts = {member_key(k, p): str(p) for k, paths in checkpoints.items() for p in paths}
    artifacts[THRESHOLDS_KEY] = str(thresholds_json)
    return mlflow.pyfunc.log_model(
        name="ensemble",
        python_model=str(MODEL_CODE),
        artifacts=artifacts,
        code_paths=[str(PACKAGE_DIR)],
        model_config={"batch_size": batch_size, "device": "auto"},
        signature=ensemble_signature(),
        input_example=input_example(depths=_takes_depths(checkpoints)),
        pip_requirements=requirements(),
        registered_model_name=name,
    )


def log_fold_model(name: str, key: str, checkpoint: Path):  # noqa: ANN201
    """Log one fold network (torch.export, pt2) and register it as `<name>-<key>`, key "fold<k>"
    or "fold<k>-snapshot<c>"; ModelInfo.

    Input float32 (N, 1, S, S) in [0, 1] at the model's input size S, output logits of the
    same shape. The batch is dynamic (the example has 2 images); S is fixed, because the
    network checks its input size, which pins H and W when it is exported.
    """
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    cfg = checkpoint_config(checkpoint)
    if cfg.depth_channel:  # the export below feeds images only
        raise SaltError(
            f"{checkpoint}: model.depth_channel networks are not exported alone; register the ensemble only"
        )
    size = cfg.input_size
    spec = TensorSpec(np.dtype(np.float32), (-1, 1, size, size))
    # Two images: a batch of 1 would let torch.export pin the batch size too.
    example = np.random.default_rng(0).random((2, 1, size, size), dtype=np.float32)
    return mlflow.pytorch.log_model(
        load_checkpoint_model(checkpoint),
        name=key,
        signature=ModelSignature(inputs=Schema([spec]), outputs=Schema([spec])),
        input_example=example,
        pip_requirements=requirements(),
        registered_model_name=f"{name}-{key}",
    )


def champion_alias(alias: str, data_hash: str, pseudo_labels: bool = False) -> str:
    """The alias of the champion for one data set: `<alias>-<data fingerprint>`, with
    `-pseudo` for models whose folds also trained on pseudo-labels (optimistic scores)."""
    return f"{alias}-{data_hash}" + ("-pseudo" if pseudo_labels else "")


def _no_such_alias(exc: MlflowException) -> bool:
    """True for "this model or alias does not exist"; anything else (a locked database, a
    server down, bad permissions) is a real error and must not read as "no champion"."""
    code = exc.error_code
    missing_alias = code == ErrorCode.Name(INVALID_PARAMETER_VALUE) and "not found" in exc.message
    return code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST) or missing_alias


def _champion(client: MlflowClient, name: str, alias: str) -> tuple[int | None, float | None]:
    """(version, score) of the version holding `alias`; (None, None) when no version holds it."""
    try:
        current = client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if _no_such_alias(exc):
            return None, None
        raise
    try:
        return int(current.version), float(current.tags[SCORE_TAG])
    except (KeyError, ValueError):
        return int(current.version), None


def promote_if_better(client: MlflowClient, name: str, alias: str, version: int, score: float) -> Promotion:
    """Move `alias` to `version` when `score` beats the champion's (or there is no champion)."""
    champion, best = _champion(client, name, alias)
    new = f"{name} version {version} (nested out-of-fold score {score:.4f})"
    if champion == version:
        return Promotion(version, False, f"{new} is already {alias}")
    if champion is not None and best is not None and score <= best:
        return Promotion(
            champion, False, f"{new} does not beat {alias} version {champion} ({best:.4f}): alias kept"
        )
    client.set_registered_model_alias(name, alias, str(version))
    if champion is None:
        return Promotion(version, True, f"{new} is the first {alias}")
    before = f"{best:.4f}" if best is not None else "no score"
    return Promotion(version, True, f"{new} beats {alias} version {champion} ({before}): promoted to {alias}")


def version_description(params: Params, metrics: dict, tuned: dict, alias: str) -> str:
    """What the registry page says of a version: its data, its scores and how to call it."""
    return "\n".join(
        [
            f"Fold ensemble with flip TTA, trained on {params.data.source}@{tuned['data_hash']} "
            f"(profile {params.profile}); champion alias for this data: `{alias}`.",
            "",
            f"Out of fold: {metrics['score_nested']:.4f} nested (the number that decides promotion), "
            f"{metrics['score']:.4f} tuned on itself, {metrics['score_default']:.4f} at 0.5; threshold "
            f"{tuned['threshold']:g}, minimum salt area {tuned['min_area']} px.",
            "",
            "Input: pixel values 0..255, shape (N, 101, 101), 1 <= N <= 1024 (no MLflow input schema on "
            "purpose: the model checks its input and answers in one line; MLflow's schema check would "
            "echo the request). Output: uint8 masks (N, 101, 101), 1 = salt.",
            "",
            "```",
            f'salt serve --model "models:/{params.register.model_name}@{alias}" --port 5001',
            "curl -s localhost:5001/invocations -H 'Content-Type: application/json' \\",
            "  -d '{\"inputs\": [[[0, 0, ...101 values...], ...101 rows...]]}'",
            "```",
        ]
    )


def content_hash(checkpoints: Members, thresholds_json: Path) -> str:
    """What a registered ensemble is made of: its fold weights and its post-processing."""
    digest = hashlib.sha256()
    for fold, paths in sorted(checkpoints.items()):
        for path in paths:
            digest.update(f"{member_key(fold, Path(path))}:".encode() + Path(path).read_bytes())
    digest.update(Path(thresholds_json).read_bytes())
    return digest.hexdigest()[:32]


def registered_version(client: MlflowClient, name: str, content: str) -> int | None:
    """The version of `name` registered from exactly these files, if any."""
    found = client.search_model_versions(f"name = '{name}' and tags.{CONTENT_TAG} = '{content}'")
    return min((int(v.version) for v in found), default=None)


def log_fold_models(name: str, checkpoints: Members, fold_scores: dict) -> dict[str, str]:
    """Register every fold network (each snapshot of a snapshot ensemble), tagged with its fold's
    out-of-fold score; {"fold<k>" or "fold<k>-snapshot<c>": model URI}."""
    client, uris = MlflowClient(), {}
    for fold, paths in checkpoints.items():
        score = fold_scores.get(fold_key(fold))
        for path in paths:
            key = member_key(fold, path)
            info = log_fold_model(name, key, path)
            if isinstance(score, int | float):
                client.set_model_version_tag(
                    f"{name}-{key}", str(info.registered_model_version), FOLD_SCORE_TAG, f"{score:.6f}"
                )
            uris[key] = f"models:/{name}-{key}/{info.registered_model_version}"
    return uris


def register(
    params: Params,
    models_dir: Path,
    eval_dir: Path,
    metrics_path: Path,
    folds_csv: Path,
    folds_too: bool = True,
) -> dict:
    """Register the ensemble (and each fold model) under the pipeline's parent run; the record.

    Every input is checked before anything is logged. The record holds no run id (a random
    uuid would change registry.json, hence dvc.lock, on every run).
    """
    from saltseg import tracking

    thresholds_json = Path(eval_dir) / "thresholds.json"
    tuned = load_thresholds(thresholds_json)
    metrics = read_metrics(metrics_path)
    folds = [int(k) for k in tuned["folds"]]
    checkpoints = fold_members(models_dir, folds)
    if not Path(folds_csv).is_file():
        raise SaltError(f"{folds_csv}: folds file not found")
    name, score, data_hash = params.register.model_name, metrics["score_nested"], tuned["data_hash"]
    pseudo_hash = tuned.get("pseudo_hash")  # the pseudo-label set the folds also trained on, if any
    alias = champion_alias(params.register.alias, data_hash, pseudo_labels=bool(pseudo_hash))
    content = content_hash(checkpoints, thresholds_json)

    tracking.configure(params.tracking)
    run_id = tracking.parent_run_id(params, folds_csv, data_hash, pseudo_hash)
    client = MlflowClient()
    version, fold_models = registered_version(client, name, content), {}
    with mlflow.start_run(run_id=run_id):
        if version is None:
            version = int(
                log_ensemble(
                    name, checkpoints, thresholds_json, params.evaluate.batch_size
                ).registered_model_version
            )
            tags = {
                SCORE_TAG: f"{score:.6f}", TUNED_TAG: f"{metrics['score']:.6f}",
                "threshold": tuned["threshold"], "min_area": tuned["min_area"],
                "folds": ",".join(map(str, folds)), CONTENT_TAG: content,
                DATA_TAG: data_hash, "data_source": params.data.source, "profile": params.profile,
            }  # fmt: skip
            if pseudo_hash:
                tags["pseudo_hash"] = pseudo_hash
            for key, value in tags.items():
                client.set_model_version_tag(name, str(version), key, str(value))
            description = version_description(params, metrics, tuned, alias)
            client.update_model_version(name, str(version), description=description)
            # A fold's export takes images only: depth-channel folds are served by the ensemble alone.
            if folds_too and not _takes_depths(checkpoints):
                fold_models = log_fold_models(name, checkpoints, metrics.get("folds", {}))
        promotion = promote_if_better(client, name, alias, version, score)
        if not pseudo_hash:  # the plain alias a person types: the champion of the data registered last
            client.set_registered_model_alias(name, params.register.alias, str(promotion.champion_version))
        mlflow.log_metric("registered_version", float(version))  # its score is oof_score_nested
        mlflow.set_tag("saltseg.registered_model", f"{name}/{version}")
    return {
        "name": name,
        "version": version,
        "model_uri": f"models:/{name}/{version}",
        "score_nested": score,
        "data_hash": data_hash,
        "alias": alias,
        "champion_version": promotion.champion_version,
        "champion_uri": f"models:/{name}/{promotion.champion_version}",
        "promoted": promotion.promoted,
        "message": promotion.message,
        "fold_models": fold_models,
    }


def read_record(path: Path) -> dict:
    """registry.json written by `salt register`, checked for what prediction needs."""
    record = read_json(path, "run `salt register`, or give --model")
    needed = ("name", "alias", "champion_uri", "data_hash")
    if not all(isinstance(record.get(k), str) for k in needed):
        raise SaltError(f"{path}: needs {', '.join(needed)} (rerun `salt register`)")
    return record


def write_record(record: dict, out: Path) -> None:
    write_text(out, json.dumps(record, indent=2) + "\n")
