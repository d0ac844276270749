"""Where the model fails: out-of-fold scores per coverage class, a bar chart, the worst images of each.

Class 0 holds the images whose mask is empty; class k (1..n-1) the masks whose salt fraction
lies in ((k-1)/(n-1), k/(n-1)] (saltseg.data.folds.coverage_class). Small salt bodies are
where TGS models lose most, and one overall score hides it. `salt evaluate` writes the table
as a CSV (drawn by `dvc plots show`) and logs that file to MLflow.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from saltseg.data.prepared import Prepared

COLUMNS = ["class", "n_images", "score", "iou"]
# Worst images shown per class: enough to see a pattern, few enough that 10 rows stay legible.
WORST_PER_CLASS = 6


def coverage_table(scores: np.ndarray, ious: np.ndarray, classes: np.ndarray) -> pd.DataFrame:
    """One row per coverage class present, ascending: class, n_images, mean score, mean IoU.

    scores, ious float (N,) per image (competition score, IoU); classes int (N,).
    """
    frame = pd.DataFrame({"class": np.asarray(classes, dtype=np.int64), "score": scores, "iou": ious})
    grouped = frame.groupby("class", sort=True)
    table = grouped.agg(n_images=("score", "size"), score=("score", "mean"), iou=("iou", "mean"))
    return table.reset_index()[COLUMNS]


def class_label(k: int, n_classes: int) -> str:
    """'0\\nempty' or the coverage bin of class k, e.g. '3\\n20-30%' with 11 classes."""
    if k == 0:
        return "0\nempty"
    width = 100 / (n_classes - 1)
    return f"{k}\n{(k - 1) * width:.0f}-{k * width:.0f}%"


def score_by_coverage(table: pd.DataFrame, n_classes: int, out: Path) -> None:
    """PNG: a bar per coverage class (mean out-of-fold score), its image count above the bar."""
    from saltseg.plots import plt  # selects the file-only backend

    fig, ax = plt.subplots(figsize=(7, 4))
    x = np.arange(len(table))
    bars = ax.bar(x, table["score"], color="tab:blue")
    ax.bar_label(bars, labels=[f"n={n}" for n in table["n_images"]], fontsize=7)
    ax.set_xticks(x, [class_label(int(k), n_classes) for k in table["class"]], fontsize=7)
    ax.set(
        xlabel="coverage class: 0 = empty mask, k = coverage bin k (salt % of the tile)",
        ylabel="competition score (out of fold)",
        ylim=(0, 1.1),
        title="score by salt coverage",
    )
    fig.tight_layout()
    fig.savefig(out, dpi=90, format="png")
    plt.close(fig)


def worst_by_class(
    prepared: Prepared, masks: np.ndarray, scores: np.ndarray, classes: np.ndarray, out: Path
) -> None:
    """PNG: a row per non-empty coverage class, its WORST_PER_CLASS lowest-scoring overlays."""
    from saltseg.plots import overlay_rows

    rows, labels = [], []
    for k in np.unique(classes[classes > 0]):
        members = np.flatnonzero(classes == k)
        worst = members[np.argsort(scores[members], kind="stable")[:WORST_PER_CLASS]]
        cells = [(prepared.images[i], prepared.masks[i], masks[i], f"{prepared.ids[i]} {scores[i]:.2f}")
                 for i in worst]  # fmt: skip
        rows.append(cells)
        labels.append(f"class {k} (n={len(members)})")
    overlay_rows(rows, out, cols=WORST_PER_CLASS, labels=labels)
