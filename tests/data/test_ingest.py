"""Ingest: competition zip (nested zips), zip of a folder, folder; bad input writes nothing."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from saltseg.data.ingest import ingest
from saltseg.data.tgs import read_layout, write_layout
from saltseg.errors import SaltError


def _png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _zip_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def _kaggle_zip(path: Path, layout, as_rgb_and_16_bit: bool = True) -> Path:
    """Kaggle's competition zip: csv files next to train.zip (images/, masks/) and test.zip (images/).

    Like the real download: RGB images with equal channels, 16-bit 0/65535 masks.
    """
    train, test = {}, {}
    for key, image, mask in zip(layout.ids, layout.images, layout.masks, strict=True):
        train[f"images/{key}.png"] = _png_bytes(np.dstack([image] * 3) if as_rgb_and_16_bit else image)
        train[f"masks/{key}.png"] = _png_bytes(mask.astype(np.uint16) * 65535)
    for key, image in zip(layout.test_ids, layout.test_images, strict=True):
        test[f"images/{key}.png"] = _png_bytes(np.dstack([image] * 3))
    source = path.parent / "source"
    write_layout(source, layout)
    path.write_bytes(
        _zip_bytes(
            {
                "train.csv": (source / "train.csv").read_bytes(),
                "depths.csv": (source / "depths.csv").read_bytes(),
                "sample_submission.csv": b"id,rle_mask\n",
                "train.zip": _zip_bytes(train),
                "test.zip": _zip_bytes(test),
            }
        )
    )
    return path


def _assert_same(folder: Path, layout) -> None:
    back = read_layout(folder)
    assert back.ids == layout.ids and back.test_ids == layout.test_ids
    np.testing.assert_array_equal(back.images, layout.images)
    np.testing.assert_array_equal(back.masks, layout.masks)
    np.testing.assert_array_equal(back.depths, layout.depths)
    np.testing.assert_array_equal(back.test_images, layout.test_images)
    for png in folder.rglob("*.png"):  # normalised: 8-bit grayscale everywhere
        assert Image.open(png).mode == "L"


def test_ingest_competition_zip_with_nested_zips(tmp_path, layout):
    archive = _kaggle_zip(tmp_path / "tgs-salt-identification-challenge.zip", layout)
    out = tmp_path / "raw"
    ingest(archive, out)
    _assert_same(out, layout)
    assert sorted(p.name for p in out.iterdir()) == ["depths.csv", "test", "train", "train.csv"]


def test_ingest_zip_of_unpacked_folder(tmp_path, layout_dir, layout):
    archive = tmp_path / "folder.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(layout_dir.rglob("*")):
            zf.write(path, Path("tgs") / path.relative_to(layout_dir))  # one top folder, as zip tools do
    ingest(archive, tmp_path / "raw")
    _assert_same(tmp_path / "raw", layout)


def test_ingest_folder_and_unpacked_download(tmp_path, layout_dir, layout):
    ingest(layout_dir, tmp_path / "raw")
    _assert_same(tmp_path / "raw", layout)
    download = tmp_path / "download"
    with zipfile.ZipFile(_kaggle_zip(tmp_path / "c.zip", layout)) as zf:
        zf.extractall(download)  # the csv files unpacked, train.zip and test.zip not yet
    ingest(download, tmp_path / "raw2")
    _assert_same(tmp_path / "raw2", layout)


def test_ingest_replaces_an_existing_output(tmp_path, layout_dir, layout):
    out = tmp_path / "raw"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    ingest(layout_dir, out)
    assert not (out / "stale.txt").exists()
    _assert_same(out, layout)


def test_bad_zip_errors_name_the_zip(tmp_path, layout):
    archive = _kaggle_zip(tmp_path / "comp.zip", layout)
    with zipfile.ZipFile(archive) as zf:
        files = {name: zf.read(name) for name in zf.namelist()}
    lines = files["train.csv"].decode().splitlines()
    files["train.csv"] = "\n".join("tr001,1 2 3" if x.startswith("tr001,") else x for x in lines).encode()
    (tmp_path / "bad.zip").write_bytes(_zip_bytes(files))
    with pytest.raises(SaltError, match=r"bad\.zip/train\.csv: id tr001: .*odd") as info:
        ingest(tmp_path / "bad.zip", tmp_path / "raw")
    assert "saltseg-ingest" not in str(info.value)  # no temporary paths in the message
    assert not (tmp_path / "raw").exists()


def test_not_a_zip_or_missing(tmp_path):
    (tmp_path / "junk.zip").write_text("not a zip")
    with pytest.raises(SaltError, match=r"junk\.zip: not a zip file"):
        ingest(tmp_path / "junk.zip", tmp_path / "raw")
    with pytest.raises(SaltError, match=r"absent: no such file"):
        ingest(tmp_path / "absent", tmp_path / "raw")
    (tmp_path / "empty.zip").write_bytes(_zip_bytes({"readme.txt": b"hi"}))
    with pytest.raises(SaltError, match=r"empty\.zip: no train\.csv found"):
        ingest(tmp_path / "empty.zip", tmp_path / "raw")
    (tmp_path / "half.zip").write_bytes(_zip_bytes({"train.csv": b"id,rle_mask\n", "depths.csv": b"id,z\n"}))
    with pytest.raises(SaltError, match=r"half\.zip: neither train/ nor train\.zip"):
        ingest(tmp_path / "half.zip", tmp_path / "raw")
    assert not (tmp_path / "raw").exists()
