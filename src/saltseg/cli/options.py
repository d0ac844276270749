"""The options several `salt` commands share, each defined once: which model to use and where
the pipeline keeps what that choice depends on."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ModelUri = Annotated[
    str | None,
    typer.Option(
        "--model", help="MLflow model URI; default: the champion --registry records for the current data."
    ),
]
Registry = Annotated[
    Path,
    typer.Option(
        "--registry", help="Record of `salt register`: its champion for the data is the default model."
    ),
]
Prepared = Annotated[
    Path,
    typer.Option(
        "--prepared", help="The pipeline's training arrays: the default model must be trained on them."
    ),
]
ModelDir = Annotated[
    Path | None,
    typer.Option("--model-dir", help="Predict from local fold<K>/best.pt files instead of the registry."),
]
EvalDir = Annotated[
    Path | None, typer.Option("--eval-dir", help="With --model-dir: the folder with thresholds.json.")
]
ParamsFile = Annotated[Path, typer.Option("--params", help="Parameters file.")]
REGISTRY = Path("registry.json")
PREPARED = Path("prepared/train.npz")
PARAMS = Path("params.yaml")
