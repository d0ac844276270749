"""Lineage across data sets and DVC experiments, under real DVC and a real MLflow store.

A user who ran the synthetic default and then follows the README's "Real data" steps must
get a submission from the real-data model; experiments run by DVC's queue must land in the
project's own MLflow store, tagged so that `dvc exp show` and the MLflow UI point at each other.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from project_copy import TINY, FinishedPipeline, ProjectCopy, make_copy, pipeline_env

from saltseg.data.prepared import load_prepared

pytestmark = pytest.mark.slow
# Under pytest-xdist, the tests that copy the finished pipeline run on the worker that built it.
shares_pipeline = pytest.mark.xdist_group("pipeline_copy")

# A second, different data set in the Kaggle layout stands in for the real download.
OTHER_DATA = {"synth": {"seed": 7, "n_train": 60, "n_test": 8}}


def client(copy: ProjectCopy):  # noqa: ANN201
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{copy.root / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def set_data_source(copy: ProjectCopy, source: str) -> None:
    params = copy.root / "params.yaml"
    text = params.read_text()
    assert "  source: synthetic" in text
    params.write_text(text.replace("  source: synthetic", f"  source: {source}", 1))


@pytest.fixture(scope="module")
def two_data_sets(pipeline_copy: FinishedPipeline, tmp_path_factory) -> ProjectCopy:
    """The finished synthetic pipeline, copied, then the README's real-data steps with other data."""
    root = tmp_path_factory.mktemp("lineage") / "project"
    shutil.copytree(pipeline_copy.root, root, symlinks=True)
    site_cache = root.parent / "dvc-site"
    site_cache.mkdir()
    copy = ProjectCopy(root, pipeline_env(root, site_cache))
    download = root.parent / "download"
    (root.parent / "other.yaml").write_text(yaml.safe_dump(OTHER_DATA))
    copy.run("salt", "data", "synth", "--out", str(download), "--params", str(root.parent / "other.yaml"))
    copy.run("salt", "data", "ingest", str(download), "--out", "data")
    copy.run("dvc", "add", "data")
    set_data_source(copy, "data")  # what configs/real-cpu.yaml sets, on the tiny profile
    copy.run("dvc", "repro", timeout=1800)
    return copy


@shares_pipeline
def test_real_data_submission_comes_from_the_real_data_model(two_data_sets: ProjectCopy) -> None:
    copy = two_data_sets
    record = json.loads((copy.root / "registry.json").read_text())
    real = load_prepared(copy.root / "prepared" / "train.npz").fingerprint
    assert record["data_hash"] == real
    assert record["alias"] == f"champion-{real}"
    assert "is the first" in record["message"], "never compared with the synthetic champion"
    champion = client(copy).get_model_version(record["name"], record["champion_uri"].rsplit("/", 1)[1])
    assert champion.tags["data_hash"] == real and champion.tags["data_source"] == "data"

    submitted = pd.read_csv(copy.root / "submission.csv", dtype=str, keep_default_na=False)
    test_ids = sorted(p.stem for p in (copy.root / "data" / "test" / "images").glob("*.png"))
    assert sorted(submitted["id"]) == test_ids
    copy.run("salt", "predict", "--data", "data", "--out", "again.csv")  # the default model
    again = pd.read_csv(copy.root / "again.csv", dtype=str, keep_default_na=False)
    pd.testing.assert_frame_equal(again, submitted)
    served = copy.run("salt", "champion").stdout.strip()
    assert served == f"models:/{record['name']}@champion-{real}"


@shares_pipeline
def test_each_data_set_keeps_its_own_champion(
    two_data_sets: ProjectCopy, pipeline_copy: FinishedPipeline
) -> None:
    synthetic = json.loads((pipeline_copy.root / "registry.json").read_text())
    real = json.loads((two_data_sets.root / "registry.json").read_text())
    assert synthetic["data_hash"] != real["data_hash"]
    versions = client(two_data_sets).search_model_versions(f"name = '{real['name']}'")
    by_data = {v.tags["data_hash"]: v for v in versions}
    assert set(by_data) == {synthetic["data_hash"], real["data_hash"]}
    held = client(two_data_sets).get_model_version_by_alias(real["name"], synthetic["alias"])
    assert held.tags["data_hash"] == synthetic["data_hash"]


def _stale_after(copy: ProjectCopy, old: str, new: str) -> str:
    """`dvc status` with one line of params.yaml changed (and put back)."""
    params = copy.root / "params.yaml"
    before = params.read_text()
    assert old in before, old
    try:
        params.write_text(before.replace(old, new, 1))
        return copy.run("dvc", "status").stdout
    finally:
        params.write_text(before)


@shares_pipeline
def test_speed_only_runtime_keys_retrain_nothing(two_data_sets: ProjectCopy) -> None:
    """fold_jobs and num_workers change no byte of a checkpoint (test_fold_jobs.py), so no rerun."""
    for old, new in (("  num_workers: 0", "  num_workers: 1"), ("  fold_jobs: 2", "  fold_jobs: 1")):
        status = _stale_after(two_data_sets, old, new)
        assert "train:" not in status and "evaluate:" not in status, (new, status)


@shares_pipeline
def test_settings_that_change_the_numbers_retrain(two_data_sets: ProjectCopy) -> None:
    """Threads, device, memory format and compilation change the sums a fold computes: train reruns
    (and the pipeline key forks: tests/code/test_tracking.py)."""
    for old, new in (
        ("  threads: 1", "  threads: 2"),
        ("  device: auto", "  device: cpu"),
        ("  memory_format: auto", "  memory_format: contiguous"),
        ("  compile: auto", "  compile: 'off'"),
    ):
        assert "train:" in _stale_after(two_data_sets, old, new), new


@shares_pipeline
def test_pipeline_runs_are_named_by_profile_and_data(two_data_sets: ProjectCopy) -> None:
    mlflow_client = client(two_data_sets)
    experiment = mlflow_client.get_experiment_by_name("saltseg")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    parents = mlflow_client.search_runs(
        [experiment.experiment_id], filter_string="tags.`saltseg.pipeline_key` != ''"
    )
    names = sorted(r.info.run_name for r in parents)
    real = load_prepared(two_data_sets.root / "prepared" / "train.npz").fingerprint
    assert any(re.fullmatch(rf"\d\.\d{{3}} nested · ci-tiny\+edits · data@{real[:8]}", n) for n in names), (
        names
    )
    assert any(re.fullmatch(r"\d\.\d{3} nested · ci-tiny · synthetic@[0-9a-f]{8}", n) for n in names), names
    for run in parents:
        assert {"oof_score", "oof_score_nested"} <= set(run.data.metrics)
        assert run.data.params["model.start_filters"] == "4"


def run_queue(copy: ProjectCopy, jobs: int, timeout: float = 1200) -> str:
    """Start `jobs` DVC queue workers, wait until nothing is queued or running, stop them.

    DVC's temporary workers (dvc-task) have two races that a busy machine triggers: a
    worker busy in an experiment can miss its monitor's one-second inspect and be told to
    shut down, which leaves experiments queued with no worker (treeverse/dvc#10562; the
    remedy is to start workers again), or that shutdown gets lost and the worker idles
    forever once the queue is empty. So the workers' output goes to a file (a captured pipe
    would stay open as long as they live), and whatever worker is left is stopped at the end.
    """
    log = copy.root.parent / "queue-start.log"

    def start() -> float:
        with log.open("ab") as out:
            subprocess.run(
                ["dvc", "queue", "start", "-j", str(jobs)],
                cwd=copy.root,
                env=copy.env,
                stdout=out,
                stderr=out,
                check=True,
                timeout=120,
            )
        return time.monotonic()

    deadline = time.monotonic() + timeout
    started = start()
    try:
        while True:
            status = copy.run("dvc", "queue", "status").stdout
            if not any(word in status for word in ("Queued", "Running")):
                return status
            assert time.monotonic() < deadline, status + log.read_text()
            if "Running" not in status and time.monotonic() - started > 30:
                started = start()
            time.sleep(5)
    finally:
        stop_workers(copy)


def failed_by_dvc(copy: ProjectCopy, status: str) -> list[str]:
    """The experiments of a `dvc queue status` that failed in DVC's own machinery; fails the test
    on one whose stage command failed.

    Two workers at once can fail an experiment in DVC's set-up or collection, with no log or a
    traceback of DVC's (treeverse/dvc#10673, open; #8763). A command of ours that failed is what
    DVC reports as "exited with"."""
    lost = []
    for line in status.splitlines():
        if line.endswith("Failed"):
            name = line.split()[1]
            log = copy.run("dvc", "queue", "logs", name, check=False)
            assert "exited with" not in log.stdout + log.stderr, status + log.stdout + log.stderr
            lost.append(name)
    return lost


def stop_workers(copy: ProjectCopy) -> None:
    """Stop the queue workers still alive in the copy (by the pid files DVC keeps for them)."""
    for info in (copy.root / ".dvc" / "tmp" / "exps" / "celery").glob("dvc-exp-worker-*.json"):
        pid = json.loads(info.read_text())["pid"]
        cmdline = Path(f"/proc/{pid}/cmdline")
        if cmdline.exists() and b"queue-worker" in cmdline.read_bytes():
            os.kill(pid, signal.SIGKILL)


def test_queued_experiments_land_in_the_project_store(tmp_path: Path) -> None:
    copy = make_copy(tmp_path / "project")
    copy.run("salt", "params", "use", str(TINY))
    identity = ("-c", "user.name=saltseg-tests", "-c", "user.email=tests@saltseg.invalid")
    copy.run("git", *identity, "commit", "-qam", "tiny profile")
    head = copy.run("git", "rev-parse", "HEAD").stdout.strip()
    seeds = {"exp-a": 1, "exp-b": 2}
    for name, seed in seeds.items():
        copy.run("dvc", "exp", "run", "--queue", "-S", f"train.seed={seed}", "-n", name)
    status = run_queue(copy, jobs=2)
    lost = failed_by_dvc(copy, status)
    if lost:  # DVC's worker race, not ours: queued again, as docs/experiments.md tells users
        copy.run("dvc", "queue", "remove", "--failed")
        for name in lost:
            copy.run("dvc", "exp", "run", "--queue", "-S", f"train.seed={seeds[name]}", "-n", name)
        status = run_queue(copy, jobs=1)
    assert status.count("Success") == 2, status

    mlflow_client = client(copy)  # the project's own store, not the throwaway copies'
    experiment = mlflow_client.get_experiment_by_name("saltseg")
    parents = mlflow_client.search_runs(
        [experiment.experiment_id], filter_string="tags.`saltseg.pipeline_key` != ''"
    )
    by_exp = {r.data.tags.get("dvc_exp_name"): r for r in parents}
    assert set(by_exp) == {"exp-a", "exp-b"}
    for name, run in by_exp.items():
        assert run.data.tags["dvc_exp_baseline_rev"] == head
        assert run.data.params["train.seed"] == {"exp-a": "1", "exp-b": "2"}[name]
        assert "oof_score" in run.data.metrics
    versions = mlflow_client.search_model_versions("name = 'saltseg-ensemble'")
    assert {v.run_id for v in versions} == {r.info.run_id for r in parents}

    table = copy.run(
        "dvc", "exp", "show", "--no-pager", "--csv", "--drop", ".*", "--keep", "^(Experiment|score)$"
    )
    rows = set(pd.read_csv(io.StringIO(table.stdout))["Experiment"].dropna())
    assert {"exp-a", "exp-b"} <= rows, table.stdout
