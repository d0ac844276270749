"""Architecture registry: a dict of builders filled by a decorator.

Each builder takes the whole `ModelConfig` and returns an `nn.Module` mapping
float32 (N, 1, S, S) images to (N, 1, S, S) logits, S = cfg.input_size.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from saltseg.config import ModelConfig
from saltseg.errors import SaltError

Builder = Callable[[ModelConfig], nn.Module]
MODELS: dict[str, Builder] = {}


def register(name: str) -> Callable[[Builder], Builder]:
    """Decorator: make `builder` available to `build_model` as `name`."""

    def wrap(builder: Builder) -> Builder:
        if name in MODELS:
            raise ValueError(f"model {name!r} registered twice")
        MODELS[name] = builder
        return builder

    return wrap


def build_model(cfg: ModelConfig) -> nn.Module:
    """Build the architecture `cfg.name`, randomly initialised (or with cfg.encoder_weights)."""
    try:
        builder = MODELS[cfg.name]
    except KeyError:
        raise SaltError(
            f"model.name: unknown model {cfg.name!r}; valid: {', '.join(sorted(MODELS))}"
        ) from None
    return builder(cfg)


def check_size(size: int, multiple: int, where: str) -> None:
    """Fail fast when `size` is not a multiple of `multiple`, naming the nearest valid size."""
    if size > 0 and size % multiple == 0:
        return
    lower = max(multiple, size // multiple * multiple)
    upper = lower + multiple if lower < size else lower
    nearest = lower if size - lower < upper - size else upper
    raise SaltError(
        f"{where}: input size {size} is not divisible by {multiple}; nearest valid size is {nearest}"
    )
