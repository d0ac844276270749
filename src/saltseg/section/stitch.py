"""Sliding 101x101 windows over a section, blended with smooth weights into one probability map.

The section is reflect-padded by half a tile on every side, so each of its pixels lies
well inside some window. Each window's prediction is multiplied by a separable
sin^2 (Hann-like) weight that falls smoothly towards the window's edges but stays
positive, and the sum is divided by the summed weights. A prediction that is a
pointwise function of the pixels is therefore reproduced on the whole section up to
float rounding (test_sections.py::test_blending_is_exact), and a window's edge carries
~2e-4 of its centre's weight: with a trained model the stitched probability steps no more
across window borders than elsewhere (test_section_seams.py, measured at stride 50).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from saltseg.data.tgs import SIZE
from saltseg.errors import SaltError

PAD = SIZE // 2  # reflect padding on every side: each section pixel sits >= 50 px inside a window
TilePredictor = Callable[[np.ndarray], np.ndarray]  # float32 (N, 101, 101) 0..255 -> float32 (N, 101, 101)


def starts(length: int, stride: int) -> list[int]:
    """Window starts along an axis of `length` (>= 101) px: every `stride`, the last flush with the end."""
    last = length - SIZE
    out = list(range(0, last + 1, stride))
    if out[-1] != last:
        out.append(last)
    return out


def window_weight() -> np.ndarray:
    """float32 (101, 101): outer product of sin^2(pi (i + 1/2) / 101), 1 at the centre, ~2e-4 at the rim."""
    ramp = np.sin(np.pi * (np.arange(SIZE) + 0.5) / SIZE) ** 2
    return np.outer(ramp, ramp).astype(np.float32)


def check_stride(stride: int) -> None:
    if not 1 <= stride <= SIZE:
        raise SaltError(f"--stride: must be 1..{SIZE} px, got {stride}")


def window_count(shape: tuple[int, int], stride: int) -> int:
    """How many windows `stitch` predicts for a (samples, traces) section."""
    return len(starts(shape[0] + 2 * PAD, stride)) * len(starts(shape[1] + 2 * PAD, stride))


def _corners(shape: tuple[int, int], stride: int) -> Iterator[tuple[int, int]]:
    for r in starts(shape[0], stride):
        for c in starts(shape[1], stride):
            yield r, c


def stitch(pixels: np.ndarray, predict: TilePredictor, stride: int = 50, batch_size: int = 64) -> np.ndarray:
    """Probabilities float32 (H, W) for a section `pixels` (H, W), H and W >= 101, values 0..255.

    `predict` maps tiles float32 (N, 101, 101) to probabilities float32 (N, 101, 101); it is
    called with at most `batch_size` tiles at a time. Memory: the padded section, two
    accumulators of its size, and one batch of tiles.
    """
    check_stride(stride)
    if min(pixels.shape) < SIZE:
        raise SaltError(f"section of {pixels.shape[0]}x{pixels.shape[1]} px is smaller than a {SIZE} px tile")
    padded = np.pad(np.asarray(pixels, dtype=np.float32), PAD, mode="reflect")
    total = np.zeros(padded.shape, dtype=np.float32)
    weights = np.zeros(padded.shape, dtype=np.float32)
    weight = window_weight()
    corners = list(_corners(padded.shape, stride))
    for first in range(0, len(corners), batch_size):
        batch = corners[first : first + batch_size]
        tiles = np.stack([padded[r : r + SIZE, c : c + SIZE] for r, c in batch])
        proba = predict(tiles)
        for (r, c), tile in zip(batch, proba, strict=True):
            total[r : r + SIZE, c : c + SIZE] += weight * tile
            weights[r : r + SIZE, c : c + SIZE] += weight
    inner = (slice(PAD, PAD + pixels.shape[0]), slice(PAD, PAD + pixels.shape[1]))
    return total[inner] / weights[inner]
