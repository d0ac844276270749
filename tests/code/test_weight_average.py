"""The moving average of the weights (train.ema_decay), on a two-tensor model by hand."""

import pytest
import torch
from torch import nn

from saltseg.weight_average import WeightAverage


def _model(weight: float) -> nn.Module:
    model = nn.Sequential(nn.Linear(1, 1, bias=False), nn.BatchNorm1d(1))
    with torch.no_grad():
        model[0].weight.fill_(weight)
    return model


def _set(model: nn.Module, weight: float, mean: float, batches: int) -> None:
    with torch.no_grad():
        model[0].weight.fill_(weight)
        model[1].running_mean.fill_(mean)
        model[1].num_batches_tracked.fill_(batches)


def _one_update(start: float, decay: float, weight: float, batches: int = 0) -> tuple:
    """A model whose weight went from `start` to `weight` after its average was taken, averaged once."""
    model = _model(start)
    average = WeightAverage(model, decay)
    _set(model, weight=weight, mean=0.0, batches=batches)
    average.update()
    return model, average


def test_each_update_moves_the_average_by_one_minus_decay_and_copies_counts():
    model = _model(1.0)  # running_mean starts at 0
    average = WeightAverage(model, decay=0.75)
    _set(model, weight=3.0, mean=4.0, batches=7)
    average.update()  # 0.75 * 1 + 0.25 * 3 = 1.5; 0.75 * 0 + 0.25 * 4 = 1
    _set(model, weight=-1.0, mean=0.0, batches=9)
    average.update()  # 0.75 * 1.5 + 0.25 * -1 = 0.875; 0.75 * 1 = 0.75
    with average.applied():
        assert model[0].weight.item() == pytest.approx(0.875)
        assert model[1].running_mean.item() == pytest.approx(0.75)
        assert model[1].num_batches_tracked.item() == 9
    assert model[0].weight.item() == -1.0, "the model's own weights are back after the block"
    assert model[1].running_mean.item() == 0.0 and model[1].num_batches_tracked.item() == 9


def test_the_own_weights_come_back_when_the_block_raises():
    model, average = _one_update(start=2.0, decay=0.5, weight=6.0)
    with pytest.raises(RuntimeError), average.applied():
        assert model[0].weight.item() == 4.0
        raise RuntimeError
    assert model[0].weight.item() == 6.0


def test_restart_forgets_the_past():
    model = _model(1.0)
    average = WeightAverage(model, decay=0.9)
    _set(model, weight=5.0, mean=2.0, batches=3)
    average.restart()
    average.update()  # the average of 5 and 5
    with average.applied():
        assert model[0].weight.item() == 5.0 and model[1].running_mean.item() == 2.0


def test_a_saved_average_loads_into_a_new_one():
    _, average = _one_update(start=1.0, decay=0.75, weight=3.0, batches=1)
    saved = {k: [t.clone() for t in v] for k, v in average.state_dict().items()}
    other = _model(0.0)
    again = WeightAverage(other, decay=0.75)
    again.load_state_dict(saved)
    with again.applied():
        assert other[0].weight.item() == 1.5 and other[1].num_batches_tracked.item() == 1
