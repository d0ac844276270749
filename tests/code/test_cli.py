"""The `salt` command line as a user meets it: help texts and one-line errors."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from saltseg.cli import app

TINY = {  # runs in seconds if the values are let through, as the old code did
    "split": {"folds": [0, 1]},
    "model": {"start_filters": 4, "depth": 2},
    "train": {"batch_size": 8, "stages": [{"loss": "bce", "epochs": 1, "lr": 0.01}]},
    "runtime": {},
}


def _salt(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "saltseg", *args], capture_output=True, text=True, env=env, timeout=300
    )


def _words(text):
    return " ".join(text.replace("│", " ").split())


def test_train_help_shows_real_defaults_sections_and_the_mlflow_store():
    result = CliRunner().invoke(app, ["train", "--help"])
    assert result.exit_code == 0
    text = _words(result.output)
    assert "models/fold{fold}" in text and "metrics/train/fold{fold}.json" in text
    assert "every fold in split.folds" in text and "runtime.fold_jobs at a time" in text
    assert "params.yaml sections data, split, model, augment and train" in text
    assert "runtime" in text and "tracking" in text
    assert "$MLFLOW_TRACKING_URI" in text and "mlflow.db" in text


@pytest.mark.parametrize(
    ("overlay", "message"),
    [
        (
            {
                "train": {
                    "stages": [
                        {"loss": "bce", "epochs": -3, "lr": 0.01},
                        {"loss": "lovasz", "epochs": 1, "lr": 0.01},
                    ]
                }
            },
            "train.stages[0].epochs: must be >= 1, got -3",
        ),
        ({"train": {"batch_size": 0}}, "train.batch_size: must be >= 1, got 0"),
        (
            {"train": {"monitor": "val_loss_typo"}},
            "train.monitor: unknown 'val_loss_typo'; valid: val_loss, val_iou, val_score",
        ),
        (  # a rule known only once timm builds the encoder
            {"model": {"name": "timm_unet", "encoder": "resnet18", "input_size": 48}},
            "model.input_size (timm_unet resnet18): input size 48 is not divisible by 32; "
            "nearest valid size is 64",
        ),
    ],
)
def test_bad_params_stop_train_before_any_run_or_file(tiny_data, tmp_path, overlay, message):
    params_file = tmp_path / "params.yaml"
    assert _refused_train(tiny_data, tmp_path, overlay) == [f"error: {params_file}: {message}"]


def test_compiling_without_a_cpp_compiler_stops_train_before_any_run_or_file(tiny_data, tmp_path):
    overlay = {"runtime": {"device": "cpu", "compile": "on"}}
    stderr = _refused_train(tiny_data, tmp_path, overlay, {"CXX": "no-such-compiler-saltseg"})
    assert len(stderr) == 1, stderr
    needs = "error: runtime.compile: on compiles here, which on a CPU needs a C++ compiler (no-such-compiler"
    assert stderr[0].startswith(needs)


def test_train_refuses_a_fold_outside_split_folds(tiny_data, tmp_path):
    params_file = tmp_path / "params.yaml"
    stderr = _refused_train(tiny_data, tmp_path, {}, folds=("0", "3"))
    assert stderr == [f"error: {params_file}: split.folds is [0, 1]; no fold 3"]


def test_train_refuses_several_folds_into_one_path(tiny_data, tmp_path):
    stderr = _refused_train(tiny_data, tmp_path, {}, folds=("0", "1"))
    model = tmp_path / "out" / "model"
    assert stderr == [f"error: --out-dir {model}: with several folds the path needs {{fold}}"]


def _refused_train(
    tiny_data, tmp_path: Path, overlay: dict, env: dict | None = None, folds: tuple[str, ...] = ("0",)
) -> list[str]:
    """stderr lines of a `salt train` expected to fail before writing a file or an MLflow run."""
    prepared, folds_csv = tiny_data
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(TINY | {k: TINY.get(k, {}) | v for k, v in overlay.items()}))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = tmp_path / "out"
    proc = _salt(
        "train", *(a for k in folds for a in ("--fold", k)), "--params", str(params_file),
        "--prepared", str(prepared), "--folds", str(folds_csv), "--out-dir", str(out / "model"),
        "--metrics", str(out / "metrics.json"), "--history", str(out / "history.csv"),
        env=os.environ | {"MLFLOW_TRACKING_URI": uri, "CI": "1"} | (env or {}),
    )  # fmt: skip
    assert proc.returncode != 0
    assert not out.exists()
    if (tmp_path / "mlflow.db").exists():
        client = MlflowClient(uri)
        experiments = [e.experiment_id for e in client.search_experiments()]
        assert client.search_runs(experiments) == []
    return proc.stderr.splitlines()


def test_params_use_refuses_a_profile_with_bad_values(tmp_path):
    params_file = tmp_path / "params.yaml"
    params_file.write_text("profile: default\n")
    profile = tmp_path / "bad.yaml"
    profile.write_text("model:\n  start_filters: 0\n")
    proc = _salt("params", "use", str(profile), "--params", str(params_file))
    assert proc.returncode != 0
    assert proc.stderr.splitlines() == [f"error: {profile}: model.start_filters: must be >= 1, got 0"]
    assert params_file.read_text() == "profile: default\n"


def test_main_quiets_mlflow_download_bars(monkeypatch):
    from saltseg.cli import main

    monkeypatch.delenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", raising=False)
    monkeypatch.setattr(sys, "argv", ["salt", "--help"])
    with pytest.raises(SystemExit):
        main()
    assert os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] == "false"
