"""The seed's U-Net, built from pre-activation residual units.

Level i (0..depth-1) works at width start_filters * 2**i and resolution S / 2**i; the
bottleneck at start_filters * 2**depth and S / 2**depth. Encoder levels end with a 2x2
max-pool, decoder levels start with a stride-2 transposed conv whose output is
concatenated with the encoder's features of the same level (the skip connection).
"""

from __future__ import annotations

import torch
from torch import nn

from saltseg.config import ModelConfig
from saltseg.models.blocks import conv3x3, preact_stage
from saltseg.models.heads import EmptyHead, SegOutput
from saltseg.models.registry import check_size, register


class PreActResUNet(nn.Module):
    """(N, 1, S, S) float32 -> (N, 1, S, S) logits; S must be divisible by 2**depth.

    With `empty_head`, training mode returns a SegOutput and eval mode gated logits (models/heads.py).
    """

    def __init__(
        self,
        start_filters: int = 16,
        depth: int = 4,
        blocks_per_level: int = 1,
        dropout: float = 0.0,
        empty_head: bool = False,
    ) -> None:
        super().__init__()
        if depth < 1 or start_filters < 1 or blocks_per_level < 1:
            raise ValueError("depth, start_filters and blocks_per_level must be >= 1")
        widths = [start_filters * 2**i for i in range(depth + 1)]
        self.depth = depth
        self.stem = conv3x3(1, widths[0], bias=True)  # no BN before: the first unit normalises
        self.encoder = nn.ModuleList(
            preact_stage(widths[max(i - 1, 0)], widths[i], blocks_per_level) for i in range(depth)
        )
        self.pool = nn.MaxPool2d(2)
        self.dropout = nn.Dropout2d(dropout)  # parameter-free: one module serves every use
        self.bottleneck = preact_stage(widths[depth - 1], widths[depth], blocks_per_level)
        # 3x3 stride-2 transposed convs as in the seed; output_padding=1 makes the size exactly 2x.
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(widths[i + 1], widths[i], 3, stride=2, padding=1, output_padding=1)
            for i in range(depth)
        )
        self.decoder = nn.ModuleList(
            preact_stage(2 * widths[i], widths[i], blocks_per_level) for i in range(depth)
        )
        # Pre-activation units end on an un-normalised sum: BN-ReLU before the 1x1 head.
        self.head = nn.Sequential(
            nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True), nn.Conv2d(widths[0], 1, 1)
        )
        self.empty_head = EmptyHead(widths) if empty_head else None

    def forward(self, x: torch.Tensor) -> torch.Tensor | SegOutput:
        for size in x.shape[-2:]:
            check_size(int(size), 2**self.depth, f"preact_resunet (depth {self.depth})")
        x = self.stem(x)
        skips = []
        for stage in self.encoder:
            x = stage(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(self.dropout(x))
        bottleneck, levels = x, []
        for i in reversed(range(self.depth)):
            x = torch.cat([self.up[i](x), skips[i]], dim=1)
            x = self.decoder[i](self.dropout(x))
            levels.append(x)
        logits = self.head(x)
        if self.empty_head is None:
            return logits
        return self.empty_head(logits, bottleneck, levels)


@register("preact_resunet")
def build_preact_resunet(cfg: ModelConfig) -> nn.Module:
    check_size(cfg.input_size, 2**cfg.depth, f"model.input_size (preact_resunet, depth {cfg.depth})")
    return PreActResUNet(
        cfg.start_filters, cfg.depth, cfg.blocks_per_level, cfg.dropout, empty_head=cfg.empty_head
    )
