"""Sections from .npy and grey PNG files, and .npy/PNG outputs written a section at a time.

An .npy holds one section (samples, traces) or a volume (inlines, samples, crosslines);
it is memory-mapped, so a volume is read one section at a time. uint8 arrays and PNGs
are pixels 0..255 taken as is; other numeric arrays are amplitudes to be scaled.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image
from scipy import ndimage

from saltseg.errors import SaltError
from saltseg.section.scaling import SAMPLE_CAP

SUFFIXES = (".npy", ".png")
OUTLINE_RGB = (255, 40, 40)


def _load(path: Path) -> np.ndarray:
    try:
        if path.suffix.lower() == ".png":
            with Image.open(path) as image:
                return np.asarray(image.convert("L"))
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise SaltError(f"{path}: cannot read it ({str(exc).splitlines()[0]})") from None
    if array.ndim not in (2, 3) or not (np.issubdtype(array.dtype, np.number) and array.dtype.kind != "c"):
        raise SaltError(f"{path}: expected a real 2-D or 3-D array, got {array.dtype} {array.shape}")
    return array


class ArrayVolume:
    """An .npy or PNG input: `shape` (sections, samples, traces)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.array = _load(self.path)
        self.is_3d = self.array.ndim == 3
        self.pixels_input = self.array.dtype == np.uint8
        self.shape = self.array.shape if self.is_3d else (1, *self.array.shape)

    def section(self, i: int) -> np.ndarray:
        """float32 (samples, traces): section i of a volume, or the 2-D section."""
        return self._checked(self.array[i] if self.is_3d else self.array, f"section {i}")

    def crossline(self, j: int) -> np.ndarray:
        """float32 (samples, inlines) at crossline index j; volumes only."""
        return self._checked(self.array[:, :, j].T, f"crossline {j}")

    def _checked(self, data: np.ndarray, where: str) -> np.ndarray:
        data = np.asarray(data, dtype=np.float32)
        if not np.isfinite(data).all():
            raise SaltError(f"{self.path}: {where} has NaN or infinite samples")
        return data

    def sample(self, values: int = SAMPLE_CAP) -> np.ndarray:
        """float32 amplitudes of evenly spaced traces (2-D) or sections (3-D), about `values` of them."""
        step = max(1, -(-self.array.size // values))
        return np.asarray(self.array[::step] if self.is_3d else self.array[:, ::step], dtype=np.float32)

    def close(self) -> None:
        pass


class NpyWriter:
    """Writes sections (samples, traces) one after another into an .npy of `shape` and `dtype`."""

    def __init__(self, path: Path, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.file: BinaryIO = open(path, "wb")  # noqa: SIM115 - closed by close()
        self.dtype = np.dtype(dtype)
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": shape}
        np.lib.format.write_array_header_1_0(self.file, header)
        self.next = 0

    def write(self, i: int, section: np.ndarray) -> None:
        if i != self.next:
            raise ValueError(f"sections must come in order: expected {self.next}, got {i}")
        self.file.write(np.ascontiguousarray(section, dtype=self.dtype).tobytes())
        self.next += 1

    def close(self) -> None:
        self.file.close()


def write_overlay(path: Path, pixels: np.ndarray, mask: np.ndarray) -> None:
    """RGB PNG: the section `pixels` (H, W) 0..255 in grey, the outline of bool `mask` (H, W) in red."""
    grey = np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
    rgb = np.repeat(grey[:, :, None], 3, axis=2)
    outline = mask & ~ndimage.binary_erosion(mask, iterations=1, border_value=1)
    rgb[outline] = OUTLINE_RGB
    Image.fromarray(rgb).save(path, format="PNG")
