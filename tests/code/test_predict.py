"""`salt predict`: submission format, local and registry routes, same masks as the served model."""

import json
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_evaluate import DATA_HASH, fold_checkpoints, run_salt, tmp_store, write_params, write_test_folder
from test_registry import registered_setup

from saltseg.config import load_params
from saltseg.data import rle
from saltseg.inference import Ensemble
from saltseg.predict import pin_mismatches, submission, write_submission
from saltseg.registry import register, write_record

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture
def store(tmp_path, monkeypatch):
    yield from tmp_store(tmp_path, monkeypatch)


def mixed_thresholds(folder: Path, images: np.ndarray) -> tuple[float, int]:
    """A threshold and min area under which the tiny random ensemble gives some empty and some
    salt masks (a random network's probabilities sit in a narrow band around one value)."""
    checkpoints = fold_checkpoints(folder / "models")
    (folder / "eval").mkdir(exist_ok=True)
    (folder / "eval" / "thresholds.json").write_text(
        json.dumps({"threshold": 0.5, "min_area": 0, "folds": [0, 1], "data_hash": DATA_HASH})
    )
    proba = Ensemble.from_files(
        list(checkpoints.values()), folder / "eval" / "thresholds.json"
    ).predict_proba(images)
    threshold = float(np.median(proba))
    areas = (proba > threshold).sum((1, 2))
    assert areas.min() < areas.max(), "the random networks give every image the same salt area"
    return threshold, int(areas.max())  # only the largest mask(s) survive min_area


def read_submission(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def check_submission(path: Path, ids: list[str]) -> np.ndarray:
    """Kaggle format: header id,rle_mask, every id once, valid RLE; returns the decoded masks."""
    table = read_submission(path)
    assert list(table.columns) == ["id", "rle_mask"]
    assert sorted(table["id"]) == sorted(ids) and table["id"].is_unique
    return np.stack([rle.decode(text) for text in table.set_index("id").loc[ids, "rle_mask"]])


def champion_submission(tmp_path, monkeypatch, capsys, n: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Register a champion, run `salt predict` with the default model URI; (ids, images, masks)."""
    ids, images = write_test_folder(tmp_path / "data", n=n)
    threshold, min_area = mixed_thresholds(tmp_path, images)
    params = load_params(registered_setup(tmp_path, 0.7, threshold, min_area))
    record = register(
        params,
        tmp_path / "models",
        tmp_path / "eval",
        tmp_path / "evaluate.json",
        tmp_path / "folds.csv",
        False,
    )
    write_record(record, tmp_path / "registry.json")
    # No --model: the default is the champion registry.json records for this data.
    args = (
        "predict",
        "--data",
        tmp_path / "data",
        "--out",
        tmp_path / "sub.csv",
        "--params",
        tmp_path / "params.yaml",
    )
    code, _, err = run_salt(monkeypatch, capsys, *args)
    assert code == 0, err
    # It says which model predicts: the champion's version, for this data, from registry.json.
    said = f"model: {record['champion_uri']}, trained on data {record['data_hash']}"
    assert said in err.splitlines()
    return ids, images, check_submission(tmp_path / "sub.csv", ids)


def test_submission_rle_round_trip_and_empty_string(tmp_path):
    masks = np.zeros((3, 101, 101), bool)
    masks[1, 0, 0] = True  # pixel 1
    masks[2, 10:20, 50:60] = True
    write_submission(tmp_path / "sub.csv", ["a", "b", "c"], masks)
    assert (tmp_path / "sub.csv").read_text().splitlines()[:3] == ["id,rle_mask", "a,", "b,1 1"]
    np.testing.assert_array_equal(check_submission(tmp_path / "sub.csv", ["a", "b", "c"]), masks)
    assert submission(["x"], masks[:1])["rle_mask"].tolist() == [""]


def test_pin_mismatches_names_each_pin_this_environment_does_not_satisfy():
    numpy_here = np.__version__
    requirements = (
        f"numpy=={numpy_here}\n"  # satisfied
        "numpy==0.0.1  # a comment\n"
        "saltseg-no-such-package==1.0\n"
        "torch\n"  # unpinned: nothing to compare
        "# torch==0.0\n"
    )
    assert pin_mismatches(requirements) == [
        f"numpy==0.0.1 (installed here: {numpy_here})",
        "saltseg-no-such-package==1.0 (installed here: not installed)",
    ]


def test_pin_mismatches_names_a_python_of_another_minor_version_only():
    running = platform.python_version()
    major, minor, _ = running.split(".", 2)
    assert pin_mismatches("", python=f"{major}.{minor}.0") == []  # a patch release: compatible
    assert pin_mismatches("", python="2.7.18") == [f"python==2.7.18 (running here: {running})"]
    assert pin_mismatches("") == []  # no version logged: nothing to compare


def test_predict_from_local_files_writes_submission_and_probabilities(tmp_path, monkeypatch, capsys):
    ids, images = write_test_folder(tmp_path / "data", n=6)
    threshold, min_area = mixed_thresholds(tmp_path, images)
    tuned = {
        "threshold": threshold,
        "min_area": min_area,
        "tta": True,
        "folds": [0, 1],
        "data_hash": DATA_HASH,
    }
    (tmp_path / "eval" / "thresholds.json").write_text(json.dumps(tuned))
    write_params(tmp_path / "params.yaml")
    code, out, err = run_salt(
        monkeypatch, capsys, "predict", "--data", tmp_path / "data", "--out", tmp_path / "sub.csv",
        "--model-dir", tmp_path / "models", "--eval-dir", tmp_path / "eval",
        "--probabilities", tmp_path / "proba.npz", "--batch-size", 4, "--params", tmp_path / "params.yaml",
    )  # fmt: skip
    assert code == 0, err
    masks = check_submission(tmp_path / "sub.csv", ids)
    assert 0 < masks.any((1, 2)).sum() < len(ids)  # some empty ("" in the CSV), some salt
    saved = np.load(tmp_path / "proba.npz")
    assert saved["ids"].tolist() == ids and saved["probabilities"].dtype == np.float32
    expected = saved["probabilities"] > threshold
    expected &= (expected.sum((1, 2)) >= min_area)[:, None, None]
    np.testing.assert_array_equal(masks, expected)
    assert f"6 masks ({masks.any((1, 2)).sum()} with salt)" in out


def test_default_model_must_be_trained_on_the_current_data(tmp_path, monkeypatch, capsys):
    from test_evaluate import write_prepared

    write_test_folder(tmp_path / "data", n=2)
    write_params(tmp_path / "params.yaml")
    prepared, _ = write_prepared(tmp_path)
    record = {
        "name": "saltseg-ensemble",
        "alias": "champion-0123456789abcdef",
        "data_hash": "0123456789abcdef",
    }
    write_record(record | {"champion_uri": "models:/saltseg-ensemble/1"}, tmp_path / "registry.json")
    common = (
        "--registry",
        tmp_path / "registry.json",
        "--prepared",
        prepared,
        "--params",
        tmp_path / "params.yaml",
    )
    code, _, err = run_salt(
        monkeypatch,
        capsys,
        "predict",
        "--data",
        tmp_path / "data",
        "--out",
        tmp_path / "sub.csv",
        *common[:4],
    )
    assert code == 1
    assert f"registry.json: records the champion for data 0123456789abcdef, but {prepared} holds data" in err
    assert not (tmp_path / "sub.csv").exists()
    code, _, err = run_salt(monkeypatch, capsys, "champion", *common[:4])
    assert code == 1 and "run `dvc repro` to train and register a model for it" in err


def test_champion_names_the_alias_of_the_current_data(tmp_path, monkeypatch, capsys):
    from test_evaluate import write_prepared

    prepared, _ = write_prepared(tmp_path)
    record = {"name": "saltseg-ensemble", "alias": f"champion-{DATA_HASH}", "data_hash": DATA_HASH}
    write_record(record | {"champion_uri": "models:/saltseg-ensemble/3"}, tmp_path / "registry.json")
    code, out, err = run_salt(
        monkeypatch, capsys, "champion", "--registry", tmp_path / "registry.json", "--prepared", prepared
    )
    assert code == 0, err
    assert out.strip() == f"models:/saltseg-ensemble@champion-{DATA_HASH}"


def test_predict_refuses_half_a_local_model_before_writing(tmp_path, monkeypatch, capsys):
    write_test_folder(tmp_path / "data", n=2)
    write_params(tmp_path / "params.yaml")
    code, _, err = run_salt(
        monkeypatch, capsys, "predict", "--data", tmp_path / "data", "--out", tmp_path / "sub.csv",
        "--model-dir", tmp_path / "models", "--params", tmp_path / "params.yaml",
    )  # fmt: skip
    assert code == 1 and "needs both --model-dir and --eval-dir" in err
    assert not (tmp_path / "sub.csv").exists()


# The champion loaded in a fresh interpreter that cannot import the installed saltseg: the
# model must bring its own copy (code_paths). Images are read with PIL, not with saltseg.
NEW_PROCESS = """
import sys
from pathlib import Path
sys.path = [p for p in sys.path if p and Path(p).resolve() != Path({src!r}).resolve()]
import importlib.util
assert importlib.util.find_spec("saltseg") is None, "saltseg is still importable"
import mlflow, numpy as np
from PIL import Image
files = sorted(Path({folder!r}).glob("*.png"))
images = np.stack([np.asarray(Image.open(f).convert("L")) for f in files]).astype(np.float32)
model = mlflow.pyfunc.load_model({uri!r})
np.save({out!r}, model.predict(images))
import saltseg
print("saltseg from", saltseg.__file__)
"""


def test_registered_champion_in_a_new_process_predicts_the_submission_masks(
    tmp_path, monkeypatch, capsys, store
):
    ids, _, masks = champion_submission(tmp_path, monkeypatch, capsys, n=5)
    assert 0 < masks.any((1, 2)).sum() < len(ids)

    script = NEW_PROCESS.format(
        src=str(SRC), folder=str(tmp_path / "data" / "test" / "images"),
        uri=f"models:/saltseg-ensemble@champion-{DATA_HASH}", out=str(tmp_path / "served.npy"),
    )  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "/code/saltseg/" in done.stdout  # the model's own copy of the package
    served = np.load(tmp_path / "served.npy")
    assert served.dtype == np.uint8 and served.shape == (5, 101, 101)
    np.testing.assert_array_equal(served.astype(bool), masks)
