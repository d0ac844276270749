"""Run-length encoding exactly as the TGS competition defines it.

Pixels are numbered from 1, top to bottom and then left to right (column-major,
Fortran order). A mask is written as space-separated "start length" pairs; an
empty mask is the empty string. Both directions are vectorised with numpy.
"""

from __future__ import annotations

import re

import numpy as np

from saltseg.errors import SaltError

_TOKEN = re.compile(r"[0-9]+")


def encode(mask: np.ndarray) -> str:
    """bool-like (H,W) mask -> "start length start length ..." (1-based, column-major)."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"encode expects a 2-D mask, got shape {mask.shape}")
    flat = mask.astype(bool).ravel(order="F")
    padded = np.concatenate([[False], flat, [False]])
    # 1-based positions where a run starts (even entries) or has just ended (odd entries).
    edges = np.flatnonzero(padded[1:] != padded[:-1]) + 1
    starts, ends = edges[0::2], edges[1::2]
    pairs = np.stack([starts, ends - starts], axis=1).ravel()
    return " ".join(map(str, pairs.tolist()))


def decode(rle: str, shape: tuple[int, int] = (101, 101)) -> np.ndarray:
    """RLE string -> bool (H,W) mask.

    Raises SaltError naming the problem (odd number of values, a token that is not a
    non-negative integer, a zero length, a run outside the image, runs that overlap or
    are out of order); callers prefix the file and id.
    """
    if not isinstance(rle, str):
        raise SaltError(f"RLE must be a string, got {rle!r}")
    height, width = shape
    size = height * width
    tokens = rle.split()
    if not tokens:
        return np.zeros(shape, dtype=bool)
    bad = next((t for t in tokens if not _TOKEN.fullmatch(t)), None)
    if bad is not None:
        raise SaltError(f"RLE value {bad!r} is not a non-negative integer")
    if len(tokens) % 2:
        raise SaltError(f"RLE has an odd number of values ({len(tokens)}); expected start/length pairs")
    values = np.array(tokens, dtype=np.int64).reshape(-1, 2)
    starts, lengths = values[:, 0], values[:, 1]
    ends = starts + lengths - 1  # last pixel of each run, 1-based
    _check_runs(starts, lengths, ends, size)
    delta = np.zeros(size + 1, dtype=np.int32)
    delta[starts - 1] += 1
    delta[ends] -= 1
    flat = np.cumsum(delta[:size]) > 0
    return flat.reshape(shape, order="F")


def _check_runs(starts: np.ndarray, lengths: np.ndarray, ends: np.ndarray, size: int) -> None:
    for name, bad in (
        ("start below 1", starts < 1),
        ("zero length", lengths < 1),
        (f"run past the last pixel {size}", ends > size),
    ):
        if bad.any():
            i = int(np.argmax(bad))
            raise SaltError(f"RLE run {i + 1} ({starts[i]} {lengths[i]}): {name}")
    overlap = starts[1:] <= ends[:-1]
    if overlap.any():
        i = int(np.argmax(overlap)) + 1
        raise SaltError(
            f"RLE run {i + 1} ({starts[i]} {lengths[i]}) overlaps or precedes run {i} "
            f"({starts[i - 1]} {lengths[i - 1]}); runs must be sorted and disjoint"
        )
