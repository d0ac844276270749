"""The training arrays in one compact .npz file (output of `salt data prepare`).

Fields: images uint8 (N,101,101), masks bool (N,101,101), depths int32 (N,),
ids str (N,) ('<U..', sorted), coverage float32 (N,) (salt fraction of each mask).
"""

from __future__ import annotations

import dataclasses
import functools
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from saltseg.atomic import atomic_file
from saltseg.data.fingerprint import fingerprint
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
    # A subset (`subset`) keeps the fingerprint of the data set it was cut from: its models
    # belong to that data set's pipeline.
    origin: str | None = None

    def __len__(self) -> int:
        return len(self.ids)

    @functools.cached_property  # train_stage and train_fold both ask; hash the arrays once
    def fingerprint(self) -> str:
        """16 hex digits identifying the labelled data: ids, pixels, masks and depths."""
        if self.origin:
            return self.origin
        return fingerprint(ids=self.ids, images=self.images, masks=self.masks, depths=self.depths)

    def subset(self, idx: np.ndarray) -> Prepared:
        """The images at positions `idx`, identified as the data set they belong to."""
        arrays = {name: getattr(self, name)[idx] for name in FIELDS}
        return dataclasses.replace(self, **arrays, origin=self.fingerprint)


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
