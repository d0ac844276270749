"""Predict the test tiles with the fold ensemble and write a Kaggle submission.

By default the ensemble is the champion that registry.json (written by `salt register`)
records for the data at hand: the record names its data fingerprint, and prediction
stops when prepared/train.npz holds other data, so a submission never comes from a model
trained on another data set. A model URI or the local fold checkpoints (with
eval/thresholds.json) can be named instead. Either way the masks are made by
`saltseg.inference.Ensemble`, the object the registered pyfunc wraps (the served model's masks
equal the submission's: tests/code/test_predict.py).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from saltseg import progress
from saltseg.atomic import atomic_file
from saltseg.config import Params
from saltseg.data import rle
from saltseg.errors import SaltError
from saltseg.inference import Ensemble


def pin_mismatches(requirements: str, python: str | None = None) -> list[str]:
    """The `name==version` pins of a requirements.txt that this environment does not satisfy,
    as "name==logged (installed here: version)"; unpinned lines and comments are skipped. First,
    the model's `python` version where its major.minor is not the running one's (MLflow's rule)."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    running = platform.python_version()
    found = []
    if python and python.split(".")[:2] != running.split(".")[:2]:
        found.append(f"python=={python} (running here: {running})")
    for line in requirements.splitlines():
        name, sep, logged = line.split("#", 1)[0].strip().partition("==")
        if not sep:
            continue
        try:
            here = version(name)
        except PackageNotFoundError:
            here = "not installed"
        if here != logged:
            found.append(f"{name}=={logged} (installed here: {here})")
    return found


def load_pyfunc(model_uri: str, params: Params):  # noqa: ANN201 - mlflow's PyFuncModel
    """The pyfunc at `model_uri` (e.g. models:/saltseg-ensemble@champion) from the store of
    params.tracking; SaltError in one line when it cannot be loaded.

    MLflow's own check of the model's requirements maps every installed distribution to its
    modules (~2.5 s a load on 2 cores); the model pins its few packages (registry.requirements),
    so its warnings are off and pin_mismatches compares those pins and the model's Python
    instead: a mismatch is one line on stderr."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from saltseg import tracking

    tracking.configure(params.tracking)
    try:
        local = Path(mlflow.artifacts.download_artifacts(model_uri))
        model = mlflow.pyfunc.load_model(str(local), suppress_warnings=True)
    except (MlflowException, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SaltError(f"{model_uri}: cannot load the model ({first[:300]})") from None
    pins = local / "requirements.txt"
    python = model.metadata.flavors.get("python_function", {}).get("python_version")
    mismatches = pin_mismatches(pins.read_text() if pins.is_file() else "", python)
    if mismatches:
        print(f"warning: {model_uri} was logged with {', '.join(mismatches)}", file=sys.stderr)
    return model


def ensemble_of(model, model_uri: str) -> Ensemble:  # noqa: ANN001 - mlflow's PyFuncModel
    """The Ensemble inside a saltseg pyfunc; SaltError for any other model."""
    ensemble = getattr(model.unwrap_python_model(), "ensemble", None)
    if not isinstance(ensemble, Ensemble):
        raise SaltError(f"{model_uri}: not a saltseg ensemble model")
    return ensemble


def load_registered(model_uri: str, params: Params) -> Ensemble:
    """The Ensemble inside a registered (or logged) pyfunc, e.g. models:/saltseg-ensemble@champion."""
    return ensemble_of(load_pyfunc(model_uri, params), model_uri)


def check_champion(ensemble: Ensemble, uri: str, data_hash: str, registry_json: Path) -> None:
    """Refuse a champion whose folds learnt other data than registry.json records for it."""
    if ensemble.data_hash != data_hash:
        raise SaltError(
            f"{uri}: trained on data {ensemble.data_hash}, not {data_hash} as {registry_json} says"
        )


def champion_uri(registry_json: Path, prepared: Path | None, alias: bool = False) -> tuple[str, str]:
    """(model URI, data fingerprint) of the champion registry.json records for the current data.

    `prepared` (the training arrays the pipeline uses now) must hold the data the record
    names; `alias` gives the moving `@<alias>` URI (for serving) instead of the version.
    """
    from saltseg.data.prepared import load_prepared
    from saltseg.registry import read_record

    record = read_record(registry_json)
    if prepared is not None and Path(prepared).exists():
        current = load_prepared(prepared).fingerprint
        if current != record["data_hash"]:
            raise SaltError(
                f"{registry_json}: records the champion for data {record['data_hash']}, but {prepared} "
                f"holds data {current}; run `dvc repro` to train and register a model for it"
            )
    uri = f"models:/{record['name']}@{record['alias']}" if alias else record["champion_uri"]
    return uri, record["data_hash"]


def model_source(
    model_uri: str | None, models_dir: Path | None, eval_dir: Path | None, registry_json: Path
) -> str:
    """The model `load_ensemble` loads for these options, in words: local checkpoints, the URI
    given, or the champion's version that registry.json records (read, not checked: load_ensemble
    checks it against the data)."""
    from saltseg.registry import read_record

    if models_dir is not None:
        return f"local checkpoints {models_dir} with {eval_dir}"
    return model_uri or read_record(registry_json)["champion_uri"]


def load_ensemble(
    params: Params,
    model_uri: str | None,
    models_dir: Path | None,
    eval_dir: Path | None,
    batch_size: int,
    registry_json: Path = Path("registry.json"),
    prepared: Path | None = None,
) -> Ensemble:
    """From `model_uri`, from local files, or (by default) the champion for the current data."""
    if model_uri and (models_dir or eval_dir):
        raise SaltError("--model: give either a model URI or --model-dir with --eval-dir, not both")
    if models_dir or eval_dir:
        if not (models_dir and eval_dir):
            raise SaltError("--model-dir: local prediction needs both --model-dir and --eval-dir")
        return Ensemble.from_dirs(models_dir, eval_dir, batch_size, params.runtime.device)
    if model_uri:
        return dataclasses.replace(load_registered(model_uri, params), batch_size=batch_size)
    uri, data_hash = champion_uri(registry_json, prepared)
    ensemble = load_registered(uri, params)
    check_champion(ensemble, uri, data_hash, registry_json)
    return dataclasses.replace(ensemble, batch_size=batch_size)


def predict_masks(
    ensemble: Ensemble, images: np.ndarray, keep_proba: bool = False, depths: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """bool masks (N, 101, 101) and, if asked, float32 probabilities; one batch at a time.

    `depths` (N,): needed when the ensemble's models take them (`Ensemble.needs_depths`)."""
    n, step = len(images), ensemble.batch_size
    masks = np.zeros(images.shape, dtype=bool)
    proba = np.zeros(images.shape, dtype=np.float32) if keep_proba else None
    with progress.task(f"predict {n} images", total=-(-n // step)) as bar:
        for start in range(0, n, step):
            batch_depths = None if depths is None else depths[start : start + step]
            batch = ensemble.predict_proba(images[start : start + step], batch_depths)
            masks[start : start + step] = ensemble.binarize(batch)
            if proba is not None:
                proba[start : start + step] = batch
            bar.advance(1)
        bar.finish(with_salt=int(masks.any(axis=(1, 2)).sum()))
    return masks, proba


def submission(ids: list[str], masks: np.ndarray) -> pd.DataFrame:
    """Kaggle table: id, rle_mask (column-major RLE; the empty string for an empty mask)."""
    return pd.DataFrame({"id": ids, "rle_mask": [rle.encode(m) for m in masks]})


def write_submission(path: Path, ids: list[str], masks: np.ndarray) -> pd.DataFrame:
    table = submission(ids, masks)
    with atomic_file(path) as tmp:
        table.to_csv(tmp, index=False)
    return table


def write_probabilities(path: Path, ids: list[str], proba: np.ndarray) -> None:
    """npz: ids str (N,), probabilities float32 (N, 101, 101)."""
    with atomic_file(path) as tmp, open(tmp, "wb") as f:  # a file object: numpy adds no .npz suffix
        np.savez_compressed(f, ids=np.asarray(ids), probabilities=proba)


def run_predict(
    params: Params,
    data_dir: Path,
    out_csv: Path,
    model_uri: str | None = None,
    models_dir: Path | None = None,
    eval_dir: Path | None = None,
    probabilities: Path | None = None,
    batch_size: int | None = None,
    registry_json: Path = Path("registry.json"),
    prepared: Path | None = None,
) -> pd.DataFrame:
    """Predict data_dir/test/images (with their depths from data_dir/depths.csv when the models
    take them), write the submission (and probabilities); the table."""
    from saltseg.data.tgs import read_test_depths, read_test_images

    if batch_size is not None and batch_size < 1:
        raise SaltError(f"--batch-size: must be >= 1, got {batch_size}")
    ids, images = read_test_images(data_dir)
    ensemble = load_ensemble(
        params,
        model_uri,
        models_dir,
        eval_dir,
        batch_size or params.evaluate.batch_size,
        registry_json,
        prepared,
    )
    depths = read_test_depths(data_dir, ids) if ensemble.needs_depths else None
    masks, proba = predict_masks(ensemble, images, probabilities is not None, depths)
    table = write_submission(out_csv, ids, masks)
    if probabilities is not None:
        write_probabilities(probabilities, ids, proba)
    # With real and synthetic champions side by side, say which model predicted.
    source = model_source(model_uri, models_dir, eval_dir, registry_json)
    print(f"model: {source}, trained on data {ensemble.data_hash}", file=sys.stderr)
    return table
