"""The one way a data set is identified: a short hash over named arrays.

Computed from the arrays, not from a file, so the same images have the same fingerprint
however they were stored. Models, runs, registry versions and submissions carry it.
"""

from __future__ import annotations

import hashlib

import numpy as np


def fingerprint(**arrays: np.ndarray) -> str:
    """16 hex digits over each array's name, dtype, shape and bytes, in the order given."""
    digest = hashlib.sha256()
    for name, array in arrays.items():
        array = np.ascontiguousarray(array)
        digest.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:16]
