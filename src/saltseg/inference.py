"""Fold ensemble + horizontal-flip TTA: the one prediction path of evaluate, predict and the pyfunc.

A fold's model is its best.pt or, when training kept snapshots (train.snapshots), the mean
of its snapshot<c>.pt: `fold_members` says which, and every consumer asks it.

Probabilities are averaged (over the flip and over fold models) before the threshold,
and small predicted masks are called empty: the recipe that won TGS places. Every
consumer goes through `predict_proba` and `binarize`: `salt evaluate` tunes the threshold and
minimum area on each fold model's own held-out images, and `salt predict` and the served model
apply them to the mean of all fold models (tests/code/test_predict.py checks that the served
model and `salt predict` give the same masks). They predict in the precision each checkpoint
records (resolved once, where the fold trained: saltseg.hardware.for_inference).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from saltseg import hardware
from saltseg.config import ModelConfig, RuntimeConfig
from saltseg.data.tgs import SIZE
from saltseg.errors import SaltError
from saltseg.hardware import FP32_CPU, Policy
from saltseg.models import (
    checkpoint_config,
    checkpoint_cycles,
    checkpoint_precision,
    expected_members,
    load_checkpoint_model,
    model_paths,
)
from saltseg.models.fit import extra_inputs, network_input, to_original
from saltseg.records import read_json

CPU = RuntimeConfig(device="cpu")
Members = dict[int, tuple[Path, ...]]  # fold -> the checkpoints whose mean is its model


def as_images(images: object) -> np.ndarray:
    """Check and return pixel intensities 0..255 as float32 (N, 101, 101); uint8, integer or float input.

    One image (101, 101) is a batch of one. Refused with a one-line SaltError: other shapes,
    an empty batch, non-numeric values, NaN or infinity, values outside 0..255, and float
    images that look normalised to [0, 1] (every value <= 1 and some not whole); an
    all-black image or a 0/1 image in whole numbers is fine.
    """
    try:
        array = np.asarray(images)
    except ValueError:  # ragged nested lists
        raise SaltError(f"images: not a rectangular array; expected shape (N, {SIZE}, {SIZE})") from None
    if array.size == 0:
        raise SaltError(f"images: empty batch; send at least one ({SIZE}, {SIZE}) image")
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3 or array.shape[1:] != (SIZE, SIZE):
        raise SaltError(f"images: expected shape (N, {SIZE}, {SIZE}), got {array.shape}")
    integer, floating = np.issubdtype(array.dtype, np.integer), np.issubdtype(array.dtype, np.floating)
    if not (integer or floating):
        raise SaltError(f"images: expected uint8 or float pixel values, got dtype {array.dtype}")
    if array.dtype == np.uint8:
        return array.astype(np.float32)
    if floating and not np.isfinite(array).all():
        raise SaltError("images: pixel values must be finite numbers 0..255 (found NaN or infinity)")
    low, high = array.min(), array.max()
    if low < 0 or high > 255:
        raise SaltError(f"images: pixel values must lie in 0..255, got {low:g}..{high:g}")
    if floating and high <= 1.0 and (array != np.round(array)).any():
        raise SaltError("images: every value is <= 1; looks normalised to [0, 1]; send pixel values 0..255")
    return array.astype(np.float32, copy=False)


def as_depths(depths: object, n: int) -> np.ndarray:
    """Check and return one finite depth per image as float32 (n,); SaltError in one line."""
    if depths is None:
        raise SaltError(
            "depths: missing; this model has model.depth_channel and needs the depth of every image"
        )
    try:
        array = np.asarray(depths, dtype=np.float32).reshape(-1)
    except (TypeError, ValueError):
        raise SaltError("depths: expected one number per image") from None
    if array.shape != (n,):
        raise SaltError(f"depths: expected {n} (one per image), got {array.size}")
    if not np.isfinite(array).all():
        raise SaltError("depths: must be finite numbers (found NaN or infinity)")
    return array


def _sigmoid_original(
    model: nn.Module, x: torch.Tensor, cfg: ModelConfig, policy: Policy, extra: tuple[torch.Tensor, ...]
) -> torch.Tensor:
    """x float32 (B, 1, 101, 101) in [0, 1] -> probabilities float32 (B, 1, 101, 101).

    `extra`: the forward arguments after the images (`extra_inputs`)."""
    with policy.autocast():
        logits = to_original(model(policy.batch(network_input(x, cfg)), *extra), cfg)
    return torch.sigmoid(logits.float())


@torch.inference_mode()
def predict_proba(
    models: Sequence[nn.Module],
    images: np.ndarray,
    model_cfg: ModelConfig,
    tta: bool = True,
    batch_size: int = 64,
    policy: Policy = FP32_CPU,
    depths: np.ndarray | None = None,
) -> np.ndarray:
    """Salt probabilities float32 (N, 101, 101) for images (N, 101, 101) with values 0..255.

    Each model sees x = images / 255 (and, with `tta`, its horizontal mirror, whose
    prediction is mirrored back); probabilities are averaged over views and models. The
    models must already sit on `policy.device` in its memory format (`load_models` does that).
    `depths` (N,) are needed by, and only given to, models with model.depth_channel.
    """
    if not models:
        raise SaltError("predict_proba: no models given")
    pixels = as_images(images)
    if model_cfg.depth_channel:
        depths = as_depths(depths, len(pixels))
    device = policy.device
    out = np.empty(pixels.shape, dtype=np.float32)
    for start in range(0, len(pixels), batch_size):
        x = torch.from_numpy(pixels[start : start + batch_size]).to(device).div(255.0).unsqueeze(1)
        extra = extra_inputs(
            model_cfg, None if depths is None else depths[start : start + batch_size], device
        )
        total = torch.zeros_like(x)
        for model in models:
            proba = _sigmoid_original(model, x, model_cfg, policy, extra)
            if tta:
                mirrored = _sigmoid_original(model, x.flip(-1), model_cfg, policy, extra).flip(-1)
                proba = (proba + mirrored) / 2
            total += proba
        out[start : start + len(x)] = (total / len(models)).squeeze(1).cpu().numpy()
    return out


def binarize(proba: np.ndarray, threshold: float, min_area: int = 0) -> np.ndarray:
    """bool (N, 101, 101): proba > threshold; masks with fewer than `min_area` pixels become empty."""
    masks = np.asarray(proba) > threshold
    if min_area > 0:
        masks &= (masks.sum(axis=(-2, -1)) >= min_area)[..., None, None]
    return masks


def fold_members(models_dir: Path, folds: Sequence[int]) -> Members:
    """Per fold, the checkpoints whose mean probability is its prediction: models_dir/fold<k>/
    snapshot<c>.pt for c = 1..cycles where training kept snapshots, else fold<k>/best.pt.

    SaltError naming the first missing file or incomplete set of snapshots, or a fold with
    another number of members than the first: the ensemble's flat mean over all members is
    the mean of the fold predictions only when every fold has as many.
    """
    members = {}
    for k in folds:
        folder = Path(models_dir) / f"fold{k}"
        paths = model_paths(folder)
        if not paths[0].is_file():
            raise SaltError(f"{paths[0]}: checkpoint not found (train fold {k} first)")
        if len(paths) > 1 or paths[0].name != "best.pt":
            expected = expected_members(folder, snapshots=True, cycles=checkpoint_cycles(paths[0]))
            if paths != expected:
                names = ", ".join(p.name for p in paths)
                raise SaltError(
                    f"{folder}: has {names} of {len(expected)} snapshots (finish training fold {k})"
                )
        first = next(iter(members.values()), paths)
        if len(paths) != len(first):
            raise SaltError(
                f"{folder}: {len(paths)} checkpoint(s), but {first[0].parent} {len(first)}; "
                "an ensemble needs as many per fold"
            )
        members[k] = paths
    return members


def load_models(
    paths: Sequence[Path], runtime: RuntimeConfig = CPU
) -> tuple[list[nn.Module], ModelConfig, Policy]:
    """Fold models in eval mode, placed as the policy says; their shared ModelConfig and the
    policy, resolved from their shared train.precision and `runtime` (all folds must agree)."""
    configs = [checkpoint_config(p) for p in paths]
    precisions = [checkpoint_precision(p) for p in paths]
    for path, cfg, precision in zip(paths, configs, precisions, strict=True):
        if cfg != configs[0] or precision != precisions[0]:
            raise SaltError(
                f"{path}: model config or precision differs from {paths[0]}'s; an ensemble needs one"
            )
    policy = hardware.for_inference(precisions[0], runtime, configs[0].start_filters)
    return [policy.place(load_checkpoint_model(p, policy.device)) for p in paths], configs[0], policy


def load_thresholds(path: Path) -> dict:
    """thresholds.json written by `salt evaluate`: threshold, min_area, tta, folds, score, data_hash
    (and pseudo_hash when the folds also trained on pseudo-labels)."""
    data = read_json(path, "run `salt evaluate` first")
    ok = isinstance(data.get("threshold"), int | float)
    ok = ok and isinstance(data.get("min_area"), int) and isinstance(data.get("folds"), list)
    ok = ok and isinstance(data.get("data_hash"), str)
    if not ok or not math.isfinite(data["threshold"]):
        raise SaltError(
            f"{path}: needs a numeric 'threshold', an integer 'min_area', a 'folds' list and the "
            "'data_hash' of the data the folds were trained on (rerun `salt evaluate`)"
        )
    return data


@dataclass(frozen=True)
class Ensemble:
    """The fold models (every fold's members, as many per fold) with their tuned threshold and
    minimum salt area."""

    models: tuple[nn.Module, ...]
    model_cfg: ModelConfig
    threshold: float
    min_area: int
    data_hash: str  # fingerprint of the data the folds were trained on
    tta: bool = True
    batch_size: int = 64
    policy: Policy = FP32_CPU

    @classmethod
    def from_files(
        cls, checkpoints: Sequence[Path], thresholds_json: Path, batch_size: int = 64, device: str = "auto"
    ) -> Ensemble:
        tuned = load_thresholds(thresholds_json)
        models, cfg, policy = load_models(checkpoints, RuntimeConfig(device=device))
        return cls(
            models=tuple(models),
            model_cfg=cfg,
            threshold=float(tuned["threshold"]),
            min_area=int(tuned["min_area"]),
            data_hash=tuned["data_hash"],
            tta=bool(tuned.get("tta", True)),
            batch_size=batch_size,
            policy=policy,
        )

    @classmethod
    def from_dirs(
        cls, models_dir: Path, eval_dir: Path, batch_size: int = 64, device: str = "auto"
    ) -> Ensemble:
        """The folds named in eval_dir/thresholds.json, from their `fold_members` in models_dir."""
        thresholds_json = Path(eval_dir) / "thresholds.json"
        members = fold_members(models_dir, load_thresholds(thresholds_json)["folds"])
        checkpoints = [path for paths in members.values() for path in paths]
        return cls.from_files(checkpoints, thresholds_json, batch_size, device)

    @property
    def needs_depths(self) -> bool:
        """True when the fold models take each image's depth (model.depth_channel)."""
        return self.model_cfg.depth_channel

    def predict_proba(self, images: np.ndarray, depths: np.ndarray | None = None) -> np.ndarray:
        """float32 (N, 101, 101) salt probabilities; `depths` (N,) when `needs_depths`."""
        return predict_proba(
            self.models, images, self.model_cfg, self.tta, self.batch_size, self.policy, depths
        )

    def binarize(self, proba: np.ndarray) -> np.ndarray:
        """bool (N, 101, 101) masks from probabilities, with the tuned threshold and min area."""
        return binarize(proba, self.threshold, self.min_area)

    def predict_masks(self, images: np.ndarray, depths: np.ndarray | None = None) -> np.ndarray:
        """bool (N, 101, 101) masks for images (N, 101, 101) with values 0..255 (and depths (N,))."""
        return self.binarize(self.predict_proba(images, depths))
