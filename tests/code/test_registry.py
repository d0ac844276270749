"""`salt register`: the ensemble and fold models in the Model Registry, promotion by score."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient
from test_evaluate import TINY, fold_checkpoints, run_salt, tmp_store, write_params

from saltseg.config import load_params
from saltseg.errors import SaltError
from saltseg.models import load_checkpoint_model
from saltseg.registry import register

NAME = "saltseg-ensemble"  # params.register.model_name's default


@pytest.fixture
def store(tmp_path, monkeypatch):
    yield from tmp_store(tmp_path, monkeypatch)


def write_evaluation(folder: Path, score: float, threshold: float = 0.5, min_area: int = 0) -> None:
    """What `salt evaluate` leaves for `register`: eval/thresholds.json and the metrics JSON."""
    (folder / "eval").mkdir(exist_ok=True)
    tuned = {"threshold": threshold, "min_area": min_area, "tta": True, "folds": [0, 1], "score": score}
    (folder / "eval" / "thresholds.json").write_text(json.dumps(tuned))
    metrics = {"score": score, "folds": {"fold0": score - 0.1, "fold1": score + 0.1}}
    (folder / "evaluate.json").write_text(json.dumps(metrics))


def registered_setup(folder: Path, score: float, threshold: float = 0.5, min_area: int = 0) -> Path:
    """Fold checkpoints, evaluation outputs, a folds CSV and params.yaml; returns params.yaml."""
    if not (folder / "models").exists():
        fold_checkpoints(folder / "models")
    write_evaluation(folder, score, threshold, min_area)
    (folder / "folds.csv").write_text("id,fold,coverage_class\na,0,0\nb,1,1\n")
    return write_params(folder / "params.yaml")


def _register(folder: Path, score: float) -> dict:
    params = load_params(registered_setup(folder, score))
    return register(
        params, folder / "models", folder / "eval", folder / "evaluate.json", folder / "folds.csv", False
    )


def test_alias_moves_only_to_a_version_that_beats_the_champion(tmp_path, store):
    client = MlflowClient()
    first = _register(tmp_path, 0.6)
    assert (first["version"], first["promoted"], first["champion_version"]) == (1, True, 1)
    assert "is the first champion" in first["message"]

    worse = _register(tmp_path, 0.5)
    assert (worse["version"], worse["promoted"], worse["champion_version"]) == (2, False, 1)
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "1"
    assert "does not beat champion version 1 (0.6000): alias kept" in worse["message"]

    tie = _register(tmp_path, 0.6)  # equal is not better
    assert (tie["promoted"], str(client.get_model_version_by_alias(NAME, "champion").version)) == (False, "1")

    better = _register(tmp_path, 0.8)
    assert (better["version"], better["promoted"], better["champion_version"]) == (4, True, 4)
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "4"
    assert "beats champion version 1 (0.6000): promoted to champion" in better["message"]
    assert client.get_model_version(NAME, "2").tags["oof_score"] == "0.500000"
    assert client.get_model_version(NAME, "4").tags["threshold"] == "0.5"
    assert better["model_uri"] == f"models:/{NAME}/4"


def test_register_cli_writes_the_record_and_registers_each_fold(tmp_path, monkeypatch, capsys, store):
    import mlflow

    registered_setup(tmp_path, 0.7)
    args = ("register", "--models", tmp_path / "models", "--eval-dir", tmp_path / "eval",
            "--metrics", tmp_path / "evaluate.json", "--folds", tmp_path / "folds.csv",
            "--out", tmp_path / "registry.json", "--params", tmp_path / "params.yaml")  # fmt: skip
    code, out, err = run_salt(monkeypatch, capsys, *args)
    assert code == 0, err
    record = json.loads((tmp_path / "registry.json").read_text())
    keys = ("name", "version", "model_uri", "score", "champion_version", "promoted")
    assert {k: record[k] for k in keys} == {
        "name": NAME, "version": 1, "model_uri": f"models:/{NAME}/1", "score": 0.7,
        "champion_version": 1, "promoted": True,
    }  # fmt: skip
    assert record["fold_models"] == {"fold0": f"models:/{NAME}-fold0/1", "fold1": f"models:/{NAME}-fold1/1"}
    assert f"registered models:/{NAME}/1" in out and "is the first champion" in out
    # The fold network comes back from the registry and computes what the checkpoint does.
    x = torch.rand(3, 1, TINY.input_size, TINY.input_size)
    served = mlflow.pytorch.load_model(record["fold_models"]["fold1"])
    expected = load_checkpoint_model(tmp_path / "models" / "fold1" / "best.pt")(x)
    np.testing.assert_allclose(served(x).detach().numpy(), expected.detach().numpy(), atol=1e-5)
    assert MlflowClient().get_model_version(f"{NAME}-fold1", "1").tags["oof_score"] == "0.800000"
    run = MlflowClient().get_run(record["run_id"])
    assert run.data.tags["saltseg.registered_model"] == f"{NAME}/1"
    assert run.data.metrics["registered_score"] == pytest.approx(0.7)


def test_register_checks_its_inputs_before_logging_anything(tmp_path, store):
    params = load_params(registered_setup(tmp_path, 0.7))
    (tmp_path / "evaluate.json").write_text('{"iou": 0.5}')
    with pytest.raises(SaltError, match=r"evaluate.json: needs a numeric 'score'"):
        register(
            params, tmp_path / "models", tmp_path / "eval", tmp_path / "evaluate.json", tmp_path / "folds.csv"
        )
    (tmp_path / "eval" / "thresholds.json").unlink()
    with pytest.raises(SaltError, match=r"thresholds.json: thresholds file not found"):
        register(
            params, tmp_path / "models", tmp_path / "eval", tmp_path / "evaluate.json", tmp_path / "folds.csv"
        )
    assert not (tmp_path / "mlflow.db").exists()
