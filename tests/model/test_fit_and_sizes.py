"""Fitting 101x101 tiles to the model input and back; size checks."""

from __future__ import annotations

import pytest
import torch

from saltseg.config import ModelConfig
from saltseg.errors import SaltError
from saltseg.models.fit import to_input, to_original
from saltseg.models.registry import check_size

TILES = torch.rand(3, 1, 101, 101, generator=torch.Generator().manual_seed(0))


def test_pad_round_trip_is_exact() -> None:
    cfg = ModelConfig(fit="pad", input_size=128)
    padded = to_input(TILES, cfg)
    assert padded.shape == (3, 1, 128, 128)
    # 27 pixels of padding: 13 before, 14 after; the centre holds the tile unchanged
    assert torch.equal(padded[..., 13:114, 13:114], TILES)
    assert torch.equal(padded[..., 12, 13:114], TILES[..., 1, :])  # reflect, not replicate
    assert torch.equal(to_original(padded, cfg), TILES)


def test_resize_round_trip_is_close() -> None:
    cfg = ModelConfig(fit="resize", input_size=128)
    smooth = torch.nn.functional.avg_pool2d(TILES, 5, stride=1, padding=2)  # images, not noise
    up = to_input(smooth, cfg)
    assert up.shape == (3, 1, 128, 128)
    back = to_original(up, cfg)
    assert back.shape == TILES.shape
    assert (back - smooth).abs().mean() < 0.02


def test_fit_is_identity_at_matching_size() -> None:
    cfg = ModelConfig(fit="resize", input_size=128)
    ready = torch.rand(3, 1, 128, 128)
    assert to_input(ready, cfg) is ready and to_original(TILES, cfg) is TILES


def test_fit_errors() -> None:
    with pytest.raises(SaltError, match="^fit: unknown 'crop'; valid: resize, pad$"):
        ModelConfig(fit="crop")
    with pytest.raises(SaltError, match="^input_size: must be >= 101 with fit 'pad', got 96$"):
        ModelConfig(fit="pad", input_size=96)


@pytest.mark.parametrize(
    ("size", "multiple", "nearest"), [(101, 16, 96), (120, 16, 128), (8, 16, 16), (130, 32, 128)]
)
def test_check_size_names_nearest(size: int, multiple: int, nearest: int) -> None:
    with pytest.raises(SaltError, match=f"nearest valid size is {nearest}$"):
        check_size(size, multiple, "here")


def test_check_size_accepts_multiples() -> None:
    check_size(128, 32, "here")
