"""Apply a named configuration (a partial params file) to params.yaml, keeping its comments."""

from __future__ import annotations

from pathlib import Path

from ruamel.yaml import YAML

from saltseg.atomic import atomic_file
from saltseg.config import params_from_dict
from saltseg.errors import SaltError


def _merge(base: dict, overlay: dict, where: str, changed: list[str]) -> None:
    for key, value in overlay.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in base:
            raise SaltError(f"unknown key {path}")
        if isinstance(value, dict) and isinstance(base[key], dict):
            _merge(base[key], value, path, changed)
        elif base[key] != value:
            base[key] = value
            changed.append(path)


def apply_overlay(params_file: Path, overlay_file: Path) -> list[str]:
    """Merge `overlay_file` into `params_file` in place; returns the changed keys.

    The merged result is validated as a whole before params.yaml is replaced, so a
    bad overlay leaves params.yaml untouched.
    """
    yaml = YAML()  # round-trip mode: comments and key order survive
    try:
        base = yaml.load(params_file.read_text())
        overlay = yaml.load(overlay_file.read_text()) or {}
    except FileNotFoundError as exc:
        raise SaltError(f"{exc.filename}: file not found") from None
    changed: list[str] = []
    try:
        _merge(base, overlay, "", changed)
        params_from_dict(YAML(typ="safe").load(_dump(yaml, base)))
    except SaltError as exc:
        raise SaltError(f"{overlay_file}: {exc}") from None
    with atomic_file(params_file) as tmp:
        tmp.write_text(_dump(yaml, base))
    return changed


def _dump(yaml: YAML, data: dict) -> str:
    import io

    buffer = io.StringIO()
    yaml.dump(data, buffer)
    return buffer.getvalue()
