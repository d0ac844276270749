"""Figures for people: predictions against truth as coloured overlays."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers and in CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from saltseg.atomic import atomic_file  # noqa: E402

# True positive, false positive, false negative: the usual segmentation review colours.
TP, FP, FN = (0.1, 0.8, 0.1), (0.9, 0.1, 0.1), (0.1, 0.4, 1.0)


def overlay(image: np.ndarray, truth: np.ndarray, pred: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """RGB float (H, W, 3): the grey image tinted TP green, FP red, FN blue."""
    rgb = np.repeat(image[..., None].astype(np.float32) / 255.0, 3, axis=-1)
    for where, colour in ((truth & pred, TP), (~truth & pred, FP), (truth & ~pred, FN)):
        rgb[where] = (1 - alpha) * rgb[where] + alpha * np.asarray(colour)
    return rgb


def overlay_grid(
    images: np.ndarray, truth: np.ndarray, pred: np.ndarray, titles: list[str], out: Path, cols: int = 8
) -> None:
    """Save a grid of overlays; images uint8 (N, H, W), truth and pred bool (N, H, W)."""
    cells = list(zip(images, truth, pred, titles, strict=True))
    overlay_rows([cells[i : i + cols] for i in range(0, max(len(cells), 1), cols)], out, cols=cols)


Cell = tuple[np.ndarray, np.ndarray, np.ndarray, str]  # image uint8 (H, W), truth, pred bool (H, W), title


def overlay_rows(rows: list[list[Cell]], out: Path, cols: int, labels: list[str] | None = None) -> None:
    """Save overlays row by row (at most `cols` a row), each row with an optional label at its left."""
    n_rows = max(1, len(rows))
    fig, axes = plt.subplots(n_rows, cols, figsize=(1.6 * cols, 1.8 * n_rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for r, row in enumerate(rows):
        for ax, (image, t, p, title) in zip(axes[r], row, strict=False):
            ax.imshow(overlay(image, t, p), interpolation="nearest")
            ax.set_title(title, fontsize=7)
        if labels:
            axes[r, 0].text(-0.08, 0.5, labels[r], transform=axes[r, 0].transAxes, rotation=90,
                            ha="right", va="center", fontsize=8)  # fmt: skip
    fig.suptitle("green: true positive, red: false positive, blue: false negative", fontsize=8)
    fig.tight_layout()
    with atomic_file(out) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
