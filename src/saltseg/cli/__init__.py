"""The `salt` command line: thin Typer commands that parse options and delegate.

Heavy libraries (torch, mlflow) are imported inside the commands, so `salt --help`
stays fast. A SaltError anywhere becomes one line on stderr and exit status 1.
"""

from __future__ import annotations

import sys

import typer

from saltseg.cli import data, evaluate, params, predict, register, train
from saltseg.errors import SaltError

app = typer.Typer(
    help="Salt segmentation in seismic images: data, training, evaluation, registry, prediction.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(data.app, name="data", help="Synthesize, ingest, prepare, split and show data.")
app.add_typer(params.app, name="params", help="Apply named configurations to params.yaml.")
app.command("train")(train.train)
app.command("evaluate")(evaluate.evaluate)
app.command("register")(register.register)
app.command("predict")(predict.predict)
app.command("champion")(predict.champion)


def main() -> None:
    try:
        app()
    except SaltError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
