"""`salt train` over several folds: each fold its own `salt train --fold K` process,
`runtime.fold_jobs` of them at a time.

DVC runs one stage at a time, so folds can only train side by side inside the train stage. Two
measurements make that pay (benchmarks/results.md): on the 2-core CPU, single-thread folds side
by side train five folds 1.4x faster than one fold at a time on both threads when two run at
once, 1.5x when three do (the small convolutions leave the second thread half idle, and
augmentation runs on one core), and on one GPU the seed's small U-Net leaves most of the device
idle (five folds at once: 2.2x on an H200).

Each fold is a fresh process (its own RNG, compile caches and MLflow client) that resumes from
its own folder, finds the pipeline's parent run under the store's lock
(saltseg.tracking.parent_run_id) and computes with train.threads threads, as it would alone:
how many folds run at once changes the wall time, not the checkpoints
(tests/code/test_fold_jobs.py::test_folds_side_by_side_train_the_same_bytes).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import TextIO

from saltseg.errors import SaltError


def waves(folds: Sequence[int], jobs: int) -> list[tuple[int, ...]]:
    """The folds in groups of at most `jobs`: a group starts together, the next when it has ended.

    Why groups and not a pool: a group's folds share the CPU cores evenly, so an odd last fold
    gets all of them instead of one thread beside an idle core.
    """
    return [tuple(folds[i : i + jobs]) for i in range(0, len(folds), jobs)]


def _forward(source: TextIO, sink: TextIO) -> None:
    # Line by line, so that the folds' progress lines interleave whole.
    for line in source:
        sink.write(line)
        sink.flush()


def _start(command: list[str], env: dict[str, str]) -> tuple[subprocess.Popen, list[threading.Thread]]:
    # Piped, not inherited: a child writing to a terminal would draw its own progress bar over
    # the others'; through a pipe each prints plain lines.
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pumps = [
        threading.Thread(target=_forward, args=(proc.stdout, sys.stdout), daemon=True),
        threading.Thread(target=_forward, args=(proc.stderr, sys.stderr), daemon=True),
    ]
    for pump in pumps:
        pump.start()
    return proc, pumps


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # runs the `finally` below: no fold outlives the stage


def run_folds(commands: dict[int, list[str]], jobs: int, threads: int) -> None:
    """Run each fold's command, `jobs` at a time (see `waves`); stop after a group in which a
    fold failed, and raise SaltError naming the failed folds.

    threads: train.threads, given to every fold as OMP_NUM_THREADS too, so that the libraries
    below torch start no more threads than the fold computes with.
    """
    env = dict(os.environ) | {"OMP_NUM_THREADS": str(threads)}
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    running: dict[int, subprocess.Popen] = {}
    try:
        for wave in waves(list(commands), jobs):
            started = {fold: _start(commands[fold], env) for fold in wave}
            running = {fold: proc for fold, (proc, _) in started.items()}
            failed = [fold for fold, proc in running.items() if proc.wait() != 0]
            for _, pumps in started.values():
                for pump in pumps:
                    pump.join()
            running = {}
            if failed:
                names = f"fold{'s' if len(failed) > 1 else ''} {', '.join(map(str, failed))}"
                raise SaltError(f"{names} failed (the error is above); later folds were not started")
    finally:
        for proc in running.values():  # interrupted: stop the folds still training
            proc.terminate()
        for proc in running.values():
            proc.wait()
        signal.signal(signal.SIGTERM, previous)
