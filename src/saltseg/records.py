"""The JSON records stages hand to each other (thresholds.json, evaluate.json, registry.json)."""

from __future__ import annotations

import json
from pathlib import Path

from saltseg.errors import SaltError


def read_json(path: str | Path, missing: str) -> dict:
    """The JSON object in `path`; a one-line SaltError when it is absent (with the hint
    `missing`, e.g. "run `salt evaluate` first"), not JSON, or not an object."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise SaltError(f"{path}: file not found ({missing})") from None
    except json.JSONDecodeError as exc:
        raise SaltError(f"{path}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise SaltError(f"{path}: not a JSON object")
    return data
