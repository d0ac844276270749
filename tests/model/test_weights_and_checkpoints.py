"""Local encoder weights (never downloaded) and checkpoint error handling."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import timm
import torch

from saltseg.config import ModelConfig
from saltseg.errors import SaltError
from saltseg.models import build_model, checkpoint_config, load_checkpoint_model, save_checkpoint

CFG = ModelConfig(name="timm_unet", input_size=64, encoder="resnet18", decoder_channels=(16, 16, 8, 8, 8))


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory) -> tuple[str, dict]:
    """An ImageNet-style (3-channel, with classifier) resnet18 state_dict saved to disk."""
    torch.manual_seed(3)
    state = timm.create_model("resnet18", pretrained=False).state_dict()
    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.save(state, path)
    return str(path), state


def test_encoder_weights_load_from_local_file(resnet18_file) -> None:
    path, state = resnet18_file
    model = build_model(dataclasses.replace(CFG, encoder_weights=path))
    encoder = model.encoder.state_dict()
    assert torch.equal(encoder["layer3.1.conv2.weight"], state["layer3.1.conv2.weight"])
    assert torch.equal(encoder["bn1.running_mean"], state["bn1.running_mean"])
    # one input channel: timm sums the RGB kernels of the stem
    assert torch.allclose(encoder["conv1.weight"], state["conv1.weight"].sum(1, keepdim=True))
    random = build_model(CFG).encoder.state_dict()
    assert not torch.equal(random["layer3.1.conv2.weight"], state["layer3.1.conv2.weight"])


def test_missing_encoder_weights_file(tmp_path) -> None:
    missing = tmp_path / "nope.pth"
    with pytest.raises(SaltError, match=f"{missing}: encoder weights file not found"):
        build_model(dataclasses.replace(CFG, encoder_weights=str(missing)))


def test_corrupt_encoder_weights_file(tmp_path) -> None:
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(SaltError, match=f"{bad}: cannot load resnet18 encoder weights"):
        build_model(dataclasses.replace(CFG, encoder_weights=str(bad)))


def test_unknown_encoder_and_wrong_decoder_length() -> None:
    with pytest.raises(SaltError, match="unknown timm model 'resnet_nope'"):
        build_model(dataclasses.replace(CFG, encoder="resnet_nope"))
    with pytest.raises(SaltError, match="has 5 feature stages, so give 5 widths"):
        build_model(dataclasses.replace(CFG, decoder_channels=(16, 8)))


def test_checkpoint_loads_without_the_encoder_weights_file(resnet18_file, tmp_path) -> None:
    """The checkpoint holds all weights; the pretrained file may be gone by then."""
    path, _ = resnet18_file
    cfg = dataclasses.replace(CFG, encoder_weights=path)
    model = build_model(cfg).eval()
    ckpt = tmp_path / "best.pt"
    save_checkpoint(ckpt, model, dataclasses.replace(cfg, encoder_weights=str(tmp_path / "gone.pth")), fold=0)
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        assert torch.equal(load_checkpoint_model(ckpt)(x), model(x))


def test_missing_and_corrupt_checkpoints(tmp_path) -> None:
    with pytest.raises(SaltError, match=f"{tmp_path / 'best.pt'}: checkpoint not found"):
        load_checkpoint_model(tmp_path / "best.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(SaltError, match=f"{bad}: not a readable checkpoint"):
        checkpoint_config(bad)
    other = tmp_path / "other.pt"
    torch.save({"weights": {}}, other)
    with pytest.raises(SaltError, match=f"{other}: not a saltseg checkpoint"):
        load_checkpoint_model(other)


def test_checkpoint_with_wrong_weights(tmp_path) -> None:
    cfg = ModelConfig(name="preact_resunet", input_size=32, start_filters=4, depth=2)
    model = build_model(cfg)
    path = tmp_path / "best.pt"
    save_checkpoint(path, model, dataclasses.replace(cfg, start_filters=8))
    with pytest.raises(SaltError, match="weights do not fit model preact_resunet"):
        load_checkpoint_model(path)


def test_failed_save_keeps_the_previous_checkpoint(tmp_path) -> None:
    cfg = ModelConfig(name="preact_resunet", input_size=32, start_filters=4, depth=2)
    path = tmp_path / "best.pt"
    save_checkpoint(path, build_model(cfg), cfg, epoch=1)
    with pytest.raises(Exception):  # noqa: B017 - any failure while pickling
        save_checkpoint(path, build_model(cfg), cfg, epoch=lambda: None)
    assert torch.load(path, weights_only=True)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt"]


def test_numpy_metadata_is_stored_as_plain_numbers(tmp_path) -> None:
    cfg = ModelConfig(name="preact_resunet", input_size=32, start_filters=4, depth=2)
    path = tmp_path / "best.pt"
    save_checkpoint(path, build_model(cfg), cfg, fold=np.int64(2), score=np.float64(0.75), stage="bce")
    raw = torch.load(path, weights_only=True)
    assert raw["score"] == 0.75 and type(raw["score"]) is float and type(raw["fold"]) is int


def test_the_same_weights_give_the_same_bytes(tmp_path) -> None:
    """DVC's hashes and the registry's identical-rerun check compare checkpoint files."""
    cfg = ModelConfig(start_filters=4, depth=2, input_size=32)
    torch.manual_seed(0)
    model = build_model(cfg)
    for name in ("a", "b"):
        save_checkpoint(tmp_path / name / "best.pt", model, cfg, fold=0, epoch=1, data_hash="0" * 16)
    assert (tmp_path / "a/best.pt").read_bytes() == (tmp_path / "b/best.pt").read_bytes()
