"""The Kaggle folder layout: read it (validating everything), write it atomically.

    D/train.csv            id,rle_mask   (RLE of the mask, see saltseg.data.rle)
    D/depths.csv           id,z          (train and test ids)
    D/train/images/<id>.png, D/train/masks/<id>.png, D/test/images/<id>.png

Readers accept the PNG modes found in the wild (8-bit L, RGB with three equal
channels as in the real TGS images, 16-bit masks with 0/65535) and return uint8.
Every problem becomes a one-line SaltError naming the file.
"""

from __future__ import annotations

import csv
import io
import re
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from saltseg.atomic import atomic_dir
from saltseg.data import rle
from saltseg.errors import SaltError

SIZE = 101  # every TGS tile is 101x101 pixels
_SAFE_ID = re.compile(r"[A-Za-z0-9_-]+")  # ids become file names: no separators, no dots
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_TRAILER = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the empty IEND chunk with its CRC
_PNG_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error)


def _empty_images() -> np.ndarray:
    return np.zeros((0, SIZE, SIZE), dtype=np.uint8)


@dataclass(frozen=True, eq=False)
class Layout:
    """The content of a Kaggle layout folder, ids sorted.

    images uint8 (N,101,101), masks bool (N,101,101), depths int32 (N,);
    test_images uint8 (M,101,101), test_depths int32 (M,).
    """

    ids: tuple[str, ...]
    images: np.ndarray
    masks: np.ndarray
    depths: np.ndarray
    test_ids: tuple[str, ...] = ()
    test_images: np.ndarray = field(default_factory=_empty_images)
    test_depths: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))

    def __post_init__(self) -> None:
        n, m = len(self.ids), len(self.test_ids)
        for name, arr, shape, dtype in (
            ("images", self.images, (n, SIZE, SIZE), np.uint8),
            ("masks", self.masks, (n, SIZE, SIZE), np.bool_),
            ("depths", self.depths, (n,), np.int32),
            ("test_images", self.test_images, (m, SIZE, SIZE), np.uint8),
            ("test_depths", self.test_depths, (m,), np.int32),
        ):
            if arr.shape != shape or arr.dtype != dtype:
                raise ValueError(
                    f"Layout.{name}: expected {np.dtype(dtype)} {shape}, got {arr.dtype} {arr.shape}"
                )
        everything = list(self.ids) + list(self.test_ids)
        if len(set(everything)) != len(everything):
            raise ValueError("Layout: ids are not unique")
        bad = [i for i in everything if not _SAFE_ID.fullmatch(i)]
        if bad:
            raise ValueError(f"Layout: ids unsafe as file names: {bad[:3]}")


def read_gray(path: str | Path) -> np.ndarray:
    """Read a PNG as uint8 (H,W), whatever its mode.

    L as is; RGB/RGBA only when the three colour channels are equal; 16-bit (I;16, I)
    scaled with ceil(v/257), so 65535 -> 255 and any nonzero value stays nonzero.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SaltError(f"{path}: file not found") from None
    except OSError as exc:
        raise SaltError(f"{path}: cannot read ({exc})") from None
    # PIL decodes a PNG cut just before its end without complaint: insist on the IEND trailer.
    if data[:8] == _PNG_SIGNATURE and not data.endswith(_PNG_TRAILER):
        raise SaltError(f"{path}: not a readable PNG (truncated: no IEND chunk at the end)")
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.format != "PNG":
                raise SaltError(f"{path}: not a readable PNG (format {im.format})")
            im.load()
            if im.mode == "P":
                im = im.convert("RGBA")
            mode, arr = im.mode, np.array(im)
    except _PNG_ERRORS as exc:
        raise SaltError(f"{path}: not a readable PNG ({exc})") from None
    return _to_gray(arr, mode, path)


def _to_gray(arr: np.ndarray, mode: str, path: Path) -> np.ndarray:
    """A decoded PNG of PIL mode `mode` -> uint8 (H,W)."""
    if mode == "L":
        return arr
    if mode == "1":
        return arr.astype(np.uint8) * 255
    if mode == "LA":
        return np.ascontiguousarray(arr[..., 0])
    if mode in ("RGB", "RGBA"):
        rgb = arr[..., :3]
        if not ((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 0] == rgb[..., 2]).all()):
            raise SaltError(f"{path}: colour image (RGB channels differ); expected grayscale")
        return np.ascontiguousarray(rgb[..., 0])
    if mode.startswith("I"):
        wide = arr.astype(np.int64)
        if wide.size and (wide.min() < 0 or wide.max() > 65535):
            raise SaltError(f"{path}: pixel values outside 0..65535 in a {mode} PNG")
        return ((wide + 256) // 257).astype(np.uint8)
    raise SaltError(f"{path}: unsupported PNG mode {mode}")


def read_tile(path: Path) -> np.ndarray:
    """read_gray that also insists on 101x101."""
    arr = read_gray(path)
    if arr.shape != (SIZE, SIZE):
        raise SaltError(f"{path}: image is {arr.shape[1]}x{arr.shape[0]}, expected {SIZE}x{SIZE}")
    return arr


def read_csv_table(path: Path, columns: tuple[str, str]) -> dict[str, str]:
    """Two-column CSV with a header -> {id: value}; ids checked for duplicates and safety."""
    if not path.is_file():
        raise SaltError(f"{path}: file not found")
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            rows = [row for row in csv.reader(f) if row]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise SaltError(f"{path}: not a readable CSV ({exc})") from None
    if not rows or [c.strip() for c in rows[0]] != list(columns):
        raise SaltError(
            f"{path}: header is {','.join(rows[0]) if rows else '(empty file)'}, expected {','.join(columns)}"
        )
    table: dict[str, str] = {}
    for lineno, row in enumerate(rows[1:], start=2):
        if len(row) != 2:
            raise SaltError(f"{path}: line {lineno}: expected 2 fields, got {len(row)}")
        key = row[0].strip()
        if not _SAFE_ID.fullmatch(key):
            raise SaltError(f"{path}: line {lineno}: invalid id {key!r}")
        if key in table:
            raise SaltError(f"{path}: duplicate id {key} (line {lineno})")
        table[key] = row[1].strip()
    return table


def _read_depths(path: Path) -> dict[str, int]:
    depths = {}
    for key, value in read_csv_table(path, ("id", "z")).items():
        try:
            depths[key] = int(value)
        except ValueError:
            raise SaltError(f"{path}: id {key}: depth {value!r} is not an integer") from None
    return depths


def _png_files(folder: Path) -> dict[str, Path]:
    """{id: path} of the PNGs in `folder`; the file names must be valid ids."""
    if not folder.is_dir():
        raise SaltError(f"{folder}: folder not found")
    files = {p.stem: p for p in sorted(folder.glob("*.png"))}
    bad = next((p for key, p in files.items() if not _SAFE_ID.fullmatch(key)), None)
    if bad is not None:
        raise SaltError(f"{bad}: file name is not a valid id (letters, digits, '_' and '-')")
    return files


def _check_train_files(folder: Path, ids: list[str], images: dict[str, Path], masks: dict[str, Path]) -> None:
    """Every listed id has an image and a mask; no image or mask is unlisted or orphaned."""
    listed = set(ids)
    for key in ids:
        if key not in images:
            raise SaltError(
                f"{folder / 'train' / 'images' / f'{key}.png'}: missing (id {key} is in train.csv)"
            )
        if key not in masks:
            raise SaltError(f"{images[key]}: image has no mask {folder / 'train' / 'masks' / f'{key}.png'}")
    for key, path in masks.items():
        if key not in images:
            raise SaltError(f"{path}: mask has no image {folder / 'train' / 'images' / f'{key}.png'}")
    for key, path in images.items():
        if key not in listed:
            raise SaltError(f"{path}: id {key} is not in {folder / 'train.csv'}")


def _check_depths(path: Path, depths: dict[str, int], ids: list[str], kind: str) -> None:
    missing = [key for key in ids if key not in depths]
    if missing:
        raise SaltError(f"{path}: no depth for {len(missing)} {kind} id(s), e.g. {', '.join(missing[:3])}")


def read_test_images(folder: str | Path) -> tuple[list[str], np.ndarray]:
    """folder/test/images/*.png -> (ids sorted, uint8 (N,101,101))."""
    files = _png_files(Path(folder) / "test" / "images")
    if not files:
        raise SaltError(f"{Path(folder) / 'test' / 'images'}: no PNG files")
    ids = sorted(files)
    images = np.stack([read_tile(files[key]) for key in ids])
    return ids, images


def read_test_depths(folder: str | Path, ids: list[str]) -> np.ndarray:
    """folder/depths.csv -> int32 (N,) depths of `ids`, in their order; SaltError naming a missing one."""
    path = Path(folder) / "depths.csv"
    depths = _read_depths(path)
    _check_depths(path, depths, ids, "test")
    return np.array([depths[k] for k in ids], dtype=np.int32)


def _decode_all(train_csv: Path) -> dict[str, np.ndarray]:
    """train.csv -> {id: bool (101,101) mask decoded from its RLE}."""
    decoded = {}
    for key, text in read_csv_table(train_csv, ("id", "rle_mask")).items():
        try:
            decoded[key] = rle.decode(text, (SIZE, SIZE))
        except SaltError as exc:
            raise SaltError(f"{train_csv}: id {key}: {exc}") from None
    return decoded


def _read_masks(
    ids: list[str], files: dict[str, Path], decoded: dict[str, np.ndarray], train_csv: Path
) -> np.ndarray:
    """Mask PNGs -> bool (N,101,101), each checked against the RLE in train.csv."""
    masks = np.zeros((len(ids), SIZE, SIZE), dtype=bool)
    for i, key in enumerate(ids):
        masks[i] = read_tile(files[key]) > 0
        differ = int((masks[i] != decoded[key]).sum())
        if differ:
            raise SaltError(
                f"{files[key]}: mask disagrees with the RLE of id {key} in {train_csv} ({differ} pixels)"
            )
    return masks


def _read_images(ids: list[str], files: dict[str, Path]) -> np.ndarray:
    return np.stack([read_tile(files[key]) for key in ids]) if ids else _empty_images()


def read_layout(folder: str | Path, test: bool = True) -> Layout:
    """Read and validate a Kaggle layout folder (the test part only when `test`).

    Names, ids and depths are all checked before any PNG is decoded, so the common
    mistakes fail fast.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise SaltError(f"{folder}: folder not found")
    train_csv, depths_csv = folder / "train.csv", folder / "depths.csv"
    decoded = _decode_all(train_csv)
    depths = _read_depths(depths_csv)
    ids = sorted(decoded)
    image_files, mask_files = _png_files(folder / "train" / "images"), _png_files(folder / "train" / "masks")
    _check_train_files(folder, ids, image_files, mask_files)
    _check_depths(depths_csv, depths, ids, "train")
    test_files: dict[str, Path] = _png_files(folder / "test" / "images") if test else {}
    test_ids = sorted(test_files)
    both = sorted(set(test_ids) & set(ids))
    if both:
        raise SaltError(f"{test_files[both[0]]}: duplicate id {both[0]} is also a train id")
    _check_depths(depths_csv, depths, test_ids, "test")
    return Layout(
        ids=tuple(ids),
        images=_read_images(ids, image_files),
        masks=_read_masks(ids, mask_files, decoded, train_csv),
        depths=np.array([depths[k] for k in ids], dtype=np.int32),
        test_ids=tuple(test_ids),
        test_images=_read_images(test_ids, test_files),
        test_depths=np.array([depths[k] for k in test_ids], dtype=np.int32),
    )


def _save_png(array: np.ndarray, path: Path) -> None:
    Image.fromarray(array).save(path, format="PNG")


def write_layout(folder: str | Path, layout: Layout) -> None:
    """Write `layout` as a Kaggle layout folder, atomically (old folder kept on failure).

    Images and masks are 8-bit L PNGs (masks 0/255); train.csv holds the RLE of each mask.
    """
    with atomic_dir(folder) as tmp:
        for sub in ("train/images", "train/masks", "test/images"):
            (tmp / sub).mkdir(parents=True)
        lines = ["id,rle_mask"]
        for key, image, mask in zip(layout.ids, layout.images, layout.masks, strict=True):
            _save_png(image, tmp / "train" / "images" / f"{key}.png")
            _save_png(mask.astype(np.uint8) * 255, tmp / "train" / "masks" / f"{key}.png")
            lines.append(f"{key},{rle.encode(mask)}")
        (tmp / "train.csv").write_text("\n".join(lines) + "\n")
        for key, image in zip(layout.test_ids, layout.test_images, strict=True):
            _save_png(image, tmp / "test" / "images" / f"{key}.png")
        depth_lines = ["id,z"]
        for key, z in zip(
            layout.ids + layout.test_ids, np.concatenate([layout.depths, layout.test_depths]), strict=True
        ):
            depth_lines.append(f"{key},{int(z)}")
        (tmp / "depths.csv").write_text("\n".join(depth_lines) + "\n")
