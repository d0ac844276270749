"""`salt predict`: the fold ensemble on the test tiles -> Kaggle submission CSV."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from saltseg.cli import options


def predict(
    data: Annotated[Path, typer.Option(help="Kaggle-layout folder; its test/images/*.png are predicted.")],
    out: Annotated[Path, typer.Option(help="Submission CSV (id,rle_mask).")] = Path("submission.csv"),
    model: options.ModelUri = None,
    registry: options.Registry = options.REGISTRY,
    prepared: options.Prepared = options.PREPARED,
    model_dir: options.ModelDir = None,
    eval_dir: options.EvalDir = None,
    probabilities: Annotated[
        Path | None, typer.Option(help="Also save the probabilities (npz: ids, probabilities float32).")
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Images per batch; default evaluate.batch_size from params.")
    ] = None,
    params_file: options.ParamsFile = options.PARAMS,
) -> None:
    """Predict every test image with the fold ensemble (flip TTA, tuned threshold) and write a submission.

    Reads the params.yaml sections evaluate (batch size), runtime and tracking, and --registry
    (the champion for the data in --prepared) unless --model or --model-dir names the model.
    Writes the submission CSV and, with --probabilities, an npz.
    """
    from saltseg.config import load_params
    from saltseg.predict import run_predict

    params = load_params(params_file)
    table = run_predict(
        params, data, out, model, model_dir, eval_dir, probabilities, batch_size, registry, prepared
    )
    salt = int((table["rle_mask"] != "").sum())
    typer.echo(f"{len(table)} masks ({salt} with salt) -> {out}")


def champion(
    registry: options.Registry = options.REGISTRY,
    prepared: Annotated[
        Path, typer.Option(help="The pipeline's training arrays: the champion must be trained on them.")
    ] = Path("prepared/train.npz"),
) -> None:
    """Print the model URI of the champion for the current data, e.g. for `mlflow models serve -m`."""
    from saltseg.predict import champion_uri

    typer.echo(champion_uri(registry, prepared, alias=True)[0])
