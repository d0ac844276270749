"""The training arrays in one compact .npz file (output of `salt data prepare`).

Fields: images uint8 (N,101,101), masks bool (N,101,101), depths int32 (N,),
ids str (N,) ('<U..', sorted), coverage float32 (N,) (salt fraction of each mask).
"""

from __future__ import annotations

import functools
import hashlib
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from saltseg.atomic import atomic_file
from saltseg.data.tgs import SIZE, read_layout
from saltseg.errors import SaltError

FIELDS = ("images", "masks", "depths", "ids", "coverage")


@dataclass(frozen=True, eq=False)
class Prepared:
    """Training arrays; see the module docstring for shapes and dtypes."""

    images: np.ndarray
    masks: np.ndarray
    depths: np.ndarray
    ids: np.ndarray
    coverage: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    @functools.cached_property  # train_stage and train_fold both ask; hash the arrays once
    def fingerprint(self) -> str:
        """16 hex digits identifying the labelled data: ids, pixels, masks and depths.

        Computed from the arrays, not the file (a zip's bytes carry timestamps), so the
        same images always get the same fingerprint. Models, runs, registry versions and
        submissions carry it, and nothing is compared or predicted across two of them.
        """
        digest = hashlib.sha256()
        for name in ("ids", "images", "masks", "depths"):
            array = np.ascontiguousarray(getattr(self, name))
            digest.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
            digest.update(array.tobytes())
        return digest.hexdigest()[:16]


def prepare(src_folder: str | Path, out_npz: str | Path) -> Prepared:
    """Read and validate the train part of a Kaggle layout folder; write `out_npz` atomically."""
    layout = read_layout(src_folder, test=False)
    if not layout.ids:
        raise SaltError(f"{Path(src_folder) / 'train.csv'}: no training ids")
    prepared = Prepared(
        images=layout.images,
        masks=layout.masks,
        depths=layout.depths,
        ids=np.array(layout.ids, dtype=str),
        coverage=layout.masks.mean(axis=(1, 2), dtype=np.float64).astype(np.float32),
    )
    with atomic_file(out_npz) as tmp, tmp.open("wb") as f:
        # Through a file object: np.savez would append ".npz" to a path that lacks it.
        np.savez_compressed(f, **{name: getattr(prepared, name) for name in FIELDS})
    return prepared


def _check(path: Path, arrays: dict[str, np.ndarray]) -> None:
    n = len(arrays["ids"])
    expected = {
        "images": ((n, SIZE, SIZE), "u1"),
        "masks": ((n, SIZE, SIZE), "b1"),
        "depths": ((n,), "i4"),
        "ids": ((n,), "U"),
        "coverage": ((n,), "f4"),
    }
    for name, (shape, kind) in expected.items():
        arr = arrays[name]
        ok_dtype = arr.dtype.kind == "U" if kind == "U" else arr.dtype == np.dtype(kind)
        if arr.shape != shape or not ok_dtype:
            raise SaltError(f"{path}: field {name} is {arr.dtype} {arr.shape}, expected {kind} {shape}")
    if len(set(arrays["ids"].tolist())) != n:
        raise SaltError(f"{path}: ids are not unique")


def load_prepared(path: str | Path) -> Prepared:
    """Load a prepared .npz; SaltError naming the file when it is missing, corrupt or incomplete."""
    path = Path(path)
    if not path.is_file():
        raise SaltError(f"{path}: prepared file not found (run `salt data prepare`)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [name for name in FIELDS if name not in npz.files]
            if missing:
                raise SaltError(f"{path}: missing field(s) {', '.join(missing)}")
            arrays = {name: npz[name] for name in FIELDS}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise SaltError(f"{path}: not a readable .npz file ({exc})") from None
    _check(path, arrays)
    return Prepared(**arrays)
