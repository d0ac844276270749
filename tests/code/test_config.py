"""params.yaml -> typed config, and named configurations applied to it."""

from pathlib import Path

import pytest
import yaml

from saltseg.config import (
    MODEL_NAMES,
    Params,
    StageConfig,
    flat_params,
    load_params,
    oriented,
    params_from_dict,
)
from saltseg.errors import SaltError

ROOT = Path(__file__).resolve().parents[2]


def test_committed_params_are_the_defaults():
    """One source of defaults: params.yaml spells out config.py's defaults, key by key."""
    assert load_params(ROOT / "params.yaml") == Params()


def test_repository_params_load_into_typed_objects():
    params = load_params(ROOT / "params.yaml")
    assert isinstance(params, Params)
    assert params.split.folds == (0, 1, 2, 3, 4)
    assert all(isinstance(s, StageConfig) for s in params.train.stages)
    assert [s.loss for s in params.train.stages] == ["bce", "lovasz"]


def test_unknown_key_is_named():
    with pytest.raises(SaltError, match=r"^train: unknown key\(s\) epochs"):
        params_from_dict({"train": {"epochs": 3}})


def test_wrong_type_is_named():
    with pytest.raises(SaltError, match=r"^model\.depth: expected int"):
        params_from_dict({"model": {"depth": "four"}})


def test_int_is_accepted_where_float_is_expected():
    assert params_from_dict({"augment": {"hflip": 1}}).augment.hflip == 1.0


def test_missing_and_malformed_files_are_one_line_errors(tmp_path):
    with pytest.raises(SaltError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [\n")
    with pytest.raises(SaltError, match="bad.yaml: not valid YAML"):
        load_params(bad)


def test_params_read_as_dvc_reads_them_yaml_1_2(tmp_path):
    # `dvc exp run -S runtime.compile=on` writes a bare `on`: a string in YAML 1.2, as DVC reads it.
    path = tmp_path / "params.yaml"
    path.write_text("runtime:\n  compile: on\ntrain:\n  weight_decay: 1e-4\n")
    params = load_params(path)
    assert params.runtime.compile == "on"
    assert params.train.weight_decay == 1e-4  # YAML 1.1 would read the string "1e-4"


def test_flat_params_are_dotted_and_cover_the_stages():
    flat = flat_params(Params())
    assert flat["model.name"] == "preact_resunet"
    assert flat["train.stages.1.loss"] == "lovasz"


def _stages(epochs=8, lr=0.005, loss="bce"):
    return {"stages": [{"loss": loss, "epochs": epochs, "lr": lr}]}


# (overlay on the defaults, the message expected after "params.yaml: ")
BAD_VALUES = [
    ({"train": _stages(epochs=-3)}, "train.stages[0].epochs: must be >= 1, got -3"),
    ({"train": _stages(epochs=0)}, "train.stages[0].epochs: must be >= 1, got 0"),
    ({"train": _stages(lr=0)}, "train.stages[0].lr: must be > 0, got 0.0"),
    ({"train": _stages(lr=float("nan"))}, "train.stages[0].lr: must be > 0, got nan"),
    (
        {"train": _stages(loss="bse")},
        "train.stages[0].loss: unknown 'bse'; valid: bce, focal, bce_dice, bce_small_dice, lovasz",
    ),
    ({"train": {"stages": []}}, "train.stages: must be a non-empty list of stages, got []"),
    ({"train": {"batch_size": 0}}, "train.batch_size: must be >= 1, got 0"),
    ({"train": {"weight_decay": -0.1}}, "train.weight_decay: must be >= 0, got -0.1"),
    ({"train": {"optimizer": "adamm"}}, "train.optimizer: unknown 'adamm'; valid: adam, adamw, sgd"),
    ({"train": {"loss_at": "tile"}}, "train.loss_at: unknown 'tile'; valid: original, input"),
    (
        {"train": {"scheduler": "step"}},
        "train.scheduler: unknown 'step'; valid: cosine, constant, warm_restarts",
    ),
    ({"train": {"scheduler": "warm_restarts", "cycles": 0}}, "train.cycles: must be >= 1, got 0"),
    (
        {"train": {"scheduler": "warm_restarts", "cycles": 3}},  # the default stages: 8 and 4 epochs
        "train.cycles: must be a divisor of every stage's epochs (stages[0].epochs is 8), got 3",
    ),
    (
        {"train": {"scheduler": "warm_restarts", "cycles": 8}},
        "train.cycles: must be a divisor of every stage's epochs (stages[1].epochs is 4), got 8",
    ),
    ({"train": {"cycles": 2}}, "train.cycles: must be 1 unless scheduler is warm_restarts, got 2"),
    ({"train": {"snapshots": "yes"}}, "train.snapshots: expected bool, got 'yes'"),
    (
        {"train": {"monitor": "val_loss_typo"}},
        "train.monitor: unknown 'val_loss_typo'; valid: val_loss, val_iou, val_score",
    ),
    ({"train": {"aux_weight": -0.1}}, "train.aux_weight: must be >= 0, got -0.1"),
    ({"train": {"empty_weight": float("nan")}}, "train.empty_weight: must be >= 0, got nan"),
    ({"train": {"ema_decay": 1.0}}, "train.ema_decay: must be in [0, 1), got 1.0"),
    ({"train": {"ema_decay": -0.5}}, "train.ema_decay: must be in [0, 1), got -0.5"),
    (
        {"model": {"name": "timm_unet", "empty_head": True}},
        "model.empty_head: must be false unless name is preact_resunet, got True",
    ),
    ({"model": {"start_filters": 0}}, "model.start_filters: must be >= 1, got 0"),
    ({"model": {"depth": 0}}, "model.depth: must be >= 1, got 0"),
    ({"model": {"blocks_per_level": 0}}, "model.blocks_per_level: must be >= 1, got 0"),
    ({"model": {"dropout": 1.0}}, "model.dropout: must be in [0, 1), got 1.0"),
    ({"model": {"name": "unet"}}, "model.name: unknown 'unet'; valid: preact_resunet, timm_unet"),
    ({"model": {"fit": "crop"}}, "model.fit: unknown 'crop'; valid: resize, pad"),
    ({"model": {"fit": "pad", "input_size": 96}}, "model.input_size: must be >= 101 with fit 'pad', got 96"),
    (
        {"model": {"input_size": 100}},
        "model.input_size (preact_resunet, depth 3): input size 100 is not divisible by 8; "
        "nearest valid size is 104",
    ),
    ({"model": {"decoder_channels": [16, 0]}}, "model.decoder_channels: must be widths >= 1, got [16, 0]"),
    ({"augment": {"hflip": 1.5}}, "augment.hflip: must be in [0, 1], got 1.5"),
    ({"augment": {"roll": -0.1}}, "augment.roll: must be in [0, 1], got -0.1"),
    (
        {"augment": {"crop_scale": [0.9, 0.5]}},
        "augment.crop_scale: must be [a, b] with 0 < a <= b <= 1, got [0.9, 0.5]",
    ),
    (
        {"augment": {"crop_scale": [0.0, 1.0]}},
        "augment.crop_scale: must be [a, b] with 0 < a <= b <= 1, got [0.0, 1.0]",
    ),
    ({"augment": {"rotate_limit": -5}}, "augment.rotate_limit: must be >= 0, got -5.0"),
    ({"augment": {"roll_limit": 2}}, "augment.roll_limit: must be in [0, 1], got 2.0"),
    ({"synth": {"empty_fraction": 1.2}}, "synth.empty_fraction: must be in [0, 1), got 1.2"),
    ({"synth": {"n_train": 3}}, "synth.n_train: must be >= the 5 folds of split.folds, got 3"),
    ({"split": {"folds": []}}, "split.folds: must be at least 2 fold ids, got []"),
    ({"split": {"folds": [0, 1, 1]}}, "split.folds: must be unique fold ids, got [0, 1, 1]"),
    (
        {"evaluate": {"thresholds": [0.5, 1.0]}},
        "evaluate.thresholds: must be a non-empty list of probabilities in (0, 1), got [0.5, 1.0]",
    ),
    ({"evaluate": {"min_areas": []}}, "evaluate.min_areas: must be a non-empty list of areas >= 0, got []"),
    ({"evaluate": {"batch_size": 0}}, "evaluate.batch_size: must be >= 1, got 0"),
    ({"pseudo": {"teacher": " "}}, "pseudo.teacher: must be null or an MLflow model URI, got ' '"),
    ({"pseudo": {"confidence": 0.5}}, "pseudo.confidence: must be in (0.5, 1], got 0.5"),
    ({"pseudo": {"confidence": 1.1}}, "pseudo.confidence: must be in (0.5, 1], got 1.1"),
    (
        {"pseudo": {"min_confident_fraction": 0}},
        "pseudo.min_confident_fraction: must be in (0, 1], got 0.0",
    ),
    ({"pseudo": {"max_images": 0}}, "pseudo.max_images: must be null or >= 1, got 0"),
    ({"pseudo": {"max_images": 2.5}}, "pseudo.max_images: expected int, got 2.5"),
    ({"train": {"threads": 0}}, "train.threads: must be >= 1, got 0"),
    (
        {"train": {"soft_targets": True}},
        "train.soft_targets: must be false unless loss_at is input, got True",
    ),
    ({"train": {"boundary_weight": -1}}, "train.boundary_weight: must be >= 0, got -1.0"),
    ({"runtime": {"num_workers": -2}}, "runtime.num_workers: must be >= 0, got -2"),
    ({"runtime": {"device": "gpu"}}, "runtime.device: must be auto, cpu, cuda or cuda:N, got 'gpu'"),
]


@pytest.mark.parametrize(("overlay", "message"), BAD_VALUES, ids=[m.split(":")[0] for _, m in BAD_VALUES])
def test_bad_value_is_one_line_naming_file_and_key(tmp_path, overlay, message):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(overlay))
    with pytest.raises(SaltError) as error:
        load_params(path)
    assert str(error.value) == f"{path}: {message}"


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:1"])
def test_valid_devices_are_accepted(device):
    assert params_from_dict({"runtime": {"device": device}}).runtime.device == device


def test_every_registered_model_is_a_known_name():
    from saltseg.models import MODELS

    assert sorted(MODELS) == sorted(MODEL_NAMES)


def test_loss_is_minimised_and_scores_are_maximised():
    assert oriented("val_loss", 0.2) > oriented("val_loss", 0.3)
    assert oriented("val_iou", 0.3) > oriented("val_iou", 0.2)
    assert oriented("val_score", 0.3) > oriented("val_score", 0.2)
