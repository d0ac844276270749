"""Where the project a command works for lives, and what it keeps there."""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """The repository a command works for.

    `dvc exp run --temp` and queued experiments run in a throwaway copy under
    .dvc/tmp/exps and set DVC_ROOT to the repository they came from: what a command
    keeps there (the MLflow store, torch.compile's cache) survives the run and is found
    by the next one.
    """
    return Path(os.environ.get("DVC_ROOT") or ".").resolve()


COMPILE_CACHE = Path(".cache/torch-compile")  # under the project root


def use_compile_cache() -> Path:
    """Point torch.compile (inductor) at the project's COMPILE_CACHE (saltseg.compile_cache says
    why) unless $TORCHINDUCTOR_CACHE_DIR is set; processes started from here inherit it. Returns
    the folder in use. Call it before torch._dynamo is imported, which writes inductor's own
    default into $TORCHINDUCTOR_CACHE_DIR."""
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(project_root() / COMPILE_CACHE))
    return Path(os.environ["TORCHINDUCTOR_CACHE_DIR"])
