"""`salt train`: one fold of the two-stage recipe."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def train(
    fold: Annotated[
        int, typer.Option("--fold", "-f", help="Fold to hold out for validation (one of split.folds).")
    ],
    prepared: Annotated[Path, typer.Option(help="Prepared arrays from `salt data prepare`.")] = Path(
        "prepared/train.npz"
    ),
    folds: Annotated[Path, typer.Option(help="Fold assignment from `salt data split`.")] = Path(
        "prepared/folds.csv"
    ),
    out_dir: Annotated[
        Path | None, typer.Option(help="Folder for best.pt and the resume state [default: models/fold<K>].")
    ] = None,
    metrics: Annotated[
        Path | None, typer.Option(help="Metrics JSON [default: metrics/train/fold<K>.json].")
    ] = None,
    history: Annotated[
        Path | None, typer.Option(help="Per-epoch CSV [default: plots/train/fold<K>.csv].")
    ] = None,
    params_file: Annotated[Path, typer.Option("--params", help="Parameters file.")] = Path("params.yaml"),
) -> None:
    """Train one fold: BCE, then Lovasz from the best BCE weights; resumes if interrupted.

    Under torchrun (`torchrun --nproc-per-node N -m saltseg train --fold K`) the N
    processes train the fold together with DistributedDataParallel; rank 0 writes.
    """
    from saltseg import distributed
    from saltseg.config import load_params
    from saltseg.train import FoldPaths
    from saltseg.train_stage import run_fold

    params = load_params(params_file)
    paths = FoldPaths(
        out_dir=out_dir or Path(f"models/fold{fold}"),
        metrics=metrics or Path(f"metrics/train/fold{fold}.json"),
        history=history or Path(f"plots/train/fold{fold}.csv"),
    )
    dist = distributed.init(params.runtime.device)  # a no-op outside torchrun
    try:
        result = run_fold(params, prepared, folds, fold, paths)
    finally:
        distributed.shutdown()
    if not dist.is_main:
        return
    monitor = params.train.monitor
    typer.echo(
        f"fold {fold}: best {monitor} {result[f'best_{monitor}']:.4f} at epoch {result['best_epoch']} "
        f"({result['best_stage']}), score {result['best_val_score']:.4f}, "
        f"{result['train_seconds']} s -> {paths.best}"
    )
