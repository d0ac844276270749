"""Architecture registry: a dict of builders filled by a decorator.

Each builder takes the whole `ModelConfig` and returns an `nn.Module` mapping
float32 (N, 1, S, S) images to (N, 1, S, S) logits, S = cfg.input_size.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
from torch import nn

from saltseg.config import MODEL_NAMES, ModelConfig, check_size

__all__ = ["MODELS", "build_model", "check_buildable", "check_size", "register"]

Builder = Callable[[ModelConfig], nn.Module]
MODELS: dict[str, Builder] = {}


def register(name: str) -> Callable[[Builder], Builder]:
    """Decorator: make `builder` available to `build_model` as `name`."""

    def wrap(builder: Builder) -> Builder:
        if name in MODELS:
            raise ValueError(f"model {name!r} registered twice")
        if name not in MODEL_NAMES:  # params.yaml is validated against that list, without torch
            raise ValueError(f"model {name!r}: add it to saltseg.config.MODEL_NAMES")
        MODELS[name] = builder
        return builder

    return wrap


def build_model(cfg: ModelConfig) -> nn.Module:
    """Build the architecture `cfg.name`, randomly initialised (or with cfg.encoder_weights)."""
    return MODELS[cfg.name](cfg)  # ModelConfig refuses a name outside MODEL_NAMES


def check_buildable(cfg: ModelConfig) -> None:
    """Build `cfg`'s network on the meta device (no memory, no weights file read), so that a rule
    only its builder knows, such as timm_unet's input size being a multiple of the encoder's
    deepest stride, fails in a second instead of after a run has been opened."""
    with torch.device("meta"):
        build_model(dataclasses.replace(cfg, encoder_weights=None))
