"""`salt server start|stop|status`: the team's MLflow tracking server on PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True)

ROOT = Path("mlflow-server")
RootOption = Annotated[
    Path, typer.Option(help="Folder with the server's PostgreSQL cluster, artifacts, logs and server.json.")
]


@app.command()
def start(
    root: RootOption = ROOT,
    host: Annotated[
        str, typer.Option(help="Address MLflow listens on; the machine's LAN address to share it.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="MLflow's port.")] = 5000,
    workers: Annotated[int, typer.Option(help="MLflow's worker processes.")] = 2,
    backend_store_uri: Annotated[
        str | None,
        typer.Option(
            help="An existing PostgreSQL database (postgresql://user:password@host:port/db) instead "
            "of the one started here."
        ),
    ] = None,  # fmt: skip
) -> None:
    """Start PostgreSQL (created on first use) and `mlflow server` on it, serving artifacts from --root.

    Both keep running after this command; `salt server stop` ends them. Point the pipeline at
    the printed URI with tracking.uri in params.yaml or $MLFLOW_TRACKING_URI.
    """
    from saltseg.server import ServerConfig
    from saltseg.server import start as start_server

    uri = start_server(ServerConfig(root, host, port, workers, backend_store_uri))
    typer.echo(f"MLflow tracking server {uri} (PostgreSQL and artifacts in {root})")
    typer.echo(f"export MLFLOW_TRACKING_URI={uri}")


@app.command()
def stop(root: RootOption = ROOT) -> None:
    """Stop the MLflow server and PostgreSQL that `salt server start --root` started."""
    from saltseg.server import stop as stop_server

    stopped = stop_server(root)
    typer.echo("\n".join(f"stopped {name}" for name in stopped) or "nothing was running")


@app.command()
def status(root: RootOption = ROOT) -> None:
    """Say where the server of --root listens and whether it answers; exit 1 when it does not."""
    from saltseg.server import status as server_status

    state = server_status(root)
    typer.echo(f"{state['tracking_uri']} ({state['backend_store_uri']}): "
               + ("answers" if state["answers"] else f"does not answer ({state['problem']})"))  # fmt: skip
    if not state["answers"]:
        raise typer.Exit(1)
