"""`salt register`: the ensemble and fold models in the Model Registry, promotion by score."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow.protos.databricks_pb2 import INTERNAL_ERROR
from mlflow.tracking import MlflowClient
from test_evaluate import (
    DATA_HASH,
    TINY,
    fold_checkpoints,
    run_salt,
    snapshot_checkpoints,
    tmp_store,
    write_params,
    write_test_folder,
)

from saltseg.config import load_params
from saltseg.errors import SaltError
from saltseg.models import load_checkpoint_model
from saltseg.registry import register

NAME = "saltseg-ensemble"  # params.register.model_name's default
CHAMPION = f"champion-{DATA_HASH}"  # the champion of the tests' data


@pytest.fixture
def store(tmp_path, monkeypatch):
    yield from tmp_store(tmp_path, monkeypatch)


def write_evaluation(
    folder: Path,
    score: float,
    threshold: float = 0.5,
    min_area: int = 0,
    data_hash: str = DATA_HASH,
    nested: float | None = None,
    **tuned,
) -> None:
    """What `salt evaluate` leaves for `register`: eval/thresholds.json (with the `tuned` keys
    too, e.g. pseudo_hash) and the metrics JSON, whose nested score is `score` unless given."""
    (folder / "eval").mkdir(exist_ok=True)
    tuned |= {"threshold": threshold, "min_area": min_area, "tta": True, "folds": [0, 1], "score": score}
    tuned["data_hash"] = data_hash
    (folder / "eval" / "thresholds.json").write_text(json.dumps(tuned))
    metrics = {"score": score, "score_nested": score if nested is None else nested, "score_default": score}
    metrics["folds"] = {"fold0": score - 0.1, "fold1": score + 0.1}
    (folder / "evaluate.json").write_text(json.dumps(metrics))


def registered_setup(
    folder: Path, score: float, threshold: float = 0.5, min_area: int = 0, data_hash: str = DATA_HASH, **tuned
) -> Path:
    """Fold checkpoints, evaluation outputs, a folds CSV and params.yaml; returns params.yaml."""
    if not (folder / "models").exists():
        fold_checkpoints(folder / "models", data_hash=data_hash)
    write_evaluation(folder, score, threshold, min_area, data_hash, **tuned)
    (folder / "folds.csv").write_text("id,fold,coverage_class\na,0,0\nb,1,1\n")
    return write_params(folder / "params.yaml")


def _register(
    folder: Path, score: float, threshold: float = 0.5, data_hash: str = DATA_HASH, **tuned
) -> dict:
    params = load_params(registered_setup(folder, score, threshold, data_hash=data_hash, **tuned))
    return register(
        params, folder / "models", folder / "eval", folder / "evaluate.json", folder / "folds.csv", False
    )


def test_alias_moves_only_to_a_version_that_beats_the_champion(tmp_path, store):
    client = MlflowClient()
    first = _register(tmp_path, 0.6)
    assert (first["version"], first["promoted"], first["champion_version"]) == (1, True, 1)
    assert f"is the first {CHAMPION}" in first["message"]

    worse = _register(tmp_path, 0.5)
    assert (worse["version"], worse["promoted"], worse["champion_version"]) == (2, False, 1)
    assert str(client.get_model_version_by_alias(NAME, CHAMPION).version) == "1"
    assert f"does not beat {CHAMPION} version 1 (0.6000): alias kept" in worse["message"]

    tie = _register(tmp_path, 0.6, threshold=0.55)  # other files, equal score: not better
    assert (tie["version"], tie["promoted"], tie["champion_version"]) == (3, False, 1)

    better = _register(tmp_path, 0.8)
    assert (better["version"], better["promoted"], better["champion_version"]) == (4, True, 4)
    assert str(client.get_model_version_by_alias(NAME, CHAMPION).version) == "4"
    assert f"beats {CHAMPION} version 1 (0.6000): promoted to {CHAMPION}" in better["message"]
    assert client.get_model_version(NAME, "2").tags["oof_score_nested"] == "0.500000"
    assert client.get_model_version(NAME, "4").tags["threshold"] == "0.5"
    assert client.get_model_version(NAME, "4").tags["data_hash"] == DATA_HASH
    assert better["model_uri"] == better["champion_uri"] == f"models:/{NAME}/4"


def test_the_alias_follows_the_nested_score_not_the_tuned_one(tmp_path, store):
    """The tuned score chose its threshold on the predictions it scores: it must decide nothing."""
    client = MlflowClient()
    honest = _register(tmp_path, 0.70, nested=0.68)
    lucky = _register(tmp_path, 0.75, threshold=0.55, nested=0.66)  # better tuned, worse nested
    assert (lucky["promoted"], lucky["champion_version"]) == (False, honest["version"])
    assert str(client.get_model_version_by_alias(NAME, CHAMPION).version) == str(honest["version"])
    better = _register(tmp_path, 0.69, threshold=0.45, nested=0.69)  # worse tuned, better nested
    assert (better["promoted"], better["champion_version"]) == (True, better["version"])
    tags = client.get_model_version(NAME, str(better["version"])).tags
    assert (tags["oof_score_nested"], tags["oof_score_tuned"]) == ("0.690000", "0.690000")
    assert "nested out-of-fold score 0.6900" in better["message"]


def test_identical_rerun_adds_no_version(tmp_path, store):
    first = _register(tmp_path, 0.6)
    again = _register(tmp_path, 0.6)  # the same checkpoints and thresholds.json
    assert (again["version"], again["champion_version"], again["promoted"]) == (1, 1, False)
    assert f"is already {CHAMPION}" in again["message"]
    assert [int(v.version) for v in MlflowClient().search_model_versions(f"name = '{NAME}'")] == [1]
    assert first["champion_uri"] == again["champion_uri"] == f"models:/{NAME}/1"


def test_champion_is_per_data_set(tmp_path, store):
    client = MlflowClient()
    synthetic = _register(tmp_path / "a", 0.9, data_hash="aaaaaaaaaaaaaaaa")
    real = _register(tmp_path / "b", 0.5, data_hash="bbbbbbbbbbbbbbbb")  # worse, but other data
    assert (real["alias"], real["promoted"], real["champion_version"]) == (
        "champion-bbbbbbbbbbbbbbbb",
        True,
        2,
    )
    assert "is the first champion-bbbbbbbbbbbbbbbb" in real["message"]
    assert str(client.get_model_version_by_alias(NAME, "champion-aaaaaaaaaaaaaaaa").version) == "1"
    assert real["champion_uri"] == f"models:/{NAME}/2" != synthetic["champion_uri"]
    # The plain alias a person types follows the champion of the data registered last.
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "2"
    _register(tmp_path / "a", 0.9, data_hash="aaaaaaaaaaaaaaaa")  # the same files again: version 1
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "1"


def test_a_registered_version_says_what_it_is_and_how_to_call_it(tmp_path, store):
    record = _register(tmp_path, 0.7, nested=0.65)
    description = MlflowClient().get_model_version(NAME, str(record["version"])).description
    assert f"synthetic@{DATA_HASH}" in description and f"`{CHAMPION}`" in description
    assert "0.6500 nested (the number that decides promotion), 0.7000 tuned" in description
    assert f'salt serve --model "models:/{NAME}@{CHAMPION}" --port 5001' in description
    assert "(N, 101, 101)" in description and "no MLflow input schema on purpose" in description


def test_pseudo_label_students_have_a_champion_of_their_own(tmp_path, store):
    client = MlflowClient()
    teacher = _register(tmp_path / "teacher", 0.7)
    student = _register(tmp_path / "student", 0.9, threshold=0.45, pseudo_hash="cccccccccccccccc")
    assert (student["alias"], student["promoted"]) == (f"{CHAMPION}-pseudo", True)
    assert student["champion_uri"] == f"models:/{NAME}/2"
    # Its optimistic 0.9 never meets the teacher's honest 0.7: that champion stays.
    assert str(client.get_model_version_by_alias(NAME, CHAMPION).version) == "1"
    assert teacher["champion_uri"] == f"models:/{NAME}/1"
    assert client.get_model_version(NAME, "2").tags["pseudo_hash"] == "cccccccccccccccc"


def test_registry_errors_are_not_read_as_no_champion(tmp_path, store, monkeypatch):
    from mlflow.exceptions import MlflowException

    _register(tmp_path, 0.6)

    def locked(*_args, **_kwargs):
        raise MlflowException("(sqlite3.OperationalError) database is locked", error_code=INTERNAL_ERROR)

    monkeypatch.setattr(MlflowClient, "get_model_version_by_alias", locked)
    with pytest.raises(MlflowException, match="database is locked"):
        _register(tmp_path, 0.5)
    monkeypatch.undo()
    assert str(MlflowClient().get_model_version_by_alias(NAME, CHAMPION).version) == "1"


def test_register_cli_writes_the_record_and_registers_each_fold(tmp_path, monkeypatch, capsys, store):
    import mlflow

    registered_setup(tmp_path, 0.7)
    args = ("register", "--models", tmp_path / "models", "--eval-dir", tmp_path / "eval",
            "--metrics", tmp_path / "evaluate.json", "--folds", tmp_path / "folds.csv",
            "--out", tmp_path / "registry.json", "--params", tmp_path / "params.yaml")  # fmt: skip
    code, out, err = run_salt(monkeypatch, capsys, *args)
    assert code == 0, err
    record = json.loads((tmp_path / "registry.json").read_text())
    keys = ("name", "version", "model_uri", "score_nested", "champion_version", "promoted")
    assert {k: record[k] for k in keys} == {
        "name": NAME, "version": 1, "model_uri": f"models:/{NAME}/1", "score_nested": 0.7,
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
    assert "run_id" not in record, "a random id would change registry.json, hence dvc.lock, every run"
    run = MlflowClient().get_run(MlflowClient().get_model_version(NAME, "1").run_id)
    assert run.data.tags["saltseg.registered_model"] == f"{NAME}/1"
    assert run.data.metrics["registered_version"] == 1


def test_register_checks_its_inputs_before_logging_anything(tmp_path, store):
    params = load_params(registered_setup(tmp_path, 0.7))
    (tmp_path / "evaluate.json").write_text('{"iou": 0.5}')
    with pytest.raises(SaltError, match=r"evaluate.json: needs a numeric 'score'"):
        register(
            params, tmp_path / "models", tmp_path / "eval", tmp_path / "evaluate.json", tmp_path / "folds.csv"
        )
    (tmp_path / "eval" / "thresholds.json").unlink()
    with pytest.raises(SaltError, match=r"thresholds.json: file not found \(run `salt evaluate` first\)"):
        register(
            params, tmp_path / "models", tmp_path / "eval", tmp_path / "evaluate.json", tmp_path / "folds.csv"
        )
    client = MlflowClient(store)
    assert client.search_registered_models() == []
    assert client.search_runs([e.experiment_id for e in client.search_experiments()]) == []


def test_registered_snapshot_ensemble_carries_the_snapshots_and_predicts_like_salt_predict(
    tmp_path, monkeypatch, capsys, store
):
    import mlflow

    from saltseg.inference import Ensemble

    snapshot_checkpoints(tmp_path / "models")  # two snapshots per fold, beside best.pt
    ids, images = write_test_folder(tmp_path / "data", n=5)
    registered_setup(tmp_path, 0.7)
    proba = Ensemble.from_dirs(tmp_path / "models", tmp_path / "eval", device="cpu").predict_proba(images)
    params = load_params(registered_setup(tmp_path, 0.7, threshold=float(np.median(proba))))
    record = register(
        params, tmp_path / "models", tmp_path / "eval", tmp_path / "evaluate.json", tmp_path / "folds.csv"
    )
    members = ["fold0-snapshot1", "fold0-snapshot2", "fold1-snapshot1", "fold1-snapshot2"]
    assert sorted(record["fold_models"]) == members  # each snapshot network, registered on its own
    model = mlflow.pyfunc.load_model(record["model_uri"])
    assert sorted(model.metadata.flavors["python_function"]["artifacts"]) == [*members, "thresholds"]
    assert len(model.unwrap_python_model().ensemble.models) == 4

    def salt_predict(out, *route):
        args = ("predict", "--data", tmp_path / "data", "--out", tmp_path / out,
                "--params", tmp_path / "params.yaml")  # fmt: skip
        code, _, err = run_salt(monkeypatch, capsys, *args, *route)
        assert code == 0, err
        return (tmp_path / out).read_text()

    local = salt_predict("local.csv", "--model-dir", tmp_path / "models", "--eval-dir", tmp_path / "eval")
    assert salt_predict("registered.csv", "--model", record["model_uri"]) == local
    served = model.predict(images.astype(np.float32)).astype(bool)
    assert 0 < served.any((1, 2)).sum() < len(ids)  # some masks empty, some not: the threshold bites
    np.testing.assert_array_equal(
        served, Ensemble.from_dirs(tmp_path / "models", tmp_path / "eval").predict_masks(images)
    )


def test_member_keys_order_folds_then_cycles_and_best_keeps_its_key(tmp_path):
    import hashlib

    from saltseg.registry import content_hash
    from saltseg.serving import member_key, member_keys

    keys = ["thresholds", "fold10", "fold2-snapshot10", "fold2-snapshot2", "fold2-snapshot1"]
    assert member_keys(keys) == ["fold2-snapshot1", "fold2-snapshot2", "fold2-snapshot10", "fold10"]
    assert member_key(3, Path("m/fold3/best.pt")) == "fold3"
    assert member_key(3, Path("m/fold3/snapshot2.pt")) == "fold3-snapshot2"
    # An ensemble of best.pt files keeps the identity it had before snapshots existed.
    best = fold_checkpoints(tmp_path / "models")
    (tmp_path / "thresholds.json").write_text("{}")
    before = hashlib.sha256()
    for fold, path in best.items():
        before.update(f"fold{fold}:".encode() + path.read_bytes())
    before.update(b"{}")
    members = {fold: (path,) for fold, path in best.items()}
    assert content_hash(members, tmp_path / "thresholds.json") == before.hexdigest()[:32]
