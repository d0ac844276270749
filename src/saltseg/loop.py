"""One epoch of training and one of validation, with no host sync inside either.

The loss is summed on the device and read once per epoch; validation images and masks
live on the device for the whole fold, and the loss, IoU and score are computed there
and read in one transfer. On a CPU this costs nothing; on a GPU it keeps the queue full.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from saltseg.config import ModelConfig, RuntimeConfig
from saltseg.data.dataset import EpochBatches, SaltDataset
from saltseg.distributed import Context
from saltseg.hardware import Policy
from saltseg.metrics import iou_per_image_torch, score_per_image_torch
from saltseg.models.fit import extra_inputs, network_input, to_input, to_original
from saltseg.models.heads import SegOutput
from saltseg.weight_average import WeightAverage


def make_loader(
    dataset: SaltDataset,
    batch_size: int,
    runtime: RuntimeConfig,
    policy: Policy,
    dist: Context,
    draws: np.ndarray | None = None,
) -> DataLoader:
    """One loader for the whole fold: worker processes persist across epochs and stages.

    `batch_size` is the global batch; under torchrun each process loads its share of it.
    `draws`: how often each image stands in the pool an epoch is drawn from (EpochBatches).
    Call `loader.batch_sampler.set_epoch(seed)` before each pass.
    """
    workers = runtime.num_workers
    dist.batch_size(batch_size)  # refuses a batch the processes cannot share evenly
    drop_last = len(dataset) > batch_size
    sampler = EpochBatches(len(dataset), batch_size, drop_last, dist.rank, dist.world_size, draws)
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=policy.device.type == "cuda",
        prefetch_factor=4 if workers > 0 else None,
    )


def logits_of(
    forward: nn.Module,
    x: torch.Tensor,
    cfg: ModelConfig,
    policy: Policy,
    depths: torch.Tensor | None = None,
    at_input: bool = False,
) -> torch.Tensor | SegOutput:
    """float (B, 1, 101, 101) tiles in [0, 1] on any device -> float32 logits, same shape, on the device.

    `depths` (B,) reach the model only when it has model.depth_channel. A model with the empty
    head in training mode answers a SegOutput: its logits and aux logits come back the same
    way, its has_salt logits (B,) as float32. `at_input`: the logits stay at the model's
    input_size (training with train.loss_at "input").
    """
    extra = extra_inputs(cfg, depths, policy.device)
    x = policy.batch(network_input(x.to(policy.device, non_blocking=True), cfg))
    with policy.autocast():
        out = forward(x, *extra)
        if isinstance(out, SegOutput):
            size = out.logits.shape[-2:]  # aux at their level's size (model.aux_at_level) stay so
            back = tuple(
                (t if at_input or t.shape[-2:] != size else to_original(t, cfg)).float()
                for t in (out.logits, *out.aux)
            )
            return SegOutput(back[0], back[1:], out.has_salt.float())
        return (out if at_input else to_original(out, cfg)).float()


def train_targets(y: torch.Tensor, cfg: ModelConfig, at_input: bool, soft: bool = False) -> torch.Tensor:
    """{0, 1} float (B, 1, 101, 101) masks -> the loss's targets: these, or with `at_input` the
    masks mapped to the model's input_size like the images and binarised at 0.5 (`soft`: not
    binarised: values in [0, 1])."""
    if not at_input:
        return y
    resized = to_input(y, cfg)
    return resized if soft else (resized > 0.5).float()


def train_epoch(
    model,
    forward,
    loader,
    loss_fn,
    optimizer,
    cfg: ModelConfig,
    policy: Policy,
    bar,
    at_input: bool = False,
    average: WeightAverage | None = None,
    soft: bool = False,
) -> float:  # noqa: ANN001
    """One pass over the loader (`forward` is `model`, maybe compiled); returns the mean loss.

    `loss_fn` takes what the model answers in training mode: logits, or a SegOutput
    (saltseg.losses.get_train_loss takes both), the targets and each tile's has-salt label
    (from its 101-px mask); `at_input` computes it at the model's
    input_size (train.loss_at "input"), against soft targets with `soft` (train_targets);
    `average`, if any, follows every step."""
    model.train()
    total = torch.zeros((), device=policy.device)
    count = 0
    for x, y, depths in loader:
        y = y.to(policy.device, non_blocking=True)
        # Whether the tile holds salt, from its 101-px mask: a body of a few pixels may vanish
        # from the mask resized for the loss, and the has-salt head must still call it salt.
        salt = y.flatten(1).amax(dim=1)
        logits = logits_of(forward, x, cfg, policy, depths, at_input)
        loss = loss_fn(logits, train_targets(y, cfg, at_input, soft), salt)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if average is not None:
            average.update()
        total += loss.detach() * len(x)
        count += len(x)
        bar.advance(1)
    return total.item() / max(count, 1)


@dataclass(frozen=True)
class Validation:
    """The held-out images, uint8 (N, 101, 101), bool masks and depths (N,), resident on the device."""

    images: torch.Tensor
    masks: torch.Tensor
    depths: torch.Tensor

    @classmethod
    def on(cls, policy: Policy, images: np.ndarray, masks: np.ndarray, depths: np.ndarray) -> Validation:
        return cls(
            torch.from_numpy(images).to(policy.device),
            torch.from_numpy(masks.astype(bool)).to(policy.device),
            torch.from_numpy(depths.astype(np.float32)).to(policy.device),
        )


@torch.inference_mode()
def predict_logits(
    forward: nn.Module,
    images: torch.Tensor,
    cfg: ModelConfig,
    policy: Policy,
    batch_size: int,
    depths: torch.Tensor | None = None,
) -> torch.Tensor:
    """float32 logits (N, 1, 101, 101) for uint8 images (N, 101, 101) and depths (N,), on the device.

    The caller sets eval mode. The last batch is padded to `batch_size` (eval-mode BatchNorm
    treats images independently), so a compiled model sees one input shape.
    """
    out = []
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size].float().div_(255.0).unsqueeze(1)
        d = None if depths is None else depths[start : start + batch_size]
        n = len(x)
        if n < batch_size:
            x = torch.cat([x, x.new_zeros(batch_size - n, *x.shape[1:])])
            d = None if d is None else torch.cat([d, d.new_zeros(batch_size - n)])
        out.append(logits_of(forward, x, cfg, policy, d)[:n])
    return torch.cat(out)


@torch.inference_mode()
def validate(
    model, forward, val: Validation, loss_fn, cfg: ModelConfig, policy: Policy, batch_size: int
) -> dict[str, float]:  # noqa: ANN001 - model, forward, loss_fn
    """Validation loss, mean IoU and competition score at probability 0.5 (logit 0), one host read."""
    model.eval()
    logits = predict_logits(forward, val.images, cfg, policy, batch_size, val.depths)
    pred = logits[:, 0] > 0
    loss = loss_fn(logits, val.masks.float().unsqueeze(1))
    iou = iou_per_image_torch(val.masks, pred).mean()
    score = score_per_image_torch(val.masks, pred).mean()
    val_loss, val_iou, val_score = torch.stack([loss.double(), iou, score]).tolist()
    return {"val_loss": val_loss, "val_iou": val_iou, "val_score": val_score}
