"""New SQLite MLflow stores for tests, each a copy of one made once per test process.

MLflow builds a new SQLite store by running every schema migration (~2-3 s on 2 cores, about
the whole of a small test); a copy of an empty store it built is the same file in ~1 ms. The
stores are real: the copy holds MLflow's own tables and migration head, and every run, model
version and alias goes through MLflow as before.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import shutil
import sqlite3
import tempfile
from pathlib import Path


@functools.cache
def _template() -> Path:
    from mlflow.tracking import MlflowClient

    folder = Path(tempfile.mkdtemp(prefix="saltseg-empty-store-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    db = folder / "mlflow.db"
    MlflowClient(f"sqlite:///{db}").search_experiments()  # builds the tables, migrates, Default
    return db


def sqlite_store(db: Path) -> str:
    """The sqlite URI of the MLflow store at `db`: a new, empty one copied there when `db` does
    not exist yet and its folder does (else MLflow builds or opens it, as it would anyway).

    MLflow records the Default experiment's artifact folder when it builds a store (./mlruns of
    the process that built it); the copy's points next to `db`, as a store built there would."""
    if not db.exists() and db.parent.is_dir():
        shutil.copyfile(_template(), db)
        with contextlib.closing(sqlite3.connect(db)) as conn, conn:
            conn.execute(
                "UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0",
                (str(db.parent / "mlruns" / "0"),),
            )
    return f"sqlite:///{db}"
