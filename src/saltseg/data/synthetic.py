"""A synthetic seismic dataset in the Kaggle layout, built the way seismic images form.

Per tile: a layered sediment acoustic-impedance model (impedance rising with depth,
folded or dipping layers of random thickness, sometimes a normal fault, layers dragged
up against the salt), an amorphous salt body (4.5 km/s, 2.14 g/cc: impedance 9.6e6,
homogeneous inside), reflectivity r = (Z2 - Z1) / (Z2 + Z1) down each trace, a Ricker
wavelet (~25 Hz) convolved along depth, a gentle automatic gain control, band-limited
noise and a random display gain. The salt shows as a quiet region with a bright rim,
and sediments can be quiet too, so brightness alone does not give it away.

Statistics follow the real set roughly: `empty_fraction` of the masks empty, no full
masks, coverage spread broadly over non-empty masks, depths 50..959 (deeper tiles a
little more likely to hold salt), ~2% of all tiles black (and empty). Each tile draws
from its own generator seeded by (seed, part, index): the same seed gives the same
bytes in every file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.fft
from scipy import ndimage

from saltseg.config import SynthConfig
from saltseg.data.tgs import SIZE, Layout, write_layout

SALT_IMPEDANCE = 4500.0 * 2140.0  # velocity (m/s) x density (kg/m3) = 9.63e6
DT = 0.003  # seconds of two-way time per pixel row: a 25 Hz wavelet period spans ~13 rows
RICKER_HZ = 25.0
MARGIN = 24  # rows modelled above and below the tile so the wavelet and AGC see context
AGC_FLOOR = 0.04  # in units of reflectivity x wavelet; the median sediment envelope is ~0.027
BLANK_FRACTION = 0.05  # of the empty tiles: ~80 of the 4,000 real tiles (2%) are all black
DEPTH_RANGE = (50, 959)
_TRAIN, _TEST = 0, 1


def ricker(freq: float = RICKER_HZ, dt: float = DT) -> np.ndarray:
    """Zero-phase Ricker wavelet, float64 (2K+1,), peak 1, sampled every `dt` seconds."""
    half = int(np.ceil(1.5 / (freq * dt)))  # beyond 1.5 periods the wavelet is ~1e-9
    t = np.arange(-half, half + 1) * dt
    arg = (np.pi * freq * t) ** 2
    return (1.0 - 2.0 * arg) * np.exp(-arg)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float | tuple) -> np.ndarray:
    """Gaussian-smoothed white noise with zero mean and unit std, float64 `shape`.

    Smoothed in the Fourier domain (periodic edges): wide kernels cost no more than narrow ones.
    """
    # Padded to FFT-friendly sizes (101 and 149 are prime), which also hides the wrap-around.
    padded = tuple(1 if n == 1 else scipy.fft.next_fast_len(n + 16, real=True) for n in shape)
    spectrum = ndimage.fourier_gaussian(scipy.fft.rfft2(rng.standard_normal(padded)), sigma, n=padded[1])
    field = scipy.fft.irfft2(spectrum, s=padded)[: shape[0], : shape[1]]
    return (field - field.mean()) / (field.std() + 1e-12)


def _salt_level(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """A level function over the canvas (low = salt) from one of four body families."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    x, y = xx / (SIZE - 1), (yy - MARGIN) / (SIZE - 1)  # tile spans 0..1 in both
    family = rng.choice(["dome", "sheet", "flank", "amorphous"], p=[0.35, 0.2, 0.3, 0.15])
    if family == "dome":  # diapir or dome: a superellipse, often centred off the tile
        cx, cy = rng.uniform(-0.3, 1.3), rng.uniform(0.3, 1.6)
        a, b, n = rng.uniform(0.2, 1.0), rng.uniform(0.3, 1.3), rng.uniform(1.5, 4.0)
        level = (np.abs(x - cx) / a) ** n + (np.abs(y - cy) / b) ** n
        level = level ** (1.0 / n)
    elif family == "sheet":  # a salt sheet or canopy crossing the tile
        mid = rng.uniform(0.0, 1.0) + rng.uniform(-0.4, 0.4) * (x - 0.5)
        mid = mid + 0.15 * _smooth_noise(rng, (1, shape[1]), (0, 25))
        level = np.abs(y - mid) / (1.0 + 0.3 * _smooth_noise(rng, (1, shape[1]), (0, 20)))
    elif family == "flank":  # a salt wall or top seen up close: a curved half-plane
        angle = rng.uniform(0, np.pi)
        along = -np.sin(angle) * (x - 0.5) + np.cos(angle) * (y - 0.5)
        level = np.cos(angle) * (x - 0.5) + np.sin(angle) * (y - 0.5) + rng.uniform(-1.5, 1.5) * along**2
        level = level * rng.choice([-1.0, 1.0])
    else:  # amorphous: a smooth random field, salt favouring depth
        level = _smooth_noise(rng, shape, rng.uniform(10, 25)) + rng.uniform(0.0, 2.0) * (0.5 - y)
    tile = level[MARGIN : MARGIN + SIZE]
    level = (level - np.median(tile)) / (tile.std() + 1e-12)
    return level + rng.uniform(0.02, 0.12) * _smooth_noise(rng, shape, rng.uniform(4.0, 8.0))


def _draw_coverage(rng: np.random.Generator) -> float:
    """Salt fraction of a non-empty tile: many small ones, the rest spread up to 97%."""
    return rng.uniform(0.003, 0.1) if rng.random() < 0.25 else rng.uniform(0.1, 0.97)


def _salt_body(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """bool canvas `shape`: one salt body covering a drawn fraction of the tile rows."""
    level = _salt_level(rng, shape)
    cut = np.quantile(level[MARGIN : MARGIN + SIZE], _draw_coverage(rng))
    salt = level < cut
    labels, count = ndimage.label(salt)
    if count > 1:  # drop specks the boundary noise cut off: real masks are clean polygons
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        keep = sizes >= 30
        keep[np.argmax(sizes)] = True
        salt = keep[labels]
    return salt


def _structure(
    rng: np.random.Generator, shape: tuple[int, int], fault_p: float, salt: np.ndarray | None
) -> np.ndarray:
    """Structural depth u (float64 canvas): the depth each point had when it was deposited."""
    rows, cols = shape
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float64)
    fold = rng.uniform(-0.3, 0.3) * (xx - cols / 2)  # regional dip, up to ~17 degrees
    fold += rng.uniform(0, 6) * np.sin(2 * np.pi * xx / rng.uniform(60, 300) + rng.uniform(0, 2 * np.pi))
    fold += rng.uniform(0, 4) * _smooth_noise(rng, (1, cols), (0, 15))
    u = yy - fold * (0.5 + yy / rows)  # deeper layers folded more (growth strata)
    if rng.random() < fault_p:  # a normal fault: the hanging wall slides down its plane
        x0, steep = rng.uniform(10, cols - 10), np.tan(np.radians(rng.uniform(55, 75)))
        side = np.sign(rng.uniform(-1, 1)) * ((xx - x0) - (yy - rows / 2) / steep) > 0
        u -= rng.uniform(3, 15) * side
    if salt is not None and salt.any():  # sediments dragged up against the salt
        distance = ndimage.distance_transform_edt(~salt)
        u += rng.uniform(0, 10) * np.exp(-distance / rng.uniform(5, 15))
    return u


def _impedance(rng: np.random.Generator, u: np.ndarray, depth: int) -> np.ndarray:
    """Sediment impedance (float64 canvas, kg/(m2 s)) from layers along the structural depth u."""
    lo, hi = float(u.min()) - 1, float(u.max()) + 1
    mean_thickness = rng.uniform(2.5, 7.0)
    count = int((hi - lo) / mean_thickness * 3) + 8
    tops = lo + np.cumsum(rng.gamma(2.0, mean_thickness / 2.0, count))
    contrast = rng.normal(0, rng.uniform(0.04, 0.1), count + 1)
    if rng.random() < 0.5:  # a transparent unit (e.g. massive shale): sediments can be quiet too
        start = rng.integers(0, count)
        contrast[start : start + rng.integers(3, 8)] *= 0.05
    layer = np.searchsorted(tops, u)
    lateral = 1.0 + 0.4 * _smooth_noise(rng, u.shape, (6, 20))  # reflectors fade and brighten sideways
    rows = np.arange(u.shape[0], dtype=np.float64)[:, None] - MARGIN
    velocity = 1700.0 + 1.6 * (depth - DEPTH_RANGE[0]) + 3.0 * rows  # compaction: faster with depth
    density = 310.0 * velocity**0.25  # Gardner's relation, kg/m3
    return velocity * density * (1.0 + contrast[layer] * lateral)


def _seismic(rng: np.random.Generator, impedance: np.ndarray, noise: float) -> np.ndarray:
    """Impedance canvas -> float64 tile (101,101), or section without the margins: reflectivity,
    wavelet, AGC, noise, scaled to ~[-1,1]."""
    refl = np.zeros_like(impedance)
    refl[:-1] = (impedance[1:] - impedance[:-1]) / (impedance[1:] + impedance[:-1])
    wavelet = ricker(rng.uniform(0.8, 1.2) * RICKER_HZ)
    trace = ndimage.convolve1d(refl, wavelet, axis=0, mode="nearest")
    envelope = ndimage.gaussian_filter(np.abs(trace), (8, 4))
    # Gentle AGC. The floor is fixed (~1.5x a typical sediment envelope), not taken from the
    # tile, because real AGC windows are longer than a tile: quiet salt must stay quiet.
    trace = trace / (envelope + AGC_FLOOR)
    trace = trace[MARGIN : len(trace) - MARGIN]  # the tile's rows (a section's in synthetic_section)
    trace = trace / (np.quantile(np.abs(trace), 0.99) + 1e-12)
    colored = ndimage.convolve1d(rng.standard_normal(trace.shape), wavelet, axis=0, mode="reflect")
    colored = ndimage.gaussian_filter1d(colored, 1.5, axis=1)  # noise, too, is smeared sideways by migration
    return trace + noise * colored / (colored.std() + 1e-12)


def _to_uint8(rng: np.random.Generator, amplitude: np.ndarray) -> np.ndarray:
    """Amplitude ~[-1,1] -> uint8 with zero at mid-grey, a random gain and a small offset."""
    pixel = 128.0 + rng.uniform(-6, 6) + 127.0 * rng.uniform(0.7, 1.3) * amplitude
    return np.clip(np.rint(pixel), 0, 255).astype(np.uint8)


def make_tile(
    rng: np.random.Generator, has_salt: bool, cfg: SynthConfig
) -> tuple[np.ndarray, np.ndarray, int]:
    """One tile: (image uint8 (101,101), mask bool (101,101), depth z in 50..959)."""
    shape = (SIZE + 2 * MARGIN, SIZE)
    salt = None
    if has_salt:
        for _ in range(50):  # redraw until the tile is neither empty nor full of salt
            salt = _salt_body(rng, shape)
            covered = salt[MARGIN : MARGIN + SIZE].mean()
            if 0 < covered < 1:
                break
        else:
            raise RuntimeError("could not draw a salt body that partly covers the tile")
    a, b = (2.2, 1.8) if has_salt else (1.8, 2.2)  # salt a little more likely deep down
    depth = int(DEPTH_RANGE[0] + round((DEPTH_RANGE[1] - DEPTH_RANGE[0]) * rng.beta(a, b)))
    mask = np.zeros((SIZE, SIZE), dtype=bool) if salt is None else salt[MARGIN : MARGIN + SIZE].copy()
    if not has_salt and rng.random() < BLANK_FRACTION:
        return np.zeros((SIZE, SIZE), dtype=np.uint8), mask, depth
    impedance = _impedance(rng, _structure(rng, shape, cfg.fault_probability, salt), depth)
    if salt is not None:  # homogeneous salt: tiny smooth variation, almost no reflectivity
        inside = SALT_IMPEDANCE * (1.0 + 0.003 * _smooth_noise(rng, shape, 6.0))
        impedance = np.where(salt, inside, impedance)
    return _to_uint8(rng, _seismic(rng, impedance, cfg.noise)), mask, depth


def _make_part(cfg: SynthConfig, part: int, count: int, ids: list[str]) -> tuple[np.ndarray, ...]:
    """`count` tiles, exactly round(empty_fraction * count) of them without salt."""
    order = np.random.default_rng([cfg.seed, part, 1]).permutation(count)
    has_salt = order >= round(cfg.empty_fraction * count)
    images = np.zeros((count, SIZE, SIZE), dtype=np.uint8)
    masks = np.zeros((count, SIZE, SIZE), dtype=bool)
    depths = np.zeros(count, dtype=np.int32)
    for i in range(count):
        rng = np.random.default_rng([cfg.seed, part, 2, i])
        images[i], masks[i], depths[i] = make_tile(rng, bool(has_salt[i]), cfg)
    key = np.argsort(ids)
    return images[key], masks[key], depths[key]


def _ids(seed: int, count: int) -> list[str]:
    """Unique 10-hex-digit ids like Kaggle's, drawn from the seed."""
    rng = np.random.default_rng([seed, 7])
    ids: list[str] = []
    seen: set[str] = set()
    while len(ids) < count:
        key = f"{int(rng.integers(0, 16**10)):010x}"
        if key not in seen:
            seen.add(key)
            ids.append(key)
    return ids


def synthesize(cfg: SynthConfig) -> Layout:
    """Build the synthetic dataset in memory (see the module docstring)."""
    ids = _ids(cfg.seed, cfg.n_train + cfg.n_test)
    train_ids, test_ids = ids[: cfg.n_train], ids[cfg.n_train :]
    images, masks, depths = _make_part(cfg, _TRAIN, cfg.n_train, train_ids)
    test_images, _, test_depths = _make_part(cfg, _TEST, cfg.n_test, test_ids)
    return Layout(
        ids=tuple(sorted(train_ids)),
        images=images,
        masks=masks,
        depths=depths,
        test_ids=tuple(sorted(test_ids)),
        test_images=test_images,
        test_depths=test_depths,
    )


def generate(cfg: SynthConfig, out: str | Path) -> Layout:
    """Write the synthetic dataset to the Kaggle layout folder `out` (atomically)."""
    layout = synthesize(cfg)
    write_layout(out, layout)
    return layout
