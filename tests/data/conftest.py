"""Fixtures for the data tests: tiny Kaggle layouts written by the tests themselves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from saltseg.data.tgs import SIZE, Layout, write_layout


def small_layout(n_train: int = 8, n_test: int = 3, seed: int = 0) -> Layout:
    """Random images; every fourth mask empty, the others a random rectangle (never full)."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((n_train, SIZE, SIZE), dtype=bool)
    for i in range(n_train):
        if i % 4:
            top, left = rng.integers(0, 60, size=2)
            height, width = rng.integers(5, 40, size=2)
            masks[i, top : top + height, left : left + width] = True
    return Layout(
        ids=tuple(f"tr{i:03d}" for i in range(n_train)),
        images=rng.integers(0, 256, (n_train, SIZE, SIZE), dtype=np.uint8),
        masks=masks,
        depths=rng.integers(50, 960, n_train).astype(np.int32),
        test_ids=tuple(f"te{i:03d}" for i in range(n_test)),
        test_images=rng.integers(0, 256, (n_test, SIZE, SIZE), dtype=np.uint8),
        test_depths=rng.integers(50, 960, n_test).astype(np.int32),
    )


@pytest.fixture
def layout() -> Layout:
    return small_layout()


@pytest.fixture
def layout_dir(tmp_path: Path, layout: Layout) -> Path:
    """A valid Kaggle layout folder with 8 train (2 empty) and 3 test tiles."""
    folder = tmp_path / "layout"
    write_layout(folder, layout)
    return folder
