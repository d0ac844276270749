"""`salt serve`: the registered pyfunc behind a small ASGI app that never echoes a request.

MLflow's scoring server reads and parses a whole body before any check and answers malformed
JSON with the body in the message. This app speaks the same protocol (GET /ping and /health;
POST /invocations with {"inputs": ...} or {"instances": ...}, answered {"predictions": ...}),
but refuses a body over the limit from its Content-Length before reading it (HTTP 413), stops
reading a chunked body once it passes the limit (413), refuses a body with more '[' than the
largest batch can hold before parsing it (400), and answers every error with one line that
quotes no part of the request: {"error_code": ..., "message": ...}. Prediction is the pyfunc's
own `predict`, so the model's checks (`BadImages`) answer as they do under MLflow.
"""

from __future__ import annotations

import asyncio
import json
import logging

import numpy as np

from saltseg.data.tgs import SIZE
from saltseg.serving import MAX_BATCH

# 1,024 tiles of the widest integers (255) are 50.0 MiB of JSON ({"inputs": [[[255, 255, ...]]]}
# as json.dumps writes it): 64 MiB takes a full batch of integers with a 28% margin, and a
# 2,000-tile request of ordinary pixel values (about 90 MB) is refused unread.
MAX_BODY_MB = 64
# A request of at most n images holds at most 1 + n * (SIZE + 1) '[' (plus one for "depths"):
# more than that cannot be a batch the model takes, so it is refused without parsing.
BRACKETS_PER_IMAGE = SIZE + 1
LOG = logging.getLogger("saltseg.serve")


class Refused(Exception):
    """An HTTP error answer: status, MLflow-style error code and a one-line message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def one_line(text: str, limit: int = 300) -> str:
    """The first line of `text`, at most `limit` characters."""
    line = (text.strip().splitlines() or [""])[0]
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _header(scope: dict, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


async def read_body(scope: dict, receive, limit: int) -> bytes:  # noqa: ANN001 - ASGI receive
    """The request body, refused (413) from Content-Length before reading or once it passes `limit`."""
    too_large = Refused(413, "REQUEST_LIMIT_EXCEEDED", f"request: body over the limit of {limit:,} bytes")
    length = _header(scope, b"content-length")
    if length is not None:
        if not length.isdigit():
            raise Refused(400, "BAD_REQUEST", "request: Content-Length is not a number")
        if int(length) > limit:
            raise too_large
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionError("client went away")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def parse_request(body: bytes, max_batch: int) -> object:
    """What MLflow's scoring server hands a model without input schema: np.ndarray, or a dict of them.

    Refused (400, one line, no part of the body): more '[' than `max_batch` images can hold,
    bytes that are not UTF-8 JSON, and anything but an object with exactly one of "inputs" and
    "instances".
    """
    brackets = body.count(b"[")
    if brackets > 2 + max_batch * BRACKETS_PER_IMAGE:
        images = (brackets - 1) // BRACKETS_PER_IMAGE
        raise Refused(
            400, "INVALID_PARAMETER_VALUE", f"images: about {images} in one request, at most {max_batch}"
        )
    try:
        payload = json.loads(body)
    except UnicodeDecodeError as exc:
        raise Refused(400, "BAD_REQUEST", f"request: not UTF-8 (byte {exc.start})") from None
    except json.JSONDecodeError as exc:  # its msg never holds the document
        where = f"line {exc.lineno} column {exc.colno} (char {exc.pos})"
        raise Refused(400, "BAD_REQUEST", f"request: not valid JSON: {exc.msg} at {where}") from None
    keys = set(payload) & {"inputs", "instances"} if isinstance(payload, dict) else set()
    if len(keys) != 1:
        raise Refused(
            400, "BAD_REQUEST", 'request: expected a JSON object with one of "inputs" and "instances"'
        )
    data = payload[keys.pop()]
    parts = data if isinstance(data, dict) else {"images": data}
    arrays = {}
    for key, value in parts.items():
        try:
            arrays[key] = np.array(value)
        except ValueError:  # ragged nested lists
            name = one_line(str(key), 40)
            raise Refused(400, "INVALID_PARAMETER_VALUE", f"{name}: not a rectangular array") from None
    return arrays if isinstance(data, dict) else arrays["images"]


def predict(model, body: bytes, max_batch: int) -> bytes:  # noqa: ANN001 - mlflow PyFuncModel
    """The JSON answer {"predictions": ...} to one request body; Refused for bad input."""
    from mlflow.exceptions import MlflowException

    data = parse_request(body, max_batch)
    try:
        predictions = model.predict(data)
    except MlflowException as exc:  # BadImages: the model's own one-line reason
        raise Refused(exc.get_http_status_code(), exc.error_code, one_line(exc.message)) from None
    return json.dumps({"predictions": np.asarray(predictions).tolist()}).encode()


class ScoringApp:
    """ASGI app over a loaded pyfunc; `max_body` in bytes; the model's `max_batch` if it has one."""

    def __init__(self, model, max_body: int) -> None:  # noqa: ANN001 - mlflow PyFuncModel
        self.model = model
        self.max_body = max_body
        self.max_batch = int(getattr(model.unwrap_python_model(), "max_batch", MAX_BATCH))

    async def __call__(self, scope: dict, receive, send) -> None:  # noqa: ANN001 - ASGI callables
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        try:
            status, body = await self.answer(scope, receive)
        except Refused as exc:
            status = exc.status
            body = json.dumps({"error_code": exc.code, "message": exc.message}).encode()
        except ConnectionError:
            return
        except Exception as exc:  # a bug: the traceback goes to the log, one line to the client
            LOG.exception("request failed")
            status = 500
            error = {"error_code": "INTERNAL_ERROR", "message": f"internal error: {type(exc).__name__}"}
            body = json.dumps(error).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def answer(self, scope: dict, receive) -> tuple[int, bytes]:  # noqa: ANN001
        path, method = scope["path"], scope["method"]
        if path in ("/ping", "/health") and method in ("GET", "HEAD"):
            return 200, b"\n"
        if path != "/invocations":
            raise Refused(404, "ENDPOINT_NOT_FOUND", "not found; POST /invocations, GET /ping")
        if method != "POST":
            raise Refused(405, "BAD_REQUEST", "method not allowed; POST /invocations")
        content_type = (_header(scope, b"content-type") or "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise Refused(415, "BAD_REQUEST", "request: Content-Type must be application/json")
        body = await read_body(scope, receive, self.max_body)
        # Parsing and prediction hold the CPU for seconds: off the event loop, so /ping answers.
        return 200, await asyncio.to_thread(predict, self.model, body, self.max_batch)


def load_served(params, model_uri: str | None, registry_json, prepared):  # noqa: ANN001, ANN201
    """(pyfunc, URI): `model_uri`, or the champion `salt champion` names for the data in `prepared`."""
    from saltseg.predict import champion_uri, check_champion, ensemble_of, load_pyfunc

    if model_uri is not None:
        return load_pyfunc(model_uri, params), model_uri
    model_uri, data_hash = champion_uri(registry_json, prepared, alias=True)
    model = load_pyfunc(model_uri, params)
    check_champion(ensemble_of(model, model_uri), model_uri, data_hash, registry_json)
    return model, model_uri


def serve(model, host: str, port: int, max_body: int) -> None:  # noqa: ANN001 - mlflow PyFuncModel
    """Run the app with uvicorn until interrupted; access log lines carry no request body."""
    import uvicorn

    uvicorn.run(ScoringApp(model, max_body), host=host, port=port, log_level="info", lifespan="on")
