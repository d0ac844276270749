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

The fold processes are forked from one runner process that has imported what every fold
imports (torch, MLflow, albumentations, saltseg's training modules): ~6 s of CPU a fold on the
2-core machine, paid once instead of once per fold (benchmarks/results.md, "Cold start"). The
runner only imports and forks, computing nothing: no thread pool of torch, OpenMP or BLAS exists
in it for a fork to break, only the background thread of pyarrow's jemalloc, whose locks and
state jemalloc's own fork handlers reset in the child (tests/code/test_fold_jobs.py::
test_the_runner_forks_with_no_other_thread_but_jemallocs).
"""

from __future__ import annotations

import importlib
import json
import os
import runpy
import signal
import subprocess
import sys
import threading
import traceback
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


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # runs the `finally` below: no fold outlives the stage


def run_folds(commands: dict[int, list[str]], jobs: int, threads: int, preload: Sequence[str] = ()) -> None:
    """Run each fold's command, `jobs` at a time (see `waves`); stop after a group in which a
    fold failed, and raise SaltError naming the failed folds.

    commands: per fold, what follows `python` on its command line (`-m module args...` or
    `-c code args...`), run in a process forked from the runner, which has imported the modules
    `preload` first. threads: train.threads, given to every fold as OMP_NUM_THREADS too, so that
    the libraries below torch start no more threads than the fold computes with.
    """
    env = dict(os.environ) | {"OMP_NUM_THREADS": str(threads)}
    plan = {"commands": {str(k): v for k, v in commands.items()}, "jobs": jobs, "preload": list(preload)}
    status, status_w = os.pipe()
    command = [sys.executable, "-m", "saltseg.fold_jobs", json.dumps(plan), str(status_w)]
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    runner = None
    with os.fdopen(status) as reply:
        try:
            try:
                # Piped, not inherited: a fold writing to a terminal would draw its own progress
                # bar over the others'; through a pipe each prints plain lines.
                runner = subprocess.Popen(
                    command,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    pass_fds=(status_w,),
                )
            finally:
                os.close(status_w)  # the runner holds its own copy: the reply ends when it exits
            pumps = [
                threading.Thread(target=_forward, args=(runner.stdout, sys.stdout), daemon=True),
                threading.Thread(target=_forward, args=(runner.stderr, sys.stderr), daemon=True),
            ]
            for pump in pumps:
                pump.start()
            failed = json.loads(reply.read() or "null")
            runner.wait()
            for pump in pumps:
                pump.join()
        finally:
            if runner is not None and runner.poll() is None:  # interrupted: stop the runner and its folds
                runner.terminate()
                runner.wait()
            signal.signal(signal.SIGTERM, previous)
    if failed is None:
        raise SaltError(f"the fold runner failed with exit status {runner.returncode} (the error is above)")
    if failed:
        names = f"fold{'s' if len(failed) > 1 else ''} {', '.join(map(str, failed))}"
        raise SaltError(f"{names} failed (the error is above); later folds were not started")


_running: dict[int, int] = {}  # the runner's folds now training: fold -> pid


def _serve(plan: dict, status_fd: int) -> None:
    """The runner: import `plan["preload"]`, then fork the folds wave after wave; write the
    list of failed folds (JSON) to `status_fd`."""
    for name in plan["preload"]:
        importlib.import_module(name)
    signal.signal(signal.SIGTERM, _stop_folds)
    # Ctrl-C reaches the folds too (one process group): they stop, and the runner reports them.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    commands = {int(k): v for k, v in plan["commands"].items()}
    failed: list[int] = []
    for wave in waves(list(commands), plan["jobs"]):
        # Nothing buffered here is written twice by a fork.
        sys.stdout.flush()
        sys.stderr.flush()
        _running.update((fold, _fork(commands[fold])) for fold in wave)
        failed = [fold for fold, pid in list(_running.items()) if _wait(pid) != 0]
        _running.clear()
        if failed:
            break
    os.write(status_fd, json.dumps(failed).encode())


def _stop_folds(signum: int, frame: object) -> None:
    for pid in _running.values():
        os.kill(pid, signal.SIGTERM)
    for pid in _running.values():
        _wait(pid)
    os._exit(128 + signum)


def _wait(pid: int) -> int:
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def _fork(argv: list[str]) -> int:
    """Start `python *argv` as a fork of this process; its pid."""
    pid = os.fork()
    if pid:
        return pid
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    # Whole lines per write: the folds share the runner's pipes.
    sys.stdout.reconfigure(line_buffering=True, write_through=False)
    sys.stderr.reconfigure(line_buffering=True, write_through=False)
    code = 1
    try:
        code = _run_python(argv)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _run_python(argv: list[str]) -> int:
    """What `python *argv` would do and exit with, for `-m module ...` and `-c code ...`."""
    option, target, *args = argv
    try:
        if option == "-m":
            sys.argv = [target, *args]
            runpy.run_module(target, run_name="__main__", alter_sys=True)
        elif option == "-c":
            sys.argv = ["-c", *args]
            exec(compile(target, "<string>", "exec"), {"__name__": "__main__"})  # noqa: S102
        else:
            raise SaltError(f"fold command: {option!r} is neither -m nor -c")
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)
        return 1
    except BaseException:  # noqa: BLE001 - a fold's crash is reported as python would, then exits 1
        traceback.print_exc()
        return 1
    return 0


if __name__ == "__main__":
    _serve(json.loads(sys.argv[1]), int(sys.argv[2]))
