"""PNG readers, the Kaggle layout reader/writer and every validation error it raises."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from saltseg.data.ingest import ingest
from saltseg.data.rle import encode
from saltseg.data.tgs import read_gray, read_layout, read_test_images, write_layout
from saltseg.errors import SaltError


def _gradient(shape=(101, 101)) -> np.ndarray:
    return (np.arange(np.prod(shape)) % 256).astype(np.uint8).reshape(shape)


def test_read_gray_l(tmp_path):
    Image.fromarray(_gradient()).save(tmp_path / "l.png")
    out = read_gray(tmp_path / "l.png")
    assert out.dtype == np.uint8 and out.shape == (101, 101)
    np.testing.assert_array_equal(out, _gradient())


def test_read_gray_rgb_with_equal_channels(tmp_path):
    Image.fromarray(np.stack([_gradient()] * 3, axis=-1)).save(tmp_path / "rgb.png")
    np.testing.assert_array_equal(read_gray(tmp_path / "rgb.png"), _gradient())


def test_read_gray_rgb_with_unequal_channels_names_the_file(tmp_path):
    rgb = np.stack([_gradient()] * 3, axis=-1)
    rgb[5, 5, 1] += 1
    Image.fromarray(rgb).save(tmp_path / "colour.png")
    with pytest.raises(SaltError, match=r"colour\.png: colour image"):
        read_gray(tmp_path / "colour.png")


@pytest.mark.parametrize("dtype", ["<u2", ">u2"])  # I;16 and I;16B arrays, both 16-bit PNGs
def test_read_gray_16_bit_mask(tmp_path, dtype):
    mask = np.zeros((101, 101), dtype=dtype)
    mask[10:20, 30:40] = 65535
    mask[50, 50] = 1  # any nonzero value is salt
    Image.fromarray(mask).save(tmp_path / "m16.png")
    assert Image.open(tmp_path / "m16.png").mode.startswith("I")
    out = read_gray(tmp_path / "m16.png")
    assert out.dtype == np.uint8
    assert set(np.unique(out)) == {0, 1, 255}
    np.testing.assert_array_equal(out > 0, mask > 0)
    assert (out[10:20, 30:40] == 255).all()


def test_read_gray_truncated_png(tmp_path):
    Image.fromarray(_gradient()).save(tmp_path / "cut.png")
    data = (tmp_path / "cut.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(SaltError, match=r"cut\.png: not a readable PNG"):
        read_gray(tmp_path / "cut.png")


def test_read_gray_not_a_png(tmp_path):
    (tmp_path / "junk.png").write_text("hello")
    with pytest.raises(SaltError, match=r"junk\.png: not a readable PNG"):
        read_gray(tmp_path / "junk.png")
    Image.fromarray(_gradient()).save(tmp_path / "photo.png", format="JPEG")
    with pytest.raises(SaltError, match=r"photo\.png: not a readable PNG \(format JPEG\)"):
        read_gray(tmp_path / "photo.png")
    with pytest.raises(SaltError, match=r"absent\.png: file not found"):
        read_gray(tmp_path / "absent.png")


def test_write_then_read_layout_round_trip(layout_dir, layout):
    back = read_layout(layout_dir)
    assert back.ids == layout.ids and back.test_ids == layout.test_ids
    np.testing.assert_array_equal(back.images, layout.images)
    np.testing.assert_array_equal(back.masks, layout.masks)
    np.testing.assert_array_equal(back.depths, layout.depths)
    np.testing.assert_array_equal(back.test_images, layout.test_images)
    np.testing.assert_array_equal(back.test_depths, layout.test_depths)
    mask_png = Image.open(layout_dir / "train" / "masks" / f"{layout.ids[1]}.png")
    assert mask_png.mode == "L" and set(np.unique(np.asarray(mask_png))) <= {0, 255}
    header, first = (layout_dir / "train.csv").read_text().splitlines()[:2]
    assert header == "id,rle_mask" and first == f"{layout.ids[0]},{encode(layout.masks[0])}"
    ids, images = read_test_images(layout_dir)
    assert ids == list(layout.test_ids)
    np.testing.assert_array_equal(images, layout.test_images)


def test_train_part_only(layout_dir):
    (layout_dir / "test" / "images" / "te000.png").unlink()
    (layout_dir / "depths.csv").write_text(
        "\n".join(
            line for line in (layout_dir / "depths.csv").read_text().splitlines() if "te001" not in line
        )
    )
    assert len(read_layout(layout_dir, test=False).test_ids) == 0
    with pytest.raises(SaltError, match="depths.csv: no depth for 1 test id"):
        read_layout(layout_dir)


def test_read_test_images_errors(tmp_path, layout_dir):
    with pytest.raises(SaltError, match="folder not found"):
        read_test_images(tmp_path / "nothing")
    Image.fromarray(np.zeros((64, 101), dtype=np.uint8)).save(layout_dir / "test" / "images" / "te001.png")
    with pytest.raises(SaltError, match=r"te001\.png: image is 101x64, expected 101x101"):
        read_test_images(layout_dir)


def test_write_layout_failure_keeps_the_old_folder(tmp_path, layout):
    out = tmp_path / "out"
    write_layout(out, layout)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    broken = np.zeros_like(layout.images, dtype=object)  # PIL cannot save object arrays
    with pytest.raises(Exception):  # noqa: B017 -- any failure half-way through
        write_layout(out, _replace(layout, images=broken))
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary folder left behind


def _replace(layout, **changes):
    # Layout validates dtypes in __post_init__; bypass it to simulate a failure while writing.
    clone = object.__new__(type(layout))
    for name in ("ids", "images", "masks", "depths", "test_ids", "test_images", "test_depths"):
        object.__setattr__(clone, name, changes.get(name, getattr(layout, name)))
    return clone


def _edit_csv(path: Path, edit) -> None:
    lines = path.read_text().splitlines()
    path.write_text("\n".join(edit(lines)) + "\n")


def _set_rle(key: str, rle: str):
    return lambda d: _edit_csv(
        d / "train.csv", lambda ls: [f"{key},{rle}" if x.startswith(f"{key},") else x for x in ls]
    )


def _drop_row(name: str, key: str):
    return lambda d: _edit_csv(d / name, lambda ls: [x for x in ls if not x.startswith(f"{key},")])


def _add_row(name: str, row: str | int):
    return lambda d: _edit_csv(d / name, lambda ls: [*ls, ls[row] if isinstance(row, int) else row])


def _save(rel: str, array: np.ndarray):
    return lambda d: Image.fromarray(array).save(d / rel)


def _truncate(rel: str, keep: int):
    return lambda d: (d / rel).write_bytes((d / rel).read_bytes()[:keep])


def _remove(rel: str):
    return lambda d: shutil.rmtree(d / rel) if (d / rel).is_dir() else (d / rel).unlink()


_BLANK = np.zeros((101, 101), np.uint8)
_COLOUR = np.dstack([_BLANK, _BLANK + 1, _BLANK])

# (name, how to break a valid folder, regex the error must match: the file and the problem)
BAD_INPUTS = [
    ("odd RLE", _set_rle("tr001", "1 2 3"), r"train\.csv: id tr001: .*odd"),
    ("RLE out of range", _set_rle("tr001", "10200 5"), r"train\.csv: id tr001: .*past"),
    ("RLE disagrees", _set_rle("tr001", "1 5"), r"masks/tr001\.png: mask disagrees .*train\.csv"),
    (
        "image not 101x101",
        _save("train/images/tr002.png", _BLANK[:100]),
        r"images/tr002\.png: image is 101x100",
    ),
    (
        "mask not 101x101",
        _save("train/masks/tr000.png", _BLANK[:, :99]),
        r"masks/tr000\.png: image is 99x101",
    ),
    ("mask without image", _save("train/masks/extra.png", _BLANK), r"masks/extra\.png: mask has no image"),
    ("image without mask", _remove("train/masks/tr003.png"), r"images/tr003\.png: image has no mask"),
    (
        "image not listed",
        _save("train/images/extra.png", _BLANK),
        r"images/extra\.png: id extra is not in .*train",
    ),
    ("truncated PNG", _truncate("train/images/tr004.png", 60), r"images/tr004\.png: not a readable PNG"),
    ("truncated mask", _truncate("train/masks/tr005.png", 100), r"masks/tr005\.png: not a readable PNG"),
    (
        "truncated test PNG",
        _truncate("test/images/te002.png", 8),
        r"test/images/te002\.png: not a readable PNG",
    ),
    (
        "listed id without files",
        _add_row("train.csv", "zz999,"),
        r"images/zz999\.png: missing \(id zz999 is in",
    ),
    (
        "no depth for a train id",
        _drop_row("depths.csv", "tr005"),
        r"depths\.csv: no depth for 1 train id.*tr005",
    ),
    (
        "no depth for a test id",
        _drop_row("depths.csv", "te000"),
        r"depths\.csv: no depth for 1 test id.*te000",
    ),
    ("duplicate train id", _add_row("train.csv", 1), r"train\.csv: duplicate id tr000"),
    ("duplicate depth id", _add_row("depths.csv", 2), r"depths\.csv: duplicate id tr001"),
    (
        "test id is a train id",
        _save("test/images/tr000.png", _BLANK),
        r"test/images/tr000\.png: duplicate id",
    ),
    (
        "bad depth value",
        _add_row("depths.csv", "zz0,deep"),
        r"depths\.csv: id zz0: depth 'deep' is not an integer",
    ),
    ("bad id", _add_row("train.csv", "../x,"), r"train\.csv: line 10: invalid id '\.\./x'"),
    (
        "bad header",
        lambda d: _edit_csv(d / "train.csv", lambda ls: ["id,mask", *ls[1:]]),
        r"train\.csv: header is id,mask",
    ),
    ("missing depths.csv", _remove("depths.csv"), r"depths\.csv: file not found"),
    ("missing masks folder", _remove("train/masks"), r"train/masks: folder not found"),
    ("colour image", _save("train/images/tr006.png", _COLOUR), r"images/tr006\.png: colour image"),
    (
        "bad file name",
        _save("train/images/a.b.png", _BLANK),
        r"images/a\.b\.png: file name is not a valid id",
    ),
]


@pytest.mark.parametrize(("name", "breaker", "pattern"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_is_named_and_nothing_is_written(tmp_path, layout_dir, name, breaker, pattern):
    breaker(layout_dir)
    with pytest.raises(SaltError, match=pattern) as info:
        read_layout(layout_dir)
    assert "\n" not in str(info.value)
    fresh, existing = tmp_path / "fresh", tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("previous output")
    for out in (fresh, existing):
        with pytest.raises(SaltError, match=pattern):
            ingest(layout_dir, out)
    assert not fresh.exists()
    assert [p.name for p in existing.iterdir()] == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing", "layout"]  # no temporary folders
