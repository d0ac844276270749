"""A large synthetic 2-D section and a small 3-D cube, with their true salt masks, as SEG-Y.

The geology and the physics are those of the tiles (saltseg.data.synthetic): layered,
folded, sometimes faulted sediments dragged up against the salt, homogeneous salt,
reflectivity convolved with a Ricker wavelet, gentle AGC and band-limited noise, with
the synth section's seed, fault probability and noise. Only the salt is drawn for a
wide canvas: a few diapirs rising from the bottom and sometimes a salt sheet, with
rough boundaries. The cube is 2.5-D: inline i is the section model seen through a
window shifted by i/2 traces, so structures strike obliquely across it. Amplitudes are
float32 ~[-1, 1] (not pixels), so prediction exercises the amplitude scaling. The same
seed gives the same bytes (test_synthetic_section.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import segyio
from scipy import ndimage

from saltseg.atomic import atomic_dir
from saltseg.config import SynthConfig
from saltseg.data.synthetic import (
    DT,
    MARGIN,
    SALT_IMPEDANCE,
    _impedance,
    _seismic,
    _smooth_noise,
    _structure,
)

SECTION_SHAPE = (400, 1000)  # samples x traces of the 2-D line
CUBE_SHAPE = (112, 160, 144)  # inlines x samples x crosslines: >= 101 inlines for --both-directions
_SECTION, _CUBE = 2, 3  # generator parts after the tiles' train (0) and test (1)
DEPTH = 500  # the tiles' depth in the compaction trend used for the whole section


def _diapir(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, cols: int) -> np.ndarray:
    """bool canvas: one salt diapir, a rounded top and a meandering stem down to the bottom."""
    rows = yy.shape[0]
    cx, half = rng.uniform(0.05, 0.95) * cols, rng.uniform(25, 110)
    top = MARGIN + rng.uniform(0.15, 0.6) * (rows - 2 * MARGIN)
    crown = top + rng.uniform(0.4, 1.2) * half * ((xx - cx) / half) ** 2
    stem = cx + rng.uniform(-0.3, 0.3) * (yy - top) + 10 * np.sin(yy / rng.uniform(30, 80))
    width = half * (1.0 - rng.uniform(0.0, 0.5) * np.clip((yy - top) / (rows - top), 0, 1))
    return (yy > crown) & (np.abs(xx - stem) < width)


def _sheet(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, cols: int) -> np.ndarray:
    """bool canvas: a salt sheet of tapering thickness across part of the section."""
    rows = yy.shape[0]
    x0 = rng.uniform(0, 0.6) * cols
    x1 = x0 + rng.uniform(0.2, 0.4) * cols
    mid = MARGIN + rng.uniform(0.3, 0.7) * (rows - 2 * MARGIN) + rng.uniform(-0.05, 0.05) * (xx - x0)
    taper = np.clip(np.minimum(xx - x0, x1 - xx) / 60.0, 0, 1)
    return np.abs(yy - mid) < rng.uniform(15, 40) * taper


def section_salt(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """bool canvas `shape` (rows incl. margins, traces): 2-4 diapirs and maybe a sheet, rough edges."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    salt = np.zeros(shape, dtype=bool)
    for _ in range(rng.integers(2, 5)):
        salt |= _diapir(rng, yy, xx, shape[1])
    if rng.random() < 0.6:
        salt |= _sheet(rng, yy, xx, shape[1])
    rough = 6.0 * _smooth_noise(rng, shape, 5.0)  # boundaries as ragged as the tiles' bodies
    signed = ndimage.distance_transform_edt(salt) - ndimage.distance_transform_edt(~salt)
    return signed + rough > 0


def make_section(rng: np.random.Generator, samples: int, traces: int, cfg: SynthConfig):
    """(amplitudes float32 (samples, traces) ~[-1, 1], true salt mask bool (samples, traces))."""
    shape = (samples + 2 * MARGIN, traces)
    salt = section_salt(rng, shape)
    impedance = _impedance(rng, _structure(rng, shape, cfg.fault_probability, salt), DEPTH)
    inside = SALT_IMPEDANCE * (1.0 + 0.003 * _smooth_noise(rng, shape, 6.0))
    amplitude = _seismic(rng, np.where(salt, inside, impedance), cfg.noise)
    return amplitude.astype(np.float32), salt[MARGIN:-MARGIN].copy()


def make_cube(rng: np.random.Generator, shape: tuple[int, int, int], cfg: SynthConfig):
    """(amplitudes float32 (inlines, samples, crosslines), true mask bool, same shape)."""
    inlines, samples, crosslines = shape
    amplitude, mask = make_section(rng, samples, crosslines + inlines // 2 + 1, cfg)
    shifts = [i // 2 for i in range(inlines)]
    cube = np.stack([amplitude[:, s : s + crosslines] for s in shifts])
    return cube, np.stack([mask[:, s : s + crosslines] for s in shifts])


def _text(title: str, cfg: SynthConfig) -> str:
    # segyio's default textual header carries today's date: a fixed one keeps the bytes reproducible.
    lines = {
        1: f"SALTSEG SYNTHETIC {title}",
        2: f"SEED {cfg.seed} NOISE {cfg.noise} FAULTS {cfg.fault_probability}",
    }
    return segyio.tools.create_text_header(lines | {3: f"SAMPLE INTERVAL {DT * 1e6:g} US"})


def write_line(path: Path, data: np.ndarray, title: str, cfg: SynthConfig) -> None:
    """A 2-D line: data (samples, traces) as 4-byte IEEE floats, CDP numbers and x every 12.5 m."""
    spec = segyio.spec()
    spec.format, spec.samples, spec.tracecount = 5, range(data.shape[0]), data.shape[1]
    with segyio.create(path, spec) as f:
        f.text[0] = _text(title, cfg)
        f.bin.update({segyio.BinField.Interval: int(DT * 1e6)})
        for t in range(data.shape[1]):
            f.header[t] = {
                segyio.TraceField.TRACE_SEQUENCE_LINE: t + 1,
                segyio.TraceField.CDP: t + 1,
                segyio.TraceField.CDP_X: 1250 * t,
                segyio.TraceField.SourceGroupScalar: -100,
                segyio.TraceField.TRACE_SAMPLE_INTERVAL: int(DT * 1e6),
            }
        f.trace = np.ascontiguousarray(data.T, dtype=np.float32)


def write_cube(path: Path, data: np.ndarray, title: str, cfg: SynthConfig) -> None:
    """A 3-D inline-sorted volume: data (inlines, samples, crosslines), inlines 1000.., crosslines 2000.."""
    inlines, samples, crosslines = data.shape
    spec = segyio.spec()
    spec.format, spec.samples, spec.sorting = 5, range(samples), segyio.TraceSortingFormat.INLINE_SORTING
    spec.ilines, spec.xlines = range(1000, 1000 + inlines), range(2000, 2000 + crosslines)
    with segyio.create(path, spec) as f:
        f.text[0] = _text(title, cfg)
        f.bin.update({segyio.BinField.Interval: int(DT * 1e6)})
        for i in range(inlines):
            for j in range(crosslines):
                f.header[i * crosslines + j] = {
                    segyio.TraceField.INLINE_3D: 1000 + i,
                    segyio.TraceField.CROSSLINE_3D: 2000 + j,
                    segyio.TraceField.CDP_X: 2500 * j,
                    segyio.TraceField.CDP_Y: 2500 * i,
                    segyio.TraceField.SourceGroupScalar: -100,
                    segyio.TraceField.TRACE_SAMPLE_INTERVAL: int(DT * 1e6),
                }
            f.iline[1000 + i] = np.ascontiguousarray(data[i].T, dtype=np.float32)


def generate_sections(
    cfg: SynthConfig,
    out: Path,
    section: tuple[int, int] = SECTION_SHAPE,
    cube: tuple[int, int, int] = CUBE_SHAPE,
) -> dict[str, np.ndarray]:
    """Write section.sgy, section_mask.sgy, cube.sgy, cube_mask.sgy to the folder `out` (atomically).

    Returns the arrays: section (samples, traces), cube (inlines, samples, crosslines), masks alike.
    """
    amplitude, mask = make_section(np.random.default_rng([cfg.seed, _SECTION]), *section, cfg)
    volume, volume_mask = make_cube(np.random.default_rng([cfg.seed, _CUBE]), cube, cfg)
    with atomic_dir(out) as tmp:
        write_line(tmp / "section.sgy", amplitude, "SECTION AMPLITUDE", cfg)
        write_line(tmp / "section_mask.sgy", mask.astype(np.float32), "SECTION TRUE SALT MASK", cfg)
        write_cube(tmp / "cube.sgy", volume, "CUBE AMPLITUDE", cfg)
        write_cube(tmp / "cube_mask.sgy", volume_mask.astype(np.float32), "CUBE TRUE SALT MASK", cfg)
    return {"section": amplitude, "section_mask": mask, "cube": volume, "cube_mask": volume_mask}
