"""The registered ensemble as an MLflow pyfunc, built as "models from code".

`ensemble_model.py` is the model definition that MLflow copies into the model and
executes at load time; nothing is cloudpickled. Its artifacts are the fold
checkpoints (keys "fold<k>") and thresholds.json (key "thresholds"); the saltseg
package travels with the model as code, so it loads where saltseg is not installed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

MODEL_CODE = Path(__file__).with_name("ensemble_model.py")
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # src/saltseg, shipped with the model as code
THRESHOLDS_KEY = "thresholds"


def fold_key(fold: int) -> str:
    return f"fold{fold}"


def ensemble_signature():  # noqa: ANN201 - mlflow types are imported lazily
    """Input: pixel values 0..255 as float32 (-1, 101, 101); output: uint8 0/1 masks, same shape.

    float32 rather than uint8 so that JSON posted as integers or floats parses alike;
    any batch size.
    """
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, 101, 101))]),
        outputs=Schema([TensorSpec(np.dtype(np.uint8), (-1, 101, 101))]),
    )


def input_example(n: int = 2) -> np.ndarray:
    """float32 (n, 101, 101): layered seismic-looking rows with a quiet block, values 0..255."""
    rows = 128 + 60 * np.sin(np.arange(101) / 3.0)
    images = np.repeat(np.repeat(rows[None, :, None], 101, axis=2), n, axis=0).astype(np.float32)
    images[:, 40:80, 30:70] = 128.0
    return images
