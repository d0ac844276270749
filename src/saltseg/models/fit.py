"""Fit 101x101 tiles to the model's input size S and map the logits back.

'resize': bilinear interpolation (align_corners=False) 101 -> S and back.
'pad': reflect padding 101 -> S (the odd pixel goes right/bottom) and a centre crop back,
so that to_original(to_input(x)) == x exactly.
With model.space_to_depth k > 1, images (never masks) are resized to k * S and folded into
k * k channels at S (`network_input`); the logits stay at S.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from saltseg.config import ModelConfig
from saltseg.errors import SaltError


def _pads(size: int, target: int) -> tuple[int, int]:
    """(before, after) padding from `size` to `target`; the odd pixel goes after."""
    total = target - size
    if total < 0:
        raise SaltError(
            f"model.input_size: {target} is smaller than the {size}-pixel tiles; 'pad' needs >= {size}"
        )
    return total // 2, total - total // 2


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def to_input(x: torch.Tensor, cfg: ModelConfig) -> torch.Tensor:
    """(N, C, H, W) float tiles (H = W = 101) -> (N, C, S, S), S = cfg.input_size."""
    size = cfg.input_size
    if x.shape[-2:] == (size, size):
        return x
    if cfg.fit == "resize":
        return _resize(x, size)
    top, bottom = _pads(x.shape[-2], size)
    left, right = _pads(x.shape[-1], size)
    return F.pad(x, (left, right, top, bottom), mode="reflect")


def network_input(images: torch.Tensor, cfg: ModelConfig) -> torch.Tensor:
    """(N, 1, 101, 101) float tiles -> what the network reads: (N, k * k, S, S), k = cfg.space_to_depth.

    Channel (k * i + j) of pixel (r, c) is pixel (k * r + i, k * c + j) of the tile resized to
    k * S (torch's pixel_unshuffle): at k = 2 and S = 48 the stem sees the tile at 96 px, where a
    body of a few pixels survives, at the cost of the network at 48 px.
    """
    k = cfg.space_to_depth
    if k == 1:
        return to_input(images, cfg)
    return F.pixel_unshuffle(_resize(images, cfg.input_size * k), k)


def to_original(logits: torch.Tensor, cfg: ModelConfig, size: int = 101) -> torch.Tensor:
    """(N, C, S, S) logits -> (N, C, size, size): the inverse of `to_input`."""
    if logits.shape[-2:] == (size, size):
        return logits
    if cfg.fit == "resize":
        return _resize(logits, size)
    top, _ = _pads(size, logits.shape[-2])
    left, _ = _pads(size, logits.shape[-1])
    return logits[..., top : top + size, left : left + size]


def extra_inputs(cfg: ModelConfig, depths: object, device: torch.device) -> tuple[torch.Tensor, ...]:
    """The forward arguments after the image batch: (depths float32 (N,),) for a model with
    `model.depth_channel`, else none, so a model without it is called exactly as before."""
    if not cfg.depth_channel:
        return ()
    if depths is None:
        raise SaltError("depths: this model has model.depth_channel and needs the depth of every image")
    return (torch.as_tensor(depths, dtype=torch.float32).to(device, non_blocking=True),)
