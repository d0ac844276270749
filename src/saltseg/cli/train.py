"""`salt train`: the two-stage recipe on one fold, or on several, `runtime.fold_jobs` at a time."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from saltseg.config import Params

FOLD = "{fold}"  # in a path option: the fold's number
# What a fold process imports, imported once for all folds by their runner (saltseg.fold_jobs);
# torch._dynamo: torch.optim's first optimizer imports it (~1.3 s), compiled or not.
FOLD_IMPORTS = ("saltseg.train_stage", "saltseg.inference", "torch._dynamo")


def train(
    fold: Annotated[
        list[int] | None,
        typer.Option(
            "--fold",
            "-f",
            help="Fold to hold out for validation (one of split.folds); repeat for several.",
            show_default="every fold in split.folds",
        ),
    ] = None,
    prepared: Annotated[Path, typer.Option(help="Prepared arrays from `salt data prepare`.")] = Path(
        "prepared/train.npz"
    ),
    folds: Annotated[Path, typer.Option(help="Fold assignment from `salt data split`.")] = Path(
        "prepared/folds.csv"
    ),
    out_dir: Annotated[
        Path,
        typer.Option(
            help=f"Folder for best.pt, validation.png and the resume state last.pt; {FOLD} is the fold."
        ),
    ] = Path(f"models/fold{FOLD}"),
    metrics: Annotated[
        Path, typer.Option(help=f"Metrics JSON (read by `dvc metrics`); {FOLD} is the fold.")
    ] = Path(f"metrics/train/fold{FOLD}.json"),
    history: Annotated[
        Path, typer.Option(help=f"Per-epoch CSV (read by `dvc plots`); {FOLD} is the fold.")
    ] = Path(f"plots/train/fold{FOLD}.csv"),
    pseudo: Annotated[
        Path | None,
        typer.Option(
            help="Pseudo-labelled test images from `salt pseudo`, added to the training images only."
        ),
    ] = None,
    params_file: Annotated[Path, typer.Option("--params", help="Parameters file.")] = Path("params.yaml"),
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Retrain folds already trained for these params, data and hardware policy (by default "
            "they are skipped; the train stage of dvc.yaml forces, as DVC reruns it for code changes too).",
        ),
    ] = False,
) -> None:
    """Train folds: BCE, then Lovasz from the best BCE weights; each resumes if interrupted.

    Reads the params.yaml sections data, split, model, augment and train (what the model is),
    runtime (device, memory format, compile, workers, fold_jobs) and tracking. Writes best.pt, validation.png
    and, until the fold finishes, last.pt in --out-dir, the metrics JSON and the per-epoch CSV;
    logs the parameters, per-epoch metrics and those files to the MLflow run fold<K>, a child of
    the pipeline's parent run. One line per epoch on stderr when it is not a terminal.

    Several folds train as one `salt train --fold K` process each, runtime.fold_jobs at a time
    (on a CPU sharing its cores), and every path option then needs {fold}.
    Under torchrun (`torchrun --nproc-per-node N -m saltseg train --fold K`) the N
    processes train each fold together with DistributedDataParallel, one fold after
    another; rank 0 writes.
    """
    from saltseg.config import load_params
    from saltseg.project import use_compile_cache

    params = load_params(params_file)  # first: a bad value fails in a blink, before torch loads
    use_compile_cache()  # before torch computes its default; the fold processes inherit it

    from saltseg import distributed
    from saltseg.errors import SaltError
    from saltseg.models import check_buildable

    try:  # the rules only a builder knows, before a run is opened or a file written
        check_buildable(params.model)
    except SaltError as exc:
        raise SaltError(f"{params_file}: {exc}") from None
    chosen = fold or list(params.split.folds)
    unknown = [k for k in chosen if k not in params.split.folds]
    if unknown:
        raise SaltError(f"{params_file}: split.folds is {list(params.split.folds)}; no fold {unknown[0]}")
    templates = {"--out-dir": out_dir, "--metrics": metrics, "--history": history}  # FoldPaths' order
    if len(chosen) > 1:
        for option, path in templates.items():
            if FOLD not in str(path):
                raise SaltError(f"{option} {path}: with several folds the path needs {FOLD}")
    if len(chosen) == 1 or distributed.launched():
        # Here, one fold after another; under torchrun every rank walks them in the same order.
        _train_here(params, chosen, prepared, folds, tuple(templates.values()), pseudo, force)
        return
    from saltseg.fold_jobs import run_folds
    from saltseg.reachability import check_reachable
    from saltseg.tracking import tracking_uri

    check_reachable(tracking_uri(params.tracking))  # one line here, not one from every fold
    _compile_once(params, folds)

    commands = {}
    for k in chosen:
        command = ["-m", "saltseg", "train", "--fold", str(k), "--params", str(params_file)]
        command += ["--prepared", str(prepared), "--folds", str(folds)]
        command += [arg for option, path in templates.items() for arg in (option, _of(path, k))]
        commands[k] = command + (["--pseudo", str(pseudo)] if pseudo else []) + (["--force"] if force else [])
    run_folds(commands, params.runtime.fold_jobs, params.train.threads, FOLD_IMPORTS)


def _compile_once(params: Params, folds: Path) -> None:
    """Say whether the folds compile and why; if they do, compile their graphs here, once, so
    that every fold process reads them from the project's cache (saltseg.compile_cache)."""
    from saltseg import hardware
    from saltseg.data.folds import load_folds, stage_train_steps

    steps = stage_train_steps(params, load_folds(folds))
    policy = hardware.for_params(params, steps)
    _, why = hardware.compile_decision(params.runtime.compile, policy.device, steps)
    print(why, file=sys.stderr)
    if policy.compile:
        from saltseg.compile_cache import warm

        warm(params, policy)


def _of(path: Path, fold: int) -> str:
    return str(path).replace(FOLD, str(fold))


def _train_here(
    params: Params,
    chosen: list[int],
    prepared: Path,
    folds: Path,
    templates: tuple[Path, ...],
    pseudo: Path | None,
    force: bool,
) -> None:
    from saltseg import distributed
    from saltseg.train import FoldPaths
    from saltseg.train_stage import run_fold

    dist = distributed.init(params.runtime.device)  # a no-op outside torchrun
    try:
        for k in chosen:
            paths = FoldPaths(*(Path(_of(template, k)) for template in templates))
            result = run_fold(params, prepared, folds, k, paths, pseudo, force)
            if result is None:
                typer.echo(
                    f"fold {k}: already trained for these params and data -> {paths.best} (--force retrains)"
                )
            elif dist.is_main:
                best = result[f"best_{params.train.monitor}"]
                typer.echo(
                    f"fold {k}: best {params.train.monitor} {best:.4f} at epoch {result['best_epoch']} "
                    f"({result['best_stage']}), score {result['best_val_score']:.4f}, "
                    f"{result['train_seconds']} s -> {paths.best}"
                )
    finally:
        distributed.shutdown()
