"""`salt train`: one fold of the two-stage recipe."""

from __future__ import annotations

from pathlib import Path

import typer


def train(
    fold: int = typer.Option(
        ..., "--fold", "-f", help="Fold to hold out for validation (one of split.folds)."
    ),
    prepared: Path = typer.Option(
        Path("prepared/train.npz"), help="Prepared arrays from `salt data prepare`."
    ),
    folds: Path = typer.Option(Path("prepared/folds.csv"), help="Fold assignment from `salt data split`."),
    out_dir: Path = typer.Option(
        None, help="Folder for best.pt and the resume state [default: models/fold<K>]."
    ),
    metrics: Path = typer.Option(None, help="Metrics JSON [default: metrics/train/fold<K>.json]."),
    history: Path = typer.Option(None, help="Per-epoch CSV [default: plots/train/fold<K>.csv]."),
    params_file: Path = typer.Option(Path("params.yaml"), "--params", help="Parameters file."),
) -> None:
    """Train one fold: BCE, then Lovasz from the best BCE weights; resumes if interrupted."""
    from saltseg.config import load_params
    from saltseg.train import FoldPaths
    from saltseg.train_stage import run_fold

    params = load_params(params_file)
    paths = FoldPaths(
        out_dir=out_dir or Path(f"models/fold{fold}"),
        metrics=metrics or Path(f"metrics/train/fold{fold}.json"),
        history=history or Path(f"plots/train/fold{fold}.csv"),
    )
    result = run_fold(params, prepared, folds, fold, paths)
    monitor = params.train.monitor
    typer.echo(
        f"fold {fold}: best {monitor} {result[f'best_{monitor}']:.4f} at epoch {result['best_epoch']} "
        f"({result['best_stage']}), score {result['val_score']:.4f}, {result['train_seconds']} s -> {paths.best}"
    )
