"""`salt params`: switch between named configurations."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True)


@app.command("use")
def use(
    config: Annotated[Path, typer.Argument(help="A named profile, e.g. configs/real-cpu.yaml.")],
    params_file: Annotated[Path, typer.Option("--params", help="Parameters file to update.")] = Path(
        "params.yaml"
    ),
) -> None:
    """Set params.yaml to a named profile: the defaults with the profile laid over, every key
    rewritten whatever was applied before (comments kept); `dvc repro` then reruns what changed.

    Writes every section of params.yaml, and only after the whole result is validated: a profile
    with an unknown key or a bad value is refused with one line and params.yaml is left as it was.
    """
    from saltseg.profiles import apply_profile

    changed = apply_profile(params_file, config)
    typer.echo(
        f"{params_file}: {len(changed)} value(s) changed from {config}: {', '.join(changed) or 'none'}"
    )
