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

With no teacher the stage writes an empty set without loading MLflow. The set itself, its
file and its fingerprint are data: saltseg.data.pseudo_set.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from saltseg.config import Params, PseudoConfig
from saltseg.data.pseudo_set import PseudoSet, empty_set, save_pseudo
from saltseg.errors import SaltError


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


def run_pseudo(params: Params, data_dir: Path, prepared: Path, out: Path) -> PseudoSet:
    """The `pseudo` stage: label the test images (or, with no teacher, nothing) and write `out`."""
    pseudo = empty_set() if params.pseudo.teacher is None else label_test_images(params, data_dir, prepared)
    save_pseudo(out, pseudo)
    return pseudo
