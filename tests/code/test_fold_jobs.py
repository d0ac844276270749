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
from saltseg.fold_jobs import run_folds, thread_share, waves


def test_waves_group_the_folds_in_order():
    assert waves([0, 1, 2, 3, 4], 2) == [(0, 1), (2, 3), (4,)]
    assert waves([0, 1, 2, 3, 4], 3) == [(0, 1, 2), (3, 4)]  # the default: no fold left alone
    assert waves([0, 1, 2, 3, 4], 5) == [(0, 1, 2, 3, 4)]
    assert waves([3, 1], 1) == [(3,), (1,)]
    assert waves([0, 1], 8) == [(0, 1)]


def test_thread_share_splits_the_cores_and_keeps_one():
    assert thread_share(2, 2) == 1
    assert thread_share(2, 3) == 1  # more folds than cores: the OS shares them
    assert thread_share(16, 5) == 3
    assert thread_share(2, 1) == 2
    assert thread_share(1, 4) == 1


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def _record(path: Path) -> list[str]:
    """A fold that writes the OMP_NUM_THREADS it was given ("-": none)."""
    return _python(
        f"import os, pathlib; pathlib.Path({str(path)!r}).write_text(os.environ.get('OMP_NUM_THREADS', '-'))"
    )


def test_each_fold_of_a_wave_gets_its_share_of_the_cores(tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    run_folds({k: _record(tmp_path / f"fold{k}") for k in range(3)}, jobs=2, threads=0)
    shares = [(tmp_path / f"fold{k}").read_text() for k in range(3)]
    assert shares == ["1", "1", "-"], "a wave of two splits 2 cores; the last fold runs as alone"


def test_explicit_threads_are_left_to_each_fold(tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    run_folds({k: _record(tmp_path / f"fold{k}") for k in range(2)}, jobs=2, threads=1)
    assert [(tmp_path / f"fold{k}").read_text() for k in range(2)] == ["-", "-"]


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


def test_a_stopped_run_stops_its_folds(tmp_path):
    """SIGTERM to `salt train` (what `timeout` and a killed `dvc repro` send) ends every fold."""
    pids = tmp_path / "pids"
    sleeper = f"import os, time; open({str(pids)!r}, 'a').write(f'{{os.getpid()}}\\n'); time.sleep(120)"
    script = (
        "from saltseg.fold_jobs import run_folds; import sys\n"
        f"run_folds({{0: [sys.executable, '-c', {sleeper!r}], 1: [sys.executable, '-c', {sleeper!r}]}}, 2, 1)"
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
