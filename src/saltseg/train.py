"""Train one fold: BCE, then Lovász hinge from the best BCE weights; resumable.

The seed's rule decides what is kept: a checkpoint is written only when the
monitored validation metric improves, across both stages. Stage 2 starts from the
best checkpoint so far, which after stage 1 is stage 1's best.

Reproducibility: every epoch reseeds torch and the batch sampler (shuffled order and
one augmentation seed per batch, see saltseg.data.dataset) from (seed, fold, stage,
epoch). An interrupted run that resumes at an epoch boundary therefore draws exactly
the numbers an uninterrupted run would, with any number of loader workers, without
carrying RNG states across processes.

With train.snapshots, the weights at the end of every learning-rate cycle of the last
stage are kept too (snapshot<c>.pt, see train.scheduler warm_restarts and train.cycles);
evaluation, prediction and the registry then use their mean as the fold's model. With
train.ema_decay, a moving average of the weights (saltseg.weight_average) is what validation
scores and what best.pt, the snapshots and the next stage take, instead of the weights.

Epochs are numbered 1..N over both stages everywhere people or tools see them: log
lines ("fold 0 epoch 3/12 (bce 3/8)"), the history CSV, MLflow steps, the metrics JSON
and the checkpoint. How it runs (device, bf16, channels_last, compile) is
saltseg.hardware's policy; the epoch loop itself is saltseg.loop. Under torchrun,
saltseg.distributed splits each batch over the processes; rank 0 alone validates and
writes, and what it reads or decides is broadcast so every process takes the same path.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from saltseg import distributed, hardware, progress
from saltseg.atomic import atomic_file, write_text
from saltseg.config import Params, TrainConfig, oriented
from saltseg.data.augment import build_augment
from saltseg.data.dataset import SaltDataset, column_masks, small_salt_draws
from saltseg.data.prepared import Prepared
from saltseg.data.pseudo_set import PseudoSet
from saltseg.distributed import Context
from saltseg.hardware import Policy
from saltseg.loop import Validation, make_loader, train_epoch, validate
from saltseg.losses import stage_train_loss
from saltseg.models import build_model, model_paths, save_checkpoint, snapshot_path, snapshot_paths
from saltseg.models.checkpoint import checkpoint_key
from saltseg.weight_average import WeightAverage

HISTORY_COLUMNS = ("epoch", "stage", "lr", "train_loss", "val_loss", "val_iou", "val_score")
LogFn = Callable[[dict[str, float], int], None]


@dataclass(frozen=True)
class FoldPaths:
    out_dir: Path  # best.pt (the kept checkpoint), snapshot<c>.pt and last.pt (the resume state)
    metrics: Path  # per-fold metrics JSON, read by `dvc metrics`
    history: Path  # per-epoch CSV, read by `dvc plots`

    @property
    def best(self) -> Path:
        return self.out_dir / "best.pt"

    @property
    def state(self) -> Path:
        return self.out_dir / "last.pt"

    def snapshot(self, cycle: int) -> Path:
        return snapshot_path(self.out_dir, cycle)

    @property
    def snapshots(self) -> list[Path]:
        return snapshot_paths(self.out_dir)

    @property
    def members(self) -> tuple[Path, ...]:
        """The checkpoints whose mean is the fold's model, as evaluation and the registry read it."""
        return model_paths(self.out_dir)


def epoch_seed(seed: int, fold: int, stage: int, epoch: int) -> int:
    return (seed * 1_000_003 + fold * 10_007 + stage * 1_009 + epoch) % 2**31


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig, lr: float) -> torch.optim.Optimizer:
    # Adam's fused kernel: on a GPU it saves hundreds of small launches a step; on the CPU one
    # pass over each tensor instead of a dozen, 1.1 ms a real-cpu step against 3.8 for torch's
    # default loop there (benchmarks/results.md, "Train step parts"). Both devices have it.
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=cfg.weight_decay, fused=True)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=cfg.weight_decay, fused=True)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=cfg.weight_decay)
    raise ValueError(f"train.optimizer: unknown {cfg.optimizer!r}; valid: adam, adamw, sgd")


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, epochs: int):  # noqa: ANN201
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(epochs, 1))
    if cfg.scheduler == "constant":
        return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0)
    if cfg.scheduler == "warm_restarts":  # TrainConfig checks that `cycles` divides `epochs`
        return torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(optimizer, T_0=epochs // cfg.cycles)
    raise ValueError(f"train.scheduler: unknown {cfg.scheduler!r}; valid: cosine, constant, warm_restarts")


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


def finished(paths: FoldPaths, key: str) -> bool:
    """Whether the fold is trained for `key`: its metrics written, no resume state left, and every
    checkpoint of its model recorded under `key`."""
    if not paths.metrics.is_file() or paths.state.exists() or not paths.members[0].is_file():
        return False
    return all(checkpoint_key(path) == key for path in paths.members)


def _write_history(path: Path, rows: list[dict]) -> None:
    lines = [",".join(HISTORY_COLUMNS)]
    lines += [",".join(str(row[c]) for c in HISTORY_COLUMNS) for row in rows]
    write_text(path, "\n".join(lines) + "\n")


@dataclass(frozen=True)
class _Job:
    """What every epoch of one fold reads and nothing changes."""

    params: Params
    fold: int
    paths: FoldPaths
    key: str
    data_hash: str  # travels with the checkpoint: evaluate refuses models trained on other data
    policy: Policy
    dist: Context
    loader: DataLoader
    val: Validation
    log: LogFn | None
    on_stage_start: Callable[[int, nn.Module], None] | None
    pseudo_hash: str | None = None  # the pseudo-label set trained with; None: none

    @property
    def lineage(self) -> dict[str, str]:
        """What a checkpoint records of where it came from: the fold's key (params, data, hardware
        policy: `finished` reads it), the data, and the pseudo-label set only when there is one."""
        pseudo = {"pseudo_hash": self.pseudo_hash} if self.pseudo_hash else {}
        return {"key": self.key, "data_hash": self.data_hash} | pseudo


@dataclass
class _Fold:
    """What one fold's training carries from epoch to epoch (and, via last.pt, across a kill)."""

    model: nn.Module  # owns the weights; `forward` is the same module, maybe compiled
    forward: nn.Module
    train_forward: nn.Module  # `forward`, wrapped in DDP under torchrun (validation needs no peers)
    history: list[dict]
    best: float  # oriented: larger is better, whatever the monitor
    resume: dict | None  # the saved state this run continues, if any
    average: WeightAverage | None  # train.ema_decay: what is validated and kept instead of the weights

    def judged(self) -> contextlib.AbstractContextManager:
        """The weights that validation scores and checkpoints keep, in the model for the block."""
        return self.average.applied() if self.average else contextlib.nullcontext()

    @property
    def next_stage(self) -> int:
        return self.resume["next_stage"] if self.resume else 0

    def first_epoch(self, stage: int) -> int:
        return self.resume["next_epoch"] if self.resume and stage == self.next_stage else 0


def _start(params: Params, fold: int, paths: FoldPaths, key: str, policy: Policy, dist: Context) -> _Fold:
    """A fresh model, or the interrupted run's state when `key` matches (rank 0's, on every rank)."""
    torch.manual_seed(epoch_seed(params.train.seed, fold, 0, 0))
    model = policy.place(build_model(params.model))
    state = dist.from_main(load_resume_state, paths, key)
    if not state and dist.is_main and paths.state.exists():
        print(
            f"{paths.state}: saved under other params, data or hardware policy; fold {fold} starts over",
            file=sys.stderr,
        )
    if state:
        model.load_state_dict(state["model"])
    elif dist.is_main:  # a fresh start must not inherit checkpoints from another configuration
        for stale in (paths.best, *paths.snapshots):
            stale.unlink(missing_ok=True)
    history = state["history"] if state else []
    best = state["best"] if state else -np.inf
    average = WeightAverage(model, params.train.ema_decay) if params.train.ema_decay else None
    if average and state:
        average.load_state_dict(state["average"])
    forward = policy.compiled(model)
    return _Fold(model, forward, dist.wrap(forward), history, best, state, average)


def _train_stage(s: int, run: _Fold, job: _Job) -> None:
    """Stage `s` from its first (or resumed) epoch to its last; saves the resume state every epoch."""
    cfg = job.params.train
    stage = cfg.stages[s]
    # On plain logits (validation; models without the empty head) this is the stage's loss.
    loss_fn = stage_train_loss(cfg, stage.loss)
    optimizer = make_optimizer(run.model, cfg, stage.lr)
    scheduler = make_scheduler(optimizer, cfg, stage.epochs)
    first_epoch = run.first_epoch(s)
    if first_epoch > 0:  # resuming inside this stage
        optimizer.load_state_dict(run.resume["optimizer"])
        scheduler.load_state_dict(run.resume["scheduler"])
    elif s > 0 and job.dist.from_main(job.paths.best.exists):  # the hand-off: the best weights so far
        kept = job.dist.from_main(torch.load, job.paths.best, weights_only=True, map_location="cpu")
        run.model.load_state_dict(kept["model"])
    if first_epoch == 0 and run.average:  # each stage averages its own walk from where it starts
        run.average.restart()
    if first_epoch == 0 and job.on_stage_start is not None:
        job.on_stage_start(s, run.model)
    for epoch in range(first_epoch, stage.epochs):
        row = _epoch(s, epoch, run, job, loss_fn, optimizer)
        scheduler.step()
        if job.log is not None:
            job.log({k: v for k, v in row.items() if k not in ("epoch", "stage")}, row["epoch"])
        done = epoch + 1 == stage.epochs
        if not job.dist.is_main:
            continue
        average = {"average": run.average.state_dict()} if run.average else {}
        _save_state(
            job.paths, key=job.key, model=run.model.state_dict(), optimizer=optimizer.state_dict(),
            scheduler=scheduler.state_dict(), history=run.history, best=run.best,
            next_stage=s + 1 if done else s, next_epoch=0 if done else epoch + 1, **average,
        )  # fmt: skip
        _write_history(job.paths.history, run.history)


def _save_snapshot(cycle: int, row: dict, run: _Fold, job: _Job) -> None:
    cfg = job.params.train
    save_checkpoint(
        job.paths.snapshot(cycle), run.model, job.params.model, fold=job.fold, epoch=row["epoch"],
        stage=row["stage"], cycle=cycle, cycles=cfg.cycles, monitor=cfg.monitor, score=row[cfg.monitor],
        precision=job.policy.precision, **job.lineage,
    )  # fmt: skip


def _epoch(s: int, epoch: int, run: _Fold, job: _Job, loss_fn, optimizer) -> dict:  # noqa: ANN001
    """Train and validate one epoch; keep the checkpoint if the monitored metric improved, and
    the snapshot at a cycle end of the last stage (train.snapshots)."""
    params, fold = job.params, job.fold
    cfg, stage = params.train, params.train.stages[s]
    seed = epoch_seed(cfg.seed, fold, s, epoch)
    torch.manual_seed(seed)
    job.loader.batch_sampler.set_epoch(seed)
    number = len(run.history) + 1  # 1-based over all stages: logs, history, MLflow steps, metrics
    total = sum(st.epochs for st in cfg.stages)
    label = f"fold {fold} epoch {number}/{total} ({stage.loss} {epoch + 1}/{stage.epochs})"
    lr = optimizer.param_groups[0]["lr"]
    dist, policy = job.dist, job.policy
    with progress.task(label, total=len(job.loader), show=dist.is_main) as bar:
        loss = train_epoch(
            run.model, run.train_forward, job.loader, loss_fn, optimizer, params.model, policy, bar,
            at_input=cfg.loss_at_input, average=run.average,
            soft=cfg.soft_for(stage.loss),
        )  # fmt: skip
        row = {"epoch": number, "stage": stage.loss, "lr": lr, "train_loss": dist.mean(loss)}
        with run.judged():
            # Rank 0 validates; its verdict (hence "improved?") is every rank's.
            args = (run.model, run.forward, job.val, loss_fn, params.model, policy, cfg.batch_size)
            row |= dist.from_main(validate, *args)
            bar.finish(**{k: row[k] for k in ("train_loss", "val_loss", "val_iou", "val_score")})
            run.history.append(row)
            improved = oriented(cfg.monitor, row[cfg.monitor]) > run.best
            if improved:
                run.best = oriented(cfg.monitor, row[cfg.monitor])
            cycle_length = stage.epochs // cfg.cycles
            cycle_end = cfg.snapshots and s + 1 == len(cfg.stages) and (epoch + 1) % cycle_length == 0
            if dist.is_main and improved:
                save_checkpoint(
                    job.paths.best, run.model, params.model, fold=fold, epoch=number, stage=stage.loss,
                    monitor=cfg.monitor, score=row[cfg.monitor], precision=policy.precision, **job.lineage,
                )  # fmt: skip
            if dist.is_main and cycle_end:
                # Before the resume state: a run killed in between redoes this epoch and rewrites it.
                _save_snapshot((epoch + 1) // cycle_length, row, run, job)
    return row


def train_fold(
    params: Params,
    prepared: Prepared,
    split: tuple[np.ndarray, np.ndarray],
    fold: int,
    paths: FoldPaths,
    key: str,
    log: LogFn | None = None,
    on_stage_start: Callable[[int, nn.Module], None] | None = None,
    pseudo: PseudoSet | None = None,
    policy: Policy | None = None,
) -> dict[str, float]:
    """Train one fold through all stages; returns the metrics written to `paths.metrics`, with
    `train_seconds` added (the wall time goes to MLflow and the log, not to DVC's metrics:
    it would make every run look like a change).

    `split` holds the training and validation indices into `prepared`. `key`
    identifies the configuration: a resume state with another key is ignored. The
    images of `pseudo` (test images with a teacher's masks) join the training images
    only: validation, hence the kept checkpoint, sees labelled images alone. `policy`: how to
    run, as the train stage resolved it for all its folds (default: `for_params(params)`, which
    compiles under runtime.compile auto only where the caller gives the steps).
    """
    started = time.monotonic()
    torch.set_num_threads(params.train.threads)
    dist = distributed.context()  # one process unless started by torchrun
    policy = dist.place(policy or hardware.for_params(params))
    train_idx, val_idx = split
    transform = build_augment(params.augment, seed=params.train.seed)
    if params.train.skip_column_masks:
        train_idx = train_idx[~column_masks(prepared.masks[train_idx])]
    images, masks = prepared.images[train_idx], prepared.masks[train_idx]
    depths = prepared.depths[train_idx]
    if pseudo:  # appended after the labelled images: no pseudo set, the same batches as always
        images, masks = np.concatenate([images, pseudo.images]), np.concatenate([masks, pseudo.masks])
        depths = np.concatenate([depths, pseudo.depths.astype(depths.dtype)])
    dataset = SaltDataset(images, masks, transform, depths)
    repeats = params.train.small_salt_repeats
    draws = small_salt_draws(masks, repeats) if repeats > 1 else None  # None: the plain shuffle
    loader = make_loader(dataset, params.train.batch_size, params.runtime, policy, dist, draws)
    val = Validation.on(policy, prepared.images[val_idx], prepared.masks[val_idx], prepared.depths[val_idx])
    data_hash = prepared.fingerprint
    pseudo_hash = pseudo.fingerprint if pseudo else None
    job = _Job(
        params, fold, paths, key, data_hash, policy, dist, loader, val, log, on_stage_start, pseudo_hash
    )
    run = _start(params, fold, paths, key, policy, dist)
    for s in range(run.next_stage, len(params.train.stages)):
        _train_stage(s, run, job)
    metrics = _summary(run.history, params.train.monitor, fold, split)
    if pseudo:  # only then: the metrics of a run without pseudo-labels keep their exact form
        metrics["n_pseudo"] = len(pseudo)
    if dist.is_main:
        write_text(paths.metrics, json.dumps(metrics, indent=2) + "\n")
        paths.state.unlink()
    return metrics | {"train_seconds": round(time.monotonic() - started, 1)}


def _summary(history: list[dict], monitor: str, fold: int, split: tuple) -> dict:
    # The first of equals, like the kept checkpoint.
    best_row = max(history, key=lambda r: oriented(monitor, r[monitor]))
    return {
        "fold": fold,
        "best_epoch": best_row["epoch"],  # 1-based, counted over all stages, as in the history
        "best_stage": best_row["stage"],
        "best_val_iou": best_row["val_iou"],
        "best_val_score": best_row["val_score"],
        "best_val_loss": best_row["val_loss"],
        "epochs": len(history),
        "n_train": len(split[0]),
        "n_val": len(split[1]),
    }
