"""The data stages under real DVC: synth -> prepare -> split, in a fresh copy of the project."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from project_copy import TINY, ProjectCopy, make_copy

from saltseg.config import load_params
from saltseg.data.prepared import load_prepared
from saltseg.data.tgs import read_layout

# Under pytest-xdist (make test), one worker runs this module: its project copy is built once.
pytestmark = pytest.mark.xdist_group("data_copy")

DATA_STAGES = ("synth", "prepare", "split")


@pytest.fixture(scope="module")
def data_copy(tmp_path_factory: pytest.TempPathFactory) -> tuple[ProjectCopy, str]:
    """A fresh copy after `dvc repro prepare split` with the tiny synthetic set; and its output."""
    copy = make_copy(tmp_path_factory.mktemp("data_stages") / "project")
    copy.run("salt", "params", "use", str(TINY))
    proc = copy.run("dvc", "repro", "prepare", "split")
    return copy, proc.stdout + proc.stderr


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_the_copy_is_a_fresh_clone(data_copy: tuple[ProjectCopy, str]) -> None:
    copy, _ = data_copy
    assert (copy.root / "data.dvc").is_file(), "the pointer to the real data is committed"
    assert not (copy.root / "data").exists(), "the real data is not copied"
    committed = copy.run("git", "ls-files").stdout.splitlines()
    assert "dvc.yaml" in committed and "params.yaml" in committed
    local = (".dvc/cache", ".dvc/tmp", ".venv/", "data/", "models/")
    assert not [p for p in committed if p.startswith(local) and not p.endswith(".gitignore")]
    assert not (copy.root / "mlflow.db").exists(), "the data stages do not touch MLflow"
    # `salt` runs the copy's code (the code DVC hashed), not the working tree's editable install.
    where = copy.run(sys.executable, "-c", "import saltseg; print(saltseg.__file__)").stdout.strip()
    assert Path(where).is_relative_to(copy.root / "src"), where


def test_repro_runs_the_three_data_stages(data_copy: tuple[ProjectCopy, str]) -> None:
    _, output = data_copy
    for stage in DATA_STAGES:
        assert f"Running stage '{stage}'" in output
    assert "Running stage 'train'" not in output, "`dvc repro prepare split` must not run later stages"


def test_synthetic_is_a_kaggle_layout(data_copy: tuple[ProjectCopy, str]) -> None:
    copy, _ = data_copy
    synth = load_params(copy.root / "params.yaml").synth
    folder = copy.root / "synthetic"
    for name in ("train.csv", "depths.csv", "train/images", "train/masks", "test/images"):
        assert (folder / name).exists(), name
    layout = read_layout(folder)  # validates ids, PNGs, RLE and depths
    assert (len(layout.ids), len(layout.test_ids)) == (synth.n_train, synth.n_test)
    assert len(list((folder / "train" / "images").glob("*.png"))) == synth.n_train
    assert len(list((folder / "test" / "images").glob("*.png"))) == synth.n_test


def test_prepared_arrays_and_folds(data_copy: tuple[ProjectCopy, str]) -> None:
    copy, _ = data_copy
    params = load_params(copy.root / "params.yaml")
    prepared = load_prepared(copy.root / "prepared" / "train.npz")
    assert prepared.images.shape == (params.synth.n_train, 101, 101)
    folds = pd.read_csv(copy.root / "prepared" / "folds.csv")
    assert list(folds.columns) == ["id", "fold", "coverage_class"]
    assert sorted(folds["id"]) == sorted(prepared.ids.tolist())
    held_out = folds["fold"] == -1  # split.test_fraction of ci-tiny: the test images
    assert held_out.sum() == round(params.split.test_fraction * len(folds))
    assert sorted(folds.loc[~held_out, "fold"].unique()) == list(params.split.folds)


def test_dvc_lock_records_the_outputs(data_copy: tuple[ProjectCopy, str]) -> None:
    copy, _ = data_copy
    lock = yaml.safe_load((copy.root / "dvc.lock").read_text())["stages"]
    assert set(DATA_STAGES) <= set(lock)
    outs = {out["path"]: out for stage in DATA_STAGES for out in lock[stage]["outs"]}
    assert outs["synthetic"]["md5"].endswith(".dir")
    for rel in ("prepared/train.npz", "prepared/folds.csv"):
        assert outs[rel]["md5"] == _md5(copy.root / rel), rel
    assert lock["synth"]["params"]["params.yaml"]["synth"]["n_train"] == 100
    # DVC keeps its outputs out of git (it writes the .gitignore entries).
    for rel in ("synthetic", "prepared/train.npz", "prepared/folds.csv"):
        copy.run("git", "check-ignore", "-q", rel)


def test_status_and_a_second_repro_do_nothing(data_copy: tuple[ProjectCopy, str]) -> None:
    copy, _ = data_copy
    status = copy.run("dvc", "status", *DATA_STAGES)
    assert "Data and pipelines are up to date" in status.stdout
    again = copy.run("dvc", "repro", "prepare", "split")
    output = again.stdout + again.stderr
    assert "Running stage" not in output
    for stage in DATA_STAGES:
        assert f"Stage '{stage}' didn't change, skipping" in output


def test_the_missing_real_data_is_only_reported(data_copy: tuple[ProjectCopy, str]) -> None:
    """On a fresh clone data/ is absent (no cache, no remote): DVC says so, and nothing breaks.

    Plain `dvc repro` (checked in test_dvc_pipeline) does not reproduce data.dvc; asking
    for it explicitly is the one command that fails, and it names the missing data.
    """
    copy, _ = data_copy
    status = copy.run("dvc", "status")  # exit status 0: a report, not an error
    assert "data.dvc" in status.stdout and "not in cache" in status.stdout
    explicit = copy.run("dvc", "repro", "data.dvc", check=False)
    assert explicit.returncode != 0
    assert "data" in explicit.stderr
