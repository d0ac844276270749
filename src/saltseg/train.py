"""Train one fold: BCE, then Lovász hinge from the best BCE weights; resumable.

The seed's rule decides what is kept: a checkpoint is written only when the
monitored validation metric improves, across both stages. Stage 2 starts from the
best checkpoint so far, which after stage 1 is stage 1's best.

Reproducibility: every epoch reseeds torch, the shuffling generator and the
augmentation pipeline from (seed, fold, stage, epoch). An interrupted run that
resumes at an epoch boundary therefore draws exactly the numbers an uninterrupted
run would, without having to carry RNG states across processes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from saltseg import distributed, progress
from saltseg.atomic import atomic_file, write_text
from saltseg.config import Params, TrainConfig, oriented
from saltseg.data.augment import build_augment
from saltseg.data.dataset import SaltDataset, to_tensor
from saltseg.data.prepared import Prepared
from saltseg.inference import pick_device
from saltseg.losses import get_loss
from saltseg.metrics import iou_per_image, score_per_image
from saltseg.models import build_model, save_checkpoint
from saltseg.models.fit import to_input, to_original

HISTORY_COLUMNS = ("epoch", "stage", "lr", "train_loss", "val_loss", "val_iou", "val_score")
LogFn = Callable[[dict[str, float], int], None]


@dataclass(frozen=True)
class FoldPaths:
    out_dir: Path  # best.pt (the kept checkpoint) and last.pt (the resume state)
    metrics: Path  # per-fold metrics JSON, read by `dvc metrics`
    history: Path  # per-epoch CSV, read by `dvc plots`

    @property
    def best(self) -> Path:
        return self.out_dir / "best.pt"

    @property
    def state(self) -> Path:
        return self.out_dir / "last.pt"


def epoch_seed(seed: int, fold: int, stage: int, epoch: int) -> int:
    return (seed * 1_000_003 + fold * 10_007 + stage * 1_009 + epoch) % 2**31


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig, lr: float) -> torch.optim.Optimizer:
    # On a GPU the fused kernels save hundreds of small launches per step (benchmarks/results.md).
    fused = next(model.parameters()).is_cuda
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=cfg.weight_decay, fused=fused)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=cfg.weight_decay, fused=fused)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=cfg.weight_decay)
    raise ValueError(f"train.optimizer: unknown {cfg.optimizer!r}; valid: adam, adamw, sgd")


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, epochs: int):  # noqa: ANN201
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(epochs, 1))
    if cfg.scheduler == "constant":
        return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0)
    raise ValueError(f"train.scheduler: unknown {cfg.scheduler!r}; valid: cosine, constant")


def _autocast(device: torch.device, amp: bool):  # noqa: ANN202
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda")


def train_epoch(model, loader, loss_fn, optimizer, params: Params, device, bar) -> float:  # noqa: ANN001
    """One pass over the training loader; returns the mean training loss."""
    model.train()
    memory_format = torch.channels_last if params.train.channels_last else torch.contiguous_format
    total, count = 0.0, 0
    for x, y in loader:
        x = to_input(x.to(device), params.model).contiguous(memory_format=memory_format)
        y = y.to(device)
        with _autocast(device, params.train.amp):
            logits = to_original(model(x), params.model)
        loss = loss_fn(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(x)
        count += len(x)
        bar.advance(1, loss=total / count)
    return total / max(count, 1)


@torch.inference_mode()
def predict_logits(model, images: np.ndarray, params: Params, device, batch_size: int) -> torch.Tensor:  # noqa: ANN001
    """Logits float32 (N, 1, 101, 101) on the CPU for uint8 images (N, 101, 101)."""
    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        x = to_input(to_tensor(images[start : start + batch_size]).to(device), params.model)
        with _autocast(device, params.train.amp):
            out.append(to_original(model(x), params.model).float().cpu())
    return torch.cat(out)


def validate(model, images, masks, loss_fn, params: Params, device) -> dict[str, float]:  # noqa: ANN001
    """Validation loss, mean IoU and competition score at probability 0.5 (logit 0)."""
    logits = predict_logits(model, images, params, device, params.train.batch_size)
    truth = torch.from_numpy(masks).float().unsqueeze(1)
    pred = (logits[:, 0] > 0).numpy()
    return {
        "val_loss": float(loss_fn(logits, truth)),
        "val_iou": float(iou_per_image(masks, pred).mean()),
        "val_score": float(score_per_image(masks, pred).mean()),
    }


def _save_state(paths: FoldPaths, **state: object) -> None:
    with atomic_file(paths.state) as tmp:
        torch.save(state, tmp)


def load_resume_state(paths: FoldPaths, key: str) -> dict | None:
    """The saved state of an interrupted run of this same configuration, if any."""
    if not paths.state.exists():
        return None
    state = torch.load(paths.state, weights_only=True, map_location="cpu")
    # A state from another configuration would silently mix two experiments.
    return state if state.get("key") == key else None


def _write_history(path: Path, rows: list[dict]) -> None:
    lines = [",".join(HISTORY_COLUMNS)]
    lines += [",".join(str(row[c]) for c in HISTORY_COLUMNS) for row in rows]
    write_text(path, "\n".join(lines) + "\n")


def train_fold(
    params: Params,
    prepared: Prepared,
    split: tuple[np.ndarray, np.ndarray],
    fold: int,
    paths: FoldPaths,
    key: str,
    log: LogFn | None = None,
    on_stage_start: Callable[[int, torch.nn.Module], None] | None = None,
) -> dict[str, float]:
    """Train one fold through all stages; returns the metrics written to `paths.metrics`.

    `split` holds the training and validation indices into `prepared`. `key`
    identifies the configuration: a resume state with another key is ignored.
    """
    cfg, runtime, started = params.train, params.runtime, time.monotonic()
    dist = distributed.context()  # one process unless started by torchrun: then rank 0 alone writes
    if runtime.threads:
        torch.set_num_threads(runtime.threads)
    device = dist.device(pick_device(runtime.device))
    train_idx, val_idx = split
    data_hash = prepared.fingerprint()  # travels with the checkpoint: evaluate refuses other data
    val_images, val_masks = prepared.images[val_idx], prepared.masks[val_idx]
    transform = build_augment(params.augment, seed=cfg.seed)
    dataset = SaltDataset(prepared.images[train_idx], prepared.masks[train_idx], transform)
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format

    torch.manual_seed(epoch_seed(cfg.seed, fold, 0, 0))
    model = build_model(params.model).to(device, memory_format=memory_format)
    trained = dist.wrap(model)  # `model` itself validates and is saved
    state = dist.from_main(load_resume_state, paths, key)
    history: list[dict] = state["history"] if state else []
    best = state["best"] if state else -np.inf
    next_stage, next_epoch = (state["next_stage"], state["next_epoch"]) if state else (0, 0)
    if state:
        model.load_state_dict(state["model"])
    elif dist.is_main:  # a fresh start must not inherit a checkpoint from another configuration
        paths.best.unlink(missing_ok=True)

    step = len(history)  # epochs done so far, over all stages
    for s, stage in enumerate(cfg.stages):
        if s < next_stage:
            continue
        loss_fn = get_loss(stage.loss, elu=cfg.lovasz_elu)
        optimizer = make_optimizer(model, cfg, stage.lr)
        scheduler = make_scheduler(optimizer, cfg, stage.epochs)
        first_epoch = next_epoch if s == next_stage else 0
        if first_epoch > 0:  # resuming inside this stage
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
        elif s > 0 and dist.from_main(paths.best.exists):  # the hand-off: start from the best weights so far
            kept = dist.from_main(torch.load, paths.best, weights_only=True, map_location="cpu")
            model.load_state_dict(kept["model"])
        if first_epoch == 0 and on_stage_start is not None:
            on_stage_start(s, model)
        for epoch in range(first_epoch, stage.epochs):
            seed = epoch_seed(cfg.seed, fold, s, epoch)
            torch.manual_seed(dist.rank_seed(seed))
            transform.set_random_seed(dist.rank_seed(seed))
            sampler = dist.sampler(dataset, seed)  # None in one process: the loader shuffles
            loader = DataLoader(
                dataset,
                batch_size=dist.batch_size(cfg.batch_size),
                shuffle=sampler is None,
                sampler=sampler,
                drop_last=len(dataset) > cfg.batch_size,
                num_workers=runtime.num_workers,
                generator=torch.Generator().manual_seed(dist.rank_seed(seed)),
            )
            lr = optimizer.param_groups[0]["lr"]
            label = f"fold {fold} {stage.loss} epoch {epoch + 1}/{stage.epochs}"
            with progress.task(label, total=len(loader), show=dist.is_main) as bar:
                train_loss = dist.mean(train_epoch(trained, loader, loss_fn, optimizer, params, device, bar))
                scheduler.step()
                row = {"epoch": step, "stage": stage.loss, "lr": lr, "train_loss": train_loss}
                # Rank 0 validates; its verdict (hence "improved?") is every rank's.
                row |= dist.from_main(validate, model, val_images, val_masks, loss_fn, params, device)
                bar.finish(val_loss=row["val_loss"], val_iou=row["val_iou"], val_score=row["val_score"])
            history.append(row)
            if log is not None:
                log({k: v for k, v in row.items() if k not in ("epoch", "stage")}, step)
            if oriented(cfg.monitor, row[cfg.monitor]) > best:  # `best` is kept oriented: larger is better
                best = oriented(cfg.monitor, row[cfg.monitor])
                if dist.is_main:
                    save_checkpoint(
                        paths.best, model, params.model,
                        fold=fold, epoch=step, stage=stage.loss, monitor=cfg.monitor, score=row[cfg.monitor],
                        data_hash=data_hash,
                    )  # fmt: skip
            step += 1
            done = epoch + 1 == stage.epochs
            if dist.is_main:
                _save_state(
                    paths, key=key, model=model.state_dict(), optimizer=optimizer.state_dict(),
                    scheduler=scheduler.state_dict(), history=history, best=best,
                    next_stage=s + 1 if done else s, next_epoch=0 if done else epoch + 1,
                )  # fmt: skip
                _write_history(paths.history, history)

    # The first of equals, like the kept checkpoint.
    best_row = max(history, key=lambda r: oriented(cfg.monitor, r[cfg.monitor]))
    metrics = {
        "fold": fold,
        "best_epoch": best_row["epoch"],
        "best_stage": best_row["stage"],
        "best_val_iou": best_row["val_iou"],
        "best_val_score": best_row["val_score"],
        "best_val_loss": best_row["val_loss"],
        "epochs": len(history),
        "n_train": len(train_idx),
        "n_val": len(val_idx),
        "train_seconds": round(time.monotonic() - started, 1),
    }
    if dist.is_main:
        write_text(paths.metrics, json.dumps(metrics, indent=2) + "\n")
        paths.state.unlink()
    return metrics
