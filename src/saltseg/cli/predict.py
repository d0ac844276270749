"""`salt predict`: the fold ensemble on the test tiles -> Kaggle submission CSV."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def predict(
    data: Annotated[Path, typer.Option(help="Kaggle-layout folder; its test/images/*.png are predicted.")],
    out: Annotated[Path, typer.Option(help="Submission CSV (id,rle_mask).")] = Path("submission.csv"),
    model: Annotated[
        str | None,
        typer.Option(help="MLflow model URI; default: the champion --registry records for the current data."),
    ] = None,
    registry: Annotated[
        Path, typer.Option(help="Record of `salt register`: its champion for the data is the default model.")
    ] = Path("registry.json"),
    prepared: Annotated[
        Path,
        typer.Option(help="The pipeline's training arrays: the default model must be trained on them."),
    ] = Path("prepared/train.npz"),
    model_dir: Annotated[
        Path | None, typer.Option(help="Predict from local fold<K>/best.pt files instead of the registry.")
    ] = None,
    eval_dir: Annotated[
        Path | None, typer.Option(help="With --model-dir: the folder with thresholds.json.")
    ] = None,
    probabilities: Annotated[
        Path | None, typer.Option(help="Also save the probabilities (npz: ids, probabilities float32).")
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Images per batch; default evaluate.batch_size from params.")
    ] = None,
    params_file: Annotated[Path, typer.Option("--params", help="Parameters file.")] = Path("params.yaml"),
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
    registry: Annotated[Path, typer.Option(help="Record of `salt register`.")] = Path("registry.json"),
    prepared: Annotated[
        Path, typer.Option(help="The pipeline's training arrays: the champion must be trained on them.")
    ] = Path("prepared/train.npz"),
) -> None:
    """Print the model URI of the champion for the current data, e.g. for `mlflow models serve -m`."""
    from saltseg.predict import champion_uri

    typer.echo(champion_uri(registry, prepared, alias=True)[0])
