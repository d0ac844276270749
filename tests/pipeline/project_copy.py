"""A throw-away copy of the project in which pipeline tests run real `dvc` and a real MLflow store.

The copy holds what a fresh clone holds (git-tracked files plus new files that git
does not ignore), so the real data, the DVC cache, MLflow's database and earlier
pipeline outputs of the working tree never leak into a test, and the tests never
touch them. The copy gets its own git repository because `dvc exp` needs a commit.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]
TINY = Path("configs/ci-tiny.yaml")  # relative to the copy's root
# Outputs of local runs and local stores, skipped when untracked (some are not git-ignored).
LOCAL_ONLY = (
    "dvc.lock",
    "data/",
    "synthetic/",
    "prepared/",
    "models/",
    "metrics/",
    "plots/",
    "eval/",
    "dvc_plots/",
    "mlartifacts/",
    "mlruns/",
    "mlflow.db",
    "registry.json",
    "submission.csv",
)


def project_files(root: Path = PROJECT) -> list[str]:
    """Paths (relative to `root`) of a fresh clone plus the new files git does not ignore.

    Pipeline outputs that a run in the working tree left untracked (dvc.lock, the
    `cache: false` metrics and plots, ...) are not part of a clone until committed.
    """

    def listed(*flags: str) -> list[str]:
        out = subprocess.run(
            ["git", "ls-files", "-z", *flags],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            env=_without_git_vars(os.environ),
        ).stdout
        return [p for p in out.split("\0") if p]

    tracked = listed("--cached")
    new = [p for p in listed("--others", "--exclude-standard") if not p.startswith(LOCAL_ONLY)]
    # `--cached` still lists files deleted from the working tree but not yet from the index.
    return [p for p in sorted({*tracked, *new}) if (root / p).is_file()]


def _without_git_vars(env: dict[str, str] | os._Environ) -> dict[str, str]:
    # A GIT_DIR or GIT_INDEX_FILE inherited from a hook would point git at the wrong repository.
    return {k: v for k, v in env.items() if not k.startswith("GIT_")}


def pipeline_env(root: Path, site_cache: Path) -> dict[str, str]:
    """The environment of the commands run in copy `root`: offline, plain progress, the venv first.

    The venv's editable install points at the working tree's src/; PYTHONPATH puts the
    copy's own src/ first, so the code that runs is the code DVC hashed.
    """
    env = _without_git_vars(os.environ)
    env.pop("MLFLOW_TRACKING_URI", None)  # the copy's params decide: its own SQLite file
    env.pop("MLFLOW_REGISTRY_URI", None)
    # Any process that imported torch._dynamo (a pytest worker, after some test) carries inductor's
    # /tmp default in this variable, which would pass for a user's choice: the copy picks its own.
    env.pop("TORCHINDUCTOR_CACHE_DIR", None)
    env |= {
        "DVC_NO_ANALYTICS": "1",
        "DVC_SITE_CACHE_DIR": str(site_cache),  # DVC's per-repo state stays in the test's tmp
        "CI": "1",
        "NO_ALBUMENTATIONS_UPDATE": "1",
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        "PYTHONPATH": os.pathsep.join([str(root / "src"), *filter(None, [env.get("PYTHONPATH")])]),
    }
    return env


@dataclass(frozen=True)
class ProjectCopy:
    """A copy of the project with its own git repository, and a way to run commands in it."""

    root: Path
    env: dict[str, str]

    def run(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        """Run a command in the copy; on an unexpected exit status fail with its output."""
        proc = subprocess.run(
            list(args), cwd=self.root, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check and proc.returncode != 0:
            pytest.fail(
                f"`{' '.join(args)}` exited {proc.returncode} in {self.root}\n"
                f"--- stdout (tail) ---\n{proc.stdout[-4000:]}\n--- stderr (tail) ---\n{proc.stderr[-6000:]}",
                pytrace=False,
            )
        return proc

    def tracking_uri(self) -> str:
        """The MLflow tracking URI that `salt` commands resolve when run in the copy."""
        code = (
            "from saltseg.config import load_params; from saltseg.tracking import tracking_uri; "
            "print(tracking_uri(load_params().tracking))"
        )
        return self.run(sys.executable, "-c", code).stdout.strip()


def make_copy(dest: Path) -> ProjectCopy:
    """Copy the project into `dest` (created) and commit it there as one git commit."""
    dest.mkdir(parents=True)
    for rel in project_files():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PROJECT / rel, target)
    site_cache = dest.parent / f"{dest.name}-dvc-site"
    site_cache.mkdir()
    copy = ProjectCopy(dest, pipeline_env(dest, site_cache))
    copy.run("git", "init", "-q")
    copy.run("git", "add", "-A")
    identity = ("-c", "user.name=saltseg-tests", "-c", "user.email=tests@saltseg.invalid")
    copy.run("git", *identity, "commit", "-qm", "init")
    return copy


@dataclass(frozen=True)
class FinishedPipeline:
    """A copy in which `dvc repro` ran the whole pipeline once with configs/ci-tiny.yaml."""

    copy: ProjectCopy
    tracking_uri: str  # sqlite:///<copy>/mlflow.db
    repro_seconds: float
    repro_output: str

    @property
    def root(self) -> Path:
        return self.copy.root
