"""Losses on logits: BCE, focal BCE (Lin et al. 2017), BCE plus soft Dice (on every image, or on
the images with small salt only), and the Lovasz hinge (Berman et al. 2018, "The Lovasz-Softmax
loss").

Each takes logits and targets of the same number of pixels per image, shaped (N, 1, H, W) or
(N, H, W), and returns a scalar float32 tensor (its `_per_image` form one float32 value per
image). The Lovasz hinge needs {0, 1} labels; the others also take targets in [0, 1]
(train.soft_targets), and may weigh the pixels along the mask's edges more (train.boundary_weight).
`empty_head_loss` combines them for model.empty_head.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import torch
import torch.nn.functional as F

from saltseg.config import LOSSES, TrainConfig
from saltseg.data.dataset import SMALL_SALT
from saltseg.errors import SaltError

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# Takes plain logits or a model's training-mode (logits, aux, has_salt); see get_train_loss.
TrainLossFn = Callable[[torch.Tensor | Sequence, torch.Tensor], torch.Tensor]


def _flat(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """-> float32 logits and targets, both (N, P) with P pixels per image."""
    if logits.shape[0] != targets.shape[0] or logits.numel() != targets.numel():
        raise ValueError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} do not match")
    n = logits.shape[0]
    return logits.reshape(n, -1).float(), targets.reshape(n, -1).float()


def boundary_weights(targets: torch.Tensor, weight: float) -> torch.Tensor:
    """(N, 1, H, W) or (N, H, W) targets in [0, 1] -> (N, P) pixel weights: 1, plus `weight` times
    (the 3x3 dilation - the 3x3 erosion) of the target, which for a {0, 1} mask is 1 on every
    pixel with a neighbour of the other class (the band on both sides of an edge) and 0 elsewhere;
    the tile's border is no edge. The pixels that decide a body's extent, and the whole of a
    small body, weigh 1 + weight."""
    y = targets.reshape(targets.shape[0], 1, *targets.shape[-2:]).float()
    edge = F.max_pool2d(y, 3, stride=1, padding=1) + F.max_pool2d(-y, 3, stride=1, padding=1)
    return 1.0 + weight * edge.reshape(y.shape[0], -1)


def _bce_pixels(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(N, P) BCE of each pixel."""
    x, y = _flat(logits, targets)
    return F.binary_cross_entropy_with_logits(x, y, reduction="none")


def _weigh(pixels: torch.Tensor, targets: torch.Tensor, boundary_weight: float) -> torch.Tensor:
    """(N, P) pixel losses, weighed by boundary_weights when `boundary_weight` > 0."""
    return pixels * boundary_weights(targets, boundary_weight) if boundary_weight else pixels


def bce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy with logits, averaged over all pixels of the batch."""
    x, y = _flat(logits, targets)
    return F.binary_cross_entropy_with_logits(x, y)


# Lin et al.'s choice: a pixel predicted right with probability 0.9 weighs 1/100 of its BCE.
FOCAL_GAMMA = 2.0


def focal_per_image(
    logits: torch.Tensor, targets: torch.Tensor, boundary_weight: float = 0.0
) -> torch.Tensor:
    """Focal BCE of each image, averaged over its pixels; (N,): (1 - p_t)^FOCAL_GAMMA * BCE,
    p_t the probability given to the true class, so that the pixels the model already gets
    right (most of them sediment) weigh little and the hard ones, small salt among them, much."""
    pixel = _bce_pixels(logits, targets)
    return _weigh((1.0 - torch.exp(-pixel)) ** FOCAL_GAMMA * pixel, targets, boundary_weight).mean(dim=1)


# Added to both sides of the Dice ratio: an image without salt, predicted without salt, scores 1.
DICE_SMOOTH = 1.0


def _soft_dice(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(N, P) logits and targets -> each row's soft Dice, (N,): (2 sum(p y) + DICE_SMOOTH) /
    (sum(p) + sum(y) + DICE_SMOOTH), p the sigmoid probabilities."""
    p = torch.sigmoid(x)
    return (2 * (p * y).sum(dim=1) + DICE_SMOOTH) / (p.sum(dim=1) + y.sum(dim=1) + DICE_SMOOTH)


def bce_dice_per_image(
    logits: torch.Tensor, targets: torch.Tensor, boundary_weight: float = 0.0
) -> torch.Tensor:
    """BCE of each image (the mean over its pixels) plus 1 - its soft Dice; (N,).

    BCE weighs an image by its pixels, so a body of ten pixels is a sliver of the loss; Dice
    weighs it as much as a tile full of salt."""
    return bce_per_image(logits, targets, boundary_weight) + 1.0 - _soft_dice(*_flat(logits, targets))


def bce_small_dice_per_image(
    logits: torch.Tensor, targets: torch.Tensor, boundary_weight: float = 0.0
) -> torch.Tensor:
    """BCE of each image, plus 1 - its soft Dice where its target has salt on at most SMALL_SALT
    of its pixels (and some); (N,). Dice on every image lifted small salt and cost empty tiles
    and large bodies more (docs/real-data.md): this keeps Dice where the small bodies are."""
    x, y = _flat(logits, targets)
    coverage = y.mean(dim=1)
    small = ((coverage > 0) & (coverage <= SMALL_SALT)).float()
    return bce_per_image(logits, targets, boundary_weight) + small * (1.0 - _soft_dice(x, y))


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
    if not elu:
        # relu zeroes the pixels with errors <= 0, confident and correct, whatever their weights,
        # and the weights of the others depend only on the pixels ranked above them: those tie
        # at 0 and sort ~2x faster, to the same loss and gradients as the full stable sort.
        errors = errors.clamp(min=0.0)
    errors_sorted, perm = torch.sort(errors, dim=1, descending=True, stable=True)
    weights = _lovasz_grad(torch.gather(labels, 1, perm))  # depends on labels only: no gradient
    # elu(x)+1 > 0 keeps a gradient on every pixel; relu zeroes confident, correct ones.
    hinge = F.elu(errors_sorted) + 1.0 if elu else F.relu(errors_sorted)
    return (hinge * weights).sum(dim=1)


def _lovasz(x: torch.Tensor, y: torch.Tensor, elu: bool, symmetric: bool) -> torch.Tensor:
    """Lovasz hinge of each row of (R, P) logits and labels; `symmetric`: the mean of the salt
    class's and the sediment class's (logits and labels negated), as some top TGS solutions
    trained, so that an empty mask weighs its false positives like a salty one its misses."""
    loss = _lovasz_rows(x, y, elu)
    return (loss + _lovasz_rows(-x, 1.0 - y, elu)) / 2 if symmetric else loss


def lovasz_hinge(
    logits: torch.Tensor,
    targets: torch.Tensor,
    per_image: bool = True,
    elu: bool = False,
    symmetric: bool = False,
) -> torch.Tensor:
    """Lovasz hinge loss: the Lovasz extension of the Jaccard loss applied to hinge errors.

    logits float (N, 1, H, W) or (N, H, W); targets {0, 1}, same pixel count. per_image:
    mean of each image's loss (the TGS recipe); else one loss over all pixels of the batch.
    An image with an empty mask gets a finite loss: its largest (rectified) error.
    """
    x, y = _flat(logits, targets)
    if not per_image:
        x, y = x.reshape(1, -1), y.reshape(1, -1)
    return _lovasz(x, y, elu, symmetric).mean()


def _unknown(name: str) -> SaltError:
    return SaltError(f"train.stages.loss: unknown loss {name!r}; valid: {', '.join(LOSSES)}")


def bce_per_image(logits: torch.Tensor, targets: torch.Tensor, boundary_weight: float = 0.0) -> torch.Tensor:
    """Binary cross-entropy with logits of each image, averaged over its pixels; (N,)."""
    return _weigh(_bce_pixels(logits, targets), targets, boundary_weight).mean(dim=1)


def lovasz_per_image(
    logits: torch.Tensor, targets: torch.Tensor, elu: bool = False, symmetric: bool = False
) -> torch.Tensor:
    """The Lovasz hinge of each image; (N,). `lovasz_hinge(per_image=True)` is their mean."""
    return _lovasz(*_flat(logits, targets), elu, symmetric)


# The losses with a BCE term, per image; each takes boundary_weight.
_BCE_FAMILY: dict[str, Callable[..., torch.Tensor]] = {
    "bce": bce_per_image,
    "focal": focal_per_image,
    "bce_dice": bce_dice_per_image,
    "bce_small_dice": bce_small_dice_per_image,
}


def image_losses(
    name: str, elu: bool = False, symmetric: bool = False, boundary_weight: float = 0.0
) -> LossFn:
    """The loss called `name` per image, (logits, targets) -> (N,): the stage loss is their
    mean (for BCE because every image has as many pixels). `elu`, `symmetric`: the Lovasz
    hinge's form; `boundary_weight`: the BCE's weight on edge pixels (boundary_weights)."""
    if name == "lovasz":
        return partial(lovasz_per_image, elu=elu, symmetric=symmetric)
    if name not in _BCE_FAMILY:
        raise _unknown(name)
    loss = _BCE_FAMILY[name]
    return partial(loss, boundary_weight=boundary_weight) if boundary_weight else loss


def level_targets(targets: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
    """`targets` (N, 1, H, W) at the size of a deep-supervision level's logits: as they are, or
    max-pooled to a coarser level (model.aux_at_level), so that a cell holds salt when any of its
    pixels does and no body vanishes from the coarse levels."""
    size = level.shape[-2:]
    return targets if targets.shape[-2:] == size else F.adaptive_max_pool2d(targets, size)


def empty_head_loss(
    logits: torch.Tensor,
    aux: Sequence[torch.Tensor],
    has_salt: torch.Tensor,
    targets: torch.Tensor,
    stage_loss: LossFn,
    image_loss: LossFn,
    aux_weight: float,
    empty_weight: float,
    salt: torch.Tensor | None = None,
) -> torch.Tensor:
    """The loss of a model with the empty head (models/heads.py); a scalar float32 tensor.

    stage_loss(logits, targets) + aux_weight * mean over the levels of the mean of
    image_loss(aux level, its level_targets) over the images with salt + empty_weight *
    BCE(has_salt, salt). logits and each aux (N, 1, H, W), has_salt (N,), targets {0, 1}
    (N, 1, H, W); salt {0, 1} (N,): whether each image holds salt, by default whether its
    target does (training at a smaller size passes the label of the 101-px mask, which a few
    pixels of salt keep non-empty). Empty images teach the decoder levels nothing the has-salt
    head does not learn better, so deep supervision sees salt only. The masked mean is a
    weighted sum, not an index: no host sync, and a batch without salt still sends a (zero)
    gradient through every output, as DDP requires of each parameter.
    """
    n = targets.shape[0]
    salt = (targets.reshape(n, -1) > 0).any(dim=1) if salt is None else salt
    salt = salt.float()
    loss = stage_loss(logits, targets)
    if aux:
        per_level = [
            (image_loss(level, level_targets(targets, level)) * salt).sum() / salt.sum().clamp(min=1)
            for level in aux
        ]
        loss = loss + aux_weight * torch.stack(per_level).mean()
    return loss + empty_weight * F.binary_cross_entropy_with_logits(has_salt.float(), salt)


def get_train_loss(
    name: str,
    elu: bool,
    aux_weight: float,
    empty_weight: float,
    symmetric: bool = False,
    boundary_weight: float = 0.0,
    per_image: bool = True,
) -> TrainLossFn:
    """The training loss of a stage: the loss `name` on plain logits, and `empty_head_loss`
    on the (logits, aux, has_salt) a model with the empty head returns in training mode. It
    takes (output, targets) or (output, targets, salt): see empty_head_loss. `per_image` False:
    the Lovasz hinge of the logits over the whole batch as one image (deep supervision stays
    per image: it averages over the images with salt)."""
    form = (elu, symmetric, boundary_weight)
    stage_loss, image_loss = get_loss(name, *form, per_image=per_image), image_losses(name, *form)

    def loss(
        output: torch.Tensor | Sequence, targets: torch.Tensor, salt: torch.Tensor | None = None
    ) -> torch.Tensor:
        if isinstance(output, torch.Tensor):
            return stage_loss(output, targets)
        logits, aux, has_salt = output
        args = (stage_loss, image_loss, aux_weight, empty_weight, salt)
        return empty_head_loss(logits, aux, has_salt, targets, *args)

    return loss


def stage_train_loss(cfg: TrainConfig, name: str) -> TrainLossFn:
    """salt train's loss for a stage whose loss is `name`, with `cfg`'s Lovasz form and head weights."""
    form = (cfg.lovasz_symmetric, cfg.boundary_weight, cfg.lovasz_per_image)
    return get_train_loss(name, cfg.lovasz_elu, cfg.aux_weight, cfg.empty_weight, *form)


def _batch_mean(image_loss: LossFn, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return image_loss(logits, targets).mean()


def get_loss(
    name: str,
    elu: bool = False,
    symmetric: bool = False,
    boundary_weight: float = 0.0,
    per_image: bool = True,
) -> LossFn:
    """The loss called `name` (config.LOSSES) as a callable(logits, targets) -> scalar: the mean
    of its per-image losses (image_losses); plain BCE's is one mean over all pixels of the batch,
    and so is the Lovasz hinge's with `per_image` False (lovasz_hinge)."""
    if name == "bce" and not boundary_weight:
        return bce
    if name == "lovasz":
        return partial(lovasz_hinge, per_image=per_image, elu=elu, symmetric=symmetric)
    return partial(_batch_mean, image_losses(name, boundary_weight=boundary_weight))
