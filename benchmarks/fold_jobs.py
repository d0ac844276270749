"""Folds side by side: `salt train` over every fold, runtime.fold_jobs 1 against N (one or more).

Each setting is one whole `salt train` process without --fold, as the pipeline's train stage
runs it (child processes, MLflow, checkpoints, validation figures included), on the same
prepared data, folds, profile and epochs; the settings alternate round by round, and every
round trains into fresh folders (nothing resumes). Reported: wall seconds for all the folds
and the speed-up over fold_jobs 1 (median of the per-round ratios), with each fold's best
validation IoU, which the setting should not move beyond thread-count rounding.

    python benchmarks/fold_jobs.py --quick          # ~5 min on 2 cores: 800 images, 2 + 1 epochs
    python benchmarks/fold_jobs.py --epochs 6 3 --repeats 2 --out-markdown benchmarks/results.md
    python benchmarks/fold_jobs.py --epochs 4 2 --jobs 2 3 5     # more folds at once than cores
    python benchmarks/fold_jobs.py --profile configs/seed-full.yaml --jobs 5 --epochs 10 5   # one GPU

Data: /work/shared/tgs (or --tgs DIR) ingested and prepared into a temporary folder, else the
synthetic set (see train_job.py, whose preparation this shares). The round's first run pays
for inductor's compilation when the profile compiles: read the rounds, not only the median.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import tempfile
from pathlib import Path

SECTION = "## Folds side by side"


def run(params_file: Path, prepared: Path, folds: Path, out: Path, n_folds: int) -> dict:
    """One `salt train` over every fold into `out`; its wall seconds and the folds' metrics."""
    from train_job import timed_salt_train

    wall, _ = timed_salt_train(params_file, prepared, folds, out)
    metrics = [json.loads((out / f"metrics{k}.json").read_text()) for k in range(n_folds)]
    return {"wall_s": wall, "val_iou": [m["best_val_iou"] for m in metrics]}


def with_fold_jobs(params_file: Path, jobs: int) -> Path:
    import yaml

    raw = yaml.safe_load(params_file.read_text())
    raw["runtime"]["fold_jobs"] = jobs
    out = params_file.with_name(f"params_jobs{jobs}.yaml")
    out.write_text(yaml.safe_dump(raw, sort_keys=False))
    return out


def table(runs: dict[int, list[dict]], args: argparse.Namespace, data: str, n_folds: int) -> str:
    from train_job import profile_name
    from train_throughput import machine

    from saltseg.hardware import pick_device

    device = pick_device().type
    base = runs[1]
    lines = [
        f"### {datetime.date.today().isoformat()} — {device}",
        "",
        f"Machine: {machine(device)}  ",
        f"Data: {data}; all {n_folds} folds; {profile_name(args.profile)} with "
        f"{args.epochs[0]} + {args.epochs[1]} epochs; settings round-robin, {args.repeats} round(s)  ",
        "Command: `python benchmarks/fold_jobs.py " + " ".join(args.argv) + "`",
        "",
        "| fold_jobs | wall s per round | speed-up (median of per-round ratios) "
        "| best val IoU per fold (last round) |",
        "| ---: | --- | ---: | --- |",
    ]
    for jobs, done in runs.items():
        walls = ", ".join(f"{r['wall_s']:.0f}" for r in done)
        speed = statistics.median(b["wall_s"] / r["wall_s"] for r, b in zip(done, base, strict=True))
        ious = ", ".join(f"{v:.3f}" for v in done[-1]["val_iou"])
        lines.append(f"| {jobs} | {walls} | {speed:.2f}x | {ious} |")
    return "\n".join(lines) + "\n"


def parse(argv: list[str]) -> argparse.Namespace:
    from train_job import add_data_options, finish_data_options

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_options(p, default=(6, 3), quick=(2, 1))
    p.add_argument("--jobs", type=int, nargs="+", default=[2], help="the fold_jobs compared with 1")
    p.add_argument("--repeats", type=int, default=1, help="rounds of every setting")
    p.add_argument("--out-markdown", type=Path, help="append the table to this file's section")
    args = p.parse_args(argv)
    finish_data_options(args, argv)
    args.compile = None  # the profile's, as train_job.prepare reads it
    args.argv = argv
    return args


def main(argv: list[str]) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    args = parse(argv)
    from train_job import prepare
    from train_throughput import append_section

    from saltseg.config import load_params

    with tempfile.TemporaryDirectory(prefix="fold_jobs_") as tmp_name:
        tmp = Path(tmp_name)
        prepared, folds, params_file, data = prepare(args, tmp)
        n_folds = len(load_params(params_file).split.folds)
        settings = {jobs: with_fold_jobs(params_file, jobs) for jobs in dict.fromkeys([1, *args.jobs])}
        runs: dict[int, list[dict]] = {jobs: [] for jobs in settings}
        for r in range(args.repeats):
            for jobs, done in runs.items():
                done.append(run(settings[jobs], prepared, folds, tmp / f"round{r}_jobs{jobs}", n_folds))
                print(f"fold_jobs {jobs}: {done[-1]['wall_s']:.1f} s", flush=True)
    block = table(runs, args, data, n_folds)
    print("\n" + block)
    if args.out_markdown:
        append_section(args.out_markdown, block, SECTION)


if __name__ == "__main__":
    main(sys.argv[1:])
