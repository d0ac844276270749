"""The synthetic generator: deterministic files, real-like statistics, seismic-like images."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import ndimage

from saltseg.config import SynthConfig
from saltseg.data.synthetic import generate, ricker, synthesize
from saltseg.data.tgs import read_layout
from saltseg.errors import SaltError


@pytest.fixture(scope="module")
def dataset():
    """300 labelled tiles: enough for the statistics, ~3 s."""
    return synthesize(SynthConfig(seed=3, n_train=300, n_test=10))


def _files(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes(tmp_path):
    cfg = SynthConfig(seed=11, n_train=24, n_test=6)
    generate(cfg, tmp_path / "a")
    generate(cfg, tmp_path / "b")
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert len(a) == 2 + 24 * 2 + 6 and a == b
    generate(dataclasses.replace(cfg, seed=12), tmp_path / "c")
    c = _files(tmp_path / "c")
    assert c[next(iter(sorted(c)))] != a[next(iter(sorted(a)))] or set(c) != set(a)
    assert read_layout(tmp_path / "a").ids == tuple(sorted(read_layout(tmp_path / "a").ids))


def test_layout_is_valid_kaggle_layout(tmp_path):
    layout = generate(SynthConfig(seed=1, n_train=12, n_test=4), tmp_path / "s")
    back = read_layout(tmp_path / "s")  # validates names, RLE against masks, depths
    np.testing.assert_array_equal(back.images, layout.images)
    np.testing.assert_array_equal(back.masks, layout.masks)
    assert len(back.test_ids) == 4
    assert all(len(i) == 10 and int(i, 16) >= 0 for i in back.ids + back.test_ids)


def test_statistics(dataset):
    coverage = dataset.masks.mean(axis=(1, 2))
    assert abs((coverage == 0).mean() - 0.39) < 0.01
    assert (coverage < 1).all()  # no full masks
    salty = coverage[coverage > 0]
    counts, _ = np.histogram(salty, bins=10, range=(0, 1))
    assert (counts > 0).all() and counts.max() < 0.4 * len(salty)  # broad spread
    assert salty.min() < 0.02 and salty.max() > 0.9
    assert dataset.depths.min() >= 50 and dataset.depths.max() <= 959
    assert dataset.depths.max() - dataset.depths.min() > 600
    edges = dataset.masks[:, [0, -1], :].any(axis=(1, 2)) | dataset.masks[:, :, [0, -1]].any(axis=(1, 2))
    assert edges[coverage > 0].mean() > 0.7  # salt usually touches the tile edge, as in the real data
    assert abs(dataset.images.mean() - 128) < 10  # zero amplitude is mid-grey
    assert (dataset.images.max(axis=(1, 2)) == 0).sum() <= 0.05 * len(coverage)  # a few blank tiles


def test_salt_is_quiet_inside_with_a_bright_rim_but_not_a_brightness_threshold(dataset):
    images, masks = dataset.images.astype(np.float64), dataset.masks
    interior = ndimage.binary_erosion(masks, np.ones((1, 9, 9), bool))
    rim = masks & ~ndimage.binary_erosion(masks, np.ones((1, 3, 3), bool))
    sediment = ~ndimage.binary_dilation(masks, np.ones((1, 9, 9), bool))
    deviation = np.abs(images - 128)
    assert deviation[interior].mean() < 0.6 * deviation[sediment].mean()  # quiet interior
    assert deviation[rim].mean() > 1.2 * deviation[sediment].mean()  # bright boundary
    # Brightness alone does not separate salt: the mean grey levels are about the same.
    assert abs(images[masks].mean() - images[~masks].mean()) < 8


def test_ricker_wavelet():
    w = ricker(25.0, 0.004)
    assert w.argmax() == len(w) // 2 and w.max() == pytest.approx(1.0)
    np.testing.assert_allclose(w, w[::-1])
    assert w.min() < 0  # side lobes


def test_rejects_bad_config():
    with pytest.raises(SaltError, match="n_train: must be >= 1"):
        SynthConfig(n_train=0)
    with pytest.raises(SaltError, match="empty_fraction: must be in"):
        SynthConfig(empty_fraction=1.0)
