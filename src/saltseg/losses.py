"""Losses on logits: BCE and the Lovasz hinge (Berman et al. 2018, "The Lovasz-Softmax loss").

Both take logits and {0, 1} targets of the same number of pixels per image, shaped
(N, 1, H, W) or (N, H, W), and return a scalar float32 tensor.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F

from saltseg.config import LOSSES
from saltseg.errors import SaltError

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _flat(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """-> float32 logits and targets, both (N, P) with P pixels per image."""
    if logits.shape[0] != targets.shape[0] or logits.numel() != targets.numel():
        raise ValueError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} do not match")
    n = logits.shape[0]
    return logits.reshape(n, -1).float(), targets.reshape(n, -1).float()


def bce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy with logits, averaged over all pixels of the batch."""
    x, y = _flat(logits, targets)
    return F.binary_cross_entropy_with_logits(x, y)


def _lovasz_grad(gt_sorted: torch.Tensor) -> torch.Tensor:
    """Jaccard-loss increments along each row's error ordering; (R, P) {0,1} -> (R, P).

    Entry i is Delta_J(top i+1 errors) - Delta_J(top i errors): the weights with which
    the Lovasz extension combines the sorted errors (Berman et al., Alg. 1).
    """
    gts = gt_sorted.sum(dim=1, keepdim=True)
    intersection = gts - gt_sorted.cumsum(dim=1)
    union = gts + (1.0 - gt_sorted).cumsum(dim=1)  # >= 1 from the first pixel on: never 0/0
    jaccard = 1.0 - intersection / union
    return torch.cat([jaccard[:, :1], jaccard[:, 1:] - jaccard[:, :-1]], dim=1)


def _lovasz_rows(logits: torch.Tensor, labels: torch.Tensor, elu: bool) -> torch.Tensor:
    """Lovasz hinge of each row; (R, P) float logits, (R, P) {0,1} labels -> (R,)."""
    signs = 2.0 * labels - 1.0
    errors = 1.0 - logits * signs
    errors_sorted, perm = torch.sort(errors, dim=1, descending=True)
    weights = _lovasz_grad(torch.gather(labels, 1, perm))  # depends on labels only: no gradient
    # elu(x)+1 > 0 keeps a gradient on every pixel; relu zeroes confident, correct ones.
    hinge = F.elu(errors_sorted) + 1.0 if elu else F.relu(errors_sorted)
    return (hinge * weights).sum(dim=1)


def lovasz_hinge(
    logits: torch.Tensor, targets: torch.Tensor, per_image: bool = True, elu: bool = False
) -> torch.Tensor:
    """Lovasz hinge loss: the Lovasz extension of the Jaccard loss applied to hinge errors.

    logits float (N, 1, H, W) or (N, H, W); targets {0, 1}, same pixel count. per_image:
    mean of each image's loss (the TGS recipe); else one loss over all pixels of the batch.
    An image with an empty mask gets a finite loss: its largest (rectified) error.
    """
    x, y = _flat(logits, targets)
    if not per_image:
        x, y = x.reshape(1, -1), y.reshape(1, -1)
    return _lovasz_rows(x, y, elu).mean()


def get_loss(name: str, elu: bool = False) -> LossFn:
    """The loss called `name` ("bce" | "lovasz") as a callable(logits, targets) -> scalar."""
    if name == "bce":
        return bce
    if name == "lovasz":
        return partial(lovasz_hinge, per_image=True, elu=elu)
    raise SaltError(f"train.stages.loss: unknown loss {name!r}; valid: {', '.join(LOSSES)}")
