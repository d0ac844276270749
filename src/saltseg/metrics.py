"""IoU and the TGS competition score, vectorised over images: NumPy, and torch for the device.

The competition scores each image by the fraction of IoU thresholds 0.50, 0.55, ..., 0.95
that its IoU strictly exceeds, with an empty truth scored 1 only for an empty prediction.
Thresholds are compared in integers (20 * intersection > k * union for k = 10..19), so an
IoU of exactly 0.75 does not pass 0.75 however floats would round it.

The `*_torch` twins compute the same numbers on whatever device the masks live on, so
validation during training never copies predictions to the host (tested equal).
"""

from __future__ import annotations

import numpy as np
import torch

THRESHOLD_NUMERATORS = np.arange(10, 20)  # threshold = k / 20: 0.50, 0.55, ..., 0.95


def _counts(truth: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """bool (N, H, W) pair -> int64 (N,) intersection and union pixel counts."""
    truth, pred = np.asarray(truth), np.asarray(pred)
    if truth.shape != pred.shape or truth.ndim != 3:
        raise ValueError(f"truth {truth.shape} and pred {pred.shape} must both be (N, H, W)")
    t = truth.reshape(len(truth), -1).astype(bool, copy=False)
    p = pred.reshape(len(pred), -1).astype(bool, copy=False)
    inter = np.count_nonzero(t & p, axis=1).astype(np.int64)
    union = np.count_nonzero(t | p, axis=1).astype(np.int64)
    return inter, union


def iou_per_image(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """bool (N, H, W) masks -> float64 (N,) IoU; an empty truth with an empty prediction is 1."""
    inter, union = _counts(truth, pred)
    return np.divide(inter, union, out=np.ones(len(inter)), where=union > 0)


def score_per_image(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """bool (N, H, W) masks -> float64 (N,) competition score of each image, in {0, 0.1, ..., 1}."""
    inter, union = _counts(truth, pred)
    hits = 20 * inter[:, None] > THRESHOLD_NUMERATORS[None, :] * union[:, None]
    # Both empty: union 0, nothing passes above, but the image counts as perfect.
    return np.where(union == 0, 1.0, hits.mean(axis=1))


def competition_score(truth: np.ndarray, pred: np.ndarray) -> float:
    """Mean of `score_per_image`: the TGS leaderboard metric."""
    scores = score_per_image(truth, pred)
    if len(scores) == 0:
        raise ValueError("competition_score needs at least one image")
    return float(scores.mean())


def _counts_torch(truth: torch.Tensor, pred: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if truth.shape != pred.shape or truth.ndim != 3:
        raise ValueError(f"truth {tuple(truth.shape)} and pred {tuple(pred.shape)} must both be (N, H, W)")
    t, p = truth.reshape(len(truth), -1).bool(), pred.reshape(len(pred), -1).bool()
    return (t & p).sum(1), (t | p).sum(1)


def iou_per_image_torch(truth: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
    """`iou_per_image` on torch bool (N, H, W) masks, on their device: float64 (N,)."""
    inter, union = _counts_torch(truth, pred)
    return torch.where(union > 0, inter.double() / union.clamp(min=1), 1.0)


def score_per_image_torch(truth: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
    """`score_per_image` on torch bool (N, H, W) masks, on their device: float64 (N,)."""
    inter, union = _counts_torch(truth, pred)
    numerators = torch.as_tensor(THRESHOLD_NUMERATORS, device=union.device)
    hits = 20 * inter[:, None] > numerators[None, :] * union[:, None]
    return torch.where(union == 0, 1.0, hits.double().mean(1))
