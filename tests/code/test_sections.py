"""`salt predict-section` core: exact blending, salt bodies, SEG-Y round trips, streaming memory."""

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import segyio

from saltseg.config import SynthConfig
from saltseg.data.synthetic_section import write_cube, write_line
from saltseg.section.bodies import salt_mask
from saltseg.section.run import ModelInfo, Outputs, SectionOptions, predict_section, working_bytes
from saltseg.section.stitch import stitch, window_count

MODEL = ModelInfo("models:/saltseg-ensemble/7", "7", "feedc0ffee123456", 0.5, 10)
CFG = SynthConfig()


def smooth(tiles: np.ndarray) -> np.ndarray:
    """Model stand-in: a known smooth pointwise function of the pixels, float32 (N, 101, 101)."""
    return (1.0 / (1.0 + np.exp(-(np.asarray(tiles, np.float64) - 128.0) / 25.0))).astype(np.float32)


def lean(tiles: np.ndarray) -> np.ndarray:
    """Model stand-in that allocates only its output: the cap is on the section's buffers."""
    out = np.subtract(tiles, 128.0, dtype=np.float32)
    return np.divide(out, 256.0, out=out)


def section(shape=(157, 230), seed: int = 0) -> np.ndarray:
    """float32 amplitudes (samples, traces): layers and noise, roughly -1..1."""
    rng = np.random.default_rng(seed)
    rows = np.sin(np.arange(shape[0]) / 4.0)[:, None]
    return (0.7 * rows + 0.3 * rng.standard_normal(shape)).astype(np.float32)


def pixels(shape=(157, 230), seed: int = 0) -> np.ndarray:
    return np.clip(128 + 100 * section(shape, seed), 0, 255).astype(np.float32)


@pytest.mark.parametrize("stride", [7, 33, 50, 64, 101])
def test_blending_is_exact(stride):
    image = pixels()
    stitched = stitch(image, smooth, stride=stride, batch_size=16)
    assert stitched.shape == image.shape and stitched.dtype == np.float32
    np.testing.assert_allclose(stitched, smooth(image[None])[0], atol=2e-6)


def test_windows_cover_the_padded_section_with_the_counted_tiles():
    calls = []

    def counting(tiles):
        calls.append(len(tiles))
        return smooth(tiles)

    stitch(pixels((101, 250)), counting, stride=50, batch_size=8)
    assert sum(calls) == window_count((101, 250), 50) and max(calls) == 8


def test_small_salt_bodies_are_removed_large_ones_kept():
    proba = np.zeros((120, 120), np.float32)
    proba[10:20, 10:20] = 0.9  # 100 px
    proba[50:53, 50:53] = 0.9  # 9 px
    mask = salt_mask(proba, 0.5, min_area=10)
    assert mask.sum() == 100 and mask[10:20, 10:20].all()
    assert salt_mask(proba, 0.5, min_area=0).sum() == 109


def headers(f) -> list[dict]:
    return [dict(h) for h in f.header]


def test_segy_round_trip_2d(tmp_path):
    data = section((130, 260))
    write_line(tmp_path / "line.sgy", data, "TEST LINE", CFG)
    outputs = Outputs(tmp_path / "mask.sgy", tmp_path / "proba.sgy", tmp_path / "line.png")
    predict_section(tmp_path / "line.sgy", outputs, smooth, MODEL, SectionOptions(stride=40))
    with segyio.open(tmp_path / "line.sgy", ignore_geometry=True) as src:
        for out in (outputs.mask, outputs.proba):
            with segyio.open(out, ignore_geometry=True) as f:
                assert f.tracecount == src.tracecount and np.array_equal(f.samples, src.samples)
                assert segyio.tools.dt(f) == segyio.tools.dt(src) == 3000
                assert headers(f) == headers(src)
                text = segyio.tools.wrap(f.text[0].decode())
                assert "models:/saltseg-ensemble/7" in text and "feedc0ffee123456" in text and "P99" in text
        with segyio.open(outputs.proba, ignore_geometry=True) as f:
            scaled = np.clip(src.trace.raw[:].T / np.percentile(np.abs(data), 99), -1, 1)
            np.testing.assert_allclose(f.trace.raw[:].T, smooth(((scaled + 1) * 127.5)[None])[0], atol=1e-5)
    assert outputs.png.stat().st_size > 0


def test_segy_round_trip_3d_both_directions(tmp_path):
    cube = np.stack([section((110, 104), seed=i) for i in range(102)])
    write_cube(tmp_path / "cube.sgy", cube, "TEST CUBE", CFG)
    outputs = Outputs(tmp_path / "mask.sgy", tmp_path / "proba.npy")
    options = SectionOptions(stride=60, both_directions=True)
    predict_section(tmp_path / "cube.sgy", outputs, smooth, MODEL, options)
    with segyio.open(tmp_path / "cube.sgy") as src, segyio.open(outputs.mask) as f:
        assert np.array_equal(f.ilines, src.ilines) and np.array_equal(f.xlines, src.xlines)
        assert np.array_equal(f.samples, src.samples) and segyio.tools.dt(f) == segyio.tools.dt(src)
        assert headers(f) == headers(src)
        mask = np.stack([f.iline[il].T for il in f.ilines])
    proba = np.load(outputs.proba)
    meta = json.loads(Path(str(outputs.proba) + ".json").read_text())
    assert meta["model"]["uri"] == MODEL.uri and meta["scaling"]["percentile"] == 99.0
    # Over SAMPLE_CAP samples: the limit comes from evenly spaced traces, close to the exact one.
    limit = meta["scaling"]["limit"]
    assert limit == pytest.approx(np.percentile(np.abs(cube), 99), rel=0.01)
    # A pointwise stand-in predicts the same along inlines and crosslines: their mean is it too.
    np.testing.assert_allclose(proba, smooth((np.clip(cube / limit, -1, 1) + 1) * 127.5), atol=1e-5)
    expected = np.stack([salt_mask(p, MODEL.threshold, MODEL.min_area) for p in proba])
    assert np.array_equal(mask > 0.5, expected)


def test_png_and_uint8_inputs_are_taken_as_pixels(tmp_path):
    from PIL import Image

    image = pixels((120, 140)).astype(np.uint8)
    Image.fromarray(image).save(tmp_path / "s.png")
    np.save(tmp_path / "s.npy", image)
    for name in ("s.png", "s.npy"):
        out = tmp_path / f"{name}.proba.npy"
        summary = predict_section(tmp_path / name, Outputs(proba=out), smooth, MODEL, SectionOptions())
        np.testing.assert_allclose(np.load(out), smooth(image[None].astype(np.float32))[0], atol=2e-6)
        assert "as is" in summary.scaling


def test_a_volume_over_the_memory_cap_streams_within_it(tmp_path):
    cube = np.stack([section((120, 130), seed=i) for i in range(100)])  # 6.2 MB of float32
    np.save(tmp_path / "cube.npy", cube)
    cap_mb = 3.0
    assert working_bytes(120, 130, 16) < cap_mb * 2**20 < cube.nbytes
    tracemalloc.start()
    try:
        options = SectionOptions(batch_size=16, memory_cap_mb=cap_mb)
        predict_section(tmp_path / "cube.npy", Outputs(tmp_path / "m.npy"), lean, MODEL, options)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < cap_mb * 2**20
    assert np.load(tmp_path / "m.npy").shape == cube.shape
