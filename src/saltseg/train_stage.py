"""The `train` pipeline stage: one fold, tracked as a child run in MLflow."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
from mlflow.tracking import MlflowClient

from saltseg import distributed, hardware, tracking
from saltseg.config import Params, flat_params
from saltseg.data.folds import fold_indices, load_folds
from saltseg.data.prepared import Prepared, load_prepared
from saltseg.loop import predict_logits
from saltseg.plots import overlay_grid
from saltseg.train import FoldPaths, load_resume_state, train_fold

FIGURE_IMAGES = 16


def _fold_run_id(parent_id: str, params: Params, fold: int, resuming: bool) -> str | None:
    """The run to continue when resuming; otherwise retire earlier runs of this fold.

    One child run per fold and parent keeps the MLflow comparison honest when a
    stage is rerun with the same configuration (`dvc repro --force`).
    """
    earlier = tracking.fold_runs(parent_id, params.tracking.experiment).get(fold)
    if resuming and earlier:
        return earlier
    if earlier:
        MlflowClient().delete_run(earlier)
    return None


def _validation_figure(
    model_path: Path, prepared: Prepared, val_idx: np.ndarray, params: Params, out: Path
) -> None:
    import torch

    from saltseg.models import load_checkpoint_model

    policy = hardware.for_inference(params.train.precision, params.runtime)
    model = policy.place(load_checkpoint_model(model_path, device=policy.device))
    images, masks = prepared.images[val_idx], prepared.masks[val_idx]
    # Show salt-bearing images first: empty tiles say little about boundary quality.
    order = np.argsort(-masks.reshape(len(masks), -1).mean(1), kind="stable")[:FIGURE_IMAGES]
    pixels = torch.from_numpy(images[order]).to(policy.device)
    depths = torch.from_numpy(prepared.depths[val_idx][order].astype(np.float32)).to(policy.device)
    logits = predict_logits(model, pixels, params.model, policy, params.train.batch_size, depths)
    pred = (logits[:, 0] > 0).cpu().numpy()
    titles = [f"val {i}" for i in order]
    overlay_grid(images[order], masks[order], pred, titles, out)


def run_fold(params: Params, prepared_path: Path, folds_csv: Path, fold: int, paths: FoldPaths) -> dict:
    """Train fold `fold` and log it under the pipeline's parent run; returns its metrics."""
    prepared = load_prepared(prepared_path)
    split = fold_indices(prepared.ids, load_folds(folds_csv), fold)
    data_hash = prepared.fingerprint
    key = f"{tracking.pipeline_key(params, folds_csv, data_hash)}-fold{fold}"
    dist = distributed.context()
    if not dist.is_main:  # under torchrun the other ranks only compute: rank 0 tracks and writes
        return train_fold(params, prepared, split, fold, paths, key)
    tracking.configure(params.tracking)
    parent_id = tracking.parent_run_id(params, folds_csv, data_hash)
    run_id = _fold_run_id(parent_id, params, fold, resuming=load_resume_state(paths, key) is not None)
    policy = hardware.for_params(params)
    tags = {tracking.FOLD_TAG: str(fold), **tracking.lineage_tags(params, data_hash, str(policy.device))}
    tags["hardware_policy"] = policy.describe()  # how it ran: e.g. "cpu bf16 channels_last"
    tags["world_size"] = str(dist.world_size)  # torchrun processes that trained this fold
    with mlflow.start_run(run_id=run_id, run_name=f"fold{fold}", parent_run_id=parent_id, tags=tags):
        if run_id is None:
            mlflow.log_params(flat_params(params) | {"fold": fold})
        metrics = train_fold(
            params, prepared, split, fold, paths, key, log=lambda m, step: mlflow.log_metrics(m, step=step)
        )
        mlflow.log_metrics({k: v for k, v in metrics.items() if isinstance(v, int | float) and k != "fold"})
        monitor = params.train.monitor
        mlflow.set_tag("mlflow.runName", f"fold{fold} | {monitor} {metrics[f'best_{monitor}']:.3f}")
        figure = paths.out_dir / "validation.png"
        _validation_figure(paths.best, prepared, split[1], params, figure)
        for artifact in (paths.best, *paths.snapshots, paths.history, paths.metrics, figure):
            mlflow.log_artifact(str(artifact))
    return metrics
