"""A picture of the data: tiles with their salt outlines, synthetic next to real."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure  # a bare Figure renders with Agg: no pyplot, no global backend

from saltseg.atomic import atomic_file
from saltseg.data import rle
from saltseg.data.tgs import SIZE, read_csv_table, read_tile
from saltseg.errors import SaltError


def pick_tiles(folder: str | Path, n: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """n train tiles spread over salt coverage (one empty, the rest from small to large).

    Returns [(id, image uint8 (101,101), mask bool (101,101))]. Only the chosen PNGs are
    read, so this is quick on the full real set.
    """
    folder = Path(folder)
    table = read_csv_table(folder / "train.csv", ("id", "rle_mask"))
    ids = sorted(table)
    masks = {}
    for key in ids:
        try:
            masks[key] = rle.decode(table[key], (SIZE, SIZE))
        except SaltError as exc:
            raise SaltError(f"{folder / 'train.csv'}: id {key}: {exc}") from None
    salty = sorted((k for k in ids if masks[k].any()), key=lambda k: (masks[k].mean(), k))
    empty = [k for k in ids if not masks[k].any()]
    chosen = empty[:1] if empty and n > 1 else []
    if salty:
        positions = np.linspace(0, len(salty) - 1, min(n - len(chosen), len(salty)))
        chosen += [salty[int(round(p))] for p in positions]
    return [(k, read_tile(folder / "train" / "images" / f"{k}.png"), masks[k]) for k in chosen]


def _percent(fraction: float) -> str:
    """Salt coverage for a title; never rounds a non-empty mask to 0% or a partial one to 100%."""
    if 0 < fraction < 0.01:
        return "<1%"
    if 0.99 < fraction < 1:
        return ">99%"
    return f"{100 * fraction:.0f}%"


def show_grid(
    synthetic_folder: str | Path, out_png: str | Path, real_folder: str | Path | None = None, n: int = 8
) -> Path:
    """Save a PNG grid: a row of synthetic tiles (red: salt outline), a row of real ones below."""
    if n < 1:
        raise SaltError(f"show: n must be >= 1, got {n}")
    rows = [("synthetic", pick_tiles(synthetic_folder, n))]
    if real_folder is not None:
        rows.append(("real", pick_tiles(real_folder, n)))
    fig = Figure(figsize=(1.6 * n, 1.8 * len(rows)))
    axes = fig.subplots(len(rows), n, squeeze=False)
    for r, (label, tiles) in enumerate(rows):
        for c in range(n):
            ax = axes[r][c]
            ax.set_axis_off()
            if c >= len(tiles):
                continue
            key, image, mask = tiles[c]
            ax.imshow(image, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
            if mask.any():
                ax.contour(mask.astype(float), levels=[0.5], colors="red", linewidths=0.8)
            ax.set_title(f"{label} {_percent(mask.mean())}", fontsize=7)
    fig.tight_layout(pad=0.3)
    out_png = Path(out_png)
    with atomic_file(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    return out_png
