"""An exponential moving average of a model's weights (train.ema_decay): what is validated and kept.

With small batches the weights after the last step of an epoch are one noisy point of the
walk; their running mean over the last ~1 / (1 - decay) steps scores better (Polyak
averaging) for one in-place lerp per tensor per step. BatchNorm's running statistics are
averaged with the weights they belong to; integer buffers (batch counts) are copied.

Why not torch.optim.swa_utils.AveragedModel with get_ema_multi_avg_fn (or timm's ModelEmaV3):
its first update copies the weights instead of averaging from where the stage started, it
averages integer buffers in float and truncates them, and it keeps a deep copy of the module,
which the compiled (or DDP-wrapped) forward does not share, so validation would need a graph of
its own. Each changes the numbers train.ema_decay gives, and resuming would need its counter too.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


def _copy(targets: list[torch.Tensor], sources: list[torch.Tensor]) -> None:
    for target, source in zip(targets, sources, strict=True):
        target.copy_(source)


class WeightAverage:
    """The average of `model`'s state, updated in place after every optimizer step.

    `applied()` swaps it into the model (for validation and checkpoints) and back, so a
    compiled or DDP-wrapped forward that shares the model's tensors sees it unchanged.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        live = list(model.state_dict().values())  # the model's own storage, not copies
        self._weights = [t for t in live if t.is_floating_point()]
        self._counts = [t for t in live if not t.is_floating_point()]
        self._average = [t.detach().clone() for t in self._weights]
        self._average_counts = [t.detach().clone() for t in self._counts]

    @torch.no_grad()
    def update(self) -> None:
        """average <- decay * average + (1 - decay) * weights."""
        torch._foreach_lerp_(self._average, self._weights, 1.0 - self.decay)
        _copy(self._average_counts, self._counts)

    @torch.no_grad()
    def restart(self) -> None:
        """Forget the past: the average becomes the model's weights as they are now."""
        _copy(self._average + self._average_counts, self._weights + self._counts)

    @contextmanager
    def applied(self) -> Iterator[None]:
        """The model holds the average inside the block and its own weights again after it."""
        live = self._weights + self._counts
        with torch.no_grad():
            own = [t.clone() for t in live]
            _copy(live, self._average + self._average_counts)
        try:
            yield
        finally:
            with torch.no_grad():
                _copy(live, own)

    def state_dict(self) -> dict[str, list[torch.Tensor]]:
        return {"average": self._average, "counts": self._average_counts}

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, list[torch.Tensor]]) -> None:
        _copy(self._average + self._average_counts, state["average"] + state["counts"])
