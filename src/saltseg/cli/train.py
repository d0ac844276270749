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
    # show_default, not "[default: ...]" in the help: Rich would take the brackets for markup.
    out_dir: Annotated[
        Path | None,
        typer.Option(
            help="Folder for best.pt, validation.png and the resume state last.pt.",
            show_default="models/fold<K>",
        ),
    ] = None,
    metrics: Annotated[
        Path | None,
        typer.Option(help="Metrics JSON (read by `dvc metrics`).", show_default="metrics/train/fold<K>.json"),
    ] = None,
    history: Annotated[
        Path | None,
        typer.Option(help="Per-epoch CSV (read by `dvc plots`).", show_default="plots/train/fold<K>.csv"),
    ] = None,
    pseudo: Annotated[
        Path | None,
        typer.Option(
            help="Pseudo-labelled test images from `salt pseudo`, added to the training images only."
        ),
    ] = None,
    params_file: Annotated[Path, typer.Option("--params", help="Parameters file.")] = Path("params.yaml"),
) -> None:
    """Train one fold: BCE, then Lovasz from the best BCE weights; resumes if interrupted.

    Reads the params.yaml sections data, split, model, augment and train (what the model is),
    runtime (device, workers, threads) and tracking. Writes best.pt, validation.png and, until
    the fold finishes, last.pt in --out-dir, the metrics JSON and the per-epoch CSV; logs the
    parameters, per-epoch metrics and those files to the MLflow run fold<K>, a child of the
    pipeline's parent run. One line per epoch on stderr when it is not a terminal.

    Under torchrun (`torchrun --nproc-per-node N -m saltseg train --fold K`) the N
    processes train the fold together with DistributedDataParallel; rank 0 writes.
    """
    from saltseg.config import load_params

    params = load_params(params_file)  # first: a bad value fails in a blink, before torch loads

    from saltseg import distributed
    from saltseg.errors import SaltError
    from saltseg.models import check_buildable
    from saltseg.train import FoldPaths
    from saltseg.train_stage import run_fold

    try:  # the rules only a builder knows, before a run is opened or a file written
        check_buildable(params.model)
    except SaltError as exc:
        raise SaltError(f"{params_file}: {exc}") from None
    paths = FoldPaths(
        out_dir=out_dir or Path(f"models/fold{fold}"),
        metrics=metrics or Path(f"metrics/train/fold{fold}.json"),
        history=history or Path(f"plots/train/fold{fold}.csv"),
    )
    dist = distributed.init(params.runtime.device)  # a no-op outside torchrun
    try:
        result = run_fold(params, prepared, folds, fold, paths, pseudo)
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
