"""Named profiles resolve to the same complete parameters whatever was applied before."""

import itertools
from pathlib import Path

import pytest

from saltseg.config import Params, StageConfig, load_params
from saltseg.errors import SaltError
from saltseg.profiles import apply_profile, label, resolve

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"
PROFILES = sorted(p.stem for p in CONFIGS.glob("*.yaml"))


@pytest.fixture
def params_file(tmp_path) -> Path:
    target = tmp_path / "params.yaml"
    target.write_text((ROOT / "params.yaml").read_text())
    return target


@pytest.mark.parametrize(("before", "after"), list(itertools.product(PROFILES, PROFILES)))
def test_profile_resolves_the_same_after_any_other(params_file, before, after):
    apply_profile(params_file, CONFIGS / f"{before}.yaml")
    apply_profile(params_file, CONFIGS / f"{after}.yaml")
    assert load_params(params_file) == resolve(CONFIGS / f"{after}.yaml")
    assert load_params(params_file).profile == after


def test_seed_profile_is_exactly_the_seed():
    seed = resolve(CONFIGS / "seed-full.yaml")
    assert (seed.model.name, seed.model.fit, seed.model.input_size) == ("preact_resunet", "resize", 128)
    assert (seed.model.depth, seed.model.start_filters) == (4, 16)
    assert seed.train.batch_size == 64
    assert seed.train.stages == (StageConfig("bce", 80, 0.001), StageConfig("lovasz", 80, 0.0005))
    aug = seed.augment
    assert aug.hflip > 0 and aug.crop_resize > 0 and aug.rotate > 0 and aug.roll > 0 and aug.vflip == 0
    assert aug.rotate_limit == 10.0
    assert seed.split.folds == (0, 1, 2, 3, 4)
    assert seed.data.source == "data"


def test_default_profile_is_the_committed_params(params_file):
    apply_profile(params_file, CONFIGS / "seed-full.yaml")
    apply_profile(params_file, CONFIGS / "default.yaml")
    assert params_file.read_text() == (ROOT / "params.yaml").read_text()  # comments and layout too
    assert load_params(params_file) == Params()


def test_changed_keys_are_reported_and_comments_kept(params_file):
    changed = apply_profile(params_file, CONFIGS / "real-cpu.yaml")
    assert "data.source" in changed and "train.stages" in changed and "model.start_filters" not in changed
    text = params_file.read_text()
    assert "source: data" in text and "# Kaggle-layout folder to train on" in text


@pytest.mark.parametrize("profile", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_profile_reads_back_as_itself(params_file, profile):
    apply_profile(params_file, profile)
    assert load_params(params_file) == resolve(profile)


def test_label_says_when_params_were_edited_by_hand(params_file):
    apply_profile(params_file, CONFIGS / "real-cpu.yaml")
    params = load_params(params_file)
    assert label(params, CONFIGS) == "real-cpu"
    edited = params_file.read_text().replace("batch_size: 32", "batch_size: 16", 1)
    params_file.write_text(edited)
    assert label(load_params(params_file), CONFIGS) == "real-cpu+edits"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model:\n  dept: 3\n", "bad.yaml: unknown key model.dept"),
        ("model:\n  depth: deep\n", "bad.yaml: model.depth: expected int"),
        ("train:\n  batch_size: 0\n", r"bad.yaml: train.batch_size: must be >= 1, got 0$"),
        (
            "train:\n  stages:\n    - {loss: bce, epochs: -3, lr: 0.1}\n",
            r"bad.yaml: train.stages\[0\].epochs: must be >= 1, got -3$",
        ),
        ("train:\n  monitor: val_loss_typo\n", "bad.yaml: train.monitor: unknown 'val_loss_typo'; valid: "),
        ("model: [\n", "bad.yaml: not valid YAML"),
        ("profile: other\n", "bad.yaml: unknown key profile"),
        ("- 1\n", "bad.yaml: a profile is a mapping"),
    ],
)
def test_bad_profile_is_one_line_and_leaves_params_untouched(params_file, tmp_path, text, message):
    before = params_file.read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(SaltError, match=message):
        apply_profile(params_file, bad)
    assert params_file.read_text() == before
