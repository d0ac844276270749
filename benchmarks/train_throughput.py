"""Training throughput: our models against segmentation_models_pytorch's Unet(resnet34).

One training step = forward + backward + Adam step on random (N, 1, S, S) images and
random binary masks with BCE-with-logits, as in `saltseg.train`. Each model runs in its
own subprocess so that peak memory (CUDA: max_memory_allocated; CPU: the process's peak
RSS from getrusage) of one model never mixes with another's.

    python benchmarks/train_throughput.py --device cpu --batch-size 64 --steps 3 --warmup 1 --repeats 3
    python benchmarks/train_throughput.py --device cuda --amp --channels-last --steps 100 --warmup 10 \
        --repeats 5 [--cuda-graph] --out-markdown benchmarks/results.md

On a GPU an eager step at this size is bound by Python's kernel launches, not by the GPU;
`--cuda-graph` captures the whole step and replays it, timing the GPU work alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported inside the functions: the parent process never needs it
    from torch import Tensor, nn

MODELS = ("preact_resunet", "timm_unet_resnet34", "smp_unet_resnet34")
PEER = "smp_unet_resnet34"
SECTION = "## Train throughput"


def build(name: str, params_path: str, size: int) -> nn.Module:
    """The model called `name`: ours from params.yaml's model section, or the peer."""
    if name == PEER:
        import segmentation_models_pytorch as smp

        return smp.Unet("resnet34", encoder_weights=None, in_channels=1, classes=1)
    from saltseg.config import load_params
    from saltseg.models import build_model

    cfg = dataclasses.replace(load_params(params_path).model, input_size=size)
    if name == "preact_resunet":
        return build_model(dataclasses.replace(cfg, name="preact_resunet"))
    return build_model(dataclasses.replace(cfg, name="timm_unet", encoder="resnet34", encoder_weights=None))


def describe_models(args: argparse.Namespace) -> str:
    """What our two rows are, from the params file they were built from."""
    from saltseg.config import load_params

    cfg = load_params(args.params).model
    return (
        f"preact_resunet start_filters {cfg.start_filters}, depth {cfg.depth}, blocks_per_level "
        f"{cfg.blocks_per_level}; timm_unet resnet34, decoder_channels {list(cfg.decoder_channels)} "
        f"(from {args.params}); peer smp.Unet('resnet34')"
    )


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def make_step(args: argparse.Namespace, model: nn.Module, x: Tensor, y: Tensor) -> Callable[[], None]:
    """One training step as a callable: eager, torch.compile'd, or replaying a captured CUDA graph."""
    import torch
    import torch.nn.functional as F

    # A captured graph must keep Adam's step counters on the GPU and the gradients in place.
    graph = args.cuda_graph
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=args.fused_adam or None, capturable=graph)
    step_model = model
    if args.compile:
        step_model = torch.compile(model, mode=None if args.compile == "default" else args.compile)

    def step() -> None:
        # The policy's autocast, but with its weight cache off: a captured graph must not hold stale casts.
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=args.amp, cache_enabled=not graph):
            logits = step_model(x)
        loss = F.binary_cross_entropy_with_logits(logits.float(), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=not graph)

    if not graph:
        return step
    # Whole-step capture, as in PyTorch's CUDA-graph notes: warm up on a side stream first.
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            step()
    torch.cuda.current_stream().wait_stream(side)
    captured = torch.cuda.CUDAGraph()
    with torch.cuda.graph(captured):
        step()
    keep = (captured, optimizer, step)  # the graph reads their tensors: keep them alive
    return lambda: keep[0].replay()


def worker(args: argparse.Namespace) -> dict:
    """Time one model's training steps in this process; return the numbers as a dict."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from saltseg import hardware

    torch.manual_seed(0)
    # The flags name the policy explicitly (no "auto"): the table says what was timed.
    fmt = "channels_last" if args.channels_last else "contiguous"
    policy = hardware.policy("bf16" if args.amp else "fp32", args.device, fmt, "off")
    device = policy.device
    model = policy.place(build(args.worker, args.params, args.size)).train()
    x = policy.batch(torch.rand(args.batch_size, 1, args.size, args.size))
    y = (torch.rand(args.batch_size, 1, args.size, args.size, device=device) > 0.5).float()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    rss_before = rss_mb()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    step = make_step(args, model, x, y)
    for _ in range(args.warmup):  # first steps pay for allocation, cuDNN autotuning, compilation
        step()
    sync()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync()
    seconds = (time.perf_counter() - start) / args.steps
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {
        "model": args.worker,
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "img_s": args.batch_size / seconds,
        "ms_step": seconds * 1000,
        "peak_mb": peak,
        "rss_growth_mb": peak - rss_before if device.type == "cpu" else None,
    }


def worker_argv(args: argparse.Namespace) -> list[str]:
    """The options a worker needs, rebuilt from the parsed ones."""
    argv = [f"--device={args.device}", f"--batch-size={args.batch_size}", f"--size={args.size}"]
    argv += [f"--steps={args.steps}", f"--warmup={args.warmup}", f"--threads={args.threads}"]
    argv += [f"--params={args.params}"]
    argv += [f"--compile={args.compile}"] if args.compile else []
    flags = ("--amp", "--channels-last", "--fused-adam", "--cuda-graph")
    return argv + [f for f in flags if getattr(args, f[2:].replace("-", "_"))]


def run_one(name: str, argv: list[str]) -> dict:
    cmd = [sys.executable, __file__, *argv, "--worker", name]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{name}: benchmark worker failed\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def median_run(done: list[dict]) -> dict:
    """The run with the median throughput (the lower middle one for even counts)."""
    return sorted(done, key=lambda r: r["img_s"])[(len(done) - 1) // 2]


def machine(device: str) -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        models = [
            ln.split(":", 1)[1].strip()
            for ln in cpuinfo.read_text().splitlines()
            if ln.startswith("model name")
        ]
        cpu = models[0] if models else cpu
    text = f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, Python {platform.python_version()}"
    if device == "cuda":
        try:
            smi = subprocess.run(
                ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                capture_output=True, text=True, check=True,
            ).stdout.strip().splitlines()[0]  # fmt: skip
        except (OSError, subprocess.CalledProcessError, IndexError):
            smi = torch.cuda.get_device_name()
        text = f"{smi} (driver), CUDA {torch.version.cuda}; host {text}"
    return text


def table(rows: list[dict], args: argparse.Namespace) -> str:
    settings = (
        f"device {args.device}, batch {args.batch_size}, {args.size}x{args.size}, {args.steps} timed steps "
        f"after {args.warmup} warm-up, amp(bf16) {args.amp}, channels_last {args.channels_last}, "
        f"compile {args.compile or False}, CUDA graph {args.cuda_graph}, fused Adam {args.fused_adam}, "
        f"threads {args.threads or 'default'}; each model in its own process; median of {args.repeats} "
        "round-robin run(s); 'vs peer' is the median of the per-round throughput ratios"
    )
    cpu = args.device == "cpu"
    mem = "peak RSS MB (process) | RSS growth in training MB" if cpu else "peak CUDA alloc MB"
    lines = [
        f"### {datetime.date.today().isoformat()} — {args.device}",
        "",
        f"Machine: {machine(args.device)}  ",
        f"Settings: {settings}  ",
        f"Models: {describe_models(args)}  ",
        "Command: `python benchmarks/train_throughput.py " + " ".join(args.argv) + "`",
        "",
        f"| model | params (M) | img/s | ms/step | {mem} | img/s vs peer |",
        "| --- | ---: | ---: | ---: | ---: | ---: |" + (" ---: |" if cpu else ""),
    ]
    for r in rows:
        ratio = f"{r['vs_peer']:.2f}x" if "vs_peer" in r else "-"
        lines.append(
            f"| {r['model']} | {r['params_m']:.1f} | {r['img_s']:.1f} | {r['ms_step']:.1f} "
            f"| {r['peak_mb']:.0f} | " + (f"{r['rss_growth_mb']:.0f} | " if cpu else "") + f"{ratio} |"
        )
    return "\n".join(lines) + "\n"


def append_section(path: Path, block: str, section: str = SECTION) -> None:
    """Insert `block` at the end of `section` (a "## " heading), leaving other sections alone."""
    from saltseg.atomic import write_text

    text = path.read_text() if path.exists() else "# Benchmarks\n"
    lines = text.splitlines(keepends=True)
    try:
        start = next(i for i, ln in enumerate(lines) if ln.strip() == section)
    except StopIteration:
        write_text(path, text.rstrip("\n") + f"\n\n{section}\n\n{block}")
        return
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    head = "".join(lines[:end]).rstrip("\n") + "\n\n" + block
    tail = "".join(lines[end:])
    write_text(path, head + ("\n" + tail if tail else ""))


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--size", type=int, default=128, help="input size S (the seed's 128)")
    p.add_argument("--steps", type=int, default=10, help="timed steps")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--amp", action="store_true", help="bf16 autocast")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument(
        "--compile",
        nargs="?",
        const="default",
        help="torch.compile each model (optionally a mode: reduce-overhead, ...)",
    )
    p.add_argument("--fused-adam", action="store_true", help="Adam(fused=True) instead of the default")
    p.add_argument(
        "--cuda-graph",
        action="store_true",
        help="capture the whole step in a CUDA graph and replay it: GPU work without Python's launch cost",
    )
    p.add_argument(
        "--repeats", type=int, default=1, help="run the models round-robin this often; report medians"
    )
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads; 0 = torch's default")
    p.add_argument("--params", default="params.yaml", help="params file whose model section we build")
    p.add_argument("--models", default=",".join(MODELS), help=f"comma-separated subset of {MODELS}")
    p.add_argument(
        "--out-markdown", type=Path, help="append the table to this file's train-throughput section"
    )
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.cuda_graph and (args.device != "cuda" or args.compile):
        p.error("--cuda-graph needs --device cuda and no --compile")
    unknown = set(args.models.split(",")) - set(MODELS)
    if unknown:
        p.error(f"unknown model(s) {sorted(unknown)}; valid: {', '.join(MODELS)}")
    return args


def main(argv: list[str]) -> None:
    args = parse(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return
    args.argv = argv
    runs: dict[str, list[dict]] = {name: [] for name in args.models.split(",")}
    for _ in range(args.repeats):  # round-robin, so that drifts in machine load hit every model alike
        for name, done in runs.items():
            done.append(run_one(name, worker_argv(args)))
            print(f"{name:22s} {done[-1]['img_s']:8.1f} img/s  peak {done[-1]['peak_mb']:.0f} MB", flush=True)
    rows = [median_run(done) for done in runs.values()]
    if PEER in runs:  # ratios within a round, where machine load was alike; then their median
        for row, done in zip(rows, runs.values(), strict=True):
            ratios = sorted(r["img_s"] / p["img_s"] for r, p in zip(done, runs[PEER], strict=True))
            row["vs_peer"] = ratios[(len(ratios) - 1) // 2]
    block = table(rows, args)
    print("\n" + block)
    if args.out_markdown:
        append_section(args.out_markdown, block)


if __name__ == "__main__":
    main(sys.argv[1:])
