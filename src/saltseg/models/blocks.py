"""Building blocks shared by the architectures.

All blocks take and return float (N, C, H, W) tensors; they work in channels_last
memory format and under bf16 autocast unchanged.
"""

from __future__ import annotations

import torch
from torch import nn


def conv3x3(in_ch: int, out_ch: int, stride: int = 1, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=bias)


class PreActBlock(nn.Module):
    """Pre-activation residual unit (He et al. 2016, "Identity Mappings in Deep Residual Networks").

    out = conv(relu(bn(conv(relu(bn(x)))))) + shortcut(x); (N, in_ch, H, W) -> (N, out_ch, H/s, W/s).
    The shortcut is the identity, or a 1x1 projection when channels or stride change;
    the projection reads the pre-activated input, as in the paper's pre-activation nets,
    so that every path out of the block starts from a normalised tensor.
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.conv1 = conv3x3(in_ch, out_ch, stride)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.conv2 = conv3x3(out_ch, out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.project = None
        if in_ch != out_ch or stride != 1:
            self.project = nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.relu(self.bn1(x))
        shortcut = x if self.project is None else self.project(pre)
        out = self.conv1(pre)
        out = self.conv2(self.relu(self.bn2(out)))
        return out + shortcut


def preact_stage(in_ch: int, out_ch: int, blocks: int) -> nn.Sequential:
    """`blocks` pre-activation units; the first one changes the width in_ch -> out_ch."""
    return nn.Sequential(*(PreActBlock(in_ch if i == 0 else out_ch, out_ch) for i in range(blocks)))


class ConvBNReLU(nn.Sequential):
    """conv (no bias: BN follows) -> BN -> ReLU; (N, in_ch, H, W) -> (N, out_ch, H, W)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 3) -> None:
        super().__init__(
            nn.Conv2d(in_ch, out_ch, kernel, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
        )


class SCSE(nn.Module):
    """Concurrent spatial and channel squeeze & excitation (Roy et al. 2018, "Recalibrating Fully
    Convolutional Networks with Spatial and Channel 'Squeeze & Excitation' Blocks").

    out = x * cSE(x) + x * sSE(x): cSE weighs channels from their global means, sSE weighs
    pixels from a 1x1 conv over the channels; (N, C, H, W) -> (N, C, H, W). The channel gate's
    hidden width is C // reduction, at least 2: the decoders here can be only 8 channels wide.
    """

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(channels // reduction, 2)
        self.channel_gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, hidden, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1),
            nn.Sigmoid(),
        )
        self.spatial_gate = nn.Sequential(nn.Conv2d(channels, 1, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.channel_gate(x) + x * self.spatial_gate(x)
