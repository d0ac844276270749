"""prepare -> one .npz with the contracted fields; load_prepared checks it."""

from __future__ import annotations

import numpy as np
import pytest

from saltseg.data.prepared import FIELDS, load_prepared, prepare
from saltseg.errors import SaltError


def test_prepare_and_load(tmp_path, layout_dir, layout):
    out = tmp_path / "prepared" / "train.npz"
    written = prepare(layout_dir, out)
    loaded = load_prepared(out)
    assert len(loaded) == len(written) == len(layout.ids)
    assert loaded.images.dtype == np.uint8 and loaded.images.shape == (8, 101, 101)
    assert loaded.masks.dtype == bool and loaded.masks.shape == (8, 101, 101)
    assert loaded.depths.dtype == np.int32 and loaded.coverage.dtype == np.float32
    assert loaded.ids.dtype.kind == "U" and list(loaded.ids) == sorted(layout.ids)
    np.testing.assert_array_equal(loaded.images, layout.images)
    np.testing.assert_array_equal(loaded.masks, layout.masks)
    np.testing.assert_allclose(loaded.coverage, layout.masks.mean(axis=(1, 2)), rtol=1e-6)
    assert (loaded.coverage == 0).sum() == 2


def test_prepare_ignores_the_test_part(tmp_path, layout_dir):
    for png in (layout_dir / "test" / "images").iterdir():
        png.unlink()
    (layout_dir / "test" / "images").rmdir()
    assert len(prepare(layout_dir, tmp_path / "train.npz")) == 8


def test_prepare_bad_input_keeps_the_old_file(tmp_path, layout_dir):
    out = tmp_path / "train.npz"
    prepare(layout_dir, out)
    before = out.read_bytes()
    (layout_dir / "train" / "masks" / "tr002.png").unlink()
    with pytest.raises(SaltError, match=r"tr002\.png: image has no mask"):
        prepare(layout_dir, out)
    assert out.read_bytes() == before
    with pytest.raises(SaltError, match="tr002"):
        prepare(layout_dir, tmp_path / "new.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["layout", "train.npz"]


def test_load_errors_name_the_file(tmp_path, layout_dir):
    with pytest.raises(SaltError, match=r"absent\.npz: prepared file not found"):
        load_prepared(tmp_path / "absent.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip at all")
    with pytest.raises(SaltError, match=r"junk\.npz: not a readable \.npz"):
        load_prepared(tmp_path / "junk.npz")
    good = prepare(layout_dir, tmp_path / "good.npz")
    data = (tmp_path / "good.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(SaltError, match=r"cut\.npz: not a readable"):
        load_prepared(tmp_path / "cut.npz")
    arrays = {name: getattr(good, name) for name in FIELDS if name != "coverage"}
    with (tmp_path / "partial.npz").open("wb") as f:
        np.savez(f, **arrays)
    with pytest.raises(SaltError, match=r"partial\.npz: missing field\(s\) coverage"):
        load_prepared(tmp_path / "partial.npz")
    with (tmp_path / "floaty.npz").open("wb") as f:
        np.savez(f, **{**arrays, "coverage": good.coverage, "images": good.images.astype(np.float32)})
    with pytest.raises(SaltError, match=r"floaty\.npz: field images is float32"):
        load_prepared(tmp_path / "floaty.npz")
    with (tmp_path / "pickled.npz").open("wb") as f:
        np.savez(f, **{**arrays, "coverage": good.coverage, "ids": good.ids.astype(object)})
    with pytest.raises(SaltError, match=r"pickled\.npz: not a readable"):  # allow_pickle=False
        load_prepared(tmp_path / "pickled.npz")
