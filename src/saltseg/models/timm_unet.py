"""U-Net decoder over any timm `features_only` encoder.

The encoder yields K feature maps at reductions r_0 < ... < r_{K-1} (read from
`feature_info`, never assumed). Decoder block j (j = 0..K-2) upsamples the deeper map
to the size of encoder map K-2-j, concatenates that map (the skip connection) and fuses
with 3x3 conv-BN-ReLU; its width is decoder_channels[j] (deepest first). The last
width, decoder_channels[K-1], belongs to the head.

Why it is fast (benchmarks/train_throughput.py, against smp's Unet with the same encoder):
the costly tensors of a U-Net decoder are the wide ones at the finest resolutions, where the
step is mostly memory traffic (BN, ReLU, concat, upsample) rather than arithmetic. So the
decoder is narrow, keeps two convs only at the cheap deep levels (stride >= 8) and one at the
finer ones, and the head never builds a multi-channel full-resolution tensor: it predicts at
the shallowest stride and upsamples the one-channel logits bilinearly. On an H100 (bf16,
channels_last) its GPU work per training step is 2.1 ms against the peer decoder's 5.9 ms.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from saltseg.config import ModelConfig
from saltseg.errors import SaltError
from saltseg.models.blocks import ConvBNReLU
from saltseg.models.registry import check_size, register


class DecoderBlock(nn.Module):
    """Upsample (nearest) to the skip's size, concatenate it, fuse with `convs` conv-BN-ReLU.

    x (N, in_ch, h, w), skip (N, skip_ch, H, W) -> (N, out_ch, H, W).
    """

    def __init__(self, in_ch: int, skip_ch: int, out_ch: int, convs: int) -> None:
        super().__init__()
        layers = [ConvBNReLU(in_ch + skip_ch, out_ch)]
        layers += [ConvBNReLU(out_ch, out_ch) for _ in range(convs - 1)]
        self.fuse = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="nearest")
        return self.fuse(torch.cat([x, skip], dim=1))


class UNetDecoder(nn.Module):
    """Features [(N, C_i, S/r_i, S/r_i)] shallow first -> logits (N, 1, S/r_0, S/r_0).

    Blocks whose output resolution is at least `two_conv_below` times coarser than the
    input keep the classic two convs; finer ones use one (they dominate the cost).
    """

    def __init__(
        self,
        encoder_channels: list[int],
        reductions: list[int],
        decoder_channels: tuple[int, ...],
        two_conv_below: int = 8,
    ) -> None:
        super().__init__()
        k = len(encoder_channels)
        deep_ch = encoder_channels[-1]
        blocks = []
        for j in range(k - 1):
            skip = k - 2 - j
            convs = 2 if reductions[skip] >= two_conv_below else 1
            blocks.append(DecoderBlock(deep_ch, encoder_channels[skip], decoder_channels[j], convs))
            deep_ch = decoder_channels[j]
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Sequential(
            ConvBNReLU(deep_ch, decoder_channels[-1]), nn.Conv2d(decoder_channels[-1], 1, 1)
        )

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = features[-1]
        for j, block in enumerate(self.blocks):
            x = block(x, features[-2 - j])
        return self.head(x)


class TimmUNet(nn.Module):
    """(N, 1, S, S) float32 -> (N, 1, S, S) logits; S must be divisible by the deepest reduction."""

    def __init__(
        self, encoder: nn.Module, decoder_channels: tuple[int, ...], name: str = "timm_unet"
    ) -> None:
        super().__init__()
        info = encoder.feature_info
        self.encoder = encoder
        self.reductions = [int(r) for r in info.reduction()]
        self.name = name
        if len(decoder_channels) != len(self.reductions):
            raise SaltError(
                f"model.decoder_channels: encoder {name} has {len(self.reductions)} feature stages, so give "
                f"{len(self.reductions)} widths (deepest first), got {list(decoder_channels)}"
            )
        self.decoder = UNetDecoder(list(info.channels()), self.reductions, decoder_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for size in x.shape[-2:]:
            check_size(int(size), self.reductions[-1], f"timm_unet ({self.name})")
        logits = self.decoder(self.encoder(x))
        # Bilinear upsampling of one channel costs next to nothing at full resolution.
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


def create_encoder(name: str, weights: str | None) -> nn.Module:
    """timm encoder with in_chans=1; weights only from the local file `weights`, never downloaded."""
    import timm  # pulls in torchvision and dynamo (seconds): only when a timm model is built

    if not timm.is_model(name):
        raise SaltError(f"model.encoder: unknown timm model {name!r}")
    if weights is None:
        return timm.create_model(name, features_only=True, in_chans=1, pretrained=False)
    path = Path(weights)
    if not path.is_file():
        raise SaltError(f"{path}: encoder weights file not found (model.encoder_weights)")
    try:
        # timm adapts the RGB stem to one channel by summing its kernels.
        return timm.create_model(
            name, features_only=True, in_chans=1, pretrained=True, pretrained_cfg_overlay=dict(file=str(path))
        )
    except (RuntimeError, OSError, ValueError, KeyError, EOFError, pickle.UnpicklingError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SaltError(f"{path}: cannot load {name} encoder weights ({first})") from None


@register("timm_unet")
def build_timm_unet(cfg: ModelConfig) -> nn.Module:
    encoder = create_encoder(cfg.encoder, cfg.encoder_weights)
    model = TimmUNet(encoder, tuple(cfg.decoder_channels), name=cfg.encoder)
    check_size(cfg.input_size, model.reductions[-1], f"model.input_size (timm_unet {cfg.encoder})")
    return model
