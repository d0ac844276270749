"""`salt pseudo`: pseudo-label the confident test images with a teacher registered earlier."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def pseudo(
    data: Annotated[Path, typer.Option(help="Kaggle-layout folder; its test/images/*.png are labelled.")],
    prepared: Annotated[
        Path, typer.Option(help="The pipeline's training arrays: the teacher must be trained on them.")
    ] = Path("prepared/train.npz"),
    out: Annotated[Path, typer.Option(help="Pseudo-label set (npz: ids, images, masks, teacher).")] = Path(
        "prepared/pseudo.npz"
    ),
    params_file: Annotated[Path, typer.Option("--params", help="Parameters file.")] = Path("params.yaml"),
) -> None:
    """Keep the test images the teacher is confident about, with the teacher's masks.

    Reads the params.yaml sections pseudo (teacher, confidence rule, cap), evaluate (batch size),
    runtime and tracking. With pseudo.teacher null it writes an empty set and loads no model.
    The teacher's folds saw every labelled image: out-of-fold scores of a student trained with
    its labels are optimistic.
    """
    from saltseg.config import load_params
    from saltseg.pseudo import run_pseudo

    params = load_params(params_file)
    result = run_pseudo(params, data, prepared, out)
    typer.echo(f"{result.describe()} -> {out}")
