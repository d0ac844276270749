"""`salt serve`: the champion's pyfunc over HTTP, MLflow's scoring protocol, no request echoed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from saltseg.cli import options


def serve(
    model: options.ModelUri = None,
    host: Annotated[
        str, typer.Option(help="Address to listen on (127.0.0.1: this machine only).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 5001,
    max_body_mb: Annotated[
        float | None,
        typer.Option(
            help="Largest request body in MiB, refused unread (HTTP 413) above it; default 64, which "
            "takes 1,024 tiles of integer pixels (50 MiB of JSON); floats with many decimals need more."
        ),
    ] = None,
    registry: options.Registry = options.REGISTRY,
    prepared: options.Prepared = options.PREPARED,
    params_file: Annotated[
        Path, typer.Option("--params", help="Parameters file (its tracking section).")
    ] = Path("params.yaml"),
) -> None:
    """Serve the fold ensemble: POST /invocations {"inputs": (N, 101, 101) tiles} -> {"predictions": masks}.

    The protocol of `mlflow models serve` (also GET /ping, /health; {"instances": ...}), on the
    same pyfunc, but a request is never echoed: a body over --max-body-mb gets HTTP 413 before it
    is read, more tiles than the model's max_batch (1,024) HTTP 400 before parsing, malformed
    JSON and every bad input HTTP 400 with a one-line reason. Artifact downloads print no bar.
    """
    from saltseg.config import load_params
    from saltseg.errors import SaltError
    from saltseg.serving import server

    if max_body_mb is None:
        max_body_mb = server.MAX_BODY_MB
    if max_body_mb <= 0:
        raise SaltError(f"--max-body-mb: must be > 0, got {max_body_mb}")
    params = load_params(params_file)
    pyfunc, uri = server.load_served(params, model, registry, prepared)
    typer.echo(f"serving {uri} on http://{host}:{port}/invocations", err=True)
    server.serve(pyfunc, host, port, int(max_body_mb * 2**20))
