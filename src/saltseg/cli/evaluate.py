"""`salt evaluate`: out-of-fold scores of the fold models, tuned threshold and min area."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def evaluate(
    prepared: Annotated[Path, typer.Option(help="Prepared arrays from `salt data prepare`.")] = Path(
        "prepared/train.npz"
    ),
    folds: Annotated[Path, typer.Option(help="Fold assignment from `salt data split`.")] = Path(
        "prepared/folds.csv"
    ),
    models: Annotated[
        Path, typer.Option(help="Folder with fold<K>/best.pt (or snapshot<C>.pt) for each of split.folds.")
    ] = Path("models"),
    out_metrics: Annotated[Path, typer.Option(help="Metrics JSON (read by `dvc metrics`).")] = Path(
        "metrics/evaluate.json"
    ),
    out_dir: Annotated[
        Path, typer.Option(help="Folder for thresholds.json, the tuning grid and the plots.")
    ] = Path("eval"),
    params_file: Annotated[Path, typer.Option("--params", help="Parameters file.")] = Path("params.yaml"),
    min_score: Annotated[
        float | None,
        typer.Option(
            help="Exit with an error, after writing the outputs, when the nested out-of-fold score "
            "(score_nested: no image chose its own threshold or minimum area) is below this."
        ),
    ] = None,
    track: Annotated[
        bool, typer.Option(help="Log the numbers and plots to the pipeline's parent MLflow run.")
    ] = True,
) -> None:
    """Score each fold model on its own held-out images, with and without flip TTA; tune post-processing.

    Reads the params.yaml sections split, evaluate, runtime and tracking (and data, split, model,
    augment, train to find the pipeline's parent run). Writes the metrics JSON and, in --out-dir,
    thresholds.json, the tuning grid and the plots; logs them to the MLflow parent run.
    """
    from saltseg.config import load_params
    from saltseg.errors import SaltError
    from saltseg.evaluate import log_evaluation, report, run_evaluate

    params = load_params(params_file)
    metrics = run_evaluate(params, prepared, folds, models, out_metrics, out_dir)
    typer.echo(report(metrics, params.evaluate.tta))
    if track:
        run_id = log_evaluation(params, folds, metrics, out_metrics, out_dir)
        typer.echo(f"logged to MLflow parent run {run_id}")
    if min_score is not None and metrics["score_nested"] < min_score:
        raise SaltError(
            f"{out_metrics}: score_nested {metrics['score_nested']:.4f} is below the required {min_score:g}"
        )
