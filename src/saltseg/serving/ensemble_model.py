"""MLflow "models from code": the fold ensemble with flip TTA and the tuned post-processing.

MLflow executes this file when the model is loaded (and once when it is logged);
`load_context` rebuilds the fold models (snapshots included) from the checkpoint artifacts.
Prediction is
`saltseg.inference.Ensemble.predict_masks`, the same code `salt predict` runs.
"""

from pathlib import Path

import mlflow
import numpy as np
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel

from saltseg.errors import SaltError
from saltseg.inference import Ensemble, as_images
from saltseg.serving import MAX_BATCH, THRESHOLDS_KEY, member_keys, split_input


class BadImages(MlflowException):
    """HTTP 400 with the one-line reason only.

    The scoring server rewrites the message of any MlflowException raised in predict to
    "Failed to predict data '<the whole input>'. Error: ..."; this message keeps its first
    value, so a client gets the reason and not its own request back.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)

    @property
    def message(self) -> str:
        return self._message

    @message.setter
    def message(self, value: str) -> None:
        if not hasattr(self, "_message"):
            self._message = value


class SaltEnsemble(PythonModel):
    def load_context(self, context) -> None:  # noqa: ANN001 - mlflow's PythonModelContext
        artifacts = context.artifacts
        config = context.model_config or {}
        self.ensemble = Ensemble.from_files(
            [Path(artifacts[k]) for k in member_keys(list(artifacts))],
            Path(artifacts[THRESHOLDS_KEY]),
            batch_size=int(config.get("batch_size", 64)),
            device=str(config.get("device", "auto")),
        )
        self.max_batch = int(config.get("max_batch", MAX_BATCH))

    # np.ndarray is a hint MLflow infers no schema from: the explicit signature stays in charge.
    def predict(self, context, model_input: np.ndarray, params: dict | None = None) -> np.ndarray:  # noqa: ANN001
        """images (N, 101, 101), values 0..255 -> uint8 (N, 101, 101) masks (1 = salt).

        Models with model.depth_channel take {"images": (N, 101, 101), "depths": (N,)}
        (`split_input`). Bad input (see `as_images`, `as_depths`) and more than `max_batch`
        images: BadImages (HTTP 400).
        """
        try:
            raw_images, depths = split_input(model_input, self.ensemble.needs_depths)
            images = as_images(raw_images)
            if len(images) > self.max_batch:
                raise SaltError(f"images: {len(images)} in one request, at most {self.max_batch}")
            return self.ensemble.predict_masks(images, depths).astype(np.uint8)
        except SaltError as exc:
            raise BadImages(str(exc)) from None


mlflow.models.set_model(SaltEnsemble())
