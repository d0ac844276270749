"""The README's picture of `salt predict-section`: the synthetic section in grey with the true
salt outline and the predicted one, and the IoU of the two masks in the title.

Refresh it after `dvc repro` (the champion of the default pipeline answers):

    salt data synth-section --out synthetic/sections
    salt predict-section synthetic/sections/section.sgy --out section_mask.npy
    python benchmarks/section_figure.py synthetic/sections section_mask.npy \\
        --model "default pipeline champion" --out docs/section_prediction.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from saltseg.section import scaling
from saltseg.section.run import open_volume

TRUE_COLOUR, PREDICTED_COLOUR = "#00d0ff", "#ff2020"
MAX_KB = 300  # the README's pictures stay small: the repository carries every version


def first_section(path: Path) -> np.ndarray:
    """float32 (samples, traces): the first (only) section of a SEG-Y line, .npy or PNG."""
    volume = open_volume(path)
    try:
        return np.asarray(volume.section(0), dtype=np.float32)
    finally:
        volume.close()


def iou(truth: np.ndarray, pred: np.ndarray) -> float:
    """One IoU over every pixel of the section."""
    return float((truth & pred).sum() / (truth | pred).sum())


def draw(amplitude: np.ndarray, truth: np.ndarray, pred: np.ndarray, title: str, out: Path) -> None:
    """The section scaled as predict-section scales it (clip at P99), both outlines, to `out`."""
    import matplotlib

    matplotlib.use("Agg")  # no display here; the picture goes to a file
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    pixels = scaling.from_sample(amplitude, 99.0, "section").pixels(amplitude)
    height, width = pixels.shape
    fig, ax = plt.subplots(figsize=(width / 100, height / 100 + 0.5), dpi=100)
    ax.imshow(pixels, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    ax.contour(truth, levels=[0.5], colors=TRUE_COLOUR, linewidths=1.2)
    ax.contour(pred, levels=[0.5], colors=PREDICTED_COLOUR, linewidths=1.2, linestyles="--")
    handles = [
        Line2D([], [], color=TRUE_COLOUR, lw=1.5, label="true salt"),
        Line2D([], [], color=PREDICTED_COLOUR, lw=1.5, ls="--", label="predicted salt"),
    ]
    ax.legend(handles=handles, loc="lower right", fontsize=8, framealpha=0.8)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("trace")
    ax.set_ylabel("sample (3 ms)")
    fig.tight_layout()
    fig.canvas.draw()
    rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3]
    plt.close(fig)
    save_small_png(rgb, out)


def save_small_png(rgb: np.ndarray, out: Path) -> None:
    """uint8 (H, W, 3) as a 64-colour PNG: seismic noise in 256 greys does not compress, and
    64 greys look the same at this size."""
    from PIL import Image

    Image.fromarray(rgb).quantize(colors=64, dither=Image.Dither.NONE).save(out, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sections", type=Path, help="Folder of `salt data synth-section`.")
    parser.add_argument("mask", type=Path, help="Predicted mask of section.sgy (`predict-section --out`).")
    parser.add_argument("--model", default="the champion", help="Which model predicted, for the title.")
    parser.add_argument("--out", type=Path, default=Path("docs/section_prediction.png"))
    args = parser.parse_args()
    amplitude = first_section(args.sections / "section.sgy")
    truth = first_section(args.sections / "section_mask.sgy") > 0.5
    pred = first_section(args.mask) > 0.5
    score = iou(truth, pred)
    samples, traces = amplitude.shape
    title = f"Synthetic section ({traces} traces x {samples} samples), {args.model}: IoU {score:.3f}"
    draw(amplitude, truth, pred, title, args.out)
    kb = args.out.stat().st_size / 1024
    print(f"{args.out}: {kb:.0f} KB, IoU {score:.4f}")
    if kb > MAX_KB:
        raise SystemExit(f"{args.out}: {kb:.0f} KB, over {MAX_KB} KB")


if __name__ == "__main__":
    main()
