"""Checks against the real TGS files in ../shared/tgs (skipped when they are absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from saltseg.config import SplitConfig
from saltseg.data import rle
from saltseg.data.folds import fold_indices, load_folds, make_folds, write_folds
from saltseg.data.ingest import ingest
from saltseg.data.prepared import load_prepared, prepare
from saltseg.data.tgs import read_csv_table, read_gray, read_test_images

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "tgs"

pytestmark = [
    pytest.mark.real,
    pytest.mark.skipif(not (REAL / "train.csv").is_file(), reason=f"real TGS data not found at {REAL}"),
]


def test_train_csv_rle_equals_the_16_bit_mask_pngs():
    table = read_csv_table(REAL / "train.csv", ("id", "rle_mask"))
    assert len(table) == 3200
    empty = 0
    for key, text in table.items():
        png = read_gray(REAL / "train" / "masks" / f"{key}.png")  # 16-bit 0/65535 (empty ones are 8-bit)
        assert set(np.unique(png)) <= {0, 255}, key
        np.testing.assert_array_equal(rle.decode(text), png > 0, err_msg=key)
        assert rle.encode(png > 0) == text.strip(), key
        empty += not text.strip()
    assert 0.35 < empty / len(table) < 0.43


@pytest.mark.slow
def test_ingest_prepare_split(tmp_path):
    layout = ingest(REAL, tmp_path / "raw")
    assert len(layout.ids) == 3200 and len(layout.test_ids) == 1000
    ids, images = read_test_images(tmp_path / "raw")
    assert len(ids) == 1000 and images.dtype == np.uint8
    prepared = prepare(tmp_path / "raw", tmp_path / "train.npz")
    loaded = load_prepared(tmp_path / "train.npz")
    np.testing.assert_array_equal(loaded.masks, prepared.masks)
    assert loaded.depths.min() >= 50 and loaded.depths.max() <= 959
    assert not (loaded.coverage == 1).any()
    folds = make_folds(loaded.ids, loaded.coverage, SplitConfig())
    write_folds(folds, tmp_path / "folds.csv")
    train, val = fold_indices(loaded.ids, load_folds(tmp_path / "folds.csv"), 0)
    assert len(train) + len(val) == 3200 and 600 <= len(val) <= 680
