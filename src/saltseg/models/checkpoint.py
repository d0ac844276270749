"""Checkpoint files: a plain dict that `torch.load(path, weights_only=True)` can read.

{"model": state_dict, "model_config": dataclasses.asdict(ModelConfig) with tuples as lists,
 "fold": int, "epoch": int (1-based over all stages), "stage": str, "monitor": str, "score": float,
 "precision": "bf16" | "fp32" (train.precision as resolved where it trained: it predicts so),
 "key": str (the fold's pipeline key: params, data, hardware policy; `salt train` skips a fold
   whose checkpoints carry the current one),
 "data_hash": str (the fingerprint of the prepared data it was trained on),
 "pseudo_hash": str (the pseudo-label set it also trained on; absent when none)}
A snapshot (train.snapshots) is the same dict with "cycle" and "cycles" (c of n, 1-based), kept
as snapshot<c>.pt beside best.pt.
"""

from __future__ import annotations

import dataclasses
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from saltseg.atomic import atomic_file
from saltseg.config import ModelConfig, params_from_dict
from saltseg.errors import SaltError
from saltseg.models.registry import build_model

SNAPSHOT = re.compile(r"snapshot(\d+)\.pt")


def _plain(value: Any) -> Any:
    """Tuples -> lists and numpy scalars -> Python numbers, recursively: only types that
    `torch.load(weights_only=True)` accepts."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def save_checkpoint(path: str | Path, model: nn.Module, model_cfg: ModelConfig, **meta: Any) -> None:
    """Write the weights, the model config and `meta` (fold, epoch, stage, monitor, score) atomically."""
    # torch.compile wraps the module; save the original's keys so a plain build can load them.
    model = getattr(model, "_orig_mod", model)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {"model": state, "model_config": _plain(dataclasses.asdict(model_cfg)), **_plain(meta)}
    # Through a file object: torch.save names the archive's records after a path it is given
    # (here a random temporary name), and the same weights must give the same bytes, so that
    # DVC's hashes and the registry's "identical rerun" check see them as the same.
    with atomic_file(path) as tmp, tmp.open("wb") as f:
        torch.save(payload, f)


def _read(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise SaltError(f"{path}: checkpoint not found")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, EOFError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SaltError(f"{path}: not a readable checkpoint ({first})") from None
    if not isinstance(data, dict) or "model" not in data or "model_config" not in data:
        raise SaltError(f"{path}: not a saltseg checkpoint (needs 'model' and 'model_config')")
    return data


def _config(data: dict, path: str | Path) -> ModelConfig:
    try:
        return params_from_dict({"model": data["model_config"]}).model
    except SaltError as exc:
        raise SaltError(f"{path}: {exc}") from None


def checkpoint_config(path: str | Path) -> ModelConfig:
    """The ModelConfig a checkpoint was trained with (lists back to tuples, keys validated)."""
    return _config(_read(path), path)


def checkpoint_data_hash(path: str | Path) -> str | None:
    """The fingerprint of the data a checkpoint was trained on (None for older checkpoints)."""
    return _read(path).get("data_hash")


def checkpoint_key(path: str | Path) -> str | None:
    """The fold key (params, data, hardware policy) it was trained under (None for older ones)."""
    return _read(path).get("key")


def checkpoint_pseudo_hash(path: str | Path) -> str | None:
    """The fingerprint of the pseudo-label set a checkpoint also trained on (None: none)."""
    return _read(path).get("pseudo_hash")


def checkpoint_precision(path: str | Path) -> str:
    """The precision the model was validated in ("fp32" for checkpoints older than the setting)."""
    return str(_read(path).get("precision", "fp32"))


def snapshot_path(folder: str | Path, cycle: int) -> Path:
    """folder/snapshot<cycle>.pt: the weights at the end of cycle `cycle` (1-based) of the last stage."""
    return Path(folder) / f"snapshot{cycle}.pt"


def snapshot_paths(folder: str | Path) -> list[Path]:
    """The snapshot<c>.pt files in `folder`, by cycle."""
    found = {p: SNAPSHOT.fullmatch(p.name) for p in Path(folder).glob("snapshot*.pt")}
    return sorted((p for p, m in found.items() if m), key=lambda p: int(found[p][1]))


def expected_members(folder: str | Path, snapshots: bool, cycles: int) -> tuple[Path, ...]:
    """The checkpoints a fold's model is made of when training kept `snapshots` of `cycles`
    cycles (snapshot1.pt .. snapshot<cycles>.pt), or not (best.pt)."""
    if snapshots:
        return tuple(snapshot_path(folder, c) for c in range(1, cycles + 1))
    return (Path(folder) / "best.pt",)


def model_paths(folder: str | Path) -> tuple[Path, ...]:
    """The checkpoints whose mean probability is a fold's model: its snapshots, else best.pt."""
    return tuple(snapshot_paths(folder)) or (Path(folder) / "best.pt",)


def checkpoint_cycles(path: str | Path) -> int:
    """How many snapshots the run that wrote this snapshot kept (its "cycles")."""
    cycles = _read(path).get("cycles")
    if not isinstance(cycles, int):
        raise SaltError(f"{path}: not a snapshot (no 'cycles')")
    return cycles


def load_checkpoint_model(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the model from its stored config, load the weights, move to `device`, eval mode."""
    data = _read(path)
    cfg = _config(data, path)
    # The weights come from the checkpoint: never (re)load the encoder's pretrained file.
    model = build_model(dataclasses.replace(cfg, encoder_weights=None))
    try:
        model.load_state_dict(data["model"])
    except RuntimeError as exc:
        raise SaltError(f"{path}: weights do not fit model {cfg.name} ({str(exc).splitlines()[0]})") from None
    return model.to(device).eval()
