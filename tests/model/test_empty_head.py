"""model.empty_head: outputs in training and eval mode, and the gate that empties images."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from saltseg.config import ModelConfig
from saltseg.errors import SaltError
from saltseg.hardware import Policy
from saltseg.inference import binarize, predict_proba
from saltseg.loop import logits_of
from saltseg.losses import get_train_loss
from saltseg.models import build_model, checkpoint_config, load_checkpoint_model, save_checkpoint
from saltseg.models.heads import SegOutput, gate

CFG = ModelConfig(input_size=32, start_filters=4, depth=3, empty_head=True)


def images(n: int = 3, size: int = 32) -> torch.Tensor:
    return torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(1))


def twins(cfg: ModelConfig = CFG) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The same seed with and without the head: the head is built last, so the rest is equal."""
    torch.manual_seed(0)
    headed = build_model(cfg)
    torch.manual_seed(0)
    return headed, build_model(dataclasses.replace(cfg, empty_head=False))


def force_has_salt(model: torch.nn.Module, logit: float) -> None:
    """Make the classifier answer `logit` for every image."""
    linear = model.empty_head.has_salt[-1]
    with torch.no_grad():
        linear.weight.zero_()
        linear.bias.fill_(logit)


def test_training_mode_returns_logits_aux_levels_and_has_salt() -> None:
    model = build_model(CFG).train()
    out = model(images())
    assert isinstance(out, SegOutput)
    assert out.logits.shape == (3, 1, 32, 32)
    # depth 3: decoder levels at 1/4 and 1/2 of the size are supervised, upsampled to 32.
    assert [tuple(a.shape) for a in out.aux] == [(3, 1, 32, 32)] * 2
    assert out.has_salt.shape == (3,)


def test_aux_at_level_keeps_each_levels_size_through_logits_of() -> None:
    cfg = dataclasses.replace(CFG, aux_at_level=True)
    model = build_model(cfg).train()
    out = model(images())
    assert [tuple(a.shape) for a in out.aux] == [(3, 1, 8, 8), (3, 1, 16, 16)]  # 1/4 and 1/2 of 32
    # The loss at 101 px: the final logits go back to the tile, the levels keep their own size.
    tiles = torch.rand(3, 1, 101, 101, generator=torch.Generator().manual_seed(2))
    back = logits_of(model, tiles, cfg, Policy(torch.device("cpu")))
    assert back.logits.shape == (3, 1, 101, 101)
    assert [tuple(a.shape) for a in back.aux] == [(3, 1, 8, 8), (3, 1, 16, 16)]
    with pytest.raises(SaltError, match="^aux_at_level: must be false unless empty_head, got True$"):
        ModelConfig(aux_at_level=True)


@pytest.mark.parametrize("depth", [1, 4])
def test_eval_mode_returns_plain_logits(depth: int) -> None:
    cfg = dataclasses.replace(CFG, depth=depth)
    model = build_model(cfg)
    assert len(model.empty_head.aux) == depth - 1
    out = model.eval()(images())
    assert isinstance(out, torch.Tensor) and out.shape == (3, 1, 32, 32) and out.dtype == torch.float32


def test_the_loss_reaches_every_parameter() -> None:
    """What DDP (no unused parameters) and the optimizer need: every head takes part."""
    model = build_model(CFG).train()
    targets = torch.zeros(3, 1, 32, 32)
    targets[0, :, :10, :10] = 1
    get_train_loss("lovasz", False, 0.1, 0.05)(model(images()), targets).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing
    heads = [p.grad for n, p in model.named_parameters() if n.startswith("empty_head")]
    assert all(torch.isfinite(g).all() for g in heads) and any(g.abs().sum() > 0 for g in heads)


def test_switch_off_builds_the_network_of_today() -> None:
    headed, plain = twins()
    assert plain.empty_head is None
    shared = {k: v for k, v in headed.state_dict().items() if not k.startswith("empty_head")}
    assert shared.keys() == plain.state_dict().keys()
    assert all(torch.equal(v, plain.state_dict()[k]) for k, v in shared.items())


def test_gate_caps_only_images_called_empty() -> None:
    logits = torch.tensor([2.0, -1.0, -5.0]).view(1, 1, 1, 3).repeat(2, 1, 1, 1)
    got = gate(logits, torch.tensor([-2.0, 1.0]))
    assert got[0].flatten().tolist() == [-2.0, -2.0, -5.0]  # min(logits, -2): order kept below the cap
    assert torch.equal(got[1], logits[1])
    assert gate(logits.bfloat16(), torch.tensor([-2.0, 1.0])).dtype == torch.bfloat16


def test_negative_has_salt_empties_the_mask_and_positive_leaves_it() -> None:
    headed, plain = twins()
    x = images()
    headed.eval(), plain.eval()
    with torch.no_grad():
        for model in (headed, plain):
            model.head[-1].bias += 5.0  # salt everywhere, were it not for the has-salt head
        raw = plain(x)
        assert (raw > 0).all()
        force_has_salt(headed, 1.5)
        assert torch.equal(headed(x), raw)
        force_has_salt(headed, -1.5)
        assert torch.equal(headed(x), torch.minimum(raw, torch.tensor(-1.5)))
    # Through the prediction path (flip TTA): probabilities <= sigmoid(-1.5), no mask at 0.5.
    tiles = np.random.default_rng(0).integers(0, 256, (3, 101, 101), dtype=np.uint8)
    proba = predict_proba([headed], tiles, CFG, tta=True, batch_size=2)
    assert proba.max() <= torch.sigmoid(torch.tensor(-1.5)).item() + 1e-6
    assert not binarize(proba, 0.5).any()
    force_has_salt(headed, 1.5)
    assert binarize(predict_proba([headed], tiles, CFG, tta=True, batch_size=2), 0.5).all()


def test_bf16_autocast_gives_the_same_structure() -> None:
    model = build_model(CFG).train()
    with Policy(torch.device("cpu"), torch.bfloat16).autocast():
        out = model(images())
        gated = model.eval()(images())
    assert out.logits.dtype == out.has_salt.dtype == torch.bfloat16
    assert all(a.dtype == torch.bfloat16 for a in out.aux) and gated.dtype == torch.bfloat16


def test_checkpoint_round_trip(tmp_path) -> None:
    model = build_model(CFG)
    with torch.no_grad():
        model.train()(images())  # move the BN running statistics off their defaults
    path = tmp_path / "best.pt"
    save_checkpoint(path, model.eval(), CFG, fold=0, epoch=1, stage="bce", monitor="val_iou", score=0.5)
    assert checkpoint_config(path).empty_head
    loaded = load_checkpoint_model(path)
    with torch.no_grad():
        assert torch.equal(loaded(images()), model(images()))


def test_only_preact_resunet_has_the_head() -> None:
    with pytest.raises(SaltError, match="^empty_head: must be false unless name is preact_resunet"):
        ModelConfig(name="timm_unet", input_size=64, empty_head=True)


def test_checkpoints_from_before_the_switch_load_without_the_head(tmp_path) -> None:
    plain = dataclasses.replace(CFG, empty_head=False)
    path = tmp_path / "old.pt"
    save_checkpoint(path, build_model(plain), plain, fold=0)
    raw = torch.load(path, weights_only=True)
    del raw["model_config"]["empty_head"]  # what checkpoints written before the key hold
    torch.save(raw, path)
    assert checkpoint_config(path) == plain
    assert load_checkpoint_model(path).empty_head is None
