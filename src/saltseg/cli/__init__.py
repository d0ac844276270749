"""The `salt` command line: thin Typer commands that parse options and delegate.

Heavy libraries (torch, mlflow) are imported inside the commands, so `salt --help`
stays fast. A SaltError anywhere becomes one line on stderr and exit status 1.
"""

from __future__ import annotations

import os
import sys

import typer

from saltseg.cli import (
    data,
    evaluate,
    params,
    predict,
    pseudo,
    register,
    score,
    section,
    serve,
    server,
    train,
)
from saltseg.errors import SaltError

app = typer.Typer(
    help="Salt segmentation in seismic images: data, training, evaluation, registry, prediction.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(data.app, name="data", help="Synthesize, ingest, prepare, split and show data.")
app.add_typer(params.app, name="params", help="Apply named configurations to params.yaml.")
app.add_typer(server.app, name="server", help="The team's MLflow server on PostgreSQL (docs/team.md).")
# The help of every command that talks to MLflow ends with where its runs and models live.
MLFLOW_STORE = (
    "MLflow store: tracking.uri in params.yaml if set, else $MLFLOW_TRACKING_URI, else the SQLite "
    "file tracking.db (mlflow.db) in the current folder (in the repository the experiment came from "
    "under `dvc exp run`); browse it with `mlflow ui --backend-store-uri sqlite:///$PWD/mlflow.db` and "
    "open http://127.0.0.1:5000/#/experiments/1/runs?workflowType=machine_learning (the runs; `salt "
    "register` prints the link for your store)."
)
app.command("pseudo", epilog=MLFLOW_STORE)(pseudo.pseudo)
app.command("train", epilog=MLFLOW_STORE)(train.train)
app.command("evaluate", epilog=MLFLOW_STORE)(evaluate.evaluate)
app.command("register", epilog=MLFLOW_STORE)(register.register)
app.command("predict", epilog=MLFLOW_STORE)(predict.predict)
app.command("champion", epilog=MLFLOW_STORE)(predict.champion)
app.command("serve", epilog=MLFLOW_STORE)(serve.serve)
app.command("score", epilog=MLFLOW_STORE)(score.score)
app.command("predict-section", epilog=MLFLOW_STORE)(section.predict_section)


def main() -> None:
    # MLflow draws one progress bar per downloaded artifact (six when predict loads the
    # ensemble): noise in a log. Set here, not at import, so that importing saltseg changes
    # nothing; an explicit MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=true still wins.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        app()
    except SaltError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
