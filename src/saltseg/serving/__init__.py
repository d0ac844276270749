"""The registered ensemble as an MLflow pyfunc, built as "models from code".

`ensemble_model.py` is the model definition that MLflow copies into the model and
executes at load time; nothing is cloudpickled. Its artifacts are the fold
checkpoints (keys "fold<k>" for best.pt, "fold<k>-snapshot<c>" for the snapshots of
a snapshot ensemble) and thresholds.json (key "thresholds"); the saltseg
package travels with the model as code, so it loads where saltseg is not installed.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from saltseg.data.tgs import SIZE

MODEL_CODE = Path(__file__).with_name("ensemble_model.py")
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # src/saltseg, shipped with the model as code
THRESHOLDS_KEY = "thresholds"
# The most images one request may hold (model_config "max_batch" overrides it): 1,024 tiles
# are 84 MB as int64 after JSON parsing and a few seconds of CPU per fold model.
MAX_BATCH = 1024
MEMBER = re.compile(r"fold(\d+)(?:-snapshot(\d+))?")


def fold_key(fold: int) -> str:
    return f"fold{fold}"


def member_key(fold: int, checkpoint: Path) -> str:
    """The artifact key of a fold's checkpoint: "fold<k>" (best.pt) or "fold<k>-snapshot<c>"."""
    return fold_key(fold) if checkpoint.name == "best.pt" else f"{fold_key(fold)}-{checkpoint.stem}"


def member_keys(keys: list[str]) -> list[str]:
    """The checkpoint keys among artifact `keys`, by fold, then cycle: the order predict uses."""
    found = {key: MEMBER.fullmatch(key) for key in keys}
    return sorted((k for k, m in found.items() if m), key=lambda k: (int(found[k][1]), int(found[k][2] or 0)))


def ensemble_signature():  # noqa: ANN201 - mlflow types are imported lazily
    """Output: uint8 0/1 masks (-1, 101, 101). No input schema, on purpose.

    The input is pixel values 0..255, shape (N, 101, 101), 1 <= N <= `MAX_BATCH`, as
    integers or floats. MLflow enforces an input schema before the model sees the data and
    answers a mismatch with the whole input echoed back; without one, every check is the
    model's own (`saltseg.inference.as_images`) and answers in one line.
    """
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    return ModelSignature(outputs=Schema([TensorSpec(np.dtype(np.uint8), (-1, SIZE, SIZE))]))


def input_example(n: int = 2, depths: bool = False) -> np.ndarray | dict[str, np.ndarray]:
    """float32 (n, 101, 101): layered seismic-looking rows with a quiet block, values 0..255;
    with `depths`, {"images": those, "depths": float32 (n,)}, the input of depth-channel models."""
    rows = 128 + 60 * np.sin(np.arange(SIZE) / 3.0)
    images = np.repeat(np.repeat(rows[None, :, None], SIZE, axis=2), n, axis=0).astype(np.float32)
    images[:, 40:80, 30:70] = 128.0
    if depths:
        return {"images": images, "depths": np.linspace(200, 800, n, dtype=np.float32)}
    return images


def split_input(model_input: object, needs_depths: bool) -> tuple[object, object]:
    """(images, depths or None) from a request: the images alone, or {"images": ..., "depths": ...}.

    Models with model.depth_channel need the dict form; the others take either (and ignore
    depths). A missing part is a one-line SaltError naming it; the values are checked later.
    """
    from saltseg.errors import SaltError

    if isinstance(model_input, dict):
        unknown = sorted(set(model_input) - {"images", "depths"})
        if unknown or "images" not in model_input:
            keys = ", ".join(map(repr, sorted(model_input))) or "none"
            raise SaltError(f"input: expected the keys 'images' and (for this model) 'depths', got {keys}")
        images, depths = model_input["images"], model_input.get("depths")
    else:
        images, depths = model_input, None
    if needs_depths and depths is None:
        raise SaltError(
            'depths: missing; this model takes each image\'s depth: send {"images": [...], "depths": [...]}'
        )
    return images, depths if needs_depths else None
