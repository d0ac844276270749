"""Is the tracking store there? One line when it is not, before a stage claims a run or while
it logs one.

A local SQLite file is always there. A tracking server (`http://...`) or a database URI
(`postgresql://...`) can be down, or refuse us: MLflow would retry for minutes and then
end in a traceback several screens long. These checks ask once, with a short timeout, and
raise SaltError, which the CLI prints as one line.
"""

from __future__ import annotations

import contextlib
import re
import urllib.error
import urllib.request
from collections.abc import Iterator

from saltseg.errors import SaltError

TIMEOUT_S = 5.0  # a healthy server on a LAN answers /health in milliseconds


def redacted(uri: str) -> str:
    """`uri` with the password of its user:password@ part replaced by ***."""
    return re.sub(r"(//[^/:@]+:)[^/@]*@", r"\1***@", uri)


def problem(uri: str) -> str | None:
    """Why the store at `uri` cannot be used now, in a few words; None when it answers."""
    if uri.startswith(("http://", "https://")):
        return _server_problem(uri)
    if uri.startswith("postgresql"):
        return _database_problem(uri)
    return None  # a file store (sqlite:///...) is created on first use


def check_reachable(uri: str) -> None:
    """Raise SaltError naming `uri` when its tracking server or database does not answer."""
    reason = problem(uri)
    if reason is not None:
        raise SaltError(
            f"MLflow tracking store {redacted(uri)} is not reachable ({reason}); start it "
            "(`salt server start`) or point tracking.uri / $MLFLOW_TRACKING_URI at one that runs"
        )


def _server_problem(uri: str) -> str | None:
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=TIMEOUT_S) as response:
            return None if response.status == 200 else f"/health answered HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        return f"/health answered HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return str(getattr(exc, "reason", exc))


def _database_problem(uri: str) -> str | None:
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(uri, connect_args={"connect_timeout": int(TIMEOUT_S)})
    except ModuleNotFoundError as exc:  # psycopg is in the `server` extra only
        return f"{exc.name} is not installed: pip install -e '.[server]'"
    try:
        with engine.connect():
            return None
    except sqlalchemy.exc.OperationalError as exc:
        # libpq's message, e.g. 'connection to server at "127.0.0.1", port 5432 failed: FATAL:
        # password authentication failed for user "mlflow"', on one line.
        return " ".join(str(exc.orig).split())
    finally:
        engine.dispose()


@contextlib.contextmanager
def server_lost(uri: str, kept: str) -> Iterator[None]:
    """Around logging to `uri`: an MLflow or connection error raised while the store is gone
    becomes one SaltError that says so and what is `kept`; any other error passes unchanged."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except (MlflowException, OSError) as exc:  # requests' ConnectionError is an OSError
        reason = problem(uri)
        if reason is None:
            raise
        raise SaltError(f"lost the MLflow tracking store {redacted(uri)} ({reason}); {kept}") from exc
