"""Whole-job training benchmark: `salt train` against a plain fp32 PyTorch loop.

Three jobs train the same fold of the same prepared data for the same epochs (BCE, then
Lovasz), each validating on the held-out images after every epoch, each in its own process:

- `salt_train`: the real command, `salt train --fold 0` (MLflow tracking, checkpoints, resume
  state, the validation figure) with the hardware policy of saltseg.hardware;
- `plain_ours`: the loop anyone would write first for the same model: fp32, contiguous
  tensors, a DataLoader per epoch with the same augmentations in the main process, loss.item()
  every step, validation predicted batch by batch and scored with NumPy;
- `plain_smp`: the same plain loop for smp.Unet("resnet34", encoder_weights=None, in_channels=1,
  classes=1), the usual baseline, at the profile's input size rounded up to smp's multiple of 32.

img/s = training images per second of the training loop (validation included); wall = the
whole process (imports, data loading, tracking). A fourth process measures the data path:
augmented images per second (one core, as `salt train` runs it with runtime.num_workers 0)
against one training step of the model under the policy.

    python benchmarks/train_job.py --quick               # ~4 min on 2 cores: 800 images, 1+1 epochs
    python benchmarks/train_job.py --repeats 3 --out-markdown benchmarks/results.md   # real-cpu: 10+5 epochs
    python benchmarks/train_job.py --quick --profile configs/seed-full.yaml           # the seed's network

Data: /work/shared/tgs (or --tgs DIR) ingested and prepared into a temporary folder, else the
synthetic set. The parameters (model, batch, augmentation, runtime) are --profile's, by default
configs/real-cpu.yaml's; the epochs are the benchmark's own.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Train job"
JOBS = ("salt_train", "plain_ours", "plain_smp")


def salt(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "saltseg", *args], check=True, capture_output=True)


def prepare(args: argparse.Namespace, tmp: Path) -> tuple[Path, Path, Path, str]:
    """prepared .npz, folds CSV and params file in `tmp`; the data's description."""
    import numpy as np
    import yaml

    from saltseg.config import StageConfig, params_to_dict
    from saltseg.hardware import pick_device
    from saltseg.profiles import resolve

    if args.tgs.is_dir():
        salt("data", "ingest", str(args.tgs), "--out", str(tmp / "data"))
        source, what = tmp / "data", f"real TGS ({args.tgs})"
    else:
        salt("data", "synth", "--out", str(tmp / "synthetic"))
        source, what = tmp / "synthetic", "synthetic"
    prepared = tmp / "train.npz"
    salt("data", "prepare", "--src", str(source), "--out", str(prepared))
    if args.images:  # a fixed random subset, for --quick
        arrays = dict(np.load(prepared))
        keep = np.sort(np.random.default_rng(0).permutation(len(arrays["ids"]))[: args.images])
        np.savez(prepared, **{k: v[keep] for k, v in arrays.items()})
    params = resolve(args.profile)
    bce, lovasz = params.train.stages
    stages = (StageConfig("bce", args.epochs[0], bce.lr), StageConfig("lovasz", args.epochs[1], lovasz.lr))
    params = dataclasses.replace(
        params,
        train=dataclasses.replace(params.train, stages=stages),
        tracking=dataclasses.replace(params.tracking, uri=f"sqlite:///{tmp / 'mlflow.db'}"),
        # On a CPU no loader workers: on 2 cores they only take time from the model (the data
        # path is timed on its own). A GPU keeps the profile's: there a model fed by the main
        # process would wait for it. The plain loop augments in the main process either way.
        runtime=dataclasses.replace(
            params.runtime,
            compile=args.compile or params.runtime.compile,
            num_workers=params.runtime.num_workers if pick_device().type == "cuda" else 0,
        ),
    )
    params_file = tmp / "params.yaml"
    params_file.write_text(yaml.safe_dump(params_to_dict(params), sort_keys=False))
    folds = tmp / "folds.csv"
    salt("data", "split", "--prepared", str(prepared), "--out", str(folds), "--params", str(params_file))
    return prepared, folds, params_file, f"{what}, {len(np.load(prepared)['ids'])} images"


def fold_seconds(stdout: str) -> dict[int, float]:
    """{fold: training seconds} from the lines `salt train` prints when a fold ends
    ("fold 0: best val_iou ... 12.3 s -> ..."): the loop's time, without process start-up."""
    found = re.findall(r"^fold (\d+): best .*?, ([\d.]+) s -> ", stdout, flags=re.MULTILINE)
    return {int(fold): float(seconds) for fold, seconds in found}


def timed_salt_train(
    params_file: Path, prepared: Path, folds: Path, out: Path, *folds_args: str
) -> tuple[float, dict[int, float]]:
    """(wall seconds, `fold_seconds`) of one `salt train` process (`folds_args`: e.g. "--fold", "0";
    none: every fold; any other option of `salt train` too) writing fold<K>/, metrics<K>.json,
    history<K>.csv and its output, salt_train.log, into `out`."""
    cmd = [sys.executable, "-m", "saltseg", "train", *folds_args, "--params", str(params_file)]
    cmd += ["--prepared", str(prepared), "--folds", str(folds), "--out-dir", str(out / "fold{fold}")]
    cmd += ["--metrics", str(out / "metrics{fold}.json"), "--history", str(out / "history{fold}.csv")]
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=os.environ | {"CI": "1"})
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"salt train failed\n{done.stderr[-3000:]}")
    (out / "salt_train.log").write_text(done.stdout + done.stderr)
    return wall, fold_seconds(done.stdout)


def run_salt_train(prepared: Path, folds: Path, params_file: Path, tmp: Path) -> dict:
    out = tmp / "salt_train"
    wall, seconds = timed_salt_train(params_file, prepared, folds, out, "--fold", "0")
    metrics = json.loads((out / "metrics0.json").read_text())
    images = metrics["n_train"] * metrics["epochs"]
    return {
        "job": "salt_train",
        "img_s": images / seconds[0],
        "loop_s": seconds[0],
        "wall_s": wall,
        "val_iou": metrics["best_val_iou"],
    }


def run_worker(name: str, prepared: Path, folds: Path, params_file: Path, fold: int = 0) -> dict:
    cmd = [sys.executable, __file__, "--worker", name, "--prepared", str(prepared), "--folds", str(folds)]
    cmd += ["--params", str(params_file), "--fold", str(fold)]
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{name}: benchmark worker failed\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1]) | {"wall_s": time.perf_counter() - started}


def _fold(args: argparse.Namespace):  # noqa: ANN202
    from saltseg.config import load_params
    from saltseg.data.folds import fold_indices, load_folds
    from saltseg.data.prepared import load_prepared

    params = load_params(args.params)
    prepared = load_prepared(args.prepared)
    train_idx, val_idx = fold_indices(prepared.ids, load_folds(args.folds), args.fold)
    return params, prepared, train_idx, val_idx


def plain_loop(args: argparse.Namespace) -> dict:
    """The straightforward fp32 loop (see the module docstring); returns its timing."""
    import torch
    from torch.utils.data import DataLoader

    from saltseg.data.augment import build_augment
    from saltseg.data.dataset import SaltDataset, to_tensor
    from saltseg.hardware import Policy, pick_device
    from saltseg.loop import logits_of, train_targets
    from saltseg.losses import stage_train_loss
    from saltseg.metrics import iou_per_image
    from saltseg.models.fit import network_input, to_original

    params, prepared, train_idx, val_idx = _fold(args)
    cfg, bs = params.model, params.train.batch_size
    # The same loss as salt train's, where salt train computes it (train.loss_at); fp32, eager.
    at_input, plain = params.train.loss_at_input, Policy(pick_device())
    torch.manual_seed(0)
    if args.worker == "plain_smp":
        import segmentation_models_pytorch as smp

        model = smp.Unet("resnet34", encoder_weights=None, in_channels=1, classes=1)
        # smp's U-Net needs a multiple of 32: the profile's size rounded up (48 -> 64).
        cfg = dataclasses.replace(cfg, input_size=-(-cfg.input_size // 32) * 32)
    else:
        from saltseg.models import build_model

        model = build_model(cfg)
    device = plain.device
    model = model.to(device)
    data = SaltDataset(
        prepared.images[train_idx], prepared.masks[train_idx], build_augment(params.augment, 0)
    )
    val_images, val_masks = prepared.images[val_idx], prepared.masks[val_idx]
    started, images, best = time.perf_counter(), 0, 0.0
    for stage in params.train.stages:
        loss_fn = stage_train_loss(params.train, stage.loss)
        optimizer = torch.optim.Adam(model.parameters(), lr=stage.lr)
        for _ in range(stage.epochs):
            model.train()
            for x, y, _ in DataLoader(data, batch_size=bs, shuffle=True, drop_last=True):
                x, y = x.to(device), y.to(device)
                loss = loss_fn(
                    logits_of(model, x, cfg, plain, at_input=at_input), train_targets(y, cfg, at_input)
                )
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                loss.item()  # what a progress line prints
                images += len(x)
            model.eval()
            with torch.no_grad():
                chunks = [to_tensor(val_images[i : i + bs]) for i in range(0, len(val_images), bs)]
                logits = torch.cat([to_original(model(network_input(x.to(device), cfg)), cfg) for x in chunks])
            best = max(best, float(iou_per_image(val_masks, logits[:, 0].cpu().numpy() > 0).mean()))
    seconds = time.perf_counter() - started
    return {"job": args.worker, "img_s": images / seconds, "loop_s": seconds, "val_iou": best}


def data_path(args: argparse.Namespace) -> dict:
    """Augmented img/s on one core against the model's train-step img/s under the policy."""
    import torch

    from saltseg import hardware
    from saltseg.data.augment import build_augment
    from saltseg.data.dataset import SaltDataset, SeededBatch
    from saltseg.data.folds import load_folds, stage_train_steps
    from saltseg.loop import logits_of, train_targets
    from saltseg.losses import stage_train_loss
    from saltseg.models import build_model

    params, prepared, train_idx, _ = _fold(args)
    bs, cfg = params.train.batch_size, params.model
    data = SaltDataset(
        prepared.images[train_idx], prepared.masks[train_idx], build_augment(params.augment, 0)
    )
    collate = torch.utils.data.default_collate
    batches = [SeededBatch(b, list(range(b * bs, (b + 1) * bs))) for b in range(len(data) // bs)][:32]
    started = time.perf_counter()
    for batch in batches:
        collate(data.__getitems__(batch))
    augment = len(batches) * bs / (time.perf_counter() - started)
    # As the train stage resolves it: runtime.compile auto weighs the stage's steps.
    policy = hardware.for_params(params, stage_train_steps(params, load_folds(args.folds)))
    model = policy.place(build_model(cfg)).train()
    optimizer, loss_fn = torch.optim.Adam(model.parameters()), stage_train_loss(params.train, "bce")
    at_input = params.train.loss_at_input
    x, y, _ = collate(data.__getitems__(batches[0]))
    y = train_targets(y.to(policy.device), cfg, at_input)

    def step() -> None:
        loss = loss_fn(logits_of(model, x, cfg, policy, at_input=at_input), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step()
    started = time.perf_counter()
    for _ in range(10):
        step()
    if policy.device.type == "cuda":
        torch.cuda.synchronize()  # the steps were only queued
    train = 10 * bs / (time.perf_counter() - started)
    return {
        "job": "data_path",
        "augment_img_s": augment,
        "train_step_img_s": train,
        "policy": policy.describe(),
    }


def summarize(runs: dict[str, list[dict]]) -> dict[str, dict]:
    """Per job: its median run (by img/s), with the medians of the per-round ratios to the plain
    loop, which resist drifts in machine load better than ratios of medians."""
    import statistics

    from train_throughput import median_run

    plain = runs["plain_ours"]
    rows = {}
    for name, done in runs.items():
        speed = statistics.median(r["img_s"] / p["img_s"] for r, p in zip(done, plain, strict=True))
        wall = statistics.median(p["wall_s"] / r["wall_s"] for r, p in zip(done, plain, strict=True))
        rows[name] = median_run(done) | {"speed": speed, "wall": wall}
    return rows


def profile_name(profile: Path) -> str:
    """`profile` as the README names it: relative to the repository when inside it."""
    profile = profile.resolve()
    return str(profile.relative_to(ROOT)) if profile.is_relative_to(ROOT) else str(profile)


def table(rows: dict[str, dict], path: dict, args: argparse.Namespace, data: str, load: tuple) -> str:
    from train_throughput import machine

    device = path["policy"].split()[0]  # Policy.describe(): "cuda bf16 channels_last compiled"
    lines = [
        f"### {datetime.date.today().isoformat()} — {device}{' (--quick)' if args.quick else ''}",
        "",
        f"Machine: {machine(device)}; load average {load[0]:.1f} before, {load[1]:.1f} after  ",
        f"Data: {data}; fold 0; {profile_name(args.profile)} "
        f"with {args.epochs[0]} + {args.epochs[1]} epochs, "
        f"runtime.compile {args.compile or 'as the profile'}; "
        f"jobs round-robin, median of {args.repeats} round(s); "
        "ratios are medians of the per-round ratios  ",
        f"`salt train` policy: {path['policy']}; data path: augmentation {path['augment_img_s']:.0f} img/s "
        f"on one core, model train step {path['train_step_img_s']:.0f} img/s "
        f"({path['augment_img_s'] / path['train_step_img_s']:.1f}x)  ",
        "Command: `python benchmarks/train_job.py " + " ".join(args.argv) + "`",
        "",
        "| job | img/s (loop, validation included) | loop s | process wall s | img/s vs plain fp32 loop "
        "| wall vs plain | best val IoU |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {r['img_s']:.1f} | {r['loop_s']:.1f} | {r['wall_s']:.1f} "
            f"| {r['speed']:.2f}x | {r['wall']:.2f}x | {r['val_iou']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def add_data_options(p: argparse.ArgumentParser, default: tuple[int, int], quick: tuple[int, int]) -> None:
    """The options `prepare` reads: data, subset, profile and epochs (`default`; `quick` with --quick)."""
    p.add_argument("--quick", action="store_true", help=f"800 images, {quick[0]} + {quick[1]} epochs")
    p.add_argument(
        "--epochs",
        type=int,
        nargs=2,
        metavar=("BCE", "LOVASZ"),
        default=default,
        help=f"default {default[0]} {default[1]}",
    )
    p.add_argument("--images", type=int, help="a random subset of the prepared images (800 with --quick)")
    p.add_argument(
        "--tgs", type=Path, default=Path("/work/shared/tgs"), help="Kaggle-layout data, if present"
    )
    p.add_argument(
        "--profile", type=Path, default=ROOT / "configs/real-cpu.yaml", help="whose network and recipe"
    )
    p.set_defaults(quick_epochs=quick)


def finish_data_options(args: argparse.Namespace, argv: list[str]) -> None:
    """--quick's epochs (unless --epochs was given) and subset."""
    if args.quick and "--epochs" not in argv:
        args.epochs = args.quick_epochs
    args.images = args.images or (800 if args.quick else None)


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_options(p, default=(10, 5), quick=(1, 1))
    p.add_argument("--repeats", type=int, default=1, help="run the jobs round-robin this often")
    p.add_argument("--compile", choices=("auto", "on", "off"), help="default: the profile's")
    p.add_argument("--jobs", default=",".join(JOBS), help=f"comma-separated subset of {JOBS}")
    p.add_argument("--out-markdown", type=Path, help="append the table to this file's train-job section")
    for hidden in ("--worker", "--prepared", "--folds", "--params"):
        p.add_argument(hidden, help=argparse.SUPPRESS)
    p.add_argument("--fold", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    finish_data_options(args, argv)
    if "plain_ours" not in args.jobs.split(","):
        p.error("--jobs must include plain_ours: the ratios are against it")
    return args


def main(argv: list[str]) -> None:
    args = parse(argv)
    if args.worker:
        print(json.dumps(data_path(args) if args.worker == "data_path" else plain_loop(args)))
        return
    args.argv = argv
    sys.path.insert(0, str(Path(__file__).parent))
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="train_job_") as tmp_name:
        tmp = Path(tmp_name)
        prepared, folds, params_file, data = prepare(args, tmp)
        runs: dict[str, list[dict]] = {name: [] for name in args.jobs.split(",")}
        for _ in range(args.repeats):  # round-robin: drifts in machine load hit every job alike
            for name, done in runs.items():
                if name == "salt_train":
                    done.append(run_salt_train(prepared, folds, params_file, tmp))
                else:
                    done.append(run_worker(name, prepared, folds, params_file))
                print(
                    f"{name:12s} {done[-1]['img_s']:7.1f} img/s  wall {done[-1]['wall_s']:.1f} s", flush=True
                )
        path = run_worker("data_path", prepared, folds, params_file)
    block = table(summarize(runs), path, args, data, (load_before, os.getloadavg()[0]))
    print("\n" + block)
    if args.out_markdown:
        from train_throughput import append_section

        append_section(args.out_markdown, block, SECTION)


if __name__ == "__main__":
    main(sys.argv[1:])
