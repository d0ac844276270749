"""`salt predict-section`: a whole SEG-Y line or volume (or .npy/PNG section) -> salt mask/probability."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from saltseg.cli import options


def predict_section(
    source: Annotated[
        Path, typer.Argument(help="SEG-Y 2-D line or 3-D post-stack volume (.sgy/.segy), .npy or grey .png.")
    ],
    out: Annotated[
        Path | None,
        typer.Option(help="Salt mask 0/1: .sgy/.segy (input geometry and trace headers) or .npy (uint8)."),
    ] = None,
    proba: Annotated[
        Path | None, typer.Option(help="Salt probability: .sgy/.segy or .npy (float32).")
    ] = None,
    png: Annotated[
        Path | None, typer.Option(help="2-D only: PNG of the section in grey with the salt outline in red.")
    ] = None,
    stride: Annotated[
        int, typer.Option(help="Pixels between 101x101 windows (1..101); smaller: more overlap, slower.")
    ] = 50,
    clip_percentile: Annotated[
        float,
        typer.Option(
            help="Amplitudes clipped at +-this percentile of |amplitude| (whole volume), -> 0..255."
        ),
    ] = 99.0,
    both_directions: Annotated[
        bool, typer.Option(help="3-D: also predict along crosslines and average with the inline prediction.")
    ] = False,
    memory_cap_mb: Annotated[
        float, typer.Option(help="Refuse sections whose buffers would need more (the model's memory aside).")
    ] = 2048.0,
    overwrite: Annotated[bool, typer.Option(help="Replace outputs that exist.")] = False,
    model: options.ModelUri = None,
    registry: options.Registry = options.REGISTRY,
    prepared: options.Prepared = options.PREPARED,
    model_dir: options.ModelDir = None,
    eval_dir: options.EvalDir = None,
    batch_size: Annotated[
        int | None, typer.Option(min=1, help="Windows per batch; default evaluate.batch_size from params.")
    ] = None,
    params_file: options.ParamsFile = options.PARAMS,
) -> None:
    """Predict salt on a whole section or volume: sliding windows through the fold ensemble (flip TTA),
    blended with smooth sin^2 weights, then the tuned threshold.

    Samples run down, traces across. A volume is streamed one inline at a time. The tuned
    minimum salt area is applied to each connected salt body of a section (of an inline, in
    3-D): smaller bodies are removed. Outputs are written atomically; SEG-Y outputs keep the
    input's geometry and trace headers, and their textual header (an .npy's .json sidecar)
    records the model URI and version, its training data fingerprint and the scaling.
    """
    from saltseg.config import load_params
    from saltseg.section.model import load_model
    from saltseg.section.run import Outputs, SectionOptions
    from saltseg.section.run import predict_section as run

    params = load_params(params_file)
    batch = batch_size or params.evaluate.batch_size
    options = SectionOptions(stride, clip_percentile, batch, memory_cap_mb, both_directions, overwrite)
    outputs = Outputs(out, proba, png)
    ensemble, info = load_model(params, model, model_dir, eval_dir, batch, registry, prepared)
    summary = run(source, outputs, ensemble.predict_proba, info, options)
    written = ", ".join(str(p) for p in (out, proba, png) if p is not None)
    typer.echo(
        f"{source}: {summary.sections} section(s), {summary.windows} windows, "
        f"{summary.salt_fraction:.1%} salt -> {written}"
    )
