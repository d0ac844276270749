"""torch.compile once per project (#24): `dvc exp run --temp` experiments share the project's
compile cache, compile nothing a second time, train the same folds with a warm cache as with a
cold one, and compile again when the model code changes. Real `dvc exp run --temp` in a copy
of the project, configs/ci-tiny.yaml with runtime.compile on (~2 min on 2 busy cores)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from project_copy import TINY, ProjectCopy, make_copy

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("compile_cache")]
CACHE = Path(".cache/torch-compile")
READY = re.compile(
    r"compile: the folds' graphs ready in [\d.]+ s \((\d+) compiled, (\d+) from the cache (.*)\)"
)


def experiment(copy: ProjectCopy, *how: str) -> tuple[tuple[int, int, str], list[str]]:
    """Run the train stage (`how`: more `dvc exp run` options) as a temporary experiment with
    runtime.compile on: ((graphs compiled, graphs from the cache, cache folder) as the train stage
    printed them, each fold's result line without its seconds)."""
    proc = copy.run("dvc", "exp", "run", "--temp", "-S", "runtime.compile=on", *how, "train", timeout=1200)
    log = proc.stdout + proc.stderr
    ready = READY.findall(log)
    assert len(ready) == 1, log[-3000:]
    compiled, cached, folder = ready[0]
    results = re.findall(r"^fold \d+: best .*$", log, re.M)
    folds = sorted(re.sub(r", [\d.]+ s -> .*", "", line) for line in results)
    assert len(folds) == 2, log[-3000:]  # configs/ci-tiny.yaml's
    return (int(compiled), int(cached), folder), folds


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def test_experiments_compile_once_per_model_and_train_the_same_folds(tmp_path):
    copy = make_copy(tmp_path / "project")
    # The stages before train, committed: each experiment then runs train alone. Not the committed
    # lock: it names outputs of later stages that this copy has no cache for.
    copy.run("git", "rm", "-q", "dvc.lock")
    copy.run("salt", "params", "use", str(TINY))
    copy.run("dvc", "repro", "split", "pseudo")
    copy.run("git", "add", "-A")
    copy.run("git", "-c", "user.name=t", "-c", "user.email=t@t.invalid", "commit", "-qm", "data")
    cache = copy.root / CACHE

    (compiled, cached, folder), cold = experiment(copy)
    assert compiled > 0 and cached == 0
    assert Path(folder) == cache, "the project's own cache, not /tmp or the experiment's copy"
    # One folder per FX graph: the folds compiled none that the warm-up (its validation graph
    # compiled in a process of its own) had not.
    assert len(list(cache.glob("fxgraph/*/*"))) == compiled
    filled = snapshot(cache)

    # The same params again (the train stage alone, forced: DVC would restore it from its run
    # cache): every graph from the cache, nothing written to it, the same fold results.
    first = compiled
    (compiled, cached, _), warm = experiment(copy, "--force", "--single-item")
    assert (compiled, cached) == (0, first)
    assert snapshot(cache) == filled
    assert warm == cold

    # Another model code: inductor's key is the traced graph, so it compiles again.
    model = copy.root / "src/saltseg/models/preact_resunet.py"
    text = model.read_text()
    assert "        x = self.stem(x)\n" in text
    model.write_text(text.replace("        x = self.stem(x)\n", "        x = self.stem(x * 1.5)\n", 1))
    (compiled, cached, _), _ = experiment(copy)
    assert compiled > 0
    assert len(snapshot(cache)) > len(filled)
