"""Out-of-fold evaluation: every fold model scores only the images its fold held out.

A fold's model is its best.pt or, with train.snapshots, the mean of its snapshots
(`saltseg.inference.fold_members`). The out-of-fold probabilities are the only predictions
made without the labels of the image predicted, so the probability threshold and the
minimum salt area are tuned on them (and then used unchanged by predict and the registered
model, on the average of all fold models). The tuned score selects on the very predictions
it scores, so it is optimistic; `score_nested` chooses each fold's post-processing on the
other folds only, and `score_default` uses 0.5 and no minimum area. Outputs: a metrics JSON for
DVC, thresholds.json, a CSV of the tuning grid, a score-versus-threshold plot,
overlays of the worst images, and the per-coverage-class table, bar chart and worst
overlays of saltseg.coverage_report.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from saltseg import coverage_report
from saltseg.atomic import atomic_dir, write_text
from saltseg.config import EvaluateConfig, Params, RuntimeConfig, TrainConfig
from saltseg.data.folds import development, fold_indices, load_folds
from saltseg.data.prepared import Prepared, load_prepared
from saltseg.errors import SaltError
from saltseg.inference import Members, binarize, fold_members, load_models, load_thresholds, predict_proba
from saltseg.metrics import competition_score, iou_per_image, score_per_image
from saltseg.models.checkpoint import checkpoint_data_hash, checkpoint_pseudo_hash, expected_members


@dataclass(frozen=True)
class OutOfFold:
    """Out-of-fold probabilities float32 (N, 101, 101) without/with flip TTA; fold int (N,)."""

    plain: np.ndarray
    tta: np.ndarray
    fold: np.ndarray


@dataclass(frozen=True)
class Tuning:
    """Scores over the grid, float64 (len(thresholds), len(min_areas)), and the best cell."""

    scores: np.ndarray
    threshold: float
    min_area: int
    score: float
    per_image: np.ndarray  # (len(thresholds), len(min_areas), N): what `nested_score` selects on


def out_of_fold(
    prepared: Prepared,
    folds_df: pd.DataFrame,
    checkpoints: Members,
    batch_size: int,
    runtime: RuntimeConfig,
) -> OutOfFold:
    """Predict each image with the one model whose fold held it out (with and without TTA), in
    the precision the model was validated with (saltseg.hardware's policy). A fold's model is
    the mean of its checkpoints' probabilities (its snapshots, or best.pt alone)."""
    n = len(prepared.ids)
    plain = np.full((n, 101, 101), np.nan, dtype=np.float32)
    tta = plain.copy()
    fold_of = np.full(n, -1, dtype=np.int64)
    for fold, paths in checkpoints.items():
        _, val_idx = fold_indices(prepared.ids, folds_df, fold)
        if (fold_of[val_idx] >= 0).any():
            raise SaltError(f"fold {fold}: held-out images overlap another fold's")
        models, cfg, policy = load_models(paths, runtime)
        images, depths = prepared.images[val_idx], prepared.depths[val_idx]
        plain[val_idx] = predict_proba(models, images, cfg, False, batch_size, policy, depths)
        tta[val_idx] = predict_proba(models, images, cfg, True, batch_size, policy, depths)
        fold_of[val_idx] = fold
    return OutOfFold(plain, tta, fold_of)


def grid_scores(truth: np.ndarray, proba: np.ndarray, cfg: EvaluateConfig) -> np.ndarray:
    """Competition score of every image at every (threshold, min_area): float64 (T, A, N)."""
    return np.array(
        [[score_per_image(truth, binarize(proba, t, a)) for a in cfg.min_areas] for t in cfg.thresholds]
    )


def best_cell(scores: np.ndarray) -> tuple[int, int]:
    """(i, j) of the highest mean score in a (T, A) grid; ties go to the first in grid order."""
    i, j = np.unravel_index(int(np.argmax(scores)), scores.shape)
    return int(i), int(j)


def tune(truth: np.ndarray, proba: np.ndarray, cfg: EvaluateConfig) -> Tuning:
    """Competition score for every (threshold, min_area) and the best cell."""
    per_image = grid_scores(truth, proba, cfg)
    scores = per_image.mean(axis=-1)
    i, j = best_cell(scores)
    return Tuning(scores, float(cfg.thresholds[i]), int(cfg.min_areas[j]), float(scores[i, j]), per_image)


def nested_score(per_image: np.ndarray, fold: np.ndarray) -> float:
    """Score when no image helps choose its own post-processing: mean over all images.

    `per_image` is `grid_scores` (T, A, N). For each fold k the (threshold, min_area)
    cell is chosen on the other folds' images only and scores fold k's images.
    """
    folds = np.unique(fold)
    if len(folds) < 2:
        raise SaltError(f"nested selection needs at least two folds, got {folds.tolist()}")
    chosen = np.empty(per_image.shape[-1])
    for k in folds:
        held = fold == k
        i, j = best_cell(per_image[:, :, ~held].mean(axis=-1))
        chosen[held] = per_image[i, j, held]
    return float(chosen.mean())


def _group_scores(per_image: np.ndarray, groups: np.ndarray, prefix: str) -> dict[str, float]:
    return {f"{prefix}{g}": float(per_image[groups == g].mean()) for g in np.unique(groups)}


def summarize(
    prepared: Prepared, classes: np.ndarray, oof: OutOfFold, chosen: Tuning, other: Tuning, tta: bool
) -> dict:
    """The metrics JSON: numbers only, per-fold and per-coverage-class scores one level down."""
    truth = prepared.masks
    masks = binarize(oof.tta if tta else oof.plain, chosen.threshold, chosen.min_area)
    per_image = score_per_image(truth, masks)
    with_tta, without = (chosen, other) if tta else (other, chosen)
    return {
        "score": chosen.score,
        "score_tta": with_tta.score,
        "score_no_tta": without.score,
        "score_nested": nested_score(chosen.per_image, oof.fold),
        "score_default": competition_score(truth, binarize(oof.tta if tta else oof.plain, 0.5, 0)),
        "iou": float(iou_per_image(truth, masks).mean()),
        "threshold": chosen.threshold,
        "min_area": chosen.min_area,
        "n_images": len(truth),
        "folds": _group_scores(per_image, oof.fold, "fold"),
        "coverage_classes": _group_scores(per_image, classes, "class"),
    }


def _coverage_classes(prepared: Prepared, folds_df: pd.DataFrame, folds_csv: Path) -> np.ndarray:
    lookup = folds_df.drop_duplicates("id").set_index("id")["coverage_class"]
    missing = [i for i in prepared.ids if i not in lookup.index]
    if missing:
        raise SaltError(f"{folds_csv}: {len(missing)} prepared id(s) have no fold, e.g. {missing[0]}")
    return lookup.loc[list(prepared.ids)].to_numpy()


def check_trained_on(checkpoints: Members, data_hash: str, prepared_path: Path) -> None:
    """Refuse fold models trained on other data than `prepared_path` (fingerprint `data_hash`)."""
    for path in (p for paths in checkpoints.values() for p in paths):
        trained_on = checkpoint_data_hash(path)
        if trained_on != data_hash:
            raise SaltError(
                f"{path}: trained on data {trained_on or 'of unknown origin'}, but {prepared_path} is data "
                f"{data_hash}; retrain the folds on it (`dvc repro`)"
            )


def check_snapshots(checkpoints: Members, cfg: TrainConfig) -> None:
    """Refuse folds whose snapshots are not what train.snapshots and train.cycles make."""
    for paths in checkpoints.values():
        names = [p.name for p in paths]
        expected = [p.name for p in expected_members(paths[0].parent, cfg.snapshots, cfg.cycles)]
        if names != expected:
            raise SaltError(
                f"{paths[0].parent}: its model is {', '.join(names)}, but train.snapshots "
                f"{str(cfg.snapshots).lower()} and train.cycles {cfg.cycles} make it {', '.join(expected)}; "
                "retrain the folds (`dvc repro`)"
            )


def trained_pseudo_hash(checkpoints: Members) -> str | None:
    """The pseudo-label set every fold model also trained on (None: none). The folds must agree:
    otherwise their ensemble would belong to no single pipeline run."""
    (first, expected), *others = (
        (path, checkpoint_pseudo_hash(path)) for paths in checkpoints.values() for path in paths
    )
    for path, found in others:
        if found != expected:
            raise SaltError(
                f"{path}: trained with pseudo-label set {found or 'none'}, but {first} with "
                f"{expected or 'none'}; retrain the folds (`dvc repro`)"
            )
    return expected


def score_curves(grid: pd.DataFrame, column: str, chosen: Tuning, out: Path) -> None:
    """PNG: score versus threshold, one curve per min_area, the chosen cell marked."""
    from saltseg.plots import plt  # selects the file-only backend

    fig, ax = plt.subplots(figsize=(6, 4))
    for area, rows in grid.groupby("min_area"):
        ax.plot(rows["threshold"], rows[column], marker=".", label=f"min area {area}")
    ax.plot([chosen.threshold], [chosen.score], "k*", markersize=12, label="chosen")
    title = "flip TTA" if column == "score_tta" else "no TTA"
    ax.set(xlabel="probability threshold", ylabel="competition score (out of fold)", title=title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=90, format="png")
    plt.close(fig)


def worst_overlays(prepared: Prepared, masks: np.ndarray, n: int, out: Path) -> None:
    """PNG grid of the n images with the lowest out-of-fold score (TP green, FP red, FN blue)."""
    from saltseg.plots import overlay_grid

    per_image = score_per_image(prepared.masks, masks)
    worst = np.argsort(per_image, kind="stable")[: max(n, 1)]
    titles = [f"{prepared.ids[i]} {per_image[i]:.2f}" for i in worst]
    overlay_grid(
        prepared.images[worst], prepared.masks[worst], masks[worst], titles, out, cols=min(8, len(worst))
    )


def _grid_frame(cfg: EvaluateConfig, chosen: Tuning, other: Tuning, tta: bool) -> pd.DataFrame:
    with_tta, without = (chosen, other) if tta else (other, chosen)
    rows = [
        {
            "threshold": t,
            "min_area": a,
            "score_tta": with_tta.scores[i, j],
            "score_no_tta": without.scores[i, j],
        }
        for i, t in enumerate(cfg.thresholds)
        for j, a in enumerate(cfg.min_areas)
    ]
    return pd.DataFrame(rows)


def run_evaluate(
    params: Params, prepared_path: Path, folds_csv: Path, models_dir: Path, metrics_path: Path, out_dir: Path
) -> dict:
    """Score the fold models out of fold, tune threshold and min area, write every output.

    Returns the metrics dict (also written to `metrics_path`); nothing is written when an
    input is missing or invalid.
    """
    cfg = params.evaluate
    # Without the test set (split.test_fraction): it chooses no threshold and no minimum area.
    prepared, folds_df = development(load_prepared(prepared_path), load_folds(folds_csv))
    classes = _coverage_classes(prepared, folds_df, folds_csv)
    folds = list(params.split.folds)
    unscored = sorted(set(folds_df["fold"].tolist()) - set(folds))
    if unscored:
        raise SaltError(
            f"{folds_csv}: fold(s) {unscored} are not in split.folds {folds}; their images have no model"
        )
    checkpoints = fold_members(models_dir, folds)
    check_snapshots(checkpoints, params.train)
    data_hash = prepared.fingerprint
    check_trained_on(checkpoints, data_hash, prepared_path)
    pseudo_hash = trained_pseudo_hash(checkpoints)
    oof = out_of_fold(prepared, folds_df, checkpoints, cfg.batch_size, params.runtime)
    tuned_tta, tuned_plain = tune(prepared.masks, oof.tta, cfg), tune(prepared.masks, oof.plain, cfg)
    chosen, other = (tuned_tta, tuned_plain) if cfg.tta else (tuned_plain, tuned_tta)
    metrics = summarize(prepared, classes, oof, chosen, other, cfg.tta)
    thresholds = {
        "threshold": chosen.threshold,
        "min_area": chosen.min_area,
        "tta": cfg.tta,
        "folds": folds,
        "score": chosen.score,
        "data_hash": data_hash,  # the registered ensemble carries this file: its data identity
    }
    if pseudo_hash:  # only then: without pseudo-labels the file keeps its bytes
        thresholds["pseudo_hash"] = pseudo_hash
    grid = _grid_frame(cfg, chosen, other, cfg.tta)
    masks = binarize(oof.tta if cfg.tta else oof.plain, chosen.threshold, chosen.min_area)
    scores = score_per_image(prepared.masks, masks)
    by_class = coverage_report.coverage_table(scores, iou_per_image(prepared.masks, masks), classes)
    # The eval folder appears in one rename, then the metrics file: never half of either.
    with atomic_dir(out_dir) as tmp:
        (tmp / "thresholds.json").write_text(json.dumps(thresholds, indent=2) + "\n")
        grid.to_csv(tmp / "threshold_grid.csv", index=False, float_format="%.6f")
        score_curves(grid, "score_tta" if cfg.tta else "score_no_tta", chosen, tmp / "score_vs_threshold.png")
        worst_overlays(prepared, masks, cfg.worst_n, tmp / "worst_predictions.png")
        by_class.to_csv(tmp / "coverage_classes.csv", index=False, float_format="%.6f")
        n_classes = params.split.coverage_classes
        coverage_report.score_by_coverage(by_class, n_classes, tmp / "score_by_coverage.png")
        coverage_report.worst_by_class(prepared, masks, scores, classes, tmp / "worst_by_class.png")
    write_text(metrics_path, json.dumps(metrics, indent=2) + "\n")
    return metrics


def flat_metrics(metrics: dict, prefix: str = "oof_") -> dict[str, float]:
    """{"oof_score": ..., "oof_folds_fold0": ...}: MLflow metric names for the metrics dict, rounded
    to 4 decimals as the runs table shows them. The per-class scores are left out: they are one
    table (evaluate/coverage_classes.csv), not 33 loose metrics."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if key == "coverage_classes":
            continue
        if isinstance(value, dict):
            out.update(flat_metrics(value, f"{prefix}{key}_"))
        else:
            out[f"{prefix}{key}"] = round(float(value), 4)
    return out


def log_evaluation(params: Params, folds_csv: Path, metrics: dict, metrics_path: Path, out_dir: Path) -> str:
    """Log the metrics and the eval folder (with the per-coverage-class table) to the pipeline's
    parent MLflow run; returns its id."""
    import mlflow

    from saltseg import tracking

    tuned = load_thresholds(Path(out_dir) / "thresholds.json")
    data_hash = tuned["data_hash"]
    tracking.configure(params.tracking)
    run_id = tracking.parent_run_id(params, folds_csv, data_hash, tuned.get("pseudo_hash"))
    with mlflow.start_run(run_id=run_id):
        tracking.describe_parent(params, data_hash, metrics)
        mlflow.log_metrics(flat_metrics(metrics))
        mlflow.log_artifacts(str(out_dir), artifact_path="evaluate")
        mlflow.log_artifact(str(metrics_path), artifact_path="evaluate")
    return run_id


def report(metrics: dict, tta: bool) -> str:
    """Lines for people: the tuned score and the two that do not select on what they score."""
    return (
        f"out-of-fold score {metrics['score']:.4f} (TTA {'on' if tta else 'off'}), "
        "tuned on these predictions (optimistic)\n"
        f"mean IoU {metrics['iou']:.4f} on {metrics['n_images']} images\n"
        f"nested (post-processing chosen on the other folds) {metrics['score_nested']:.4f}, "
        f"at 0.5 without min area {metrics['score_default']:.4f}\n"
        f"with flip TTA {metrics['score_tta']:.4f}, without {metrics['score_no_tta']:.4f} (both tuned)\n"
        f"threshold {metrics['threshold']:g}, min salt area {metrics['min_area']} pixels"
    )
