"""Where a cold compilation of the train stage's graphs goes, with Inductor's two wrappers.

For each wrapper, a fresh process with an empty compile cache runs saltseg.compile_cache.warm
(what `salt train` compiles once before its folds: one train step, one validation batch) for the
profile's model, batch and policy (compiling), and reports its wall seconds, the CPU seconds of
that process and of every compiler process it started, and the shared libraries it built (.so
files in the cache, one g++ call each). Then another fresh process reads that cache as a fold
does and times one fold's train step (after 3 untimed), beside the eager step:

- `python`: Inductor's default, a Python wrapper calling one .so per kernel (each its own g++);
- `cpp`: TORCHINDUCTOR_CPP_WRAPPER=1, the wrapper and kernels of a graph compiled together.

    python benchmarks/compile_cost.py --out-markdown benchmarks/results.md   # ~6 min on 2 cores
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Compile cost"
COLD_START = Path(__file__).with_name("cold_start.py")
WRAPPERS = {"python": "0", "cpp": "1"}


def compile_once(params_file: Path) -> dict:
    """In this process: the train stage's warm-up, compiling from the (empty) cache."""
    import dataclasses

    from saltseg import hardware
    from saltseg.compile_cache import warm
    from saltseg.config import load_params

    params = load_params(params_file)
    params = dataclasses.replace(params, runtime=dataclasses.replace(params.runtime, compile="on"))
    policy = hardware.for_params(params)
    started = time.monotonic()
    warm(params, policy)
    return {"wall_s": time.monotonic() - started, "policy": policy.describe()}


def in_process(script: Path, mode: str, params_file: Path, cache: Path, wrapper: str) -> dict:
    """Run `mode` in a fresh process with its own compile cache; its answer and the CPU seconds
    it and its children (Inductor's compile workers and their g++) took. `script`: this file
    (mode "compile") or cold_start.py, whose worker times a train step (mode "on" or "off")."""
    env = os.environ | {"TORCHINDUCTOR_CACHE_DIR": str(cache), "TORCHINDUCTOR_CPP_WRAPPER": WRAPPERS[wrapper]}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cmd = [sys.executable, str(script), "--worker", mode, "--params", str(params_file)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return json.loads(done.stdout.strip().splitlines()[-1]) | {"cpu_s": cpu}


def measure(params_file: Path, tmp: Path) -> dict[str, dict]:
    results = {}
    for wrapper in WRAPPERS:
        cache = tmp / f"cache-{wrapper}"
        compiled = in_process(Path(__file__), "compile", params_file, cache, wrapper)
        compiled["libraries"] = len(list(cache.rglob("*.so")))
        step = in_process(COLD_START, "on", params_file, cache, wrapper)
        results[wrapper] = compiled | {"step_s": step["step_s"], "load_s": step["first_s"]}
        print(wrapper, results[wrapper], flush=True)
    results["eager"] = in_process(COLD_START, "off", params_file, tmp / "cache-eager", "python")
    return results


def table(results: dict[str, dict], profile: str, load: tuple) -> str:
    from train_throughput import machine

    eager = results["eager"]["step_s"]
    lines = [
        f"### {datetime.date.today().isoformat()} — cpu",
        "",
        f"Machine: {machine('cpu')}; load average {load[0]:.1f} before, {load[1]:.1f} after  ",
        f"Profile: {profile} ({results['python']['policy']}); the graphs of `salt train`'s warm-up  ",
        "Command: `python benchmarks/compile_cost.py`",
        "",
        "| wrapper | compile wall s | CPU s (with compiler processes) "
        "| shared libraries built (one g++ each) | a fold loads them, s "
        f"| train step ms (eager: {eager * 1000:.0f}) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for wrapper in WRAPPERS:
        r = results[wrapper]
        lines.append(
            f"| {wrapper} | {r['wall_s']:.0f} | {r['cpu_s']:.0f} | {r['libraries']} | {r['load_s']:.1f} "
            f"| {r['step_s'] * 1000:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", type=Path, default=ROOT / "configs/real-cpu.yaml")
    p.add_argument("--out-markdown", type=Path, help="append the table to this file's compile-cost section")
    p.add_argument("--worker", choices=("compile",), help=argparse.SUPPRESS)
    p.add_argument("--params", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(compile_once(args.params)))
        return
    import yaml

    from saltseg.config import params_to_dict
    from saltseg.profiles import resolve

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="compile_cost_") as tmp_name:
        tmp = Path(tmp_name)
        params_file = tmp / "params.yaml"
        params_file.write_text(yaml.safe_dump(params_to_dict(resolve(args.profile)), sort_keys=False))
        results = measure(params_file, tmp)
    sys.path.insert(0, str(Path(__file__).parent))
    from train_job import profile_name

    block = table(results, profile_name(args.profile), (load_before, os.getloadavg()[0]))
    print("\n" + block)
    if args.out_markdown:
        from train_throughput import append_section

        append_section(args.out_markdown, block, SECTION)


if __name__ == "__main__":
    main(sys.argv[1:])
