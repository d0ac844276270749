"""The synthetic section and cube: same seed, same bytes; SEG-Y that predict-section reads."""

import numpy as np
import segyio

from saltseg.config import SynthConfig
from saltseg.data.synthetic_section import generate_sections

SMALL = {"section": (120, 200), "cube": (6, 110, 104)}
NAMES = ("section.sgy", "section_mask.sgy", "cube.sgy", "cube_mask.sgy")


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    cfg = SynthConfig(seed=3)
    first = generate_sections(cfg, tmp_path / "a", **SMALL)
    generate_sections(cfg, tmp_path / "b", **SMALL)
    generate_sections(SynthConfig(seed=4), tmp_path / "c", **SMALL)
    for name in NAMES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
        assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "c" / name).read_bytes()
    assert 0.05 < first["section_mask"].mean() < 0.8 and 0.0 < first["cube_mask"].mean() < 1.0


def test_files_hold_the_arrays_with_their_geometry(tmp_path):
    arrays = generate_sections(SynthConfig(), tmp_path, **SMALL)
    with segyio.open(tmp_path / "section.sgy", ignore_geometry=True) as f:
        assert segyio.tools.dt(f) == 3000 and f.tracecount == 200
        np.testing.assert_array_equal(f.trace.raw[:].T, arrays["section"])
    with segyio.open(tmp_path / "cube_mask.sgy") as f:
        assert len(f.ilines) == 6 and len(f.xlines) == 104 and len(f.samples) == 110
        cube = np.stack([f.iline[il].T for il in f.ilines])
        np.testing.assert_array_equal(cube > 0.5, arrays["cube_mask"])
