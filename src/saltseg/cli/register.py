"""`salt register`: the fold models and the ensemble into the MLflow Model Registry."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(
    models: Annotated[
        Path, typer.Option(help="Folder with fold<K>/best.pt (or snapshot<C>.pt) for every evaluated fold.")
    ] = Path("models"),
    eval_dir: Annotated[
        Path, typer.Option(help="Folder written by `salt evaluate` (thresholds.json).")
    ] = Path("eval"),
    metrics: Annotated[Path, typer.Option(help="Metrics JSON of `salt evaluate` (its score).")] = Path(
        "metrics/evaluate.json"
    ),
    folds: Annotated[Path, typer.Option(help="Fold file: identifies the pipeline's parent run.")] = Path(
        "prepared/folds.csv"
    ),
    out: Annotated[Path, typer.Option(help="Record of the registered version and the alias.")] = Path(
        "registry.json"
    ),
    params_file: Annotated[Path, typer.Option("--params", help="Parameters file.")] = Path("params.yaml"),
    fold_models: Annotated[
        bool, typer.Option(help="Also register each fold network as <model_name>-fold<K>[-snapshot<C>].")
    ] = True,
) -> None:
    """Register the ensemble, tagged with its out-of-fold score; promote it only if it beats the champion.

    Reads the params.yaml sections register (model name, alias), evaluate and tracking. Writes a
    new version of <register.model_name> (and of <model_name>-fold<K>) to the MLflow Model
    Registry, moves the alias when the score is better, and records both in --out.
    """
    from saltseg.config import load_params
    from saltseg.registry import register as run_register
    from saltseg.registry import write_record

    params = load_params(params_file)
    record = run_register(params, models, eval_dir, metrics, folds, folds_too=fold_models)
    write_record(record, out)
    from saltseg.tracking import runs_link, tracking_uri

    typer.echo(f"registered {record['model_uri']}")
    typer.echo(record["message"])
    typer.echo(
        f"runs: `mlflow ui --backend-store-uri {tracking_uri(params.tracking)}`, then "
        f"{runs_link(params.tracking.experiment)}"
    )
