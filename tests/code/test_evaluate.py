"""Inference helpers and `salt evaluate`: TTA, ensembling, out-of-fold honesty, outputs, exit codes.

The helpers at the top (tiny fold checkpoints, a prepared set, a params file, a Kaggle
test folder) are shared with the registry, predict and serving tests.
"""

import functools
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from empty_store import sqlite_store
from PIL import Image

from saltseg.config import ModelConfig
from saltseg.data.prepared import FIELDS, Prepared
from saltseg.errors import SaltError
from saltseg.inference import CPU, as_images, binarize, predict_proba
from saltseg.models import build_model, load_checkpoint_model, save_checkpoint

TINY = ModelConfig(start_filters=4, depth=2, input_size=32)  # 32 is divisible by 2**depth


def tiny_model(seed: int, bias: float | None = None) -> torch.nn.Module:
    """A random tiny preact_resunet; with `bias`, a constant logit (head weights zero)."""
    torch.manual_seed(seed)
    model = build_model(TINY).eval()
    if bias is not None:
        head = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.out_channels == 1][-1]
        with torch.no_grad():
            head.weight.zero_()
            head.bias.fill_(bias)
    return model


def fold_checkpoints(models_dir: Path, folds=(0, 1), biases=None, data_hash=None) -> dict[int, Path]:
    """models_dir/fold<k>/best.pt for each fold, in the checkpoint format of `salt train`,
    trained (so they say) on `data_hash`, by default the data `write_prepared` writes."""
    paths = {}
    for i, fold in enumerate(folds):
        path = models_dir / f"fold{fold}" / "best.pt"
        model = tiny_model(seed=fold, bias=None if biases is None else biases[i])
        meta = {"fold": fold, "epoch": 1, "stage": "bce", "monitor": "val_iou", "score": 0.5}
        save_checkpoint(path, model, TINY, **meta, data_hash=data_hash or DATA_HASH)
        paths[fold] = path
    return paths


def snapshot_checkpoints(models_dir: Path, folds=(0, 1), cycles: int = 2) -> dict[int, tuple[Path, ...]]:
    """What `salt train` leaves with train.snapshots: per fold best.pt and snapshot1..<cycles>.pt,
    each a different random network; returns the snapshots."""
    fold_checkpoints(models_dir, folds)
    paths = {}
    for fold in folds:
        paths[fold] = tuple(models_dir / f"fold{fold}" / f"snapshot{c}.pt" for c in range(1, cycles + 1))
        for cycle, path in enumerate(paths[fold], 1):
            meta = {"fold": fold, "epoch": cycle, "stage": "lovasz", "monitor": "val_iou", "score": 0.5}
            model = tiny_model(seed=100 + 10 * fold + cycle)
            save_checkpoint(path, model, TINY, **meta, cycle=cycle, cycles=cycles, data_hash=DATA_HASH)
    return paths


def salt_images(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (n, 101, 101) and bool masks; every third mask (i % 3 == 0) is empty."""
    rng = np.random.default_rng(seed)
    layers = 40 * np.sin(np.arange(101) / 3.0)[:, None]
    images = (128 + layers + rng.normal(0, 20, (n, 101, 101))).clip(0, 255)
    masks = np.zeros((n, 101, 101), bool)
    for i in range(n):
        if i % 3:
            r, c = rng.integers(0, 60, 2)
            masks[i, r : r + 30, c : c + 35] = True
    images[masks] = 128
    return images.astype(np.uint8), masks


def prepared_arrays(n: int = 24) -> Prepared:
    images, masks = salt_images(n)
    return Prepared(
        images=images,
        masks=masks,
        depths=np.arange(n, dtype=np.int32) + 100,
        ids=np.array([f"id{i:03d}" for i in range(n)]),
        coverage=masks.mean((1, 2)).astype(np.float32),
    )


DATA_HASH = prepared_arrays().fingerprint


def write_prepared(folder: Path, n: int = 24) -> tuple[Path, Path]:
    """A prepared .npz and a folds CSV (fold = i % 2; class 0 empty, 1 salt) in the pipeline's formats."""
    arrays = prepared_arrays(n)
    prepared, folds = folder / "train.npz", folder / "folds.csv"
    np.savez(prepared, **{name: getattr(arrays, name) for name in FIELDS})
    classes = arrays.masks.any((1, 2)).astype(int)
    table = {"id": arrays.ids, "fold": np.arange(n) % 2, "coverage_class": classes}
    pd.DataFrame(table).to_csv(folds, index=False)
    return prepared, folds


def write_params(path: Path, folds=(0, 1), **evaluate) -> Path:
    """params.yaml with the tiny model; tracking comes from $MLFLOW_TRACKING_URI."""
    sections = {
        "split": {"folds": list(folds)},
        "model": {"start_filters": TINY.start_filters, "depth": TINY.depth, "input_size": TINY.input_size},
        "runtime": {"device": "cpu"},
        "evaluate": {"thresholds": [0.4, 0.5, 0.6], "min_areas": [0, 50], "worst_n": 4, **evaluate},
    }
    path.write_text(yaml.safe_dump(sections))
    return path


def write_test_folder(folder: Path, n: int = 5) -> tuple[list[str], np.ndarray]:
    """folder/test/images/<id>.png (RGB with equal channels, like the real data); (ids, images)."""
    images, _ = salt_images(n, seed=7)
    images[0] = 0  # an all-black tile, as in the real test set
    ids = [f"t{i:02d}" for i in range(n)]
    png_dir = folder / "test" / "images"
    png_dir.mkdir(parents=True)
    for key, image in zip(ids, images, strict=True):
        Image.fromarray(np.repeat(image[..., None], 3, axis=-1)).save(png_dir / f"{key}.png")
    return ids, images


def run_salt(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """Run the `salt` entry point in-process; (exit code, stdout, stderr)."""
    from saltseg.cli import main

    monkeypatch.setattr(sys, "argv", ["salt", *map(str, args)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capsys.readouterr()
    return exit_info.value.code or 0, out, err


def tmp_store(tmp_path: Path, monkeypatch):
    """Generator for fixtures: a fresh SQLite MLflow store (never the repo's mlflow.db).

    $MLFLOW_TRACKING_URI points at it (subprocesses inherit it) and so does this process's
    MLflow, restored afterwards; artifacts go to tmp_path/mlruns (the working directory).
    """
    import mlflow

    uri = sqlite_store(tmp_path / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    before = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    yield uri
    mlflow.set_tracking_uri(before[0])
    mlflow.set_registry_uri(before[1])


@pytest.fixture
def store(tmp_path, monkeypatch):
    yield from tmp_store(tmp_path, monkeypatch)


# --- inference ---------------------------------------------------------------------------


def test_binarize_threshold_and_min_area():
    proba = np.zeros((3, 101, 101), np.float32)
    proba[0, :2, :2] = 0.9  # 4 pixels: below min_area 5 -> empty
    proba[1, :5, :1] = 0.9  # 5 pixels: kept
    proba[2, :3, :3] = 0.5  # not above the threshold
    masks = binarize(proba, 0.5, min_area=5)
    assert masks.dtype == bool and masks.shape == (3, 101, 101)
    assert masks.sum((1, 2)).tolist() == [0, 5, 0]
    assert binarize(proba, 0.5, 0).sum((1, 2)).tolist() == [4, 5, 0]


def test_predict_proba_flip_tta_and_fold_average():
    images, _ = salt_images(3)
    a, b = tiny_model(1), tiny_model(2)
    plain = predict_proba([a], images, TINY, tta=False, batch_size=2)
    mirrored = predict_proba([a], images[:, :, ::-1], TINY, tta=False, batch_size=2)[:, :, ::-1]
    assert plain.dtype == np.float32 and plain.shape == (3, 101, 101)
    assert not np.allclose(plain, mirrored)  # the network is not flip-symmetric, so TTA matters
    tta = predict_proba([a], images, TINY, tta=True, batch_size=2)
    np.testing.assert_allclose(tta, (plain + mirrored) / 2, atol=1e-6)
    both = predict_proba([a, b], images, TINY, tta=True, batch_size=3)
    np.testing.assert_allclose(both, (tta + predict_proba([b], images, TINY, tta=True)) / 2, atol=1e-6)
    # Float pixel values 0..255 mean the same as uint8.
    np.testing.assert_array_equal(predict_proba([a], images.astype(np.float32), TINY, False, 2), plain)


def test_predict_proba_rejects_wrong_tile_shape():
    with pytest.raises(SaltError, match=r"expected shape \(N, 101, 101\)"):
        predict_proba([tiny_model(0)], np.zeros((2, 64, 64), np.uint8), TINY)


def _unit_image() -> np.ndarray:
    return salt_images(2)[0].astype(np.float32) / 255  # what a normalising client sends


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (np.zeros((2, 64, 64)), r"expected shape \(N, 101, 101\), got \(2, 64, 64\)"),
        (np.zeros((1, 1, 101, 101)), r"expected shape \(N, 101, 101\)"),
        ([], r"empty batch"),
        (np.zeros((0, 101, 101)), r"empty batch"),
        ([[1.0, 2.0], [3.0]], r"not a rectangular array"),
        (np.full((1, 101, 101), "a"), r"dtype <U1"),
        (np.full((1, 101, 101), np.nan), r"must be finite"),
        (np.full((1, 101, 101), np.inf), r"must be finite"),
        (np.full((1, 101, 101), 300.0), r"must lie in 0\.\.255, got 300\.\.300"),
        (np.full((1, 101, 101), 300, np.int64), r"must lie in 0\.\.255"),
        (np.full((1, 101, 101), -5.0), r"must lie in 0\.\.255, got -5\.\.-5"),
        (_unit_image(), r"looks normalised to \[0, 1\]; send pixel values 0\.\.255"),
    ],
    ids=["tile", "4d", "empty-list", "empty", "ragged", "text", "nan", "inf", "300", "300-int", "-5", "unit"],
)
def test_as_images_refuses_what_is_not_a_batch_of_0_255_tiles(images, message):
    with pytest.raises(SaltError, match=message):
        as_images(images)


def test_as_images_accepts_black_binary_and_integer_tiles():
    black = np.zeros((1, 101, 101), np.float64)  # all-black tiles are real test images
    ones = np.ones((2, 101, 101), np.float32)  # <= 1 but whole numbers: dark, not normalised
    for images in (black, ones, np.full((1, 101, 101), 255, np.int64), salt_images(2)[0]):
        out = as_images(images)
        assert out.dtype == np.float32 and out.shape == images.shape
        np.testing.assert_array_equal(out, images)
    assert as_images(np.zeros((101, 101), np.uint8)).shape == (1, 101, 101)  # one image


# --- out of fold ---------------------------------------------------------------------------


def test_out_of_fold_uses_only_the_model_that_held_the_image_out(tmp_path):
    from saltseg.data.folds import load_folds
    from saltseg.data.prepared import load_prepared
    from saltseg.evaluate import out_of_fold

    prepared_path, folds_path = write_prepared(tmp_path)
    # Fold 0's model says "salt everywhere", fold 1's "no salt": the answer shows who predicted.
    checkpoints = fold_checkpoints(tmp_path / "models", biases=(10.0, -10.0))
    prepared = load_prepared(prepared_path)
    members = {fold: (path,) for fold, path in checkpoints.items()}
    oof = out_of_fold(prepared, load_folds(folds_path), members, batch_size=8, runtime=CPU)
    held_out_by = np.arange(len(prepared.ids)) % 2
    assert oof.fold.tolist() == held_out_by.tolist()
    for proba in (oof.plain, oof.tta):
        assert (proba[held_out_by == 0] > 0.99).all()
        assert (proba[held_out_by == 1] < 0.01).all()


def _evaluate_args(tmp_path, prepared, folds, *extra):
    return (
        "evaluate", "--prepared", prepared, "--folds", folds, "--models", tmp_path / "models",
        "--out-metrics", tmp_path / "metrics" / "evaluate.json", "--out-dir", tmp_path / "eval",
        "--params", tmp_path / "params.yaml", *extra,
    )  # fmt: skip


def test_evaluate_cli_scores_out_of_fold_and_logs_to_the_parent_run(tmp_path, monkeypatch, capsys, store):
    from mlflow.tracking import MlflowClient

    prepared, folds = write_prepared(tmp_path)
    fold_checkpoints(tmp_path / "models", biases=(10.0, -10.0))
    write_params(tmp_path / "params.yaml")
    code, out, err = run_salt(monkeypatch, capsys, *_evaluate_args(tmp_path, prepared, folds))
    assert code == 0, err
    metrics = json.loads((tmp_path / "metrics" / "evaluate.json").read_text())
    # Fold 0 predicts full masks (score 0 everywhere); fold 1 empty masks, right on its 4 of 12
    # empty truths (odd i with i % 3 == 0). By hand: overall 4/24, per class 4/8 and 0.
    assert metrics["score"] == pytest.approx(4 / 24)
    assert metrics["folds"] == pytest.approx({"fold0": 0.0, "fold1": 4 / 12})
    assert metrics["coverage_classes"] == pytest.approx({"class0": 0.5, "class1": 0.0})
    assert metrics["score_tta"] == metrics["score_no_tta"] == metrics["score"]
    assert {"iou", "threshold", "min_area", "score_default", "n_images"} <= set(metrics)
    assert metrics["score_nested"] == pytest.approx(4 / 24)  # every cell ties: fold choices agree
    assert (metrics["threshold"], metrics["min_area"]) == (0.4, 0)  # all ties: the first grid cell
    thresholds = json.loads((tmp_path / "eval" / "thresholds.json").read_text())
    assert thresholds == {
        "threshold": 0.4, "min_area": 0, "tta": True, "folds": [0, 1], "score": 4 / 24, "data_hash": DATA_HASH
    }  # fmt: skip
    grid = pd.read_csv(tmp_path / "eval" / "threshold_grid.csv")
    assert len(grid) == 3 * 2 and {"threshold", "min_area", "score_tta", "score_no_tta"} <= set(grid.columns)
    for png in (
        "score_vs_threshold.png",
        "worst_predictions.png",
        "score_by_coverage.png",
        "worst_by_class.png",
    ):
        assert (tmp_path / "eval" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Per coverage class: 8 empty masks (i % 3 == 0), 16 with a 30 x 35 salt box. IoU by hand: the
    # 4 empty truths fold 1 leaves empty have IoU 1, the rest 0; the 8 boxes fold 0 calls all salt
    # 1050 / 10201, the 8 that fold 1 calls empty 0.
    box_iou = 8 * (30 * 35 / 101**2) / 16
    by_class = pd.read_csv(tmp_path / "eval" / "coverage_classes.csv")
    assert by_class["class"].tolist() == [0, 1] and by_class["n_images"].tolist() == [8, 16]
    np.testing.assert_allclose(by_class["score"], [0.5, 0.0])
    np.testing.assert_allclose(by_class["iou"], [0.5, box_iou], atol=1e-6)
    assert "threshold 0.4, min salt area 0" in out and "without" in out
    assert "tuned on these predictions (optimistic)" in out
    assert f"nested (post-processing chosen on the other folds) {4 / 24:.4f}" in out
    parent = MlflowClient().search_runs(
        [MlflowClient().get_experiment_by_name("saltseg").experiment_id],
        filter_string="tags.`saltseg.pipeline_key` != ''",
    )
    assert len(parent) == 1
    assert parent[0].data.metrics["oof_score"] == round(metrics["score"], 4)  # as the runs table shows it
    assert parent[0].data.metrics["oof_folds_fold1"] == round(4 / 12, 4)
    assert parent[0].data.metrics["oof_score_nested"] == round(4 / 24, 4)
    logged_metrics = parent[0].data.metrics
    assert not [k for k in logged_metrics if "class" in k], "per-class numbers are one table artifact"
    assert all(round(v, 4) == v for v in logged_metrics.values()), "rounded as the runs table shows them"
    logged = {a.path for a in MlflowClient().list_artifacts(parent[0].info.run_id, "evaluate")}
    assert {"evaluate/thresholds.json", "evaluate/score_vs_threshold.png", "evaluate/evaluate.json"} <= logged
    assert {
        "evaluate/coverage_classes.csv",
        "evaluate/score_by_coverage.png",
        "evaluate/worst_by_class.png",
    } <= logged


def test_evaluate_tunes_on_the_grid_and_min_score_fails_after_writing(tmp_path, monkeypatch, capsys):
    from saltseg.data.folds import load_folds
    from saltseg.data.prepared import load_prepared
    from saltseg.evaluate import out_of_fold

    prepared, folds = write_prepared(tmp_path)
    members = {fold: (path,) for fold, path in fold_checkpoints(tmp_path / "models").items()}
    # Random networks give probabilities in a narrow band: put the grid inside it.
    oof = out_of_fold(load_prepared(prepared), load_folds(folds), members, batch_size=8, runtime=CPU)
    thresholds = np.quantile(oof.tta, [0.2, 0.5, 0.8]).round(6).tolist()
    write_params(tmp_path / "params.yaml", thresholds=thresholds, min_areas=[0, 2000, 6000])
    args = _evaluate_args(tmp_path, prepared, folds, "--min-score", "0.99", "--no-track")
    code, _, err = run_salt(monkeypatch, capsys, *args)
    metrics_path = tmp_path / "metrics" / "evaluate.json"
    metrics = json.loads(metrics_path.read_text())  # written before the check fails
    assert code == 1
    assert (
        f"error: {metrics_path}: score_nested {metrics['score_nested']:.4f} is below the required 0.99" in err
    )
    grid = pd.read_csv(tmp_path / "eval" / "threshold_grid.csv")
    best = grid.loc[grid["score_tta"].idxmax()]
    assert metrics["score"] == pytest.approx(best["score_tta"], abs=1e-6)
    assert metrics["score_no_tta"] == pytest.approx(grid["score_no_tta"].max(), abs=1e-6)
    assert (metrics["threshold"], metrics["min_area"]) == (best["threshold"], best["min_area"])
    assert grid["score_tta"].nunique() > 1  # the grid really discriminates


def test_evaluate_writes_nothing_when_a_fold_checkpoint_is_missing(tmp_path, monkeypatch, capsys):
    prepared, folds = write_prepared(tmp_path)
    fold_checkpoints(tmp_path / "models", folds=(0,))
    write_params(tmp_path / "params.yaml")
    code, _, err = run_salt(monkeypatch, capsys, *_evaluate_args(tmp_path, prepared, folds, "--no-track"))
    assert code == 1
    assert f"{tmp_path / 'models' / 'fold1' / 'best.pt'}: checkpoint not found" in err
    assert not (tmp_path / "eval").exists() and not (tmp_path / "metrics").exists()


def test_checkpoint_round_trip_keeps_the_constant_head(tmp_path):
    path = fold_checkpoints(tmp_path, folds=(3,), biases=(-10.0,))[3]
    proba = predict_proba([load_checkpoint_model(path)], np.zeros((1, 101, 101), np.uint8), TINY)
    assert (proba < 0.01).all()


def test_evaluate_refuses_models_trained_on_other_data(tmp_path, monkeypatch, capsys):
    prepared, folds = write_prepared(tmp_path)
    fold_checkpoints(tmp_path / "models", data_hash="0123456789abcdef")
    write_params(tmp_path / "params.yaml")
    code, _, err = run_salt(monkeypatch, capsys, *_evaluate_args(tmp_path, prepared, folds, "--no-track"))
    assert code == 1
    assert f"fold0{'/'}best.pt: trained on data 0123456789abcdef, but {prepared} is data {DATA_HASH}" in err
    assert not (tmp_path / "eval").exists() and not (tmp_path / "metrics").exists()


def test_evaluate_refuses_folds_that_params_do_not_list(tmp_path, monkeypatch, capsys):
    prepared, folds = write_prepared(tmp_path)
    fold_checkpoints(tmp_path / "models", folds=(0, 2))
    write_params(tmp_path / "params.yaml", folds=(0, 2))
    code, _, err = run_salt(monkeypatch, capsys, *_evaluate_args(tmp_path, prepared, folds, "--no-track"))
    assert code == 1 and f"{folds}: fold(s) [1] are not in split.folds [0, 2]" in err
    assert not (tmp_path / "eval").exists()


def test_nested_selection_chooses_each_folds_cell_on_the_other_folds():
    from saltseg.evaluate import best_cell, nested_score

    # Two grid cells (thresholds), one min area; images a, b in fold 0 and c, d in fold 1.
    per_image = np.array([[[1.0, 1.0, 0.0, 0.0]], [[0.0, 0.6, 1.0, 0.6]]])  # (T=2, A=1, N=4)
    fold = np.array([0, 0, 1, 1])
    # Tuned on everything: cell 1 (mean 0.65 against 0.5).
    assert best_cell(per_image.mean(-1)) == (1, 0)
    # Fold 0 is scored with the cell fold 1 prefers (cell 1: 0.8 > 0): a, b score 0 and 0.6;
    # fold 1 with the cell fold 0 prefers (cell 0: 1.0 > 0.3): c, d score 0 and 0. Mean 0.15.
    assert nested_score(per_image, fold) == pytest.approx(0.15)
    # Ties go to the first cell, as in tuning; one fold leaves nothing to choose on.
    assert nested_score(np.ones((2, 2, 4)), fold) == 1.0
    with pytest.raises(SaltError, match="at least two folds"):
        nested_score(per_image, np.zeros(4, int))


# --- snapshot ensembles ----------------------------------------------------------------------


def test_a_folds_members_are_its_snapshots_when_training_kept_them(tmp_path):
    from saltseg.inference import fold_members

    best = fold_checkpoints(tmp_path / "best")
    assert fold_members(tmp_path / "best", [0, 1]) == {k: (path,) for k, path in best.items()}
    snapshots = snapshot_checkpoints(tmp_path / "snap")  # best.pt is there too, and not a member
    assert fold_members(tmp_path / "snap", [0, 1]) == snapshots
    (tmp_path / "snap/fold1/snapshot2.pt").unlink()  # e.g. fold 1 still training
    with pytest.raises(
        SaltError, match=r"fold1: has snapshot1.pt of 2 snapshots \(finish training fold 1\)$"
    ):
        fold_members(tmp_path / "snap", [0, 1])
    snapshot_checkpoints(tmp_path / "snap", folds=(1,), cycles=3)
    with pytest.raises(
        SaltError, match=r"fold1: 3 checkpoint\(s\), but .*fold0 2; an ensemble needs as many"
    ):
        fold_members(tmp_path / "snap", [0, 1])


def test_out_of_fold_and_the_ensemble_average_a_folds_snapshots(tmp_path):
    from saltseg.data.folds import load_folds
    from saltseg.data.prepared import load_prepared
    from saltseg.evaluate import out_of_fold
    from saltseg.inference import Ensemble, fold_members

    prepared_path, folds_path = write_prepared(tmp_path)
    snapshots = snapshot_checkpoints(tmp_path / "models")
    prepared = load_prepared(prepared_path)
    members = fold_members(tmp_path / "models", [0, 1])
    oof = out_of_fold(prepared, load_folds(folds_path), members, batch_size=8, runtime=CPU)
    images, held_out_by = prepared.images, np.arange(len(prepared.ids)) % 2

    @functools.cache
    def proba(path, tta):
        return predict_proba([load_checkpoint_model(path)], images, TINY, tta=tta)

    for fold, (first, second) in snapshots.items():
        held = held_out_by == fold
        for tta, out in ((False, oof.plain), (True, oof.tta)):
            mean = (proba(first, tta) + proba(second, tta)) / 2
            np.testing.assert_allclose(out[held], mean[held], atol=1e-6)
            best = proba(tmp_path / "models" / f"fold{fold}" / "best.pt", tta)
            assert not np.allclose(out[held], best[held], atol=1e-4)  # best.pt has no say

    (tmp_path / "eval").mkdir()
    tuned = {"threshold": 0.5, "min_area": 0, "folds": [0, 1], "data_hash": DATA_HASH}
    (tmp_path / "eval" / "thresholds.json").write_text(json.dumps(tuned))
    ensemble = Ensemble.from_dirs(tmp_path / "models", tmp_path / "eval", device="cpu")
    assert len(ensemble.models) == 4
    fold_means = [(proba(a, True) + proba(b, True)) / 2 for a, b in snapshots.values()]
    np.testing.assert_allclose(ensemble.predict_proba(images), sum(fold_means) / 2, atol=1e-6)


def test_evaluate_refuses_snapshots_that_params_do_not_make(tmp_path, monkeypatch, capsys):
    from saltseg.config import TrainConfig
    from saltseg.evaluate import check_snapshots

    prepared, folds = write_prepared(tmp_path)
    snapshots = snapshot_checkpoints(tmp_path / "models")
    on = TrainConfig(scheduler="warm_restarts", cycles=2, snapshots=True)
    check_snapshots(snapshots, on)
    best = {k: (tmp_path / "models" / f"fold{k}" / "best.pt",) for k in (0, 1)}
    check_snapshots(best, TrainConfig())
    with pytest.raises(SaltError, match=r"fold0: its model is best.pt, but train.snapshots true and "):
        check_snapshots(best, on)
    write_params(tmp_path / "params.yaml")  # train.snapshots off
    code, _, err = run_salt(monkeypatch, capsys, *_evaluate_args(tmp_path, prepared, folds, "--no-track"))
    assert code == 1
    assert (
        f"{tmp_path / 'models' / 'fold0'}: its model is snapshot1.pt, snapshot2.pt, but train.snapshots "
        "false and train.cycles 1 make it best.pt; retrain the folds (`dvc repro`)"
    ) in err
    assert not (tmp_path / "eval").exists()
