"""SEG-Y in and out with segyio: a 2-D line or a 3-D post-stack volume, one section at a time.

A section is float32 (samples, traces): time/depth down, traces across, as in the TGS
tiles. A 3-D volume must be sorted by inline or crossline with a regular grid (every
inline holds every crossline, one offset): segyio finds that geometry from the trace
headers (inline at byte 189, crossline at 193). A file without such a geometry is a
2-D line only when all its traces carry one inline number; otherwise it is an
irregular or unsorted volume and is refused.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import segyio

from saltseg.errors import SaltError
from saltseg.section.scaling import SAMPLE_CAP

SUFFIXES = (".sgy", ".segy")


def _open(path: Path) -> segyio.SegyFile:
    """The file opened as a 3-D volume if it has the geometry of one, else as a 2-D line."""
    try:
        return segyio.open(path, "r")
    except (RuntimeError, ValueError):
        pass  # no regular sorted geometry: a 2-D line, or an irregular volume (checked below)
    try:
        f = segyio.open(path, "r", ignore_geometry=True)
    except (RuntimeError, OSError, ValueError) as exc:
        raise SaltError(f"{path}: not a readable SEG-Y file ({str(exc).splitlines()[0]})") from None
    inlines = np.unique(f.attributes(segyio.TraceField.INLINE_3D)[:])
    if len(inlines) > 1:
        f.close()
        raise SaltError(
            f"{path}: irregular or unsorted geometry ({len(inlines)} inline numbers, but traces "
            "are not a regular inline/crossline grid sorted by either)"
        )
    return f


class SegyVolume:
    """A SEG-Y input: `shape` (sections, samples, traces); sections are inlines (3-D) or the line (2-D)."""

    pixels_input = False

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.file = _open(self.path)
        f = self.file
        self.is_3d = not f.unstructured
        if self.is_3d and len(f.offsets) > 1:
            f.close()
            raise SaltError(f"{path}: pre-stack ({len(f.offsets)} offsets); give a post-stack volume")
        n = len(f.samples)
        self.shape = (len(f.ilines), n, len(f.xlines)) if self.is_3d else (1, n, f.tracecount)

    def section(self, i: int) -> np.ndarray:
        """float32 (samples, traces): inline number i (counted from 0) or, in 2-D, the line."""
        data = self.file.iline[self.file.ilines[i]] if self.is_3d else self.file.trace.raw[:]
        return self._checked(data.T, f"inline {self.file.ilines[i]}" if self.is_3d else "line")

    def crossline(self, j: int) -> np.ndarray:
        """float32 (samples, inlines): crossline number j (counted from 0); 3-D only."""
        xline = self.file.xlines[j]
        return self._checked(self.file.xline[xline].T, f"crossline {xline}")

    def _checked(self, data: np.ndarray, where: str) -> np.ndarray:
        if not np.isfinite(data).all():
            raise SaltError(f"{self.path}: {where} has NaN or infinite samples")
        return np.ascontiguousarray(data, dtype=np.float32)

    def sample(self, values: int = SAMPLE_CAP) -> np.ndarray:
        """float32 amplitudes of evenly spaced traces, about `values` of them (all of a small file)."""
        f = self.file
        step = max(1, -(-f.tracecount * len(f.samples) // values))
        return np.stack([f.trace.raw[t] for t in range(0, f.tracecount, step)])

    def close(self) -> None:
        self.file.close()


class SegyWriter:
    """Writes sections into a new SEG-Y file with `source`'s geometry, binary and trace headers.

    Samples are stored as 4-byte IEEE floats (format 5) whatever the input's format, so
    probabilities survive; the textual header is replaced by `text` (up to 40 lines).
    """

    def __init__(self, path: Path, source: SegyVolume, text: list[str]) -> None:
        src = source.file
        spec = segyio.spec()
        spec.format, spec.samples, spec.endian = 5, src.samples, src.endian
        if source.is_3d:
            spec.ilines, spec.xlines, spec.offsets, spec.sorting = (
                src.ilines,
                src.xlines,
                src.offsets,
                src.sorting,
            )
        else:
            spec.tracecount = src.tracecount
        self.source, self.file = source, segyio.create(path, spec)
        dst = self.file
        dst.text[0] = segyio.tools.create_text_header({k + 1: line[:75] for k, line in enumerate(text[:40])})
        dst.bin = src.bin
        dst.bin.update({segyio.BinField.Format: 5, segyio.BinField.ExtendedHeaders: 0})
        for t in range(src.tracecount):
            dst.header[t] = src.header[t]

    def write(self, i: int, section: np.ndarray) -> None:
        """Section i (counted from 0), float (samples, traces), as `SegyVolume.section` returned it."""
        data = np.ascontiguousarray(np.asarray(section, dtype=np.float32).T)
        if self.source.is_3d:
            self.file.iline[self.source.file.ilines[i]] = data
        else:
            self.file.trace = data

    def close(self) -> None:
        self.file.close()
