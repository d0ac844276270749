"""Pseudo-labels: the `pseudo` stage's inputs and outputs, and training on its images.

The teacher is real: two tiny folds trained on the tiny data, evaluated and registered in
a real MLflow registry; the test images are real PNGs in the Kaggle layout.
"""

import dataclasses
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient
from PIL import Image
from test_evaluate import run_salt, write_prepared
from tiny_training import blocky_salt, tiny_params

from saltseg import tracking
from saltseg.config import EvaluateConfig, Params, PseudoConfig, StageConfig
from saltseg.data.folds import fold_indices, load_folds
from saltseg.data.prepared import load_prepared
from saltseg.data.pseudo_set import PseudoSet, empty_set, load_pseudo, save_pseudo
from saltseg.errors import SaltError
from saltseg.evaluate import run_evaluate, trained_pseudo_hash
from saltseg.inference import Ensemble
from saltseg.pseudo import confident_fraction, select
from saltseg.registry import register
from saltseg.train import FoldPaths, train_fold
from saltseg.train_stage import run_fold

# Under pytest-xdist (make test), one worker runs this module: its teacher is trained once.
pytestmark = pytest.mark.xdist_group("pseudo_teacher")

REPO = Path(__file__).resolve().parents[2]


def test_confident_fraction_counts_pixels_sure_either_way():
    proba = np.full((2, 2, 2), 0.5, dtype=np.float32)
    proba[0] = [[0.95, 0.05], [0.9, 0.1]]  # all four at the edges (>= 0.9 or <= 0.1)
    proba[1] = [[0.89, 0.11], [1.0, 0.5]]  # only 1.0
    np.testing.assert_array_equal(confident_fraction(proba, 0.9), [1.0, 0.25])


def test_selection_keeps_the_confident_and_caps_to_the_most_confident():
    fraction = np.array([0.5, 0.99, 0.97, 1.0, 0.97, 0.96])
    cfg = PseudoConfig(teacher="models:/t/1", min_confident_fraction=0.97)
    assert select(fraction, cfg).tolist() == [1, 2, 3, 4]
    capped = dataclasses.replace(cfg, max_images=3)
    assert select(fraction, capped).tolist() == [1, 2, 3]  # 1.0, 0.99, then the first of two 0.97s


def test_off_writes_an_empty_set_without_loading_mlflow(tmp_path):
    """No teacher: an empty set in a second, deterministic to the byte, and MLflow never imported
    (nor the data read: the folder named does not even exist)."""
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"pseudo": {"teacher": None}}))
    script = (
        "import sys\nfrom saltseg.cli import main\n"
        "sys.argv = ['salt', 'pseudo', '--data', 'absent', '--prepared', 'x.npz', '--out', sys.argv[1]]\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
        "assert 'mlflow' not in sys.modules and 'torch' not in sys.modules, 'a heavy import'\n"
    )
    outputs = []
    for name in ("a.npz", "b.npz"):
        done = subprocess.run(
            [sys.executable, "-c", script, str(tmp_path / name)], cwd=tmp_path, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        outputs.append((tmp_path / name).read_bytes())
    assert "no pseudo-labels ->" in done.stdout
    assert outputs[0] == outputs[1]
    pseudo = load_pseudo(tmp_path / "a.npz")
    assert len(pseudo) == 0 and pseudo.fingerprint is None
    assert pseudo.images.shape == (0, 101, 101) and pseudo.images.dtype == np.uint8
    assert pseudo.masks.dtype == bool and (pseudo.teacher, pseudo.n_test) == ("", 0)


def test_a_malformed_pseudo_file_is_one_line(tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(SaltError, match=r"bad.npz: not a readable .npz file"):
        load_pseudo(tmp_path / "bad.npz")
    with pytest.raises(SaltError, match=r"missing.npz: pseudo-label file not found \(run `salt pseudo`\)"):
        load_pseudo(tmp_path / "missing.npz")


@dataclass(frozen=True)
class Teacher:
    params: Params
    uri: str  # models:/saltseg-ensemble@champion-<data hash>
    version: str  # saltseg-ensemble/<N>
    prepared: Path
    data_dir: Path  # data_dir/test/images/<id>.png
    ids: list[str]
    images: np.ndarray  # uint8 (N, 101, 101): the test PNGs
    fraction: np.ndarray  # float64 (N,): confident share at confidence 0.9
    masks: np.ndarray  # bool (N, 101, 101): the teacher's masks


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, tiny_data) -> Teacher:
    """Two tiny folds trained, evaluated and registered as the champion of the tiny data; a
    Kaggle test folder; and what the local ensemble predicts for it."""
    folder = tmp_path_factory.mktemp("teacher")
    prepared_path, folds_csv = tiny_data
    params = tiny_params(folder)
    # Long enough, and fast enough, for the tiny network to find the salt: confident on some
    # tiles, not on others, with some salt in its masks.
    train = dataclasses.replace(params.train, stages=(StageConfig("bce", 30, 0.03),), monitor="val_loss")
    evaluate = EvaluateConfig(thresholds=(0.4, 0.5, 0.6), worst_n=2)
    params = dataclasses.replace(params, train=train, evaluate=evaluate)
    prepared = load_prepared(prepared_path)
    for fold in params.split.folds:
        split = fold_indices(prepared.ids, load_folds(folds_csv), fold)
        paths = FoldPaths(
            folder / "models" / f"fold{fold}", folder / f"m{fold}.json", folder / f"h{fold}.csv"
        )
        train_fold(params, prepared, split, fold, paths, key="teacher")
    run_evaluate(
        params, prepared_path, folds_csv, folder / "models", folder / "evaluate.json", folder / "eval"
    )
    record = register(params, folder / "models", folder / "eval", folder / "evaluate.json", folds_csv, False)

    images, _ = blocky_salt(12, seed=3)
    ids = [f"t{i:02d}" for i in range(len(images))]
    png_dir = folder / "data" / "test" / "images"
    png_dir.mkdir(parents=True)
    for key, image in zip(ids, images, strict=True):  # RGB with equal channels, like the real PNGs
        Image.fromarray(np.repeat(image[..., None], 3, axis=-1)).save(png_dir / f"{key}.png")
    (folder / "data" / "depths.csv").write_text(
        "id,z\n" + "".join(f"{key},{500 + i}\n" for i, key in enumerate(ids))
    )
    local = Ensemble.from_dirs(folder / "models", folder / "eval", device="cpu")
    proba = local.predict_proba(images)
    return Teacher(
        params, f"models:/{record['name']}@{record['alias']}", f"{record['name']}/{record['version']}",
        prepared_path, folder / "data", ids, images, confident_fraction(proba, 0.9), local.binarize(proba),
    )  # fmt: skip


def _pseudo_params(path: Path, teacher: Teacher, **pseudo) -> Path:
    raw = {
        "pseudo": {"teacher": teacher.uri, "confidence": 0.9, **pseudo},
        "runtime": {"device": "cpu"},
        "evaluate": {"batch_size": 5},  # 12 test images: batches of 5, 5 and 2
        "tracking": {"uri": teacher.params.tracking.uri},
    }
    path.write_text(yaml.safe_dump(raw))
    return path


def _salt_pseudo(
    monkeypatch, capsys, teacher: Teacher, params: Path, out: Path, prepared: Path | None = None
):
    return run_salt(
        monkeypatch, capsys, "pseudo", "--data", teacher.data_dir, "--prepared", prepared or teacher.prepared,
        "--out", out, "--params", params,
    )  # fmt: skip


def test_teacher_labels_exactly_its_confident_test_images(teacher, tmp_path, monkeypatch, capsys):
    cut = float(np.median(teacher.fraction))  # half the images pass, half do not
    expected = np.flatnonzero(teacher.fraction >= cut)
    assert 0 < len(expected) < len(teacher.ids), teacher.fraction
    params = _pseudo_params(tmp_path / "params.yaml", teacher, min_confident_fraction=cut)
    code, out, err = _salt_pseudo(monkeypatch, capsys, teacher, params, tmp_path / "pseudo.npz")
    assert code == 0, err
    pseudo = load_pseudo(tmp_path / "pseudo.npz")
    assert pseudo.ids.tolist() == [teacher.ids[i] for i in expected]
    np.testing.assert_array_equal(pseudo.images, teacher.images[expected])
    np.testing.assert_array_equal(pseudo.masks, teacher.masks[expected])  # threshold and min area included
    assert pseudo.depths.tolist() == [500 + i for i in expected]  # depths.csv: for depth-channel students
    assert pseudo.masks.any() and pseudo.masks.dtype == bool and pseudo.images.dtype == np.uint8
    assert (pseudo.teacher, pseudo.teacher_version) == (teacher.uri, teacher.version)
    assert pseudo.teacher_data_hash == load_prepared(teacher.prepared).fingerprint
    assert (pseudo.n_test, pseudo.n_confident) == (12, len(expected))
    assert f"{len(expected)} of 12 test images pseudo-labelled by {teacher.version}" in out
    assert "optimistic" in out

    # Deterministic to the byte (DVC then retrains nothing), and the cap keeps the most confident.
    first = (tmp_path / "pseudo.npz").read_bytes()
    code, _, err = _salt_pseudo(monkeypatch, capsys, teacher, params, tmp_path / "pseudo.npz")
    assert code == 0, err
    assert (tmp_path / "pseudo.npz").read_bytes() == first
    capped = _pseudo_params(tmp_path / "capped.yaml", teacher, min_confident_fraction=cut, max_images=1)
    code, _, err = _salt_pseudo(monkeypatch, capsys, teacher, capped, tmp_path / "capped.npz")
    assert code == 0, err
    most = int(np.argmax(teacher.fraction))
    kept = load_pseudo(tmp_path / "capped.npz")
    assert kept.ids.tolist() == [teacher.ids[most]] and kept.n_confident == len(expected)


def test_teacher_of_other_data_is_refused_in_one_line(teacher, tmp_path, monkeypatch, capsys):
    other, _ = write_prepared(tmp_path)  # other labelled data than the teacher learnt
    params = _pseudo_params(tmp_path / "params.yaml", teacher, min_confident_fraction=0.5)
    code, _, err = _salt_pseudo(monkeypatch, capsys, teacher, params, tmp_path / "pseudo.npz", other)
    assert code == 1
    line = err.strip().splitlines()[-1]
    teacher_hash, other_hash = load_prepared(teacher.prepared).fingerprint, load_prepared(other).fingerprint
    assert line == (
        f"error: {teacher.uri}: teacher trained on data {teacher_hash}, but {other} holds data "
        f"{other_hash}; name a teacher registered for this data in pseudo.teacher"
    )
    assert not (tmp_path / "pseudo.npz").exists()
    for missing in ("models:/nope@champion", "models:/nope/1"):
        raw = yaml.safe_load(params.read_text())
        raw["pseudo"]["teacher"] = missing
        params.write_text(yaml.safe_dump(raw))
        code, _, err = _salt_pseudo(monkeypatch, capsys, teacher, params, tmp_path / "pseudo.npz")
        assert code == 1 and err.strip().splitlines()[-1].startswith(f"error: {missing}: "), err
    assert not (tmp_path / "pseudo.npz").exists()


def _pseudo_file(path: Path, data_hash: str, n: int = 6) -> PseudoSet:
    """A pseudo-label set of `n` images unlike the labelled ones, as `salt pseudo` writes it."""
    images, masks = blocky_salt(n, seed=11)
    images[:, :3] = 255  # a white band: these images are recognisable in a batch
    ids = np.array([f"test{i}" for i in range(n)])
    pseudo = PseudoSet(
        ids,
        images,
        masks,
        np.full(n, 500, np.int32),
        "models:/t/1",
        "t/1",
        data_hash,
        n_test=n,
        n_confident=n,
    )
    save_pseudo(path, pseudo)
    return pseudo


def test_pseudo_images_join_training_only_and_fork_the_run(tiny_data, tmp_path, monkeypatch):
    """No file and an empty file train alike (same checkpoint bytes, one MLflow parent run); a
    non-empty set adds its images to the training set, leaves validation alone, and trains
    in a parent run of its own that says its scores are optimistic."""
    import saltseg.train as train_module

    prepared_path, folds_csv = tiny_data
    prepared = load_prepared(prepared_path)
    params = tiny_params(tmp_path, lovasz_epochs=1)
    seen = {}

    class Recording(train_module.SaltDataset):
        def __init__(self, images, masks, transform=None, depths=None):
            seen["train"] = images.copy()
            super().__init__(images, masks, transform, depths)

    class RecordingValidation(train_module.Validation):
        @classmethod
        def on(cls, policy, images, masks, depths=None):
            seen["val"] = images.copy()
            return super().on(policy, images, masks, depths)

    monkeypatch.setattr(train_module, "SaltDataset", Recording)
    monkeypatch.setattr(train_module, "Validation", RecordingValidation)

    def fold0(name: str, pseudo: Path | None) -> tuple[dict, FoldPaths]:
        seen.clear()
        paths = FoldPaths(tmp_path / name / "model", tmp_path / name / "m.json", tmp_path / name / "h.csv")
        return run_fold(params, prepared_path, folds_csv, 0, paths, pseudo), paths

    train_idx, val_idx = fold_indices(prepared.ids, load_folds(folds_csv), 0)
    plain, plain_paths = fold0("plain", None)
    np.testing.assert_array_equal(seen["train"], prepared.images[train_idx])
    save_pseudo(tmp_path / "empty.npz", empty_set())
    empty, empty_paths = fold0("empty", tmp_path / "empty.npz")
    assert plain_paths.best.read_bytes() == empty_paths.best.read_bytes()
    assert {k: v for k, v in plain.items() if k != "train_seconds"} == {
        k: v for k, v in empty.items() if k != "train_seconds"
    }

    pseudo = _pseudo_file(tmp_path / "pseudo.npz", prepared.fingerprint)
    with_pseudo, paths = fold0("pseudo", tmp_path / "pseudo.npz")
    np.testing.assert_array_equal(seen["train"], np.concatenate([prepared.images[train_idx], pseudo.images]))
    np.testing.assert_array_equal(seen["val"], prepared.images[val_idx])
    assert (with_pseudo["n_train"], with_pseudo["n_val"], with_pseudo["n_pseudo"]) == (
        plain["n_train"], plain["n_val"], 6,
    )  # fmt: skip
    assert "n_pseudo" not in plain
    assert torch.load(paths.best, weights_only=True)["pseudo_hash"] == pseudo.fingerprint
    assert "pseudo_hash" not in torch.load(plain_paths.best, weights_only=True)

    client = MlflowClient(params.tracking.uri)
    experiment = client.get_experiment_by_name(params.tracking.experiment)
    parents = client.search_runs([experiment.experiment_id], "tags.`saltseg.pipeline_key` != ''")
    assert len(parents) == 2, "with pseudo-labels: another parent run; with an empty set: the same"
    forked = next(r for r in parents if tracking.PSEUDO_TAG in r.data.tags)
    assert forked.data.tags[tracking.PSEUDO_TAG] == pseudo.fingerprint
    assert "optimistic" in forked.data.tags[tracking.PSEUDO_NOTE_TAG]
    child = client.search_runs(
        [experiment.experiment_id], f"tags.mlflow.parentRunId = '{forked.info.run_id}'"
    )
    assert child[0].data.tags["pseudo_images"] == "6"


def test_pseudo_set_of_another_data_set_is_refused_before_training(tiny_data, tmp_path):
    prepared_path, folds_csv = tiny_data
    _pseudo_file(tmp_path / "pseudo.npz", "0123456789abcdef")
    paths = FoldPaths(tmp_path / "model", tmp_path / "m.json", tmp_path / "h.csv")
    with pytest.raises(SaltError, match=r"pseudo.npz: labelled by a teacher of data 0123456789abcdef, but"):
        run_fold(tiny_params(tmp_path), prepared_path, folds_csv, 0, paths, tmp_path / "pseudo.npz")
    assert not paths.out_dir.exists()


def test_evaluation_needs_folds_of_one_pseudo_set(tmp_path):
    from test_evaluate import TINY, fold_checkpoints, tiny_model

    from saltseg.models import save_checkpoint

    checkpoints = fold_checkpoints(tmp_path / "models")
    members = {fold: [path] for fold, path in checkpoints.items()}  # best.pt alone
    assert trained_pseudo_hash(members) is None
    meta = {"fold": 1, "epoch": 1, "stage": "bce", "monitor": "val_iou", "score": 0.5, "data_hash": "d"}
    save_checkpoint(checkpoints[1], tiny_model(1), TINY, **meta, pseudo_hash="feedfacefeedface")
    with pytest.raises(
        SaltError, match=r"fold1/best.pt: trained with pseudo-label set feedfacefeedface, but"
    ):
        trained_pseudo_hash(members)
    save_checkpoint(checkpoints[0], tiny_model(0), TINY, **meta, pseudo_hash="feedfacefeedface")
    assert trained_pseudo_hash(members) == "feedfacefeedface"


def test_dvc_stage_feeds_the_pseudo_set_to_every_fold():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    pseudo, train = stages["pseudo"], stages["train"]
    assert pseudo["cmd"].split() == [
        "salt", "pseudo", "--data", "${data.source}", "--prepared", "prepared/train.npz",
        "--out", "prepared/pseudo.npz",
    ]  # fmt: skip
    assert pseudo["outs"] == ["prepared/pseudo.npz"]
    assert {"${data.source}", "prepared/train.npz", "src/saltseg/pseudo.py"} <= set(pseudo["deps"])
    assert {"pseudo", "tracking"} <= set(pseudo["params"])
    assert "prepared/pseudo.npz" in train["deps"]
    assert "--pseudo prepared/pseudo.npz" in " ".join(train["cmd"].split())
    assert list(stages).index("prepare") < list(stages).index("pseudo") < list(stages).index("train")
    assert json.loads(json.dumps(Params().pseudo.teacher)) is None, "off by default"
