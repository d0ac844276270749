"""The pseudo-label set: unlabelled test images with a teacher's masks, as data.

Written by the `pseudo` stage (saltseg.pseudo), read by training, which appends its images to
every fold's training images. An empty set trains like no set, to the checkpoint's bytes
(tests/code/test_pseudo.py::test_pseudo_images_join_training_only_and_fork_the_run). The file is
an .npz written by `np.savez_compressed`, whose zip entries carry a fixed date (1980-01-01): the
same set gets the same bytes (test_off_writes_an_empty_set_without_loading_mlflow,
test_teacher_labels_exactly_its_confident_test_images), so DVC retrains nothing when the stage
reruns and its output did not change.
"""

from __future__ import annotations

import functools
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from saltseg.atomic import atomic_file
from saltseg.data.fingerprint import fingerprint
from saltseg.data.tgs import SIZE
from saltseg.errors import SaltError

ARRAYS = ("ids", "images", "masks", "depths")
# Provenance, stored as 0-d arrays beside the arrays.
RECORDS = ("teacher", "teacher_version", "teacher_data_hash", "n_test", "n_confident")
CAVEAT = "out-of-fold scores are optimistic: the teacher's folds saw every labelled image"


@dataclass(frozen=True, eq=False)
class PseudoSet:
    """ids str (N,), images uint8 (N, 101, 101), masks bool (N, 101, 101), depths int32 (N,) (from
    depths.csv, for students with model.depth_channel), and where they came from."""

    ids: np.ndarray
    images: np.ndarray
    masks: np.ndarray
    depths: np.ndarray
    teacher: str = ""  # the URI in pseudo.teacher; "" when off
    teacher_version: str = ""  # "<name>/<version>" the URI resolved to (registry URIs only)
    teacher_data_hash: str = ""  # the labelled data the teacher was trained on
    n_test: int = 0  # test images the teacher predicted
    n_confident: int = 0  # of those, how many passed the confidence rule (before max_images)

    def __len__(self) -> int:
        return len(self.ids)

    @functools.cached_property
    def fingerprint(self) -> str | None:
        """16 hex digits over ids, pixels and masks; None for an empty set, which trains
        exactly like no set and so must not change any run's identity."""
        if not len(self):
            return None
        return fingerprint(**{name: getattr(self, name) for name in ARRAYS})

    def describe(self) -> str:
        """One line for logs and MLflow tags."""
        if not len(self):
            return "no pseudo-labels" + (f" ({self.teacher}: none confident)" if self.teacher else "")
        source = self.teacher_version or self.teacher
        return (
            f"{len(self)} of {self.n_test} test images pseudo-labelled by {source} "
            f"(set {self.fingerprint}); {CAVEAT}"
        )


def empty_set() -> PseudoSet:
    blank = np.zeros((0, SIZE, SIZE), dtype=np.uint8)
    return PseudoSet(np.zeros(0, dtype="<U1"), blank, blank.astype(bool), np.zeros(0, dtype=np.int32))


def save_pseudo(path: Path, pseudo: PseudoSet) -> None:
    """Write the set atomically as .npz (np.load reads it) with the same bytes for the same set."""
    fields = {name: np.asarray(getattr(pseudo, name)) for name in ARRAYS + RECORDS}
    with atomic_file(path) as tmp, tmp.open("wb") as f:  # a file object: numpy adds no .npz suffix
        np.savez_compressed(f, **fields)


def load_pseudo(path: Path) -> PseudoSet:
    """The set `salt pseudo` wrote; SaltError naming the file when it is missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise SaltError(f"{path}: pseudo-label file not found (run `salt pseudo`)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [name for name in ARRAYS + RECORDS if name not in npz.files]
            if missing:
                raise SaltError(f"{path}: missing field(s) {', '.join(missing)} (rerun `salt pseudo`)")
            values = {name: npz[name] for name in ARRAYS + RECORDS}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise SaltError(f"{path}: not a readable .npz file ({exc})") from None
    n = len(values["ids"])
    ok = values["ids"].ndim == 1 and values["ids"].dtype.kind == "U"
    ok = ok and values["images"].shape == (n, SIZE, SIZE) and values["images"].dtype == np.uint8
    ok = ok and values["masks"].shape == (n, SIZE, SIZE) and values["masks"].dtype == bool
    ok = ok and values["depths"].shape == (n,) and values["depths"].dtype == np.int32
    if not ok:
        raise SaltError(
            f"{path}: needs str ids, uint8 images and bool masks of shape ({n}, {SIZE}, {SIZE}) "
            f"and int32 depths ({n},)"
        )
    records = {name: values[name].item() for name in RECORDS}
    return PseudoSet(*(values[name] for name in ARRAYS), **records)
