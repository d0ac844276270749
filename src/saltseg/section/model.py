"""The ensemble `salt predict-section` uses, and what its outputs record about it.

The model is chosen as `salt predict` chooses it (`saltseg.predict.load_ensemble`): the
champion registry.json records for the current data, a `--model` URI, or local fold
checkpoints; the URI and its registry version are resolved here for the headers.
"""

from __future__ import annotations

from pathlib import Path

from saltseg.config import Params
from saltseg.errors import SaltError
from saltseg.inference import Ensemble
from saltseg.predict import load_ensemble, model_source
from saltseg.section.run import ModelInfo


def _version(uri: str) -> str:
    """The registry version a models:/ URI names (models:/name/3, or models:/name@alias resolved)."""
    if not uri.startswith("models:/"):
        return "-"
    name, _, version = uri.removeprefix("models:/").partition("/")
    if version:
        return version
    name, _, alias = name.partition("@")
    from mlflow import MlflowClient

    return str(MlflowClient().get_model_version_by_alias(name, alias).version) if alias else "-"


def load_model(
    params: Params,
    model_uri: str | None,
    models_dir: Path | None,
    eval_dir: Path | None,
    batch_size: int,
    registry_json: Path,
    prepared: Path | None,
) -> tuple[Ensemble, ModelInfo]:
    """The ensemble (as `salt predict` picks it) and its ModelInfo for the output headers."""
    ensemble = load_ensemble(params, model_uri, models_dir, eval_dir, batch_size, registry_json, prepared)
    if ensemble.needs_depths:
        raise SaltError(
            "--model: this model takes each tile's depth (model.depth_channel); sections have none"
        )
    uri = model_source(model_uri, models_dir, eval_dir, registry_json)
    version = "-" if models_dir is not None else _version(uri)
    info = ModelInfo(uri, version, ensemble.data_hash, ensemble.threshold, ensemble.min_area)
    return ensemble, info
