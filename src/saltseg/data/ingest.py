"""Turn a TGS download (zip or folder) into the canonical raw-data folder.

Accepted sources:
  * Kaggle's competition zip: train.csv, depths.csv, train.zip (images/, masks/),
    test.zip (images/), sample_submission.csv -- zips nested in a zip;
  * a zip of an already unpacked folder (train/images/..., possibly under one top folder);
  * an unpacked folder, in either form.
Everything is validated (saltseg.data.tgs.read_layout) before anything is written, and
the output is written atomically with normalised PNGs (8-bit L images, 0/255 masks).
"""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path

from saltseg.data.tgs import Layout, read_layout, write_layout
from saltseg.errors import SaltError

_INNER_ZIPS = {"train.zip": "train", "test.zip": "test"}


def _extract(archive: Path, dest: Path) -> None:
    """Extract a zip; ZipFile.extractall drops '..' and absolute prefixes (no zip-slip)."""
    try:
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(dest)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as exc:
        raise SaltError(f"{archive}: not a readable zip file ({exc})") from None


def _find_root(top: Path, source: Path) -> Path:
    """The folder holding train.csv: `top` itself or a folder at most two levels below."""
    candidates = [top / "train.csv", *sorted(top.glob("*/train.csv")), *sorted(top.glob("*/*/train.csv"))]
    candidates = [c for c in candidates if c.is_file() and "__MACOSX" not in c.parts]
    if not candidates:
        raise SaltError(f"{source}: no train.csv found (expected the TGS competition files)")
    return candidates[0].parent


def _images_parent(unpacked: Path) -> Path:
    """Where images/ lives inside an unpacked train.zip or test.zip (top or one folder down)."""
    for candidate in [unpacked, *sorted(p for p in unpacked.iterdir() if p.is_dir())]:
        if (candidate / "images").is_dir():
            return candidate
    return unpacked


def _unpack_inner(root: Path, work: Path, source: Path) -> Path:
    """Build a Kaggle layout in `work` from `root`, unpacking train.zip/test.zip where present.

    Files are linked (symlinks), not copied: the result is only read, then rewritten.
    """
    layout = work / "layout"
    layout.mkdir()
    for name in ("train.csv", "depths.csv"):
        if (root / name).is_file():
            (layout / name).symlink_to((root / name).resolve())
    for zip_name, part in _INNER_ZIPS.items():
        if (root / part).is_dir():
            (layout / part).symlink_to((root / part).resolve(), target_is_directory=True)
        elif (root / zip_name).is_file():
            unpacked = work / f"unpacked_{part}"
            _extract(root / zip_name, unpacked)
            (layout / part).symlink_to(_images_parent(unpacked).resolve(), target_is_directory=True)
        else:
            raise SaltError(f"{source}: neither {part}/ nor {zip_name} found next to train.csv")
    return layout


def read_source(src: str | Path) -> Layout:
    """Read and validate a TGS download (zip or folder, see the module docstring)."""
    src = Path(src)
    if not src.exists():
        raise SaltError(f"{src}: no such file or folder")
    with tempfile.TemporaryDirectory(prefix="saltseg-ingest-") as tmp:
        work = Path(tmp)
        if src.is_dir():
            top = src
        else:
            if not zipfile.is_zipfile(src):
                raise SaltError(f"{src}: not a zip file or a folder")
            top = work / "outer"
            _extract(src, top)
        root = _find_root(top, src)
        layout_dir = _unpack_inner(root, work, src)
        shown = root if src.is_dir() else src / root.relative_to(top)
        try:
            return read_layout(layout_dir)
        except SaltError as exc:
            # Name the user's source (a path inside the zip), not the temporary folder.
            raise SaltError(str(exc).replace(str(layout_dir), str(shown))) from None


def ingest(src: str | Path, out: str | Path) -> Layout:
    """Validate the TGS download `src` and write the canonical raw-data folder `out`."""
    layout = read_source(src)
    write_layout(out, layout)
    return layout
