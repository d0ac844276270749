"""Several folds at once (saltseg.fold_jobs): grouping, the cores each fold gets, failures and
interruptions, with real child processes standing in for `salt train --fold K`."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from saltseg.errors import SaltError
from saltseg.fold_jobs import run_folds, waves


def test_waves_group_the_folds_in_order():
    assert waves([0, 1, 2, 3, 4], 2) == [(0, 1), (2, 3), (4,)]
    assert waves([0, 1, 2, 3, 4], 3) == [(0, 1, 2), (3, 4)]  # the default: no fold left alone
    assert waves([0, 1, 2, 3, 4], 5) == [(0, 1, 2, 3, 4)]
    assert waves([3, 1], 1) == [(3,), (1,)]
    assert waves([0, 1], 8) == [(0, 1)]


def _python(code: str) -> list[str]:
    return ["-c", code]


def _record(path: Path) -> list[str]:
    """A fold that writes the OMP_NUM_THREADS it was given ("-": none)."""
    return _python(
        f"import os, pathlib; pathlib.Path({str(path)!r}).write_text(os.environ.get('OMP_NUM_THREADS', '-'))"
    )


def test_every_fold_computes_with_train_threads(tmp_path, monkeypatch):
    """Whatever runs beside it: the fold's numbers do not depend on fold_jobs (no core count asked)."""
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    run_folds({k: _record(tmp_path / f"fold{k}") for k in range(3)}, jobs=2, threads=1)
    assert [(tmp_path / f"fold{k}").read_text() for k in range(3)] == ["1", "1", "1"]


def test_a_failed_fold_is_named_and_later_waves_never_start(tmp_path, capfd):
    commands = {
        0: _record(tmp_path / "fold0"),
        1: _python("import sys; print('error: fold 1 broke', file=sys.stderr); sys.exit(1)"),
        2: _record(tmp_path / "fold2"),
    }
    with pytest.raises(
        SaltError, match=r"^fold 1 failed \(the error is above\); later folds were not started$"
    ):
        run_folds(commands, jobs=2, threads=1)
    assert (tmp_path / "fold0").exists(), "the other fold of the wave finishes"
    assert not (tmp_path / "fold2").exists()
    assert "error: fold 1 broke" in capfd.readouterr().err, "a fold's own error reaches the user"


def test_folds_start_with_the_preloaded_modules_and_run_modules_as_python_m_does(tmp_path):
    """The runner imports `preload` once; each fold is forked from it with those modules loaded."""
    seen = tmp_path / "seen"
    check = f"import sys, pathlib; pathlib.Path({str(seen)!r}).write_text(str('colorsys' in sys.modules))"
    run_folds({0: _python(check), 1: ["-m", "json.tool", "--help"]}, jobs=2, threads=1, preload=["colorsys"])
    assert seen.read_text() == "True"


def test_the_runner_forks_with_no_other_thread_but_jemallocs(tmp_path):
    """After importing what `salt train`'s folds import (torch, MLflow, albumentations...), the
    runner has its own thread and, at most, the background thread of the jemalloc in pyarrow
    (which MLflow imports), whose locks and state jemalloc's own fork handlers reset in the child:
    no thread pool of torch, OpenMP or BLAS, whose locks a fork would copy held."""
    from saltseg.cli.train import FOLD_IMPORTS

    names = tmp_path / "threads"
    dump = (
        "import os, pathlib\n"
        "tasks = f'/proc/{os.getppid()}/task'\n"
        "names = [open(f'{tasks}/{t}/comm').read().strip() for t in os.listdir(tasks)]\n"
        f"pathlib.Path({str(names)!r}).write_text(' '.join(names))\n"
    )
    run_folds({0: _python(dump)}, jobs=1, threads=1, preload=FOLD_IMPORTS)
    threads = names.read_text().split()  # each thread's name: the program's (python3...), or its own
    assert len([name for name in threads if name != "jemalloc_bg_thd"]) == 1, threads


def test_a_runner_that_cannot_be_spawned_leaves_no_pipe_open(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("no processes left")

    before = set(os.listdir("/proc/self/fd"))
    monkeypatch.setattr(subprocess, "Popen", refuse)
    with pytest.raises(OSError, match="no processes left"):
        run_folds({0: _python("pass")}, jobs=1, threads=1)
    assert set(os.listdir("/proc/self/fd")) == before


def test_a_crashed_fold_reports_its_traceback_and_fails(capfd):
    with pytest.raises(SaltError, match=r"^fold 0 failed"):
        run_folds({0: _python("raise ValueError('no salt here')")}, jobs=1, threads=1)
    err = capfd.readouterr().err
    assert "Traceback" in err and "ValueError: no salt here" in err


def test_a_runner_that_cannot_start_is_an_error():
    with pytest.raises(SaltError, match=r"^the fold runner failed with exit status 1"):
        run_folds({0: _python("pass")}, jobs=1, threads=1, preload=["saltseg.no_such_module"])


def test_a_stopped_run_stops_its_folds(tmp_path):
    """SIGTERM to `salt train` (what `timeout` and a killed `dvc repro` send) ends every fold."""
    pids = tmp_path / "pids"
    sleeper = f"import os, time; open({str(pids)!r}, 'a').write(f'{{os.getpid()}}\\n'); time.sleep(120)"
    script = (
        "from saltseg.fold_jobs import run_folds; import sys\n"
        f"run_folds({{0: ['-c', {sleeper!r}], 1: ['-c', {sleeper!r}]}}, 2, 1)"
    )
    parent = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 60
    while len(pids.read_text().split() if pids.exists() else []) < 2:
        assert time.monotonic() < deadline, "the folds did not start"
        time.sleep(0.1)
    parent.send_signal(signal.SIGTERM)
    assert parent.wait(timeout=30) == 128 + signal.SIGTERM
    for pid in map(int, pids.read_text().split()):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


@pytest.mark.slow
def test_folds_side_by_side_train_the_same_bytes(tiny_data, tmp_path):
    """runtime.fold_jobs and runtime.num_workers are speed only: the checkpoints of `salt train`
    with one fold at a time and with two at once, each with a loader worker, are the same bytes
    (either knob alone changing a byte would show)."""
    import dataclasses

    import yaml
    from tiny_training import tiny_params

    from saltseg.config import params_to_dict

    prepared, folds = tiny_data

    def train(name: str, **runtime: int) -> dict[int, bytes]:
        (tmp_path / name).mkdir()
        base = tiny_params(tmp_path / name, lovasz_epochs=1)
        params = dataclasses.replace(base, runtime=dataclasses.replace(base.runtime, **runtime))
        params_file = tmp_path / name / "params.yaml"
        params_file.write_text(yaml.safe_dump(params_to_dict(params)))
        out = tmp_path / name
        command = [sys.executable, "-m", "saltseg", "train", "--params", str(params_file)]
        command += ["--prepared", str(prepared), "--folds", str(folds), "--out-dir", str(out / "fold{fold}")]
        command += ["--metrics", str(out / "m{fold}.json"), "--history", str(out / "h{fold}.csv")]
        subprocess.run(command, check=True, capture_output=True, timeout=600)
        return {k: (out / f"fold{k}" / "best.pt").read_bytes() for k in (0, 1)}

    assert train("together", fold_jobs=2, num_workers=1) == train("alone", fold_jobs=1)
