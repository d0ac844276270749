"""Cold start: the whole train stage against the plain fp32 loop fold after fold, compile cache cold.

- `stage <compile>`: one `salt train` over every fold, as the pipeline's train stage runs it
  (runtime.fold_jobs at a time, MLflow, checkpoints, validation figures), with runtime.compile
  `auto` (the decision by the stage's steps) or `on`, from an empty compile cache; a setting
  given twice runs again on the cache its first run left (a second experiment);
- `plain`: the fp32 loop anyone writes first (train_job.py's `plain_ours`: the same model, loss,
  augmentation and epochs, eager, both threads), one process per fold, fold after fold.

Reported: wall seconds of each, the speed-up over `plain`, each fold's best validation IoU, and
the line the stage printed about compiling. Then what runtime.compile auto weighs
(saltseg.hardware.COMPILE_COST): one cold compilation of a fold's train and eval graphs and the
time of a train step eager and compiled, on train.threads threads as a fold trains, each in a
fresh process.

    python benchmarks/cold_start.py --epochs 4 2 --settings auto,on,on --out-markdown benchmarks/results.md
    python benchmarks/cold_start.py --epochs 40 20 --settings auto --out-markdown benchmarks/results.md

Data: /work/shared/tgs (or --tgs DIR) ingested and prepared into a temporary folder, else the
synthetic set (train_job.py's preparation); the profile's split (configs/real-cpu.yaml holds out
10% for the test score), model, batch and runtime, the benchmark's epochs.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

SECTION = "## Cold start"


def run_stage(setting: str, params_file: Path, prepared: Path, folds: Path, tmp: Path) -> dict:
    """One whole `salt train` with runtime.compile `setting` and an empty compile cache."""
    import yaml
    from train_job import timed_salt_train

    params = yaml.safe_load(params_file.read_text())
    params["runtime"]["compile"] = setting
    mine = tmp / f"params-{setting}.yaml"
    mine.write_text(yaml.safe_dump(params, sort_keys=False))
    cache = tmp / f"cache-{setting}"
    warm = cache.exists()  # a setting's second run reads the cache its first run filled
    out = tmp / f"stage-{setting}{'-warm' if warm else ''}"
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(cache)
    wall, _ = timed_salt_train(mine, prepared, folds, out)
    log = out / "salt_train.log"
    n_folds = len(params["split"]["folds"])
    ious = [json.loads((out / f"metrics{k}.json").read_text())["best_val_iou"] for k in range(n_folds)]
    said = [ln for ln in log.read_text().splitlines() if ln.startswith(("runtime.compile", "compile:"))]
    job = f"stage, compile {setting}, cache {'warm' if warm else 'cold'}"
    return {"job": job, "wall_s": wall, "val_iou": ious, "said": said}


def run_plain(params_file: Path, prepared: Path, folds: Path) -> dict:
    import yaml
    from train_job import run_worker

    n_folds = len(yaml.safe_load(params_file.read_text())["split"]["folds"])
    started, ious = time.perf_counter(), []
    for k in range(n_folds):
        ious.append(run_worker("plain_ours", prepared, folds, params_file, fold=k)["val_iou"])
    wall = time.perf_counter() - started
    return {"job": "plain fp32 loop, fold after fold", "wall_s": wall, "val_iou": ious}


def step_cost(params_file: Path, compile: str, steps: int = 30) -> dict:
    """In this process: seconds to the first train step and eval batch (a cold compilation when
    compiling; the cache folder is new) and seconds a train step takes after 3 more."""
    import torch

    from saltseg.config import load_params
    from saltseg.data.tgs import SIZE
    from saltseg.hardware import policy as resolve_policy
    from saltseg.loop import logits_of, predict_logits, train_targets
    from saltseg.losses import stage_train_loss
    from saltseg.models import build_model

    params = load_params(params_file)
    torch.set_num_threads(params.train.threads)
    rt = params.runtime
    # As the train stage resolves it (hardware.for_params), with the benchmark's compile setting.
    policy = resolve_policy(
        params.train.precision, rt.device, rt.memory_format, compile, start_filters=params.model.start_filters
    )
    model = policy.place(build_model(params.model))
    forward = policy.compiled(model)
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    loss_fn = stage_train_loss(params.train, "bce")
    bs, at_input = params.train.batch_size, params.train.loss_at_input
    x, depths = torch.rand(bs, 1, SIZE, SIZE), torch.rand(bs)
    y = train_targets((torch.rand(bs, 1, SIZE, SIZE) > 0.5).float(), params.model, at_input)

    def step() -> None:
        model.train()
        loss = loss_fn(logits_of(forward, x, params.model, policy, depths, at_input), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    started = time.perf_counter()
    step()
    model.eval()
    predict_logits(forward, (x[:, 0] * 255).to(torch.uint8), params.model, policy, bs, depths)
    first = time.perf_counter() - started
    for _ in range(3):
        step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return {"first_s": first, "step_s": (time.perf_counter() - started) / steps, "policy": policy.describe()}


def run_step_cost(params_file: Path, compile: str, tmp: Path) -> dict:
    import subprocess

    env = os.environ | {"TORCHINDUCTOR_CACHE_DIR": str(tmp / f"steps-cache-{compile}")}
    cmd = [sys.executable, __file__, "--worker", compile, "--params", str(params_file)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(runs: list[dict], args: argparse.Namespace, data: str, load: tuple) -> str:
    from train_throughput import machine

    plain = next(r for r in runs if r["job"].startswith("plain"))
    lines = [
        f"### {datetime.date.today().isoformat()} — cpu",
        "",
        f"Machine: {machine('cpu')}; load average {load[0]:.1f} before, {load[1]:.1f} after  ",
        f"Data: {data}; every fold; {args.profile.name} with {args.epochs[0]} + {args.epochs[1]} epochs; "
        "each stage from an empty compile cache  ",
        "Command: `python benchmarks/cold_start.py " + " ".join(args.argv) + "`",
        "",
        "| job | wall s | speed-up over plain | best val IoU per fold |",
        "| --- | ---: | ---: | --- |",
    ]
    for r in runs:
        ious = ", ".join(f"{v:.3f}" for v in r["val_iou"])
        lines.append(f"| {r['job']} | {r['wall_s']:.0f} | {plain['wall_s'] / r['wall_s']:.2f}x | {ious} |")
    lines.append("")
    for r in runs:
        for said in r.get("said", []):
            said = re.sub(r" from the cache /\S+\)$", " from the cache)", said)  # a temporary folder
            lines.append(f"- {r['job']}: `{said}`")
    if args.cost:
        eager, compiled = args.cost["off"], args.cost["on"]
        saved = eager["step_s"] - compiled["step_s"]
        cost = compiled["first_s"] - eager["first_s"]
        pays = f"compiling pays from ~{cost / saved:,.0f} steps" if saved > 0 else "compiling never pays"
        lines += [
            "",
            f"What runtime.compile auto weighs, one fold's graphs ({compiled['policy']}, "
            f"{args.threads} thread(s)): first train step and eval batch {compiled['first_s']:.1f} s "
            f"compiled from a cold cache ({eager['first_s']:.1f} s eager); a train step "
            f"{compiled['step_s'] * 1000:.0f} ms compiled against {eager['step_s'] * 1000:.0f} ms eager: "
            f"{pays}.",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    import yaml
    from train_job import add_data_options, finish_data_options, prepare

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_options(p, default=(4, 2), quick=(1, 1))
    p.add_argument("--settings", default="auto,on", help="runtime.compile of each stage run, in order")
    p.add_argument("--out-markdown", type=Path, help="append the table to this file's cold-start section")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--params", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(step_cost(args.params, args.worker)))
        return
    finish_data_options(args, argv)
    args.compile, args.argv = None, argv
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="cold_start_") as tmp_name:
        tmp = Path(tmp_name)
        prepared, folds, params_file, data = prepare(args, tmp)
        runs = []
        for setting in args.settings.split(","):
            runs.append(run_stage(setting, params_file, prepared, folds, tmp))
            print(f"{runs[-1]['job']}: {runs[-1]['wall_s']:.0f} s", flush=True)
        runs.append(run_plain(params_file, prepared, folds))
        print(f"{runs[-1]['job']}: {runs[-1]['wall_s']:.0f} s", flush=True)
        args.cost = {setting: run_step_cost(params_file, setting, tmp) for setting in ("off", "on")}
        args.threads = yaml.safe_load(params_file.read_text())["train"]["threads"]
    block = table(runs, args, data, (load_before, os.getloadavg()[0]))
    print("\n" + block)
    if args.out_markdown:
        from train_throughput import append_section

        append_section(args.out_markdown, block, SECTION)


if __name__ == "__main__":
    main(sys.argv[1:])
