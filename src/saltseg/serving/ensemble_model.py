"""MLflow "models from code": the fold ensemble with flip TTA and the tuned post-processing.

MLflow executes this file when the model is loaded (and once when it is logged);
`load_context` rebuilds the fold models from the checkpoint artifacts. Prediction is
`saltseg.inference.Ensemble.predict_masks`, the same code `salt predict` runs.
"""

from pathlib import Path

import mlflow
import numpy as np
from mlflow.pyfunc import PythonModel

from saltseg.inference import Ensemble
from saltseg.serving import THRESHOLDS_KEY


class SaltEnsemble(PythonModel):
    def load_context(self, context) -> None:  # noqa: ANN001 - mlflow's PythonModelContext
        artifacts = context.artifacts
        folds = sorted((k for k in artifacts if k.startswith("fold")), key=lambda k: int(k[4:]))
        config = context.model_config or {}
        self.ensemble = Ensemble.from_files(
            [Path(artifacts[k]) for k in folds],
            Path(artifacts[THRESHOLDS_KEY]),
            batch_size=int(config.get("batch_size", 64)),
            device=str(config.get("device", "auto")),
        )

    # np.ndarray is a hint MLflow infers no schema from: the explicit signature stays in charge.
    def predict(self, context, model_input: np.ndarray, params: dict | None = None) -> np.ndarray:  # noqa: ANN001
        """images (N, 101, 101), values 0..255 -> uint8 (N, 101, 101) masks (1 = salt)."""
        return self.ensemble.predict_masks(np.asarray(model_input)).astype(np.uint8)


mlflow.models.set_model(SaltEnsemble())
