"""params.yaml -> typed config, and named configurations applied to it."""

from pathlib import Path

import pytest

from saltseg.config import Params, StageConfig, flat_params, load_params, params_from_dict
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
    with pytest.raises(SaltError, match=r"params\.train: unknown key\(s\) epochs"):
        params_from_dict({"train": {"epochs": 3}})


def test_wrong_type_is_named():
    with pytest.raises(SaltError, match=r"params\.model\.depth: expected int"):
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


def test_flat_params_are_dotted_and_cover_the_stages():
    flat = flat_params(Params())
    assert flat["model.name"] == "preact_resunet"
    assert flat["train.stages.1.loss"] == "lovasz"
