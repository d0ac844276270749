"""The preact_resunet switches from the top TGS solutions, against hand-computed cases."""

from __future__ import annotations

import torch
from torch import nn

from saltseg.config import ModelConfig
from saltseg.models import build_model
from saltseg.models.blocks import SCSE
from saltseg.models.preact_resunet import vertical_position


def _neutral_scse(channels: int) -> SCSE:
    """Zero weights and biases: both gates are sigmoid(0) = 1/2 everywhere."""
    block = SCSE(channels)
    for module in block.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.zeros_(module.weight)
            nn.init.zeros_(module.bias)
    return block


def test_scse_with_neutral_gates_returns_its_input() -> None:
    block = _neutral_scse(8)  # x/2 + x/2 = x
    x = torch.randn(2, 8, 5, 5)
    assert torch.allclose(block(x), x)


def test_scse_spatial_gate_weighs_pixels() -> None:
    # Channel gate neutral (1/2); the spatial gate is sigmoid(sum of channels) per pixel.
    block = _neutral_scse(2)
    nn.init.ones_(block.spatial_gate[0].weight)
    x = torch.tensor([[[[1.0, -1.0]], [[1.0, -1.0]]]])  # (1, 2, 1, 2): pixel sums 2 and -2
    gate = torch.sigmoid(torch.tensor([2.0, -2.0]))
    expected = x * 0.5 + x * gate.view(1, 1, 1, 2)
    assert torch.allclose(block(x), expected)


def test_vertical_position_runs_from_top_to_bottom() -> None:
    ramp = vertical_position(torch.zeros(2, 1, 3, 4))
    assert ramp.shape == (2, 1, 3, 4)
    assert torch.equal(ramp[1, 0, :, 2], torch.tensor([-1.0, 0.0, 1.0]))
    assert torch.equal(ramp[0, 0, 0], torch.full((4,), -1.0))


def _model(**switches: bool) -> nn.Module:
    torch.manual_seed(0)
    return build_model(ModelConfig(input_size=32, start_filters=4, depth=3, **switches)).eval()


def test_coord_channels_feed_the_stem_a_second_channel() -> None:
    assert _model().stem.in_channels == 1
    assert _model(coord_channels=True).stem.in_channels == 2


def test_hypercolumn_head_reads_every_decoder_level() -> None:
    head = _model(hypercolumn=True).head
    assert head[0].num_features == 4 + 8 + 16  # the widths of decoder levels 0, 1, 2
    assert _model().head[0].num_features == 4


def test_scse_gates_every_decoder_level_and_only_when_on() -> None:
    assert all(isinstance(a, SCSE) for a in _model(scse=True).attention)
    assert all(isinstance(a, nn.Identity) for a in _model().attention)


def test_switches_off_keep_the_seed_network() -> None:
    # Off, no module is added (Identity holds no weights): the seed's parameters, one for one.
    names = [n for n, _ in _model().named_parameters()]
    assert not any("attention" in n for n in names)
    assert [n for n in names if n.startswith("head")] == [
        "head.0.weight",
        "head.0.bias",
        "head.2.weight",
        "head.2.bias",
    ]
