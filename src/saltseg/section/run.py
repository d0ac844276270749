"""`predict_section`: a SEG-Y, .npy or PNG section or volume -> salt probability/mask files.

Streamed: one section (an inline of a volume) is read, scaled, stitched, thresholded and
written before the next is read, so memory grows with one section, not with the
volume; `working_bytes` bounds it and `SectionOptions.memory_cap_mb` refuses a section
that would not fit. Every output is written under a temporary name and renamed at the
end (saltseg.atomic): a refused input or an interrupted run leaves nothing under the
final names.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from saltseg import progress
from saltseg.atomic import atomic_file
from saltseg.data.tgs import SIZE
from saltseg.errors import SaltError
from saltseg.section import arrays, scaling, segy
from saltseg.section.bodies import salt_mask
from saltseg.section.stitch import PAD, TilePredictor, check_stride, stitch, window_count


@dataclass(frozen=True)
class SectionOptions:
    stride: int = 50  # px between window starts: 50 puts ~4 windows over each pixel
    clip_percentile: float = 99.0  # see saltseg.section.scaling
    batch_size: int = 64  # windows per call of the tile predictor
    memory_cap_mb: float = 2048.0  # for the section buffers (the model's own memory comes on top)
    both_directions: bool = False  # volumes: also predict crosslines and average the two
    overwrite: bool = False


@dataclass(frozen=True)
class ModelInfo:
    """What the outputs record about the model that answered."""

    uri: str
    version: str
    data_hash: str  # fingerprint of the data it was trained on
    threshold: float
    min_area: int


@dataclass(frozen=True)
class Outputs:
    mask: Path | None = None  # bool salt mask: .sgy/.segy (SEG-Y input only) or .npy (uint8 0/1)
    proba: Path | None = None  # float32 salt probability: .sgy/.segy or .npy
    png: Path | None = None  # 2-D only: the section in grey with the salt outline in red


def working_bytes(samples: int, traces: int, batch_size: int) -> int:
    """Upper bound of the section buffers `predict_section` holds at once for one section."""
    padded = (samples + 2 * PAD) * (traces + 2 * PAD)
    # read copy, float copy, pixels, proba, the crossline average and mask; padded input and
    # two accumulators; a batch of tiles, its probabilities and the weighted product.
    return 4 * (6 * samples * traces + 3 * padded + 3 * batch_size * SIZE * SIZE)


def open_volume(path: Path) -> segy.SegyVolume | arrays.ArrayVolume:
    """The input by its suffix; SaltError for a missing file or an unknown suffix."""
    if not Path(path).is_file():
        raise SaltError(f"{path}: no such file")
    suffix = Path(path).suffix.lower()
    if suffix in segy.SUFFIXES:
        return segy.SegyVolume(path)
    if suffix in arrays.SUFFIXES:
        return arrays.ArrayVolume(path)
    raise SaltError(f"{path}: unknown input type; give SEG-Y (.sgy, .segy), .npy or .png")


def _check_outputs(source: Path, outputs: Outputs, volume, overwrite: bool) -> list[Path]:
    paths = [p for p in (outputs.mask, outputs.proba, outputs.png) if p is not None]
    if not paths:
        raise SaltError("predict-section: nothing to write; give --out and/or --proba")
    for path in (outputs.mask, outputs.proba):
        if path is None:
            continue
        suffix = path.suffix.lower()
        if suffix not in (*segy.SUFFIXES, ".npy"):
            raise SaltError(f"{path}: output must be SEG-Y (.sgy, .segy) or .npy")
        if suffix in segy.SUFFIXES and not isinstance(volume, segy.SegyVolume):
            raise SaltError(f"{path}: SEG-Y output needs a SEG-Y input, whose geometry it copies")
    if outputs.png is not None and (volume.is_3d or outputs.png.suffix.lower() != ".png"):
        raise SaltError(f"{outputs.png}: the outline picture is a .png, for 2-D sections only")
    written = paths + [p.with_name(p.name + ".json") for p in paths if p.suffix.lower() == ".npy"]
    for path in written:
        if Path(path).resolve() == Path(source).resolve() or len(set(written)) < len(written):
            raise SaltError(f"{path}: named twice (input and outputs must all differ)")
        if path.exists() and not overwrite:
            raise SaltError(f"{path}: exists; give --overwrite to replace it")
    return written


def _check_size(path: Path, shape: tuple[int, int, int], both: bool, is_3d: bool) -> None:
    sections, samples, traces = shape
    if samples < SIZE or traces < SIZE:
        raise SaltError(
            f"{path}: sections of {samples} samples x {traces} traces; a tile needs {SIZE}x{SIZE}"
        )
    if both and not is_3d:
        raise SaltError(f"{path}: --both-directions needs a 3-D volume")
    if both and sections < SIZE:
        raise SaltError(f"{path}: --both-directions needs >= {SIZE} inlines, the volume has {sections}")


def _check_memory(path: Path, shape: tuple[int, int, int], options: SectionOptions) -> None:
    sections, samples, traces = shape
    need = working_bytes(samples, traces, options.batch_size)
    if options.both_directions:
        need = max(need, working_bytes(samples, sections, options.batch_size))
    if need > options.memory_cap_mb * 2**20:
        raise SaltError(
            f"{path}: one section needs {need / 2**20:.1f} MB, over --memory-cap-mb "
            f"{options.memory_cap_mb:g}; raise the cap or lower --batch-size"
        )


def header_lines(source: Path, model: ModelInfo, scale: scaling.Scaling, kind: str, options) -> list[str]:
    """The textual header (and .npy sidecar) of an output: what it is and how it was made."""
    return [
        f"SALTSEG PREDICT-SECTION: {kind}",
        f"INPUT: {Path(source).name}",
        f"MODEL: {model.uri}",
        f"MODEL VERSION: {model.version}",
        f"TRAINED ON DATA: {model.data_hash}",
        f"SCALING: {scale.describe()}",
        f"THRESHOLD {model.threshold:g}, MIN SALT BODY {model.min_area} PX",
        f"STRIDE {options.stride} PX, SIN2 BLEND, BOTH DIRECTIONS {options.both_directions}",
    ]


class _Scratch:
    """Crossline-direction probabilities on disk, written a crossline and read an inline at a time."""

    def __init__(self, folder: Path, shape: tuple[int, int, int]) -> None:
        self.shape = shape  # (inlines, samples, crosslines); stored trace by trace (inline, crossline)
        self.file = tempfile.TemporaryFile(dir=folder)  # noqa: SIM115 - closed by close()

    def write_crossline(self, j: int, proba: np.ndarray) -> None:
        """proba float32 (samples, inlines) of crossline j."""
        inlines, samples, crosslines = self.shape
        for i, trace in enumerate(np.ascontiguousarray(proba.T, dtype=np.float32)):
            self.file.seek(4 * samples * (i * crosslines + j))
            self.file.write(trace.tobytes())

    def read_inline(self, i: int) -> np.ndarray:
        """float32 (samples, crosslines) of inline i."""
        _, samples, crosslines = self.shape
        self.file.seek(4 * samples * crosslines * i)
        raw = self.file.read(4 * samples * crosslines)
        return np.frombuffer(raw, dtype=np.float32).reshape(crosslines, samples).T

    def close(self) -> None:
        self.file.close()


@dataclass(frozen=True)
class Summary:
    sections: int
    windows: int  # tiles predicted
    salt_fraction: float
    scaling: str


def _writers(stack, source, volume, outputs: Outputs, model: ModelInfo, scale, options) -> dict:
    """Per output kind ("mask", "proba"), a writer into the output's temporary file."""
    writers = {}
    for kind, path in (("mask", outputs.mask), ("proba", outputs.proba)):
        if path is None:
            continue
        lines = header_lines(
            source, model, scale, "SALT MASK 0/1" if kind == "mask" else "SALT PROBABILITY", options
        )
        tmp = stack.enter_context(atomic_file(path))
        if path.suffix.lower() == ".npy":
            shape = volume.shape if volume.is_3d else volume.shape[1:]
            writer = arrays.NpyWriter(tmp, shape, np.uint8 if kind == "mask" else np.float32)
            meta = {
                "lines": lines,
                "model": asdict(model),
                "scaling": asdict(scale),
                "options": asdict(options),
            }
            sidecar = stack.enter_context(atomic_file(path.with_name(path.name + ".json")))
            sidecar.write_text(json.dumps(meta, indent=2, default=str) + "\n")
        else:
            writer = segy.SegyWriter(tmp, volume, lines)
        stack.callback(writer.close)
        writers[kind] = writer
    return writers


def predict_section(
    source: Path, outputs: Outputs, predict: TilePredictor, model: ModelInfo, options: SectionOptions
) -> Summary:
    """Predict every section of `source` with `predict` (tiles float32 (N, 101, 101) 0..255 ->
    probabilities float32 (N, 101, 101), e.g. `Ensemble.predict_proba`) and write `outputs`."""
    check_stride(options.stride)
    volume = open_volume(source)
    with contextlib.closing(volume), contextlib.ExitStack() as stack:
        _check_outputs(source, outputs, volume, options.overwrite)
        _check_size(source, volume.shape, options.both_directions, volume.is_3d)
        _check_memory(source, volume.shape, options)
        scale = (
            scaling.PIXELS
            if volume.pixels_input
            else scaling.from_sample(
                volume.sample(scaling.sample_size(options.memory_cap_mb * 2**20)),
                options.clip_percentile,
                str(source),
            )
        )
        writers = _writers(stack, source, volume, outputs, model, scale, options)
        png_tmp = stack.enter_context(atomic_file(outputs.png)) if outputs.png else None
        crossline = (
            _crossline_pass(stack, volume, outputs, predict, scale, options)
            if options.both_directions
            else None
        )
        sections, _, _ = volume.shape
        salt = windows = 0
        with progress.task(f"predict {sections} section(s) of {source}", total=sections) as bar:
            for i in range(sections):
                pixels = scale.pixels(volume.section(i))
                proba = stitch(pixels, predict, options.stride, options.batch_size)
                windows += window_count(pixels.shape, options.stride)
                if crossline is not None:
                    proba = (proba + crossline.read_inline(i)) / 2
                mask = salt_mask(proba, model.threshold, model.min_area)
                for kind, writer in writers.items():
                    writer.write(i, mask if kind == "mask" else proba)
                if png_tmp is not None:
                    arrays.write_overlay(png_tmp, pixels, mask)
                salt += int(mask.sum())
                bar.advance(1)
            bar.finish(salt_fraction=salt / (sections * pixels.size))
    return Summary(sections, windows, salt / (sections * pixels.size), scale.describe())


def _crossline_pass(
    stack, volume, outputs: Outputs, predict: TilePredictor, scale, options: SectionOptions
) -> _Scratch:
    """Stitch every crossline section into an unnamed scratch file in the first output's folder."""
    first = next(p for p in (outputs.mask, outputs.proba, outputs.png) if p is not None)
    scratch = _Scratch(first.parent, volume.shape)
    stack.callback(scratch.close)
    crosslines = volume.shape[2]
    with progress.task(f"predict {crosslines} crosslines", total=crosslines) as bar:
        for j in range(crosslines):
            pixels = scale.pixels(volume.crossline(j))
            scratch.write_crossline(j, stitch(pixels, predict, options.stride, options.batch_size))
            bar.advance(1)
        bar.finish()
    return scratch
