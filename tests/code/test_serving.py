"""The served champion and the tracking server, started for real on loopback ports (slow)."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pytest
from test_evaluate import DATA_HASH, tmp_store
from test_predict import champion_submission
from test_registry import registered_setup

from saltseg import tracking
from saltseg.config import TrackingConfig, load_params
from saltseg.serving import MAX_BATCH

pytestmark = pytest.mark.slow
MLFLOW = str(Path(sys.executable).with_name("mlflow"))


@pytest.fixture
def store(tmp_path, monkeypatch):
    # `mlflow models serve` execs `uvicorn` through the shell: the venv's bin must be on PATH.
    monkeypatch.setenv("PATH", f"{Path(MLFLOW).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    yield from tmp_store(tmp_path, monkeypatch)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(url: str, body: dict | str | None = None) -> tuple[int, bytes]:
    """(status, body) of a GET, or of a POST of `body` (a dict, or JSON text as is); 4xx too."""
    data = None if body is None else (body if isinstance(body, str) else json.dumps(body)).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@contextlib.contextmanager
def server(args: list[str], ready_url: str, cwd: Path, timeout: float = 240):
    """Start `args` in its own process group, wait until `ready_url` answers 200, stop it after."""
    log = (cwd / f"server-{time.monotonic_ns()}.log").open("wb")
    proc = subprocess.Popen(args, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            assert proc.poll() is None, f"server exited: {Path(log.name).read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"server not ready: {Path(log.name).read_text()[-3000:]}"
            with contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError):
                if request(ready_url)[0] == 200:
                    break
            time.sleep(1)
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)  # the group this test started: server and workers
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def _bad_requests(images: np.ndarray) -> dict[str, tuple[str, str]]:
    """name -> (JSON body, the one-line reason the server must answer with)."""
    pixels = images.astype(np.float64)
    cases = {
        "normalised": (pixels / 255, "looks normalised to [0, 1]; send pixel values 0..255"),
        "300": (pixels * 0 + 300, "pixel values must lie in 0..255, got 300..300"),
        "-5": (pixels - 5, "pixel values must lie in 0..255, got -5.."),
        "shape": (np.zeros((2, 64, 64)), "expected shape (N, 101, 101), got (2, 64, 64)"),
        "empty": (np.zeros(0), "empty batch; send at least one (101, 101) image"),
        "too many": (np.zeros((MAX_BATCH + 1, 101, 101), np.uint8), f"{MAX_BATCH + 1} in one request"),
    }
    bodies = {name: (json.dumps({"inputs": x.tolist()}), reason) for name, (x, reason) in cases.items()}
    nan = json.dumps({"inputs": pixels.tolist()}).replace(f"{pixels[0, 0, 0]}", "NaN", 1)
    return bodies | {"nan": (nan, "pixel values must be finite numbers 0..255 (found NaN or infinity)")}


def test_served_champion_answers_with_the_masks_salt_predict_writes_and_refuses_bad_input(
    tmp_path, monkeypatch, capsys, store
):
    ids, images, masks = champion_submission(tmp_path, monkeypatch, capsys, n=4)
    bad = _bad_requests(images)

    port = free_port()
    uri = f"models:/saltseg-ensemble@champion-{DATA_HASH}"
    cmd = [MLFLOW, "models", "serve", "-m", uri, "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
    url = f"http://127.0.0.1:{port}/invocations"
    with server(cmd, f"http://127.0.0.1:{port}/ping", tmp_path):
        status, body = request(url, {"inputs": images.tolist()})
        answers = {name: request(url, payload) for name, (payload, _) in bad.items()}
    assert status == 200
    served = np.asarray(json.loads(body)["predictions"])
    assert served.shape == (4, 101, 101)
    np.testing.assert_array_equal(served.astype(bool), masks)
    for name, (code, answer) in answers.items():
        assert code == 400, (name, answer[:300])
        error = json.loads(answer)
        # One line with the reason, and not the request echoed back.
        assert error["message"].startswith("images: ") and bad[name][1] in error["message"], (name, error)
        assert len(answer) < 400, (name, answer[:300])


def test_tracking_server_finds_the_fold_runs_under_the_parent_run(tmp_path, store):
    params = load_params(registered_setup(tmp_path, 0.7))
    tracking.configure(TrackingConfig())  # $MLFLOW_TRACKING_URI: the temporary store
    parent = tracking.parent_run_id(params, tmp_path / "folds.csv", DATA_HASH)
    for fold in (0, 1):
        tags = {tracking.FOLD_TAG: str(fold)}
        with mlflow.start_run(run_name=f"fold{fold}", parent_run_id=parent, tags=tags):
            mlflow.log_metric("val_iou", 0.5 + fold / 10)
    experiment_id = mlflow.get_experiment_by_name("saltseg").experiment_id

    port = free_port()
    cmd = [MLFLOW, "server", "--backend-store-uri", store, "--host", "127.0.0.1", "--port", str(port),
           "--workers", "1"]  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    with server(cmd, f"{base}/health", tmp_path):
        search = {"experiment_ids": [experiment_id], "filter": f"tags.mlflow.parentRunId = '{parent}'"}
        status, body = request(f"{base}/api/2.0/mlflow/runs/search", search)
    assert status == 200
    runs = json.loads(body)["runs"]
    folds = {
        tag["value"]: run["data"]["metrics"][0]["value"]
        for run in runs
        for tag in run["data"]["tags"]
        if tag["key"] == tracking.FOLD_TAG
    }
    assert folds == pytest.approx({"0": 0.5, "1": 0.6})
