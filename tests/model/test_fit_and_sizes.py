"""Fitting 101x101 tiles to the model input and back; size checks."""

from __future__ import annotations

import pytest
import torch

from saltseg.config import ModelConfig
from saltseg.errors import SaltError
from saltseg.inference import predict_proba
from saltseg.models import build_model
from saltseg.models.fit import network_input, to_input, to_original
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


def test_space_to_depth_folds_the_tile_resized_to_k_times_the_input_size() -> None:
    cfg = ModelConfig(input_size=48, depth=4, space_to_depth=2)
    folded = network_input(TILES, cfg)
    assert folded.shape == (3, 4, 48, 48)
    at96 = torch.nn.functional.interpolate(TILES, size=(96, 96), mode="bilinear", align_corners=False)
    for i in range(2):  # channel 2i + j holds the pixels (2r + i, 2c + j) of the 96-px tile
        for j in range(2):
            assert torch.equal(folded[:, 2 * i + j], at96[:, 0, i::2, j::2])
    # k = 1 is the plain fit, and masks never fold: the loss stays at input_size
    plain = ModelConfig(input_size=48, depth=4)
    assert torch.equal(network_input(TILES, plain), to_input(TILES, plain))
    assert to_input(TILES, cfg).shape == (3, 1, 48, 48)


def test_space_to_depth_widens_only_the_stem_and_predicts_101_px_tiles() -> None:
    cfg = ModelConfig(input_size=32, start_filters=4, depth=3, space_to_depth=2, coord_channels=True)
    model = build_model(cfg).eval()
    assert model.stem.in_channels == 4 + 1  # the four folded phases and the vertical position
    images = (TILES[:, 0].numpy() * 255).astype("uint8")
    proba = predict_proba([model], images, cfg, tta=True, batch_size=2)
    assert proba.shape == (3, 101, 101) and ((proba >= 0) & (proba <= 1)).all()


@pytest.mark.parametrize(
    ("switches", "rule"),
    [
        ({"space_to_depth": 0}, "must be >= 1"),
        ({"space_to_depth": 2, "name": "timm_unet"}, "must be 1 unless name is preact_resunet"),
        ({"space_to_depth": 2, "fit": "pad", "input_size": 128}, "must be 1 unless fit is resize"),
    ],
)
def test_space_to_depth_is_refused_where_it_cannot_apply(switches: dict, rule: str) -> None:
    with pytest.raises(SaltError, match=f"^space_to_depth: {rule}, got "):
        ModelConfig(**switches)


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


def test_loss_at_input_trains_on_the_mask_resized_like_the_image() -> None:
    from saltseg.hardware import FP32_CPU
    from saltseg.loop import logits_of, train_targets
    from saltseg.models import build_model

    cfg = ModelConfig(input_size=48, depth=3, start_filters=4, empty_head=True)
    y = torch.zeros(2, 1, 101, 101)
    y[0, ..., :50] = 1  # the left 50 of 101 columns are salt: 23.8 of 48 at the model's size
    targets = train_targets(y, cfg, at_input=True)
    assert targets.shape == (2, 1, 48, 48)
    assert (targets[0, ..., :24] == 1).all() and (targets[0, ..., 24:] == 0).all()
    assert (targets[1] == 0).all()
    assert train_targets(y, cfg, at_input=False) is y
    assert train_targets(y, cfg, at_input=False, soft=True) is y
    model = build_model(cfg).train()
    x = torch.rand(2, 1, 101, 101)
    small, full = (logits_of(model, x, cfg, FP32_CPU, at_input=a) for a in (True, False))
    assert [t.shape[-1] for t in (small.logits, *small.aux)] == [48] * (1 + len(small.aux))
    assert [t.shape[-1] for t in (full.logits, *full.aux)] == [101] * (1 + len(full.aux))


def test_soft_targets_keep_the_salt_that_binarising_drops() -> None:
    from saltseg.loop import train_targets

    cfg = ModelConfig(input_size=48, depth=3, start_filters=4)
    y = torch.zeros(1, 1, 101, 101)
    y[..., 48, 48] = 1  # one pixel of salt
    # Output pixel 23 samples the source at 23.5 * 101 / 48 - 0.5 = 48.948: 0.052 of pixel 48.
    weight = 1 - (23.5 * 101 / 48 - 0.5 - 48)
    soft = train_targets(y, cfg, at_input=True, soft=True)
    assert soft[0, 0, 23, 23].item() == pytest.approx(weight**2, rel=1e-4)
    assert soft.sum().item() == pytest.approx(weight**2, rel=1e-4)  # no other output pixel sees it
    assert train_targets(y, cfg, at_input=True).sum() == 0  # binarised at 0.5, the body is gone


def test_soft_targets_reach_bce_and_focal_stages_never_the_lovasz_hinge() -> None:
    from saltseg.config import TrainConfig

    on = TrainConfig(loss_at="input", soft_targets=True)
    assert [on.soft_for(loss) for loss in ("bce", "focal", "lovasz")] == [True, True, False]
    assert not TrainConfig(loss_at="input").soft_for("bce")
