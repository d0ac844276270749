"""`salt data ...`: synthesize, ingest, prepare, split and show data.

Thin commands: parse options, call saltseg.data.*, print one line about what was written.
numpy, pandas, scikit-learn and matplotlib are imported inside the commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True, help="Synthesize, ingest, prepare, split and show data.")

PARAMS_HELP = "Parameters file (params.yaml)."


@app.command("synth")
def synth(
    out: Annotated[Path, typer.Option("--out", help="Output folder (Kaggle layout); replaced atomically.")],
    params_file: Annotated[
        Path, typer.Option("--params", help=PARAMS_HELP + " Uses its synth section.")
    ] = Path("params.yaml"),
) -> None:
    """Generate a synthetic seismic dataset (layered sediments, salt bodies, Ricker wavelet)."""
    import time

    from saltseg.config import load_params
    from saltseg.data.synthetic import generate

    cfg = load_params(params_file).synth
    start = time.perf_counter()
    layout = generate(cfg, out)
    coverage = layout.masks.mean(axis=(1, 2))
    typer.echo(
        f"{out}: {len(layout.ids)} train ({(coverage == 0).mean():.0%} empty, mean coverage "
        f"{coverage.mean():.1%}) + {len(layout.test_ids)} test images in {time.perf_counter() - start:.1f}s"
    )


@app.command("synth-section")
def synth_section(
    out: Annotated[
        Path, typer.Option("--out", help="Output folder for the SEG-Y files; replaced atomically.")
    ],
    params_file: Annotated[
        Path, typer.Option("--params", help=PARAMS_HELP + " Uses its synth section (seed, noise, faults).")
    ] = Path("params.yaml"),
) -> None:
    """Write a synthetic 2-D section (1000 traces x 400 samples) and a 3-D cube with their true salt
    masks as SEG-Y (section.sgy, section_mask.sgy, cube.sgy, cube_mask.sgy), from the tiles' geology."""
    from saltseg.config import load_params
    from saltseg.data.synthetic_section import generate_sections

    arrays = generate_sections(load_params(params_file).synth, out)
    typer.echo(
        f"{out}: section {arrays['section'].shape} ({arrays['section_mask'].mean():.0%} salt), "
        f"cube {arrays['cube'].shape} ({arrays['cube_mask'].mean():.0%} salt)"
    )


@app.command("ingest")
def ingest(
    src: Annotated[
        Path,
        typer.Argument(
            help="Competition zip (nested train.zip/test.zip), a zip of the folder, or the folder."
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Canonical raw-data folder to write; replaced atomically.")
    ],
) -> None:
    """Validate a TGS download and write it as the canonical Kaggle layout with normalised PNGs."""
    from saltseg.data.ingest import ingest as ingest_source

    layout = ingest_source(src, out)
    empty = float((~layout.masks.any(axis=(1, 2))).mean()) if layout.ids else 0.0
    typer.echo(
        f"{out}: {len(layout.ids)} train ({empty:.0%} empty) + {len(layout.test_ids)} test images from {src}"
    )


@app.command("prepare")
def prepare(
    src: Annotated[Path, typer.Option("--src", help="Kaggle layout folder to read (train part).")],
    out: Annotated[
        Path, typer.Option("--out", help="Output .npz file (images, masks, depths, ids, coverage).")
    ],
) -> None:
    """Read and validate the training images and masks; write them as one compact .npz."""
    from saltseg.data.prepared import prepare as prepare_arrays

    prepared = prepare_arrays(src, out)
    typer.echo(
        f"{out}: {len(prepared)} images, {(prepared.coverage == 0).mean():.0%} empty, "
        f"{out.stat().st_size / 1e6:.1f} MB"
    )


@app.command("split")
def split(
    prepared_file: Annotated[
        Path, typer.Option("--prepared", help="Prepared .npz from `salt data prepare`.")
    ],
    out: Annotated[Path, typer.Option("--out", help="Output folds CSV (id,fold,coverage_class).")],
    params_file: Annotated[
        Path, typer.Option("--params", help=PARAMS_HELP + " Uses its split section.")
    ] = Path("params.yaml"),
) -> None:
    """Assign every image to a fold (or to the test set: split.test_fraction), stratified by coverage."""
    from saltseg.config import load_params
    from saltseg.data.folds import TEST_FOLD, make_folds, write_folds
    from saltseg.data.prepared import load_prepared

    cfg = load_params(params_file).split
    prepared = load_prepared(prepared_file)
    folds = make_folds(prepared.ids, prepared.coverage, cfg)
    write_folds(folds, out)
    held = int((folds["fold"] == TEST_FOLD).sum())
    sizes = folds.loc[folds["fold"] != TEST_FOLD, "fold"].value_counts().sort_index()
    typer.echo(
        f"{out}: {len(folds) - held} ids in {len(sizes)} folds (sizes {', '.join(map(str, sizes.tolist()))})"
        + (f", {held} held out for the test score" if held else "")
    )


@app.command("holdout")
def holdout(
    prepared_file: Annotated[
        Path, typer.Option("--prepared", help="Prepared .npz from `salt data prepare`.")
    ] = Path("prepared/train.npz"),
    folds_file: Annotated[
        Path, typer.Option("--folds", help="Fold file from `salt data split` (marks the test set).")
    ] = Path("prepared/folds.csv"),
    out: Annotated[
        Path, typer.Option("--out", help="Kaggle-layout folder to write; replaced atomically.")
    ] = Path("holdout"),
) -> None:
    """Write the images split.test_fraction held out as a labelled Kaggle-layout folder (for `salt score`)."""
    from saltseg.data.folds import held_out_set, load_folds
    from saltseg.data.prepared import load_prepared
    from saltseg.data.tgs import Layout, write_layout
    from saltseg.errors import SaltError

    held = held_out_set(load_prepared(prepared_file), load_folds(folds_file))
    if not len(held):
        raise SaltError(f"{folds_file}: no test set (split.test_fraction is 0)")
    write_layout(out, Layout(tuple(held.ids.tolist()), held.images, held.masks, held.depths))
    typer.echo(f"{out}: {len(held)} held-out images with their masks")


@app.command("show")
def show(
    synthetic: Annotated[Path, typer.Option("--synthetic", help="Synthetic Kaggle layout folder.")],
    out: Annotated[Path, typer.Option("--out", help="Output PNG file.")],
    real: Annotated[
        Path | None, typer.Option("--real", help="Real Kaggle layout folder shown below, optional.")
    ] = None,
    n: Annotated[int, typer.Option("--n", min=1, help="Tiles per row, spread over salt coverage.")] = 8,
) -> None:
    """Save a grid of synthetic tiles with salt outlines, next to real ones when --real is given."""
    from saltseg.data.show import show_grid

    show_grid(synthetic, out, real_folder=real, n=n)
    typer.echo(f"{out}: {n} synthetic{' and real' if real else ''} tiles per row")
