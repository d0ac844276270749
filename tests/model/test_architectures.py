"""One behavioural test class run over every registered architecture (small widths, tiny inputs)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from saltseg.config import ModelConfig
from saltseg.errors import SaltError
from saltseg.models import MODELS, build_model, checkpoint_config, load_checkpoint_model, save_checkpoint

CASES = {
    "preact_d3_b2": ModelConfig(
        name="preact_resunet", input_size=32, start_filters=4, depth=3, blocks_per_level=2, dropout=0.1
    ),
    "preact_d4": ModelConfig(name="preact_resunet", input_size=32, start_filters=4, depth=4),
    # the switches of the top TGS solutions, all at once
    "preact_scse_hypercolumn_coord": ModelConfig(
        name="preact_resunet",
        input_size=32,
        start_filters=4,
        depth=3,
        scse=True,
        hypercolumn=True,
        coord_channels=True,
    ),  # fmt: skip
    "timm_resnet18": ModelConfig(
        name="timm_unet", input_size=64, encoder="resnet18", decoder_channels=(32, 16, 8, 8, 8)
    ),
    "timm_resnet34": ModelConfig(
        name="timm_unet", input_size=64, encoder="resnet34", decoder_channels=(32, 16, 8, 8, 8)
    ),
    # not a resnet: inverted residuals, odd channel counts
    "timm_mobilenetv3": ModelConfig(
        name="timm_unet", input_size=64, encoder="mobilenetv3_small_050", decoder_channels=(32, 16, 8, 8, 8)
    ),
    # four stages, the shallowest at stride 4: the head upsamples by 4
    "timm_convnext": ModelConfig(
        name="timm_unet", input_size=64, encoder="convnext_atto", decoder_channels=(32, 16, 8, 8)
    ),
}
SIZE_MULTIPLE = {
    "preact_d3_b2": 8,
    "preact_d4": 16,
    "preact_scse_hypercolumn_coord": 8,
}  # timm encoders here: 32


def test_every_registered_architecture_is_covered() -> None:
    assert {cfg.name for cfg in CASES.values()} == set(MODELS)


@pytest.fixture(scope="module", params=list(CASES))
def case(request: pytest.FixtureRequest) -> tuple[ModelConfig, torch.nn.Module, str]:
    torch.manual_seed(0)
    cfg = CASES[request.param]
    return cfg, build_model(cfg), request.param


def images(cfg: ModelConfig, n: int = 2) -> torch.Tensor:
    return torch.rand(n, 1, cfg.input_size, cfg.input_size, generator=torch.Generator().manual_seed(1))


class TestArchitecture:
    def test_forward_shape(self, case) -> None:
        cfg, model, _ = case
        out = model.train()(images(cfg))
        assert out.shape == (2, 1, cfg.input_size, cfg.input_size) and out.dtype == torch.float32

    def test_backward_reaches_every_parameter(self, case) -> None:
        cfg, model, _ = case
        model.train().zero_grad(set_to_none=True)
        model(images(cfg)).square().mean().backward()
        missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
        assert not missing
        assert all(torch.isfinite(p.grad).all() for p in model.parameters())

    def test_checkpoint_round_trip(self, case, tmp_path) -> None:
        cfg, model, _ = case
        with torch.no_grad():
            model.train()(images(cfg, 4))  # move the BN running statistics off their defaults
        model.eval()
        path = tmp_path / "best.pt"
        save_checkpoint(path, model, cfg, fold=1, epoch=3, stage="bce", monitor="val_iou", score=0.5)
        raw = torch.load(path, weights_only=True)
        assert {"model", "model_config", "fold", "epoch", "stage", "monitor", "score"} <= set(raw)
        assert isinstance(raw["model_config"]["decoder_channels"], list)
        assert checkpoint_config(path) == cfg
        loaded = load_checkpoint_model(path)
        assert not loaded.training
        with torch.no_grad():
            assert torch.equal(loaded(images(cfg)), model(images(cfg)))

    def test_invalid_input_size_fails_fast_naming_nearest_valid(self, case) -> None:
        cfg, model, name = case
        multiple = SIZE_MULTIPLE.get(name, 32)
        bad = cfg.input_size + multiple // 2 - 1  # rounds down to input_size
        with pytest.raises(
            SaltError,
            match=f"input size {bad} is not divisible by {multiple}; nearest valid size is {cfg.input_size}",
        ):
            build_model(dataclasses.replace(cfg, input_size=bad))
        with pytest.raises(SaltError, match=f"nearest valid size is {cfg.input_size}"):
            model(torch.zeros(1, 1, bad, bad))


def test_unknown_model_lists_valid_names() -> None:
    with pytest.raises(SaltError, match="^name: unknown 'vit'; valid: preact_resunet, timm_unet$"):
        ModelConfig(name="vit")


def test_preact_default_width_and_depth() -> None:
    model = build_model(ModelConfig(name="preact_resunet", start_filters=8, depth=4, input_size=128))
    assert model.bottleneck[0].conv1.out_channels == 8 * 2**4
    assert len(model.encoder) == len(model.decoder) == 4
