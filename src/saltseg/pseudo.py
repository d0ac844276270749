"""Pseudo-labels: the unlabelled test images a teacher ensemble is sure about, with its masks.

The `pseudo` stage runs after `prepare` and before `train`. DVC forbids cycles, so the
teacher is not this pipeline's model but one an earlier run registered, named by
`pseudo.teacher` (e.g. models:/saltseg-ensemble/3). It must have been trained on the
labelled data in prepared/train.npz. It predicts every test image (flip TTA, as served);
an image is kept when at least `min_confident_fraction` of its pixels have a probability
>= `confidence` or <= 1 - `confidence`, and its label is the teacher's mask (its tuned
threshold and minimum area). `max_images` keeps the most confident ones.

Caveat: the teacher's folds saw every labelled image, so a student trained with its
pseudo-labels has learnt, through them, from the images its own fold holds out: its
out-of-fold scores are optimistic, and the train stage tags its MLflow runs saying so.

With no teacher the stage writes an empty set without loading MLflow, and training on an
empty set is training without pseudo-labels, byte for byte. The file is written with fixed
zip timestamps: the same set always has the same bytes, so DVC retrains nothing when the
stage reruns and its output did not change.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from saltseg.atomic import atomic_file
from saltseg.config import Params, PseudoConfig
from saltseg.data.tgs import SIZE
from saltseg.errors import SaltError

ARRAYS = ("ids", "images", "masks", "depths")
# Provenance, stored as 0-d arrays beside the arrays.
RECORDS = ("teacher", "teacher_version", "teacher_data_hash", "n_test", "n_confident")
CAVEAT = "out-of-fold scores are optimistic: the teacher's folds saw every labelled image"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip can hold; any fixed one would do


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
        digest = hashlib.sha256()
        for name in ARRAYS:
            array = np.ascontiguousarray(getattr(self, name))
            digest.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
            digest.update(array.tobytes())
        return digest.hexdigest()[:16]

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


def confident_fraction(proba: np.ndarray, confidence: float) -> np.ndarray:
    """float64 (N,): share of each image's pixels with probability >= confidence or <= 1 - confidence."""
    sure = (proba >= confidence) | (proba <= 1 - confidence)
    return sure.mean(axis=(-2, -1), dtype=np.float64)


def select(fraction: np.ndarray, cfg: PseudoConfig) -> np.ndarray:
    """Indices (ascending) of the images kept: confident enough, then the `max_images` most
    confident (ties: the earlier index, so the choice is deterministic)."""
    passed = np.flatnonzero(fraction >= cfg.min_confident_fraction)
    if cfg.max_images is not None and len(passed) > cfg.max_images:
        order = np.argsort(-fraction[passed], kind="stable")
        passed = np.sort(passed[order[: cfg.max_images]])
    return passed


def _teacher_version(params: Params) -> str:
    """ "<name>/<version>" that pseudo.teacher names now (an alias resolved), "" for a URI
    outside the registry; the stage then loads that very version, whatever the alias does."""
    from mlflow.exceptions import MlflowException
    from mlflow.store.artifact.utils.models import get_model_name_and_version
    from mlflow.tracking import MlflowClient

    from saltseg import tracking

    uri = params.pseudo.teacher
    if not uri.startswith("models:/"):
        return ""
    tracking.configure(params.tracking)
    try:
        name, version = get_model_name_and_version(MlflowClient(), uri)
    except MlflowException as exc:
        raise SaltError(f"{uri}: no such registered model ({str(exc).splitlines()[0]})") from None
    return f"{name}/{version}"


def label_test_images(params: Params, data_dir: Path, prepared: Path) -> PseudoSet:
    """Predict data_dir/test/images with the teacher and keep its confident images (see module doc).

    SaltError before any prediction when the teacher was trained on other data than `prepared`.
    """
    from saltseg.data.prepared import load_prepared
    from saltseg.data.tgs import read_test_depths, read_test_images
    from saltseg.predict import load_registered

    cfg = params.pseudo
    version = _teacher_version(params)
    teacher = load_registered(f"models:/{version}" if version else cfg.teacher, params)
    current = load_prepared(prepared).fingerprint
    if teacher.data_hash != current:
        raise SaltError(
            f"{cfg.teacher}: teacher trained on data {teacher.data_hash}, but {prepared} holds data "
            f"{current}; name a teacher registered for this data in pseudo.teacher"
        )
    teacher = dataclasses.replace(teacher, batch_size=params.evaluate.batch_size)
    ids, images = read_test_images(data_dir)
    depths = read_test_depths(data_dir, ids)
    fraction = np.empty(len(images), dtype=np.float64)
    masks = np.empty(images.shape, dtype=bool)
    for start in range(0, len(images), teacher.batch_size):  # the probabilities of one batch at a time
        batch = slice(start, start + teacher.batch_size)
        proba = teacher.predict_proba(images[batch], depths[batch] if teacher.needs_depths else None)
        fraction[start : start + len(proba)] = confident_fraction(proba, cfg.confidence)
        masks[start : start + len(proba)] = teacher.binarize(proba)
    kept = select(fraction, cfg)
    return PseudoSet(
        ids=np.asarray(ids, dtype=str)[kept],
        images=images[kept],
        masks=masks[kept],
        depths=depths[kept],
        teacher=cfg.teacher,
        teacher_version=version,
        teacher_data_hash=teacher.data_hash,
        n_test=len(images),
        n_confident=int((fraction >= cfg.min_confident_fraction).sum()),
    )


def save_pseudo(path: Path, pseudo: PseudoSet) -> None:
    """Write the set atomically as .npz (np.load reads it) with the same bytes for the same set."""
    fields = {name: getattr(pseudo, name) for name in ARRAYS + RECORDS}
    with atomic_file(path) as tmp, zipfile.ZipFile(tmp, "w") as archive:
        for name, value in fields.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asarray(value), allow_pickle=False)


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


def run_pseudo(params: Params, data_dir: Path, prepared: Path, out: Path) -> PseudoSet:
    """The `pseudo` stage: label the test images (or, with no teacher, nothing) and write `out`."""
    pseudo = empty_set() if params.pseudo.teacher is None else label_test_images(params, data_dir, prepared)
    save_pseudo(out, pseudo)
    return pseudo
