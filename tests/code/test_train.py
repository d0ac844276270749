"""Training one fold: determinism, the BCE -> Lovasz hand-off, best-only checkpoints, resume."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient
from tiny_training import tiny_params

from saltseg.data.folds import fold_indices, load_folds
from saltseg.data.prepared import load_prepared
from saltseg.train import FoldPaths, train_fold
from saltseg.train_stage import run_fold


def _paths(folder):
    return FoldPaths(folder / "model", folder / "metrics.json", folder / "history.csv")


def _train(tiny_data, folder, params, **kwargs):
    prepared_path, folds_path = tiny_data
    prepared = load_prepared(prepared_path)
    split = fold_indices(prepared.ids, load_folds(folds_path), 0)
    return train_fold(params, prepared, split, 0, _paths(folder), key="k", **kwargs)


def _comparable(metrics):
    return {k: v for k, v in metrics.items() if k != "train_seconds"}


def test_same_run_twice_gives_the_same_metrics(tiny_data, tmp_path):
    params = tiny_params(tmp_path)
    first = _train(tiny_data, tmp_path / "a", params)
    second = _train(tiny_data, tmp_path / "b", params)
    assert _comparable(first) == _comparable(second)
    assert (tmp_path / "a/history.csv").read_text() == (tmp_path / "b/history.csv").read_text()


def test_stage_two_starts_from_stage_one_best_weights(tiny_data, tmp_path):
    params = tiny_params(tmp_path)
    seen = {}

    def on_stage_start(stage, model):
        if stage == 1:
            kept = torch.load(tmp_path / "model/best.pt", weights_only=True)
            seen["stage"] = kept["stage"]
            seen["equal"] = all(torch.equal(v, kept["model"][k]) for k, v in model.state_dict().items())

    _train(tiny_data, tmp_path, params, on_stage_start=on_stage_start)
    assert seen == {"stage": "bce", "equal": True}


def test_checkpoint_is_kept_only_when_validation_iou_improves(tiny_data, tmp_path):
    params = tiny_params(tmp_path, lovasz_epochs=3)
    metrics = _train(tiny_data, tmp_path, params)
    history = pd.read_csv(tmp_path / "history.csv")
    kept = torch.load(tmp_path / "model/best.pt", weights_only=True)
    best_epoch = int(history["val_iou"].idxmax())  # the first of equal maxima
    assert kept["epoch"] == best_epoch == metrics["best_epoch"]
    assert kept["score"] == pytest.approx(history["val_iou"].max())
    assert len(history) == 5 and metrics["epochs"] == 5
    assert not (tmp_path / "model/last.pt").exists(), "a finished run leaves no resume state"


def test_fold_run_is_tracked_under_a_parent_run(tiny_data, tmp_path):
    params = tiny_params(tmp_path)
    prepared_path, folds_path = tiny_data
    for fold in (0, 1):
        run_fold(params, prepared_path, folds_path, fold, _paths(tmp_path / f"fold{fold}"))
    client = MlflowClient(params.tracking.uri)
    runs = client.search_runs([client.get_experiment_by_name("saltseg").experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 2
    for child in children:
        assert child.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        for tag in ("git_commit", "dvc_data_hash", "torch_version", "device"):
            assert tag in child.data.tags
        history = client.get_metric_history(child.info.run_id, "val_iou")
        assert [m.step for m in history] == [0, 1, 2, 3]
        artifacts = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert {"best.pt", "history.csv", "metrics.json", "validation.png"} <= artifacts


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_result(tiny_data, tmp_path):
    prepared_path, folds_path = tiny_data
    params = tiny_params(tmp_path, lovasz_epochs=6)
    raw = {
        "split": {"folds": [0, 1]},
        "model": {"start_filters": 4, "depth": 2, "input_size": 64},
        "train": {
            "batch_size": 8,
            "stages": [{"loss": s.loss, "epochs": s.epochs, "lr": s.lr} for s in params.train.stages],
        },
        "runtime": {"threads": 1},
    }

    def command(name):
        folder = tmp_path / name
        params_file = tmp_path / f"{name}.yaml"
        raw["tracking"] = {"uri": f"sqlite:///{tmp_path / name}.db"}
        params_file.write_text(yaml.safe_dump(raw))
        return [
            sys.executable, "-m", "saltseg", "train", "--fold", "0", "--params", str(params_file),
            "--prepared", str(prepared_path), "--folds", str(folds_path), "--out-dir", str(folder / "model"),
            "--metrics", str(folder / "metrics.json"), "--history", str(folder / "history.csv"),
        ]  # fmt: skip

    env = os.environ | {"CI": "1"}
    subprocess.run(command("whole"), check=True, env=env, capture_output=True)

    state = tmp_path / "killed/model/last.pt"
    proc = subprocess.Popen(command("killed"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if state.exists():
            saved = torch.load(state, weights_only=True)
            if saved["next_stage"] == 1 and saved["next_epoch"] >= 1:
                break
        assert proc.poll() is None, "the run ended before it could be killed in stage 2"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed/metrics.json").exists()

    subprocess.run(command("killed"), check=True, env=env, capture_output=True)
    whole = json.loads((tmp_path / "whole/metrics.json").read_text())
    resumed = json.loads((tmp_path / "killed/metrics.json").read_text())
    assert resumed["epochs"] == whole["epochs"] == 8
    assert _comparable(resumed) == _comparable(whole)
    np.testing.assert_array_equal(
        pd.read_csv(tmp_path / "killed/history.csv").to_numpy(),
        pd.read_csv(tmp_path / "whole/history.csv").to_numpy(),
    )


def test_monitored_loss_is_minimised(tiny_data, tmp_path):
    base = tiny_params(tmp_path)
    params = dataclasses.replace(base, train=dataclasses.replace(base.train, monitor="val_loss"))
    metrics = _train(tiny_data, tmp_path, params)
    history = pd.read_csv(tmp_path / "history.csv")
    kept = torch.load(tmp_path / "model/best.pt", weights_only=True)
    assert history["val_loss"].nunique() > 1
    assert kept["score"] == pytest.approx(history["val_loss"].min())
    assert metrics["best_val_loss"] == pytest.approx(history["val_loss"].min())
