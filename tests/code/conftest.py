"""Fixtures for the code tests."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tiny_training import blocky_salt


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> tuple[Path, Path]:
    """A prepared .npz and a 2-fold CSV in the formats `prepare` and `split` write."""
    folder = tmp_path_factory.mktemp("tiny_data")
    images, masks = blocky_salt(48)
    ids = np.array([f"img{i:03d}" for i in range(len(images))])
    prepared = folder / "train.npz"
    np.savez(
        prepared,
        images=images,
        masks=masks,
        depths=np.arange(len(images), dtype=np.int32) + 100,
        ids=ids,
        coverage=masks.mean((1, 2)).astype(np.float32),
    )
    folds = folder / "folds.csv"
    pd.DataFrame({"id": ids, "fold": np.arange(len(ids)) % 2, "coverage_class": 0}).to_csv(folds, index=False)
    return prepared, folds
