"""Run identity and where runs go: the pipeline key, the store an experiment logs to, lineage tags."""

import dataclasses
import subprocess
from pathlib import Path

from saltseg import tracking
from saltseg.config import Params, RuntimeConfig, SynthConfig, TrackingConfig


def _key(params: Params, folds: Path, data_hash: str = "a" * 16) -> str:
    return tracking.pipeline_key(params, folds, data_hash)


def test_pipeline_key_follows_data_and_numerics_not_speed(tmp_path):
    folds = tmp_path / "folds.csv"
    folds.write_text("id,fold,coverage_class\na,0,0\n")
    base = Params(runtime=RuntimeConfig(device="cpu"))
    assert _key(base, folds) != _key(base, folds, "b" * 16), "other data, other pipeline run"
    same = dataclasses.replace(
        base,
        runtime=RuntimeConfig(device="cpu", num_workers=4, fold_jobs=1),  # speed only
        tracking=TrackingConfig(experiment="elsewhere"),
        synth=SynthConfig(noise=0.2),  # reaches the key through the data it makes, not by itself
    )
    assert _key(same, folds) == _key(base, folds)
    for changed in (
        {"train": dataclasses.replace(base.train, batch_size=16)},
        {"train": dataclasses.replace(base.train, threads=2)},  # other sums
        {"train": dataclasses.replace(base.train, precision="fp32")},
        {"runtime": RuntimeConfig(device="cpu", memory_format="contiguous")},
        {"runtime": RuntimeConfig(device="cpu", compile="on")},
    ):
        assert _key(dataclasses.replace(base, **changed), folds) != _key(base, folds), changed


def test_pseudo_labels_fork_the_key_through_their_fingerprint_only(tmp_path):
    import hashlib
    import json

    folds = tmp_path / "folds.csv"
    folds.write_text("id,fold,coverage_class\na,0,0\n")
    from saltseg import hardware

    base = Params()
    sections = {name: dataclasses.asdict(getattr(base, name)) for name in tracking._KEY_SECTIONS}
    identity = {"data_hash": "a" * 16, "policy": hardware.for_params(base).describe()}
    before = hashlib.sha256(json.dumps({**identity, **sections}, sort_keys=True).encode())
    before.update(folds.read_bytes())
    assert _key(base, folds) == before.hexdigest()[:16], "without pseudo-labels: no pseudo part"
    assert tracking.pipeline_key(base, folds, "a" * 16, None) == _key(base, folds)
    labelled = tracking.pipeline_key(base, folds, "a" * 16, "b" * 16)
    assert labelled != _key(base, folds)
    assert labelled != tracking.pipeline_key(base, folds, "a" * 16, "c" * 16), "another set, another run"
    # The set's fingerprint is the pseudo section's identity; its params alone change nothing.
    teacher = dataclasses.replace(base, pseudo=dataclasses.replace(base.pseudo, teacher="models:/t/1"))
    assert _key(teacher, folds) == _key(base, folds)


def test_store_resolves_against_the_repository_a_dvc_experiment_came_from(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    assert tracking.tracking_uri(TrackingConfig()) == f"sqlite:///{tmp_path / 'mlflow.db'}"
    repo = tmp_path / "repo"  # `dvc exp run --temp` runs in repo/.dvc/tmp/exps/<tmp> with DVC_ROOT=repo
    monkeypatch.setenv("DVC_ROOT", str(repo))
    assert tracking.tracking_uri(TrackingConfig()) == f"sqlite:///{repo / 'mlflow.db'}"
    assert tracking.tracking_uri(TrackingConfig(uri="http://127.0.0.1:5000")) == "http://127.0.0.1:5000"


def test_experiment_tags_name_the_dvc_experiment(monkeypatch):
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    monkeypatch.delenv("DVC_EXP_BASELINE_REV", raising=False)
    assert tracking.experiment_tags() == {}
    monkeypatch.setenv("DVC_EXP_NAME", "tidy-pans")
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", "0123abc")
    assert tracking.experiment_tags() == {"dvc_exp_name": "tidy-pans", "dvc_exp_baseline_rev": "0123abc"}


def test_pipeline_records_do_not_make_the_commit_dirty(tmp_path, monkeypatch):
    def git(*args: str) -> str:
        identity = ("-c", "user.name=t", "-c", "user.email=t@t.invalid")
        return subprocess.run(
            ["git", *identity, *args], cwd=tmp_path, check=True, capture_output=True, text=True
        ).stdout

    git("init", "-q")
    for name in (".gitignore", "dvc.lock", "params.yaml", "models/.gitignore", "metrics/evaluate.json"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x\n")
    git("add", "-A")
    git("commit", "-qm", "init")
    head = git("rev-parse", "HEAD").strip()
    monkeypatch.chdir(tmp_path)
    for name in (".gitignore", "dvc.lock", "models/.gitignore", "metrics/evaluate.json"):
        (tmp_path / name).write_text("written by dvc repro\n")
    assert tracking.git_commit() == head
    (tmp_path / "params.yaml").write_text("edited\n")
    assert tracking.git_commit() == f"{head}-dirty"


def _parent_of(uri: str, folds: str, barrier, ids) -> None:  # noqa: ANN001 - multiprocessing handles
    import os

    os.environ["MLFLOW_TRACKING_URI"] = uri
    params = Params()
    tracking.configure(params.tracking)
    barrier.wait()  # every process searches for the parent at the same moment
    ids.put(tracking.parent_run_id(params, Path(folds), "a" * 16))


def test_folds_started_together_find_one_parent_run(tmp_path):
    import multiprocessing

    import mlflow

    folds = tmp_path / "folds.csv"
    folds.write_text("id,fold,coverage_class\na,0,0\nb,1,0\n")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    ctx = multiprocessing.get_context("spawn")
    barrier, ids = ctx.Barrier(3), ctx.Queue()
    procs = [ctx.Process(target=_parent_of, args=(uri, str(folds), barrier, ids)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    found = {ids.get(timeout=5) for _ in procs}
    assert len(found) == 1, "one pipeline configuration, one parent run"
    mlflow.set_tracking_uri(uri)
    assert len(mlflow.search_runs(search_all_experiments=True)) == 1
