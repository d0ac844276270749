"""The empty head: an image-level "has salt" classifier with deep supervision (model.empty_head).

As in the top TGS solutions (Heng CherKeng's baseline; the 1st and 4th place write-ups), a
network that must also say whether an image holds any salt, and whose coarse decoder levels
must already draw the mask, learns empty images and small masks better than one trained
on the final logits alone. The losses are saltseg.losses.empty_head_loss.

Training mode returns `SegOutput`; eval mode returns the plain logits, gated: every path that
predicts (validation, evaluation, prediction, serving, the exported fold models) calls the
model in eval mode and so gets the gate without knowing about the head.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn


class SegOutput(NamedTuple):
    """What a model with the empty head returns in training mode.

    logits: (N, 1, S, S), the prediction; aux: one (N, 1, S, S) logits tensor per supervised
    decoder level (coarsest first), at (S, S) or, with model.aux_at_level, at the level's own size;
    has_salt: (N,) logit of "the image holds salt".
    """

    logits: torch.Tensor
    aux: tuple[torch.Tensor, ...]
    has_salt: torch.Tensor


def _preact(channels: int) -> list[nn.Module]:
    # Pre-activation units end on an un-normalised sum: BN-ReLU before any head reads them.
    return [nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]


def gate(logits: torch.Tensor, has_salt: torch.Tensor) -> torch.Tensor:
    """(N, 1, S, S) logits with each image whose has_salt logit h < 0 capped at h: min(logits, h).

    Why a cap rather than a constant: in probabilities the cap is p' = min(p, sigmoid(h)),
    the bound "no pixel is likelier to be salt than its image is to hold salt". Every pixel of a
    gated image stays below sigmoid(h) < 0.5, so thresholds >= 0.5 give an empty mask, yet the
    numbers stay probabilities: a head barely sure the image is empty (h near 0) leaves them near
    0.5, a confident one pushes them to 0; pixels already below the cap keep their values and
    order. Flip TTA and fold averaging thus average the views' and folds' confidences instead of
    letting one view veto with a hard 0, and evaluate may still tune a threshold below 0.5.
    Images with h >= 0 are left exactly as they are.
    """
    h = has_salt.to(logits.dtype).view(-1, 1, 1, 1)
    return torch.where(h < 0, torch.minimum(logits, h), logits)


class EmptyHead(nn.Module):
    """The has-salt classifier on the bottleneck and a 1x1 logits conv per decoder level.

    widths[i]: the channels of level i (0 = finest), widths[-1] the bottleneck's. The finest
    decoder level already feeds the model's own head, so levels 1..depth-1 are supervised.
    """

    def __init__(self, widths: list[int], at_level: bool = False) -> None:
        super().__init__()
        self.at_level = at_level  # aux logits at each level's own size, not upsampled (ModelConfig)
        bottleneck = widths[-1]
        self.has_salt = nn.Sequential(
            *_preact(bottleneck), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(bottleneck, 1)
        )
        self.aux = nn.ModuleList(  # coarsest first, the order the decoder produces them
            nn.Sequential(*_preact(widths[i]), nn.Conv2d(widths[i], 1, 1))
            for i in reversed(range(1, len(widths) - 1))
        )

    def forward(
        self, logits: torch.Tensor, bottleneck: torch.Tensor, levels: list[torch.Tensor]
    ) -> SegOutput | torch.Tensor:
        """logits (N, 1, S, S); bottleneck (N, C, s, s); levels: the decoder's outputs, coarsest
        first, the last one at S. Training: SegOutput; eval: the gated logits."""
        has_salt = self.has_salt(bottleneck)[:, 0]
        if not self.training:
            return gate(logits, has_salt)
        size = logits.shape[-2:]
        aux = tuple(
            conv(level)
            if self.at_level
            else F.interpolate(conv(level), size=size, mode="bilinear", align_corners=False)
            for conv, level in zip(self.aux, levels[:-1], strict=True)
        )
        return SegOutput(logits, aux, has_salt)
