"""Seismic amplitudes -> the tiles' pixel range 0..255, one rule for a whole volume.

Rule: clip at +-L, where L is the `percentile`-th percentile of |amplitude| over the
volume, and map -L..L linearly to 0..255 (zero amplitude at mid-grey 127.5). This is
how the synthetic tiles are made (amplitudes normalised by their 99th percentile of
|x|, zero at mid-grey), so the default is 99. L is computed once, before any
prediction, from every sample when the volume has at most `SAMPLE_CAP` of them (fewer
under a memory cap: `sample_size`), else from evenly spaced traces holding about that
many; it is recorded in every output.
uint8 input (PNG, uint8 .npy) is taken as pixels as is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from saltseg.errors import SaltError

SAMPLE_CAP = 1_000_000  # amplitudes read to find L: 4 MB, whatever the volume's size


@dataclass(frozen=True)
class Scaling:
    """How amplitudes become pixels: clip at +-limit (the percentile-th percentile of |x|)."""

    percentile: float | None  # None: the input is uint8 pixels, taken as is
    limit: float

    def describe(self) -> str:
        if self.percentile is None:
            return "uint8 pixels taken as is"
        return f"clip |amplitude| at P{self.percentile:g} = {self.limit:.6g}, -L..L -> 0..255"

    def pixels(self, amplitudes: np.ndarray) -> np.ndarray:
        """float32 pixels 0..255, the shape of `amplitudes`."""
        if self.percentile is None:
            return np.asarray(amplitudes, dtype=np.float32)
        scaled = np.clip(np.asarray(amplitudes, dtype=np.float32) / self.limit, -1.0, 1.0)
        return (scaled + 1.0) * 127.5


def sample_size(memory_cap_bytes: float) -> int:
    """Amplitudes to read for L: SAMPLE_CAP, or fewer when |x| and the percentile's copies
    (~16 bytes a value) would not fit in the memory cap."""
    return int(max(1, min(SAMPLE_CAP, memory_cap_bytes // 16)))


def check_percentile(percentile: float) -> None:
    if not 50.0 <= percentile <= 100.0:
        raise SaltError(f"--clip-percentile: must be 50..100, got {percentile:g}")


def from_sample(sample: np.ndarray, percentile: float, name: str) -> Scaling:
    """The Scaling whose limit is the `percentile`-th percentile of |sample| (float, any shape)."""
    check_percentile(percentile)
    if not np.isfinite(sample).all():
        raise SaltError(f"{name}: has NaN or infinite samples")
    limit = float(np.percentile(np.abs(sample), percentile))
    if not limit > 0:
        raise SaltError(f"{name}: the P{percentile:g} of |amplitude| is 0; nothing to scale (a dead volume?)")
    return Scaling(percentile, limit)


PIXELS = Scaling(None, 255.0)
