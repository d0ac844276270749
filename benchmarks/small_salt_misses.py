"""Where a trained pipeline loses the tiles with little salt: missed outright, or drawn wrong.

From a project whose `dvc repro` has run (models/fold*, prepared/, eval/thresholds.json): each
fold model predicts its held-out images as evaluate does (flip TTA), binarised with the tuned
threshold and minimum area. Per coverage class it prints how many tiles come out empty and how
high their highest probability was; for the tiles that do get salt, the IoU. Then it tries a
"rescue" of the tiles that come out empty: where the highest probability p is at least r, the
pixels at or above a * p become the mask. r and a (or no rescue) are chosen nested, each fold's
on the other folds, as evaluate chooses the threshold. A rescue can only help if the tiles with
a few missed pixels of salt stand out from the empty ones by p.

    python benchmarks/small_salt_misses.py [PROJECT]   # after its dvc repro (default: here)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from saltseg.config import RuntimeConfig
from saltseg.data.dataset import SMALL_SALT
from saltseg.data.folds import development, load_folds
from saltseg.data.prepared import load_prepared
from saltseg.evaluate import nested_score, out_of_fold
from saltseg.inference import binarize, fold_members, load_thresholds
from saltseg.metrics import iou_per_image, score_per_image

RESCUE_FROM = (0.1, 0.2, 0.3, 0.4)  # r: the highest probability a rescued tile must reach
RESCUE_SHARE = (0.5, 0.7, 0.9)  # a: pixels at or above a * r's p become salt


def coverage_class(masks: np.ndarray) -> np.ndarray:
    """str (N,): empty, < 10% (SMALL_SALT, what the profile calls small salt), 10-20% or > 20% salt."""
    cov = masks.reshape(len(masks), -1).mean(axis=1)
    return np.select([cov == 0, cov <= SMALL_SALT, cov <= 0.2], ["empty", "< 10%", "10-20%"], "> 20%")


def rescue(proba: np.ndarray, masks: np.ndarray, start: float, share: float) -> np.ndarray:
    """`masks` with each empty one whose highest probability p >= `start` set to proba >= share * p."""
    peak = proba.reshape(len(proba), -1).max(axis=1)
    out = masks.copy()
    for i in np.flatnonzero(~masks.reshape(len(masks), -1).any(axis=1) & (peak >= start)):
        out[i] = proba[i] >= share * peak[i]
    return out


def misses(truth: np.ndarray, proba: np.ndarray, pred: np.ndarray) -> pd.DataFrame:
    """Per coverage class: tiles, tiles predicted empty, their highest probability's quartiles,
    and the median IoU of the tiles predicted with salt."""
    classes = coverage_class(truth)
    empty = ~pred.reshape(len(pred), -1).any(axis=1)
    peak = proba.reshape(len(proba), -1).max(axis=1)
    iou = iou_per_image(truth, pred)
    rows = {}
    for name in ("empty", "< 10%", "10-20%", "> 20%"):
        here = classes == name
        q = np.quantile(peak[here & empty], [0.25, 0.5, 0.75]) if (here & empty).any() else [np.nan] * 3
        drawn = here & ~empty
        rows[name] = {
            "tiles": int(here.sum()),
            "predicted empty": int((here & empty).sum()),
            "their peak p (quartiles)": " / ".join(f"{v:.2f}" for v in q),
            "median IoU of the others": float(np.median(iou[drawn])) if drawn.any() else np.nan,
        }
    return pd.DataFrame(rows).T


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("project", type=Path, nargs="?", default=Path("."), help="where dvc repro ran")
    root = parser.parse_args().project
    prepared = load_prepared(root / "prepared/train.npz")
    prepared, folds_df = development(prepared, load_folds(root / "prepared/folds.csv"))
    folds = sorted(folds_df["fold"].unique())
    oof = out_of_fold(prepared, folds_df, fold_members(root / "models", folds), 64, RuntimeConfig("cpu"))
    truth = prepared.masks.astype(bool)
    tuned = load_thresholds(root / "eval/thresholds.json")
    threshold, min_area = tuned["threshold"], tuned["min_area"]
    pred = binarize(oof.tta, threshold, min_area)
    print(f"threshold {threshold}, min area {min_area}, {len(truth)} images out of fold\n")
    print(misses(truth, oof.tta, pred).round(3).to_markdown())
    plain = score_per_image(truth, pred)
    grid = [[plain] * len(RESCUE_SHARE)] + [
        [score_per_image(truth, rescue(oof.tta, pred, r, a)) for a in RESCUE_SHARE] for r in RESCUE_FROM
    ]
    per_image = np.array(grid)  # (1 + R, A, N); row 0: no rescue
    small = coverage_class(truth) == "< 10%"
    print(f"\nno rescue: {plain.mean():.4f} (< 10%: {plain[small].mean():.3f})")
    for i, r in enumerate(RESCUE_FROM, start=1):
        for j, a in enumerate(RESCUE_SHARE):
            s = per_image[i, j]
            print(f"rescue p >= {r}, pixels >= {a} p: {s.mean():.4f} (< 10%: {s[small].mean():.3f})")
    chosen = nested_score(per_image, oof.fold)
    print(f"the rescue chosen per fold on the other folds (no rescue among the choices): {chosen:.4f}")


if __name__ == "__main__":
    main()
