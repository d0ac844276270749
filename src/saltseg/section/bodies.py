"""Threshold and minimum salt area on a whole stitched section.

On a tile, the tuned rule calls a mask with fewer than `min_area` salt pixels empty:
small predicted salt is more often wrong than right. A section holds many bodies, so
the same rule is applied per body: each connected salt region (4-connected pixels)
with fewer than `min_area` pixels is removed. For a tile holding one body the two
rules agree. In a volume the bodies are those of each predicted inline section.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def salt_mask(proba: np.ndarray, threshold: float, min_area: int = 0) -> np.ndarray:
    """bool (H, W): proba (H, W) > threshold, without salt bodies of fewer than `min_area` pixels."""
    mask = np.asarray(proba) > threshold
    if min_area > 0 and mask.any():
        labels, _ = ndimage.label(mask)
        keep = np.bincount(labels.ravel()) >= min_area
        keep[0] = False
        mask = keep[labels]
    return mask
