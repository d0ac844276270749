"""`salt data ...` end to end on tiny data, through the Typer sub-app."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from saltseg.cli.data import app
from saltseg.data.folds import load_folds
from saltseg.data.prepared import load_prepared
from saltseg.errors import SaltError

runner = CliRunner()


@pytest.fixture
def params(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("synth:\n  seed: 2\n  n_train: 30\n  n_test: 5\nsplit:\n  folds: [0, 1, 2]\n  seed: 1\n")
    return path


def _ok(args):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def test_synth_prepare_split_show(tmp_path, params):
    synth, npz, folds, png = (
        tmp_path / "synth",
        tmp_path / "p" / "train.npz",
        tmp_path / "folds.csv",
        tmp_path / "grid.png",
    )
    assert "30 train (40% empty" in _ok(["synth", "--out", synth, "--params", params])
    assert "30 images" in _ok(["prepare", "--src", synth, "--out", npz])
    assert "30 ids in 3 folds" in _ok(["split", "--prepared", npz, "--out", folds, "--params", params])
    assert list(load_prepared(npz).ids) == sorted(load_folds(folds)["id"])
    _ok(["show", "--synthetic", synth, "--real", synth, "--out", png, "--n", "4"])
    assert Image.open(png).format == "PNG"


def test_ingest(tmp_path, layout_dir):
    assert "8 train (25% empty) + 3 test images" in _ok(["ingest", layout_dir, "--out", tmp_path / "raw"])
    assert (tmp_path / "raw" / "train.csv").is_file()


def test_errors_surface_as_salt_error(tmp_path):
    result = runner.invoke(
        app, ["prepare", "--src", str(tmp_path / "nothing"), "--out", str(tmp_path / "x.npz")]
    )
    assert isinstance(result.exception, SaltError) and "nothing: folder not found" in str(result.exception)
    result = runner.invoke(
        app, ["synth", "--out", str(tmp_path / "s"), "--params", str(tmp_path / "none.yaml")]
    )
    assert isinstance(result.exception, SaltError) and "params file not found" in str(result.exception)
    assert not (tmp_path / "s").exists() and not (tmp_path / "x.npz").exists()


def test_every_command_and_option_has_help():
    group = typer.main.get_command(app)
    assert sorted(group.commands) == [
        "holdout",
        "ingest",
        "prepare",
        "show",
        "split",
        "synth",
        "synth-section",
    ]
    for name, command in group.commands.items():
        assert command.help, name
        for param in command.params:
            assert getattr(param, "help", None), f"{name} {param.name}"


def test_importing_the_cli_stays_light():
    heavy = "('numpy', 'pandas', 'PIL', 'scipy', 'sklearn', 'matplotlib')"
    code = f"import sys, saltseg.cli.data; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_show_grid_size(tmp_path):
    from saltseg.config import SynthConfig
    from saltseg.data.show import show_grid
    from saltseg.data.synthetic import generate

    generate(SynthConfig(seed=4, n_train=20, n_test=0), tmp_path / "s")
    show_grid(tmp_path / "s", tmp_path / "g.png", n=6)
    image = np.asarray(Image.open(tmp_path / "g.png"))
    assert image.shape[1] > image.shape[0] > 50
    assert (tmp_path / "g.png").stat().st_size < 500_000
