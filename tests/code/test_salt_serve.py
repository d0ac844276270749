"""`salt serve`: refusals that never echo the request, checked without a server, then for real
on a loopback port over a registered champion (slow)."""

import http.client
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from test_evaluate import run_salt
from test_predict import champion_submission
from test_serving import free_port, request, server, store  # noqa: F401 - store is a fixture

from saltseg.errors import SaltError
from saltseg.serving import MAX_BATCH
from saltseg.serving import server as serving_server
from saltseg.serving.server import MAX_BODY_MB, Refused, parse_request

PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"


def tiles_json(n: int, value: int = 7, separator: str = ", ", key: str = "inputs") -> bytes:
    """{"inputs": n tiles (101, 101) of `value`} as JSON, built by repetition (fast for 2,000 tiles)."""
    row = "[" + separator.join([str(value)] * 101) + "]"
    tile = "[" + separator.join([row] * 101) + "]"
    return ('{"' + key + '": [' + separator.join([tile] * n) + "]}").encode()


def test_malformed_json_is_refused_in_one_line_without_the_body():
    body = b'{"inputs": [[[17, 17, 17, 17, "secret-pixels' + b"x" * 10_000
    with pytest.raises(Refused) as refused:
        parse_request(body, MAX_BATCH)
    assert refused.value.status == 400
    assert refused.value.message.startswith("request: not valid JSON: ")
    assert "secret" not in refused.value.message and "17" not in refused.value.message
    with pytest.raises(Refused, match="not UTF-8"):
        parse_request(b'{"inputs": "\xff"}', MAX_BATCH)
    with pytest.raises(Refused, match='one of "inputs" and "instances"'):
        parse_request(b'{"dataframe_split": {}, "secret-key": 1}', MAX_BATCH)


def test_more_images_than_a_batch_holds_are_refused_before_parsing(monkeypatch):
    def no_parsing(_):
        raise AssertionError("parsed")

    monkeypatch.setattr(json, "loads", no_parsing)
    compact = tiles_json(2000, 0, ",")  # 41 MB: under the body limit, so the count must refuse it
    assert len(compact) < MAX_BODY_MB * 2**20
    with pytest.raises(Refused, match=f"images: about 2000 in one request, at most {MAX_BATCH}"):
        parse_request(compact, MAX_BATCH)


def test_a_full_batch_of_integer_pixels_fits_under_the_default_body_limit():
    assert len(tiles_json(MAX_BATCH, 255)) < MAX_BODY_MB * 2**20 / 1.2  # with a 20% margin
    images = parse_request(tiles_json(MAX_BATCH, 255, ","), MAX_BATCH)
    assert images.shape == (MAX_BATCH, 101, 101)
    depths = parse_request(b'{"instances": {"images": [[[1]]], "depths": [5.0]}}', MAX_BATCH)
    assert depths["images"].shape == (1, 1, 1) and depths["depths"].tolist() == [5.0]


def test_salt_serve_loads_the_model_with_artifact_progress_bars_off_and_checks_its_options(
    monkeypatch, capsys
):
    seen = []

    def load_served(params, model, registry, prepared):
        seen.append((model, os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")))
        raise SaltError("stop before serving")

    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "unset below")  # restored after the test
    monkeypatch.delenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
    monkeypatch.setattr(serving_server, "load_served", load_served)
    code, _, err = run_salt(monkeypatch, capsys, "serve", "--model", "models:/m/1", "--params", PARAMS)
    assert (code, err.strip(), seen) == (1, "error: stop before serving", [("models:/m/1", "false")])
    code, _, err = run_salt(monkeypatch, capsys, "serve", "--max-body-mb", "0", "--params", PARAMS)
    assert (code, err.strip()) == (1, "error: --max-body-mb: must be > 0, got 0.0")
    code, out, _ = run_salt(monkeypatch, capsys, "serve", "--help")
    assert code == 0 and "413" in out and f"default {MAX_BODY_MB}," in out


def post(port: int, body, headers: dict | None = None) -> tuple[int, bytes, float]:
    """(status, answer, seconds) of POST /invocations; `body` bytes or an iterable (chunked)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    start = time.monotonic()
    try:
        headers = {"Content-Type": "application/json", **(headers or {})}
        conn.request(
            "POST", "/invocations", body=body, headers=headers, encode_chunked=not isinstance(body, bytes)
        )
        response = conn.getresponse()
        return response.status, response.read(), time.monotonic() - start
    finally:
        conn.close()


def assert_one_line_refusal(status: int, answer: bytes, code: int, reason: str, probe: bytes) -> None:
    """A one-line JSON error with `reason`, without `probe` (a piece of the request)."""
    assert status == code, answer[:300]
    assert answer.count(b"\n") == 0 and len(answer) < 400, answer[:300]
    assert reason in json.loads(answer)["message"], answer
    assert probe not in answer, answer


@pytest.mark.slow
@pytest.mark.usefixtures("store")  # a fresh MLflow store in tmp_path, the working directory
def test_salt_serve_answers_like_salt_predict_and_refuses_without_echo_in_under_a_second(
    tmp_path, monkeypatch, capsys
):
    ids, images, masks = champion_submission(tmp_path, monkeypatch, capsys, n=4)
    # `salt predict` ran in this process and set it; the server must set it itself.
    monkeypatch.delenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", raising=False)
    malformed = b'{"inputs": [[[7, 7, 7, "secret' + b"7, " * 50_000
    over_limit = tiles_json(2000, 128)  # 2,000 tiles of mid-grey: 102 MB, sent with Content-Length
    too_many = tiles_json(2000, 0, ",")  # 41 MB of zeros: under the limit, too many tiles
    tile = tiles_json(1, 255)[len(b'{"inputs": [') : -2]  # one tile of 255s, 51 KB

    def chunked_over_limit():  # 1,400 tiles (71 MB) a tile at a time, no Content-Length
        yield b'{"inputs": ['
        for i in range(1400):
            yield (b", " if i else b"") + tile
        yield b"]}"

    port = free_port()
    cmd = [sys.executable, "-m", "saltseg", "serve", "--port", str(port), "--params", "params.yaml"]
    with server(cmd, f"http://127.0.0.1:{port}/ping", tmp_path):
        status, body = request(f"http://127.0.0.1:{port}/invocations", {"inputs": images.tolist()})
        instances = request(f"http://127.0.0.1:{port}/invocations", {"instances": images.tolist()})
        bad_values = post(port, json.dumps({"inputs": (images.astype(int) * 0 + 300).tolist()}).encode())
        answers = {
            "malformed": post(port, malformed),
            "over limit": post(port, over_limit),
            "too many": post(port, too_many),
            "chunked": post(port, chunked_over_limit()),
        }
        after = request(f"http://127.0.0.1:{port}/invocations", {"inputs": images[:1].tolist()})
    log = "\n".join(p.read_text() for p in tmp_path.glob("server-*.log"))

    assert status == 200 and instances[0] == 200
    served = np.asarray(json.loads(body)["predictions"])
    assert served.shape == (4, 101, 101)
    np.testing.assert_array_equal(served.astype(bool), masks)
    assert json.loads(instances[1]) == json.loads(body)
    assert after[0] == 200 and np.asarray(json.loads(after[1])["predictions"]).astype(bool).tolist() == [
        masks[0].tolist()
    ]
    limit = f"{MAX_BODY_MB * 2**20:,} bytes"
    expected = {
        "malformed": (400, "request: not valid JSON: ", b"secret"),
        "over limit": (413, f"request: body over the limit of {limit}", b"128"),
        "too many": (400, f"images: about 2000 in one request, at most {MAX_BATCH}", b"0,0"),
        "chunked": (413, f"request: body over the limit of {limit}", b"255"),
    }
    for name, (code, reason, probe) in expected.items():
        answer_status, answer, seconds = answers[name]
        assert_one_line_refusal(answer_status, answer, code, reason, probe)
        assert seconds < 1.0, (name, seconds)
    assert bad_values[0] == 400
    assert json.loads(bad_values[1])["message"] == "images: pixel values must lie in 0..255, got 300..300"
    assert "Downloading artifacts" not in log and "%|" not in log, log[-2000:]
    assert "secret" not in log and "128, 128" not in log
    assert '"POST /invocations HTTP/1.1" 413' in log
