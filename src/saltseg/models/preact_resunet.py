"""The seed's U-Net, built from pre-activation residual units.

Level i (0..depth-1) works at width start_filters * 2**i and resolution S / 2**i; the
bottleneck at start_filters * 2**depth and S / 2**depth. Encoder levels end with a 2x2
max-pool, decoder levels start with a stride-2 transposed conv whose output is
concatenated with the encoder's features of the same level (the skip connection).

Switches from the top TGS solutions, all off in the seed (ModelConfig): `scse` recalibrates
every decoder level's output with scSE attention; `hypercolumn` feeds the head every decoder
level, upsampled to full resolution, instead of the last one only; `coord_channels` adds the
pixel's vertical position as an input channel and `depth_channel` the tile's depth as a
constant one; with `space_to_depth` k the stem reads the k * k channels of the folded tile.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from saltseg.config import ModelConfig
from saltseg.errors import SaltError
from saltseg.models.blocks import SCSE, conv3x3, preact_stage
from saltseg.models.heads import EmptyHead, SegOutput
from saltseg.models.registry import check_size, register

# Depths in TGS run 50..959 (feet or metres, unstated): /1000 puts the channel in [0, 1), the
# scale of the image channel (pixels / 255), so the stem starts with both on an equal footing.
# A fixed constant, not the training set's statistics: a checkpoint needs no stored scaler,
# and every fold, evaluate and the served model map a depth to the same input.
DEPTH_SCALE = 1000.0


def vertical_position(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, 1, H, W): each pixel's row, -1 at the top to 1 at the bottom.

    Only the vertical coordinate: in a seismic section depth orders the layers, while the
    horizontal position means nothing (the roll augmentation shifts it circularly anyway).
    """
    n, _, h, w = x.shape
    rows = torch.linspace(-1.0, 1.0, h, device=x.device, dtype=x.dtype)
    return rows.view(1, 1, h, 1).expand(n, 1, h, w)


class PreActResUNet(nn.Module):
    """(N, 1, S, S) float32 -> (N, 1, S, S) logits; S must be divisible by 2**depth.

    With `depth_channel`, forward also takes the tiles' depths, float (N,), as in depths.csv.
    With `empty_head`, training mode returns a SegOutput and eval mode gated logits (models/heads.py).
    """

    def __init__(
        self,
        start_filters: int = 16,
        depth: int = 4,
        blocks_per_level: int = 1,
        dropout: float = 0.0,
        scse: bool = False,
        hypercolumn: bool = False,
        coord_channels: bool = False,
        depth_channel: bool = False,
        empty_head: bool = False,
        space_to_depth: int = 1,
        aux_at_level: bool = False,
    ) -> None:
        super().__init__()
        if depth < 1 or start_filters < 1 or blocks_per_level < 1:
            raise ValueError("depth, start_filters and blocks_per_level must be >= 1")
        widths = [start_filters * 2**i for i in range(depth + 1)]
        self.depth, self.hypercolumn = depth, hypercolumn
        self.coord_channels, self.depth_channel = coord_channels, depth_channel
        # no BN before: the first unit normalises
        # space_to_depth: the tile arrives folded into k * k channels (models/fit.network_input)
        self.stem = conv3x3(space_to_depth**2 + coord_channels + depth_channel, widths[0], bias=True)
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
        self.attention = nn.ModuleList(SCSE(widths[i]) if scse else nn.Identity() for i in range(depth))
        # Pre-activation units end on an un-normalised sum: BN-ReLU before the head's convs.
        # The hypercolumn's many channels are fused by a 3x3 conv down to the top level's width.
        head_in = sum(widths[:depth]) if hypercolumn else widths[0]
        fuse = (
            [conv3x3(head_in, widths[0]), nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True)]
            if hypercolumn
            else []
        )
        self.head = nn.Sequential(
            nn.BatchNorm2d(head_in), nn.ReLU(inplace=True), *fuse, nn.Conv2d(widths[0], 1, 1)
        )
        self.empty_head = EmptyHead(widths, aux_at_level) if empty_head else None

    def forward(self, x: torch.Tensor, depths: torch.Tensor | None = None) -> torch.Tensor | SegOutput:
        for size in x.shape[-2:]:
            check_size(int(size), 2**self.depth, f"preact_resunet (depth {self.depth})")
        if self.coord_channels:
            x = torch.cat([x, vertical_position(x)], dim=1)
        if self.depth_channel:
            if depths is None or depths.shape != (len(x),):
                shape = None if depths is None else tuple(depths.shape)
                raise SaltError(f"model.depth_channel: needs one depth per image ({len(x)},), got {shape}")
            plane = (depths.to(x.dtype) / DEPTH_SCALE).view(-1, 1, 1, 1).expand(-1, 1, *x.shape[-2:])
            x = torch.cat([x, plane], dim=1)
        x = self.stem(x)
        skips = []
        for stage in self.encoder:
            x = stage(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(self.dropout(x))
        bottleneck, levels = x, []  # decoder outputs, deepest first
        for i in reversed(range(self.depth)):
            x = torch.cat([self.up[i](x), skips[i]], dim=1)
            x = self.attention[i](self.decoder[i](self.dropout(x)))
            levels.append(x)
        if self.hypercolumn:  # every level at full resolution: coarse context next to fine detail
            size = x.shape[-2:]
            x = torch.cat(
                [F.interpolate(y, size=size, mode="bilinear", align_corners=False) for y in levels], 1
            )
        logits = self.head(x)
        if self.empty_head is None:
            return logits
        return self.empty_head(logits, bottleneck, levels)


@register("preact_resunet")
def build_preact_resunet(cfg: ModelConfig) -> nn.Module:
    check_size(cfg.input_size, 2**cfg.depth, f"model.input_size (preact_resunet, depth {cfg.depth})")
    return PreActResUNet(
        cfg.start_filters, cfg.depth, cfg.blocks_per_level, cfg.dropout,
        scse=cfg.scse, hypercolumn=cfg.hypercolumn, coord_channels=cfg.coord_channels,
        depth_channel=cfg.depth_channel, empty_head=cfg.empty_head, space_to_depth=cfg.space_to_depth,
        aux_at_level=cfg.aux_at_level,
    )  # fmt: skip
