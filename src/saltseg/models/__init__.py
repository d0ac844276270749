"""Segmentation models: one factory over a registry, checkpoint I/O, input fitting.

`build_model(cfg)` maps float32 (N, 1, S, S) images to (N, 1, S, S) logits, S = cfg.input_size.
"""

from saltseg.models import preact_resunet, timm_unet  # noqa: F401  (fill the registry)
from saltseg.models.checkpoint import (
    checkpoint_config,
    checkpoint_cycles,
    checkpoint_precision,
    expected_members,
    load_checkpoint_model,
    model_paths,
    save_checkpoint,
    snapshot_path,
    snapshot_paths,
)
from saltseg.models.registry import MODELS, build_model, check_buildable, register

__all__ = [
    "MODELS",
    "build_model",
    "check_buildable",
    "checkpoint_config",
    "checkpoint_cycles",
    "checkpoint_precision",
    "expected_members",
    "load_checkpoint_model",
    "model_paths",
    "register",
    "save_checkpoint",
    "snapshot_path",
    "snapshot_paths",
]
