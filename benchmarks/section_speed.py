"""`salt predict-section` speed and memory against the plain batched ensemble forward.

Speed: the synthetic 2-D section (400 samples x 1000 traces, SEG-Y) through
`predict_section` (scaling, windows, sin^2 blending, salt bodies, SEG-Y mask and
probability out), against `Ensemble.predict_proba` on the very same windows stacked in
one array: tiles per second of each, and the overhead of everything but the forward.
Memory: a SEG-Y cube several times the memory cap, streamed in a child process; its
peak RSS (getrusage) minus the RSS after the ensemble has predicted one batch.
The ensemble is the default profile's architecture (params.yaml), five folds with
random weights: speed does not depend on what the weights learned.

    python benchmarks/section_speed.py [--repeats 3] [--out-markdown benchmarks/results.md]
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SECTION = "## Section prediction"


def ensemble(batch_size: int):
    import torch

    from saltseg.config import load_params
    from saltseg.inference import Ensemble
    from saltseg.models import build_model

    cfg = load_params(Path(__file__).resolve().parents[1] / "params.yaml").model
    torch.manual_seed(0)
    models = tuple(build_model(cfg).eval() for _ in range(5))
    return Ensemble(models, cfg, threshold=0.5, min_area=20, data_hash="random", batch_size=batch_size)


def windows(pixels: np.ndarray, stride: int) -> np.ndarray:
    """The tiles `stitch` predicts, float32 (N, 101, 101), in one array."""
    from saltseg.section.stitch import PAD, SIZE, _corners

    padded = np.pad(pixels, PAD, mode="reflect")
    return np.stack([padded[r : r + SIZE, c : c + SIZE] for r, c in _corners(padded.shape, stride)])


def speed(folder: Path, repeats: int, stride: int, batch: int) -> dict:
    from saltseg.config import SynthConfig
    from saltseg.data.synthetic_section import make_section, write_line
    from saltseg.section import scaling
    from saltseg.section.run import ModelInfo, Outputs, SectionOptions, predict_section

    amplitude, _ = make_section(np.random.default_rng([0, 2]), 400, 1000, SynthConfig())
    write_line(folder / "section.sgy", amplitude, "BENCHMARK", SynthConfig())
    model = ensemble(batch)
    tiles = windows(scaling.from_sample(amplitude, 99.0, "section").pixels(amplitude), stride)
    model.predict_proba(tiles[:batch])  # warm-up
    info = ModelInfo("random", "-", "random", 0.5, 20)
    options = SectionOptions(stride=stride, batch_size=batch, overwrite=True)
    outputs = Outputs(folder / "mask.sgy", folder / "proba.sgy")
    plain, section = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict_proba(tiles)
        plain.append(time.perf_counter() - start)
        start = time.perf_counter()
        summary = predict_section(folder / "section.sgy", outputs, model.predict_proba, info, options)
        section.append(time.perf_counter() - start)
    assert summary.windows == len(tiles)
    return {"tiles": len(tiles), "plain_s": min(plain), "section_s": min(section)}


def memory_child(path: str, cap_mb: float, batch: int) -> None:
    """Runs in a child: prints JSON with the RSS before and the peak RSS after streaming `path`."""
    from saltseg.section.run import ModelInfo, Outputs, SectionOptions, predict_section

    model = ensemble(batch)
    model.predict_proba(np.full((batch, 101, 101), 128, np.float32))
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    options = SectionOptions(batch_size=batch, memory_cap_mb=cap_mb)
    out = Path(path).with_name("cube_mask.sgy")
    info = ModelInfo("random", "-", "random", 0.5, 20)
    start = time.perf_counter()
    predict_section(Path(path), Outputs(out), model.predict_proba, info, options)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"base_mb": base, "peak_mb": peak, "seconds": time.perf_counter() - start}))


def memory(folder: Path, shape: tuple[int, int, int], cap_mb: float, batch: int) -> dict:
    from saltseg.config import SynthConfig
    from saltseg.data.synthetic_section import make_cube, write_cube

    cube, _ = make_cube(np.random.default_rng([0, 3]), shape, SynthConfig())
    write_cube(folder / "cube.sgy", cube, "BENCHMARK", SynthConfig())
    code = f"import section_speed as s; s.memory_child({str(folder / 'cube.sgy')!r}, {cap_mb}, {batch})"
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=Path(__file__).parent, capture_output=True, text=True, check=True
    )
    return json.loads(proc.stdout.strip().splitlines()[-1]) | {
        "cube_mb": cube.nbytes / 2**20,
        "cap_mb": cap_mb,
    }


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def report(s: dict, m: dict, args: argparse.Namespace) -> str:
    import os

    import torch

    plain, section = s["tiles"] / s["plain_s"], s["tiles"] / s["section_s"]
    return "\n".join(
        [
            f"### {datetime.date.today()} — cpu ({cpu_name()}, {os.cpu_count()} cores, torch threads "
            f"{torch.get_num_threads()})",
            "",
            f"`python benchmarks/section_speed.py --repeats {args.repeats} --stride {args.stride}` "
            "(five random folds of the default architecture, flip TTA; best of the repeats)",
            "",
            "| | tiles | seconds | tiles/s |",
            "|---|---|---|---|",
            f"| plain `Ensemble.predict_proba` on the windows | {s['tiles']} | "
            f"{s['plain_s']:.2f} | {plain:.1f} |",
            f"| `predict_section`, 400x1000 SEG-Y -> mask + proba SEG-Y | {s['tiles']} | "
            f"{s['section_s']:.2f} | {section:.1f} |",
            "",
            f"Overhead of scaling, stitching, salt bodies and I/O: {s['section_s'] / s['plain_s'] - 1:+.1%}.",
            f"Memory: a {m['cube_mb']:.0f} MB SEG-Y cube {args.cube} under --memory-cap-mb {m['cap_mb']:g}: "
            f"peak RSS {m['peak_mb']:.0f} MB, {m['peak_mb'] - m['base_mb']:.1f} MB above the "
            f"{m['base_mb']:.0f} MB after loading the ensemble ({m['seconds']:.0f} s).",
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--stride", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--cube", type=lambda t: tuple(map(int, t.split("x"))), default=(300, 160, 160))
    parser.add_argument("--cap-mb", type=float, default=16.0)
    parser.add_argument("--out-markdown", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        s = speed(Path(tmp), args.repeats, args.stride, args.batch_size)
        m = memory(Path(tmp), args.cube, args.cap_mb, 16)
    text = report(s, m, args)
    print(text)
    if args.out_markdown:
        old = args.out_markdown.read_text()
        if SECTION not in old:
            old = old.rstrip("\n") + f"\n\n{SECTION}\n\n"
        args.out_markdown.write_text(old.rstrip("\n") + "\n\n" + text)


if __name__ == "__main__":
    main()
