"""Latency of `salt serve` against `mlflow models serve` on the same registered pyfunc.

The ensemble is the default profile's architecture (params.yaml) with random weights, one
checkpoint per fold, logged and registered with `saltseg.registry.log_ensemble` in a
throwaway SQLite store: the very pyfunc `salt register` makes. Both servers run at once on
loopback ports; requests alternate between them (one to each per round, after warm-up), so
both see the same machine load. Bodies are {"inputs": tiles} with integer pixels 0..255, as a
client sends them. Reported: the median and the 90th percentile of the wall time of each
request (client side: send, parse, predict, answer), and the size of the answer to malformed JSON.

    python benchmarks/serve_latency.py [--folds 5] [--requests 20] [--out-markdown benchmarks/results.md]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

SECTION = "## Serving latency"
ROOT = Path(__file__).resolve().parents[1]


def register_random_ensemble(folder: Path, folds: int) -> str:
    """Fold checkpoints with random weights -> the registered pyfunc; its models:/ URI."""
    import mlflow
    import torch

    from saltseg.config import load_params
    from saltseg.models import build_model
    from saltseg.models.checkpoint import save_checkpoint
    from saltseg.registry import log_ensemble

    cfg = load_params(ROOT / "params.yaml").model
    torch.manual_seed(0)
    members = {}
    for fold in range(folds):
        path = folder / "models" / f"fold{fold}" / "best.pt"
        meta = {"fold": fold, "epoch": 1, "stage": "bce", "monitor": "val_iou", "score": 0.5}
        save_checkpoint(path, build_model(cfg).eval(), cfg, **meta, data_hash="random")
        members[fold] = (path,)
    thresholds = folder / "thresholds.json"
    tuned = {
        "threshold": 0.5,
        "min_area": 20,
        "tta": True,
        "folds": list(range(folds)),
        "data_hash": "random",
    }
    thresholds.write_text(json.dumps(tuned))
    with mlflow.start_run():
        log_ensemble("bench-ensemble", members, thresholds, batch_size=64)
    return "models:/bench-ensemble/1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, body: bytes) -> tuple[int, bytes, float]:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=600) as response:
            answer, status = response.read(), response.status
    except urllib.error.HTTPError as error:
        answer, status = error.read(), error.code
    return status, answer, time.perf_counter() - start


@contextlib.contextmanager
def started(servers: dict[str, list[str]], folder: Path, env: dict):
    """Start every command (its own process group), wait for /ping; yield name -> base URL."""
    procs, urls = {}, {}
    try:
        for name, cmd in servers.items():
            port = free_port()
            log = (folder / f"{name.replace(' ', '-')}.log").open("wb")
            args = [*cmd, "--port", str(port)]
            procs[name] = subprocess.Popen(
                args, cwd=folder, env=env, stdout=log, stderr=log, start_new_session=True
            )
            urls[name] = f"http://127.0.0.1:{port}"
        for name, url in urls.items():
            deadline = time.monotonic() + 600
            while True:
                if procs[name].poll() is not None or time.monotonic() > deadline:
                    log = (folder / f"{name.replace(' ', '-')}.log").read_text()[-3000:]
                    raise SystemExit(f"{name} did not start:\n{log}")
                with (
                    contextlib.suppress(OSError),
                    urllib.request.urlopen(f"{url}/ping", timeout=5) as response,
                ):
                    if response.status == 200:
                        break
                time.sleep(1)
        yield urls
    finally:
        for proc in procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def measure(urls: dict[str, str], sizes: list[int], requests: int, warmup: int) -> dict:
    """(name, tiles) -> seconds of each timed request; the servers' answers must agree."""
    from saltseg.serving import input_example

    times = {(name, n): [] for name in urls for n in sizes}
    for n in sizes:
        body = json.dumps({"inputs": np.rint(input_example(n)).astype(int).tolist()}).encode()
        answers = {}
        for i in range(warmup + requests):
            for name, url in urls.items():
                status, answer, seconds = post(f"{url}/invocations", body)
                if status != 200:
                    raise SystemExit(f"{name}: HTTP {status}: {answer[:300]!r}")
                answers[name] = json.loads(answer)["predictions"]
                if i >= warmup:
                    times[name, n].append(seconds)
        if len({json.dumps(a) for a in answers.values()}) != 1:
            raise SystemExit(f"the servers' masks differ for {n} tiles")
    return times


def machine() -> str:
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    return f"{model}, {os.cpu_count()} cores"


def markdown(times: dict, malformed: dict, args: argparse.Namespace, loads: list[float]) -> str:
    names = sorted({name for name, _ in times}, key=lambda name: name != "salt serve")
    sizes = sorted({n for _, n in times})
    busy = f"load average {min(loads):.1f}-{max(loads):.1f} (1-minute, sampled before and after)"
    lines = [
        f"### {datetime.date.today()} — cpu ({machine()}; {busy})",
        "",
        f"`python benchmarks/serve_latency.py {' '.join(sys.argv[1:])}` ({args.folds} random folds of the "
        f"default architecture, flip TTA; {args.requests} timed requests per server and size after "
        f"{args.warmup} warm-up, alternating between the servers; torch {torch_version()}, "
        f"Python {platform.python_version()})",
        "",
        "| tiles | server | median ms | p90 ms | median vs `mlflow models serve` |",
        "| ---: | --- | ---: | ---: | ---: |",
    ]
    for n in sizes:
        base = np.median(times["mlflow models serve", n])
        for name in names:
            t = np.asarray(times[name, n]) * 1000
            ratio = np.median(times[name, n]) / base
            lines.append(f"| {n} | {name} | {np.median(t):.0f} | {np.percentile(t, 90):.0f} | {ratio:.2f}x |")
    lines += ["", "Answer to malformed JSON (a 64-tile body cut short), bytes: "]
    lines[-1] += ", ".join(f"{name} {size:,}" for name, size in malformed.items()) + "."
    return "\n".join(lines) + "\n"


def torch_version() -> str:
    import torch

    return torch.__version__


def append(path: Path, text: str) -> None:
    content = path.read_text() if path.exists() else "# Benchmarks\n"
    if SECTION not in content:
        content = content.rstrip("\n") + f"\n\n{SECTION}\n"
    path.write_text(content.rstrip("\n") + "\n\n" + text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=20, help="timed requests per server and size")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--out-markdown", type=Path)
    args = parser.parse_args()
    out = args.out_markdown.resolve() if args.out_markdown else None

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{folder / 'mlflow.db'}")
        env["PATH"] = (
            f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # mlflow execs uvicorn
        )
        os.environ["MLFLOW_TRACKING_URI"] = env["MLFLOW_TRACKING_URI"]
        os.chdir(folder)  # artifacts in ./mlruns, deleted with the folder
        uri = register_random_ensemble(folder, args.folds)
        servers = {
            "salt serve": [
                sys.executable,
                "-m",
                "saltseg",
                "serve",
                "--model",
                uri,
                "--params",
                str(ROOT / "params.yaml"),
            ],
            "mlflow models serve": [
                str(Path(sys.executable).with_name("mlflow")),
                "models",
                "serve",
                "-m",
                uri,
                "--env-manager",
                "local",
                "-h",
                "127.0.0.1",
            ],  # fmt: skip
        }
        loads = [os.getloadavg()[0]]
        with started(servers, folder, env) as urls:
            times = measure(urls, args.sizes, args.requests, args.warmup)
            cut = json.dumps({"inputs": np.zeros((64, 101, 101), int).tolist()})[:-5].encode()
            malformed = {name: len(post(f"{url}/invocations", cut)[1]) for name, url in urls.items()}
        loads.append(os.getloadavg()[0])
    text = markdown(times, malformed, args, loads)
    print(text)
    if out:
        append(out, text)


if __name__ == "__main__":
    main()
