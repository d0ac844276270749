"""`salt score`: the competition score of an ensemble on labelled images."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from saltseg.cli import options


def score(
    data: Annotated[
        Path | None,
        typer.Option(help="Labelled Kaggle-layout folder train.csv, train/images, train/masks, depths.csv."),
    ] = None,
    model: options.ModelUri = None,
    test_split: Annotated[
        bool,
        typer.Option(
            "--test-split",
            help="Instead of --data: the pipeline's `score` stage. Writes --out with the headline numbers "
            "of --evaluation and the test score: the images split.test_fraction held out (see --folds), "
            "scored with the version --registry records as registered by this pipeline run, a number "
            "also recorded on that version and its parent run.",
        ),
    ] = False,
    registry: options.Registry = options.REGISTRY,
    prepared: options.Prepared = options.PREPARED,
    folds: Annotated[
        Path, typer.Option(help="With --test-split: the fold file marking the test set.")
    ] = Path("prepared/folds.csv"),
    evaluation: Annotated[
        Path, typer.Option(help="With --test-split: the metrics JSON of `salt evaluate`.")
    ] = Path("metrics/evaluate.json"),
    out: Annotated[Path | None, typer.Option(help="Also write the numbers as JSON here.")] = None,
    params_file: options.ParamsFile = options.PARAMS,
) -> None:
    """Score a model on labelled images: the competition metric, mean IoU and one line per coverage class.

    Reads the params.yaml sections split (coverage classes), evaluate (batch size), runtime and
    tracking. The model is loaded as `salt predict` loads it and predicts as it does (flip TTA,
    its tuned threshold and minimum area).
    """
    import json

    from saltseg.atomic import write_text
    from saltseg.config import load_params
    from saltseg.errors import SaltError
    from saltseg.score import report, run_score_stage, score_folder

    if test_split == (data is not None):
        raise SaltError("salt score: give either --data DIR or --test-split")
    params = load_params(params_file)
    if test_split:
        if out is None:
            raise SaltError("--test-split: needs --out (the metrics file of the `score` stage)")
        metrics = run_score_stage(params, prepared, folds, registry, evaluation, out)
        typer.echo(f"{out}: {', '.join(f'{k} {v:.4f}' for k, v in metrics.items())}")
        if "test_score" not in metrics:
            typer.echo("no test set (split.test_fraction is 0): no test score")
        return
    summary, table = score_folder(params, data, model, registry, prepared)
    typer.echo(report(summary, table))
    if out is not None:
        write_text(out, json.dumps(summary | {"coverage_classes": table.to_dict("records")}, indent=2) + "\n")
