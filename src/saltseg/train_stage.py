"""The `train` pipeline stage: one fold, tracked as a child run in MLflow."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
from mlflow.tracking import MlflowClient

from saltseg import distributed, hardware, reachability, tracking
from saltseg.config import Params, flat_params
from saltseg.data.folds import development, fold_indices, load_folds, stage_train_steps
from saltseg.data.prepared import Prepared, load_prepared
from saltseg.data.pseudo_set import PseudoSet, load_pseudo
from saltseg.errors import SaltError
from saltseg.plots import overlay_grid
from saltseg.train import FoldPaths, finished, load_resume_state, train_fold

FIGURE_IMAGES = 16


def shown(metrics: dict[str, float]) -> dict[str, float]:
    """The values at 4 significant digits, as the runs table can show them (a learning rate too)."""
    return {name: float(f"{value:.4g}") for name, value in metrics.items()}


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
    members: tuple[Path, ...], prepared: Prepared, val_idx: np.ndarray, params: Params, out: Path
) -> None:
    """Masks of the fold's model as evaluation and the registry use it: the mean of `members`
    (its snapshots, or best.pt alone), without flip TTA, at probability 0.5."""
    from saltseg.inference import load_models, predict_proba  # prediction, once the fold has ended

    models, cfg, policy = load_models(members, params.runtime)
    images, masks = prepared.images[val_idx], prepared.masks[val_idx]
    # Show salt-bearing images first: empty tiles say little about boundary quality.
    order = np.argsort(-masks.reshape(len(masks), -1).mean(1), kind="stable")[:FIGURE_IMAGES]
    depths = prepared.depths[val_idx][order]
    proba = predict_proba(models, images[order], cfg, False, params.train.batch_size, policy, depths)
    titles = [f"val {i}" for i in order]
    overlay_grid(images[order], masks[order], proba > 0.5, titles, out)


def _load_pseudo(path: Path | None, data_hash: str, prepared_path: Path) -> PseudoSet | None:
    """The pseudo-label set at `path` (None: none), refused when its teacher learnt other data."""
    if path is None:
        return None
    pseudo = load_pseudo(path)
    if pseudo and pseudo.teacher_data_hash != data_hash:
        raise SaltError(
            f"{path}: labelled by a teacher of data {pseudo.teacher_data_hash}, but {prepared_path} holds "
            f"data {data_hash}; rerun `salt pseudo` (`dvc repro`)"
        )
    return pseudo


def _pseudo_tags(parent_id: str, pseudo: PseudoSet) -> dict[str, str]:
    """Tags saying which pseudo-labels the folds learnt from and that their scores are optimistic;
    set on the parent run too, where the out-of-fold scores are logged."""
    tags = {tracking.PSEUDO_TAG: pseudo.fingerprint, tracking.PSEUDO_NOTE_TAG: pseudo.describe()}
    tags |= {"pseudo_teacher": pseudo.teacher_version or pseudo.teacher, "pseudo_images": str(len(pseudo))}
    client = MlflowClient()
    for name, value in tags.items():
        client.set_tag(parent_id, name, value)
    return tags


def run_fold(
    params: Params,
    prepared_path: Path,
    folds_csv: Path,
    fold: int,
    paths: FoldPaths,
    pseudo_path: Path | None = None,
    force: bool = False,
) -> dict | None:
    """Train fold `fold` and log it under the pipeline's parent run; returns its metrics, or None
    when the fold is already trained for these params, data and hardware policy (`finished`)
    and not `force`d: then no run is opened and nothing is written.

    `pseudo_path` (written by `salt pseudo`) adds its images to the training images; a
    non-empty set makes the run a different pipeline run (saltseg.tracking.pipeline_key).
    """
    # Without the test set (split.test_fraction): no fold trains or validates on it.
    prepared, folds_df = development(load_prepared(prepared_path), load_folds(folds_csv))
    split = fold_indices(prepared.ids, folds_df, fold)
    data_hash = prepared.fingerprint
    pseudo = _load_pseudo(pseudo_path, data_hash, prepared_path)
    pseudo_hash = pseudo.fingerprint if pseudo else None
    key = f"{tracking.pipeline_key(params, folds_csv, data_hash, pseudo_hash)}-fold{fold}"
    # Refuses a policy this machine cannot run, before any run exists.
    policy = hardware.for_params(params, stage_train_steps(params, folds_df))
    if not force and finished(paths, key):
        return None
    dist = distributed.context()
    if not dist.is_main:  # under torchrun the other ranks only compute: rank 0 tracks and writes
        return train_fold(params, prepared, split, fold, paths, key, pseudo=pseudo, policy=policy)
    tracking.configure(params.tracking)
    parent_id = tracking.parent_run_id(params, folds_csv, data_hash, pseudo_hash)
    run_id = _fold_run_id(parent_id, params, fold, resuming=load_resume_state(paths, key) is not None)
    tags = {tracking.FOLD_TAG: str(fold), **tracking.lineage_tags(params, data_hash, str(policy.device))}
    tags["hardware_policy"] = policy.describe()  # how it ran: e.g. "cpu bf16 channels_last"
    tags["world_size"] = str(dist.world_size)  # torchrun processes that trained this fold
    if pseudo:
        tags |= _pseudo_tags(parent_id, pseudo)
    kept = f"fold {fold} keeps {paths.state}, {paths.best} and {paths.history}: rerun to resume it"
    lost = reachability.server_lost(mlflow.get_tracking_uri(), kept)
    with lost, mlflow.start_run(run_id=run_id, run_name=f"fold{fold}", parent_run_id=parent_id, tags=tags):
        if run_id is None:
            mlflow.log_params(flat_params(params) | {"fold": fold})
        metrics = train_fold(
            params, prepared, split, fold, paths, key, pseudo=pseudo, policy=policy,
            log=lambda m, step: mlflow.log_metrics(shown(m), step=step),
        )  # fmt: skip
        mlflow.log_metrics(
            shown({k: v for k, v in metrics.items() if isinstance(v, int | float) and k != "fold"})
        )
        monitor = params.train.monitor
        mlflow.set_tag("mlflow.runName", f"{metrics[f'best_{monitor}']:.3f} {monitor} · fold{fold}")
        figure = paths.out_dir / "validation.png"
        _validation_figure(paths.members, prepared, split[1], params, figure)
        for artifact in (paths.best, *paths.snapshots, paths.history, paths.metrics, figure):
            mlflow.log_artifact(str(artifact))
    return metrics
