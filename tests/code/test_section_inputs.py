"""`salt predict-section` on bad input: one line naming the file, and nothing written."""

import numpy as np
import pytest
import segyio
from test_evaluate import DATA_HASH, fold_checkpoints, run_salt, write_params
from test_sections import MODEL, section, smooth

from saltseg.errors import SaltError
from saltseg.section import scaling
from saltseg.section.run import Outputs, SectionOptions, predict_section
from saltseg.section.stitch import stitch


def write_traces(path, data, inlines, crosslines):
    """An unstructured SEG-Y: data (traces, samples) with the given inline/crossline headers."""
    spec = segyio.spec()
    spec.format, spec.samples, spec.tracecount = 5, range(data.shape[1]), data.shape[0]
    with segyio.create(path, spec) as f:
        for t, (il, xl) in enumerate(zip(inlines, crosslines, strict=True)):
            f.header[t] = {segyio.TraceField.INLINE_3D: il, segyio.TraceField.CROSSLINE_3D: xl}
        f.trace = data.astype(np.float32)


def grid(n_il=3, n_xl=110, samples=110):
    il, xl = np.meshgrid(np.arange(n_il) + 1, np.arange(n_xl) + 1, indexing="ij")
    data = np.random.default_rng(0).standard_normal((n_il * n_xl, samples))
    return data, il.ravel(), xl.ravel()


def refused(tmp_path, source, match, options=None, outputs=None):
    outputs = outputs or Outputs(tmp_path / "out" / "mask.npy", tmp_path / "out" / "proba.npy")
    with pytest.raises(SaltError, match=match) as info:
        predict_section(source, outputs, smooth, MODEL, options or SectionOptions())
    message = str(info.value)
    assert "\n" not in message and (str(tmp_path) in message or "--" in message)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_not_segy(tmp_path):
    (tmp_path / "x.sgy").write_bytes(b"not a seismic file " * 300)
    refused(tmp_path, tmp_path / "x.sgy", "not a readable SEG-Y")


def test_irregular_geometry(tmp_path):
    data, il, xl = grid()
    write_traces(tmp_path / "gap.sgy", data[:-5], il[:-5], xl[:-5])  # the last inline lacks 5 traces
    refused(tmp_path, tmp_path / "gap.sgy", "irregular or unsorted")


def test_unsorted_geometry(tmp_path):
    data, il, xl = grid()
    order = np.random.default_rng(1).permutation(len(il))
    write_traces(tmp_path / "shuffled.sgy", data[order], il[order], xl[order])
    refused(tmp_path, tmp_path / "shuffled.sgy", "irregular or unsorted")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_infinite_samples(tmp_path, monkeypatch, bad):
    cube = np.stack([section((110, 120), seed=i) for i in range(4)])
    cube[1, 50, 60] = bad  # in the scaling sample: refused before any prediction
    np.save(tmp_path / "cube.npy", cube)
    refused(tmp_path, tmp_path / "cube.npy", "has NaN or infinite samples")
    monkeypatch.setattr(scaling, "SAMPLE_CAP", 30_000)  # the sample: inlines 0 and 2
    cube[1, 50, 60], cube[3, 10, 10] = 0.0, bad  # found while streaming, after three inlines
    np.save(tmp_path / "cube.npy", cube)
    refused(tmp_path, tmp_path / "cube.npy", "section 3 has NaN or infinite samples")


def test_nan_in_a_segy_line(tmp_path):
    data, _, _ = grid(1, 120)
    data[7, 3] = np.nan
    write_traces(tmp_path / "line.sgy", data, [0] * 120, range(120))
    refused(tmp_path, tmp_path / "line.sgy", "NaN or infinite")


@pytest.mark.parametrize("shape", [(100, 300), (300, 100)])
def test_smaller_than_a_tile(tmp_path, shape):
    np.save(tmp_path / "small.npy", section(shape))
    refused(tmp_path, tmp_path / "small.npy", "a tile needs 101x101")


def test_existing_output_needs_overwrite(tmp_path):
    np.save(tmp_path / "s.npy", section((110, 120)))
    out = tmp_path / "out" / "mask.npy"
    out.parent.mkdir()
    out.write_bytes(b"keep me")
    with pytest.raises(SaltError, match="exists; give --overwrite"):
        predict_section(tmp_path / "s.npy", Outputs(out), smooth, MODEL, SectionOptions())
    assert out.read_bytes() == b"keep me"
    predict_section(tmp_path / "s.npy", Outputs(out), smooth, MODEL, SectionOptions(overwrite=True))
    assert np.load(out).shape == (110, 120)


def test_an_interrupted_run_leaves_nothing(tmp_path):
    np.save(tmp_path / "cube.npy", np.stack([section((110, 120), seed=i) for i in range(5)]))
    calls = []

    def interrupted(tiles):
        calls.append(1)
        if len(calls) == 12:
            raise KeyboardInterrupt
        return smooth(tiles)

    with pytest.raises(KeyboardInterrupt):
        outputs = Outputs(tmp_path / "out" / "m.npy", tmp_path / "out" / "p.npy")
        predict_section(tmp_path / "cube.npy", outputs, interrupted, MODEL, SectionOptions(batch_size=4))
    assert list((tmp_path / "out").iterdir()) == []


def test_option_errors(tmp_path):
    np.save(tmp_path / "s.npy", section((110, 120)))
    refused(
        tmp_path, tmp_path / "s.npy", "--both-directions needs a 3-D", SectionOptions(both_directions=True)
    )
    refused(tmp_path, tmp_path / "s.npy", "--stride", SectionOptions(stride=0))
    refused(tmp_path, tmp_path / "s.npy", "--memory-cap-mb", SectionOptions(memory_cap_mb=0.1))
    sgy = Outputs(tmp_path / "out" / "m.sgy")
    refused(tmp_path, tmp_path / "s.npy", "SEG-Y output needs a SEG-Y input", outputs=sgy)
    (tmp_path / "s.txt").write_text("1 2 3")
    refused(tmp_path, tmp_path / "s.txt", "unknown input type")


def test_cli_help_explains_the_options(monkeypatch, capsys):
    code, out, _ = run_salt(monkeypatch, capsys, "predict-section", "--help")
    assert code == 0
    for option in ("--out", "--proba", "--png", "--stride", "--clip-percentile", "--both-directions"):
        assert option in out
    assert "--memory-cap-mb" in out and "--overwrite" in out and "--model" in out


def test_cli_uses_the_ensemble_path_and_reports_errors_in_one_line(tmp_path, monkeypatch, capsys):
    """Local fold checkpoints: the written probabilities are the ensemble's predict_proba, stitched."""
    import json

    from saltseg.inference import Ensemble

    checkpoints = fold_checkpoints(tmp_path / "models")
    (tmp_path / "eval").mkdir()
    tuned = {"threshold": 0.5, "min_area": 0, "folds": [0, 1], "data_hash": DATA_HASH}
    (tmp_path / "eval" / "thresholds.json").write_text(json.dumps(tuned))
    image = np.clip(128 + 100 * section((105, 130)), 0, 255).astype(np.uint8)
    np.save(tmp_path / "s.npy", image)
    args = ("predict-section", tmp_path / "s.npy", "--model-dir", tmp_path / "models")
    args += (
        "--eval-dir",
        tmp_path / "eval",
        "--params",
        write_params(tmp_path / "params.yaml"),
        "--stride",
        60,
    )
    code, out, err = run_salt(monkeypatch, capsys, *args, "--proba", tmp_path / "p.npy")
    assert code == 0, err
    ensemble = Ensemble.from_files(list(checkpoints.values()), tmp_path / "eval" / "thresholds.json")
    expected = stitch(image.astype(np.float32), ensemble.predict_proba, stride=60)
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), expected, atol=1e-6)
    meta = json.loads((tmp_path / "p.npy.json").read_text())
    assert meta["model"]["data_hash"] == DATA_HASH and "local checkpoints" in meta["model"]["uri"]
    code, _, err = run_salt(monkeypatch, capsys, *args, "--proba", tmp_path / "p.npy")
    assert code == 1 and err.strip().count("\n") == 0 and "exists; give --overwrite" in err
