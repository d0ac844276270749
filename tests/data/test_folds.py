"""Coverage classes and stratified folds."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from saltseg.config import SplitConfig
from saltseg.data.folds import (
    TEST_FOLD,
    coverage_class,
    development,
    fold_indices,
    held_out_indices,
    held_out_set,
    load_folds,
    make_folds,
    train_steps,
    write_folds,
)
from saltseg.errors import SaltError


def _coverage(n: int, seed: int = 0) -> np.ndarray:
    """39% empty, the rest spread over (0, 1) like the real set."""
    rng = np.random.default_rng(seed)
    cov = rng.uniform(0.001, 0.999, n)
    cov[rng.random(n) < 0.39] = 0
    return cov


def test_coverage_class_by_hand():
    cov = np.array([0.0, 1e-4, 0.05, 0.1, 0.1001, 0.3, 0.55, 0.95, 1.0])
    np.testing.assert_array_equal(coverage_class(cov, 11), [0, 1, 1, 1, 2, 3, 6, 10, 10])
    np.testing.assert_array_equal(coverage_class(cov, 2), [0, 1, 1, 1, 1, 1, 1, 1, 1])
    with pytest.raises(SaltError, match="coverage_classes"):
        coverage_class(cov, 1)
    with pytest.raises(SaltError, match=r"\[0, 1\]"):
        coverage_class(np.array([0.5, np.nan]), 11)


def test_every_id_in_exactly_one_fold_and_stratified():
    ids = [f"{i:05d}" for i in range(1000)]
    cfg = SplitConfig()
    folds = make_folds(ids, _coverage(1000), cfg)
    assert list(folds.columns) == ["id", "fold", "coverage_class"]
    assert list(folds["id"]) == ids and folds["id"].is_unique
    assert sorted(folds["fold"].unique()) == list(cfg.folds)
    sizes = folds["fold"].value_counts()
    assert sizes.max() - sizes.min() <= 2
    overall = folds["coverage_class"].value_counts(normalize=True)
    for _, part in folds.groupby("fold"):
        share = part["coverage_class"].value_counts(normalize=True).reindex(overall.index, fill_value=0)
        assert (share - overall).abs().max() < 0.02


def test_reproducible_with_the_seed():
    ids, cov = [f"id{i}" for i in range(200)], _coverage(200, seed=1)
    a = make_folds(ids, cov, SplitConfig(seed=5))
    pd.testing.assert_frame_equal(a, make_folds(ids, cov, SplitConfig(seed=5)))
    assert not a["fold"].equals(make_folds(ids, cov, SplitConfig(seed=6))["fold"])


def test_rare_classes_are_merged_without_warnings():
    cov = np.concatenate([np.zeros(20), np.full(2, 0.05), np.full(30, 0.5), np.full(1, 0.97)])
    ids = [f"id{i}" for i in range(len(cov))]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # StratifiedKFold warns when a class is smaller than K
        folds = make_folds(ids, cov, SplitConfig(folds=(0, 1, 2, 3, 4)))
    assert folds["coverage_class"].tolist().count(10) == 1  # the reported class is the true one
    assert folds["fold"].value_counts().min() >= 10


def test_custom_fold_labels_and_errors():
    ids, cov = [f"id{i}" for i in range(30)], _coverage(30)
    folds = make_folds(ids, cov, SplitConfig(folds=(3, 7, 9)))
    assert sorted(folds["fold"].unique()) == [3, 7, 9]
    with pytest.raises(SaltError, match="folds: must be at least 2 fold ids"):
        SplitConfig(folds=(1,))
    with pytest.raises(SaltError, match="cannot fill 5 folds"):
        make_folds(ids[:3], cov[:3], SplitConfig())
    with pytest.raises(SaltError, match="not unique"):
        make_folds(["a", "a", "b", "c", "d"], cov[:5], SplitConfig())


def test_write_load_and_indices(tmp_path):
    ids = np.array([f"{i:04d}" for i in range(50)])  # numeric-looking ids keep their zeros
    folds = make_folds(ids, _coverage(50), SplitConfig(folds=(0, 1)))
    path = tmp_path / "folds.csv"
    write_folds(folds, path)
    loaded = load_folds(path)
    pd.testing.assert_frame_equal(loaded, folds, check_dtype=False)
    assert loaded.attrs["source"] == str(path)
    shuffled = ids[::-1]
    train, val = fold_indices(shuffled, loaded, 1)
    assert train.dtype == np.int64 and len(train) + len(val) == 50
    assert set(shuffled[val]) == set(folds.loc[folds["fold"] == 1, "id"])
    assert not set(train) & set(val)


def test_fold_indices_errors(tmp_path):
    ids = [f"id{i}" for i in range(20)]
    path = tmp_path / "folds.csv"
    write_folds(make_folds(ids, _coverage(20), SplitConfig(folds=(0, 1))), path)
    folds = load_folds(path)
    with pytest.raises(SaltError, match=r"folds\.csv: no fold 4; the folds are \[0, 1\]"):
        fold_indices(ids, folds, 4)
    with pytest.raises(
        SaltError, match=r"folds\.csv: ids do not match .*1 prepared id\(s\) without a fold, e\.g\. new"
    ):
        fold_indices([*ids, "new"], folds, 0)
    with pytest.raises(SaltError, match=r"1 fold id\(s\) not prepared, e\.g\. id0"):
        fold_indices(ids[1:], folds, 0)


def test_load_folds_errors(tmp_path):
    with pytest.raises(SaltError, match=r"none\.csv: folds file not found"):
        load_folds(tmp_path / "none.csv")
    (tmp_path / "cols.csv").write_text("id,fold\na,0\n")
    with pytest.raises(SaltError, match=r"cols\.csv: missing column\(s\) coverage_class"):
        load_folds(tmp_path / "cols.csv")
    (tmp_path / "dup.csv").write_text("id,fold,coverage_class\na,0,0\na,1,0\n")
    with pytest.raises(SaltError, match=r"dup\.csv: duplicate id a"):
        load_folds(tmp_path / "dup.csv")
    (tmp_path / "text.csv").write_text("id,fold,coverage_class\na,x,0\n")
    with pytest.raises(SaltError, match=r"text\.csv: column fold must hold integers"):
        load_folds(tmp_path / "text.csv")


def test_test_set_is_carved_first_stratified_and_seeded():
    ids, cov = [f"id{i:04d}" for i in range(1000)], _coverage(1000)
    cfg = SplitConfig(test_fraction=0.1)
    folds = make_folds(ids, cov, cfg)
    held = folds["fold"] == TEST_FOLD
    assert held.sum() == 100
    # Stratified: the test set has the data's share of empty masks (39%) within a point or two.
    assert abs((folds.loc[held, "coverage_class"] == 0).mean() - (cov == 0).mean()) < 0.02
    assert sorted(folds.loc[~held, "fold"].unique()) == list(cfg.folds)
    assert folds.equals(make_folds(ids, cov, cfg)), "seeded: the same split every time"
    other = make_folds(ids, cov, SplitConfig(test_fraction=0.1, seed=7))
    assert set(other.loc[other["fold"] == TEST_FOLD, "id"]) != set(folds.loc[held, "id"])


def test_without_a_test_set_the_folds_are_as_before():
    """test_fraction 0 (the default) must not move a single image: committed runs stay valid."""
    from sklearn.model_selection import StratifiedKFold

    ids, cov = [f"id{i:04d}" for i in range(200)], _coverage(200)
    folds = make_folds(ids, cov, SplitConfig())
    classes = coverage_class(cov, 11)
    expected = np.empty(200, dtype=np.int64)
    splitter = StratifiedKFold(n_splits=5, shuffle=True, random_state=42)
    for j, (_, val) in enumerate(splitter.split(np.zeros(200), classes)):
        expected[val] = j
    assert (folds["fold"] != TEST_FOLD).all()
    np.testing.assert_array_equal(folds["fold"], expected)


def test_no_fold_trains_or_validates_on_the_test_set(tmp_path):
    from saltseg.data.prepared import Prepared

    n = 60
    ids = np.array([f"id{i:03d}" for i in range(n)])
    cov = _coverage(n)
    prepared = Prepared(
        images=np.zeros((n, 101, 101), np.uint8), masks=np.zeros((n, 101, 101), bool),
        depths=np.arange(n, dtype=np.int32), ids=ids, coverage=cov.astype(np.float32),
    )  # fmt: skip
    write_folds(make_folds(ids, cov, SplitConfig(folds=(0, 1, 2), test_fraction=0.2)), tmp_path / "f.csv")
    folds = load_folds(tmp_path / "f.csv")
    held = set(ids[held_out_indices(ids, folds)])
    assert len(held) == 12
    for k in (0, 1, 2):
        train, val = fold_indices(ids, folds, k)
        assert not held & set(ids[train]) and not held & set(ids[val])
    with pytest.raises(SaltError, match="no fold -1"):
        fold_indices(ids, folds, TEST_FOLD)
    dev, dev_folds = development(prepared, folds)
    assert len(dev) == n - 12 and not held & set(dev.ids)
    assert dev.fingerprint == prepared.fingerprint, "a subset keeps its data set's identity"
    assert fold_indices(dev.ids, dev_folds, 0)[1].size == fold_indices(ids, folds, 0)[1].size
    assert set(held_out_set(prepared, folds).ids) == held


def test_train_steps_count_each_folds_whole_batches_without_the_test_set():
    # 3 test images, folds 0/1/2 of 4, 3 and 5 images: fold 0 trains on 8, fold 1 on 9, fold 2 on 7.
    folds_df = pd.DataFrame(
        {"id": list("abcdefghijklmno"), "fold": [-1] * 3 + [0] * 4 + [1] * 3 + [2] * 5, "coverage_class": 0}
    )
    assert train_steps(folds_df, [0, 1, 2], batch_size=4, epochs=1) == 2 + 2 + 1
    assert train_steps(folds_df, [0, 1, 2], batch_size=4, epochs=3) == 15
    assert train_steps(folds_df, [1], batch_size=2, epochs=1) == 4  # the ninth image waits for the next epoch
    # No more images than a batch: one step an epoch, as the loader gives them.
    assert train_steps(folds_df, [0], batch_size=8, epochs=2) == 2
    assert train_steps(folds_df, [2], batch_size=64, epochs=2) == 2
