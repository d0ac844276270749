"""IoU and competition score against hand-computed cases and a plain loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from saltseg.metrics import (
    competition_score,
    iou_per_image,
    iou_per_image_torch,
    score_per_image,
    score_per_image_torch,
)


def masks_with(
    truth_pixels: int, pred_pixels: int, overlap: int, size: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """One (1, size, size) pair: the first `truth_pixels` / `pred_pixels` of a row-major scan
    shifted so that exactly `overlap` pixels are shared."""
    truth = np.zeros(size * size, bool)
    pred = np.zeros(size * size, bool)
    truth[:truth_pixels] = True
    start = truth_pixels - overlap
    pred[start : start + pred_pixels] = True
    return truth.reshape(1, size, size), pred.reshape(1, size, size)


def loop_score(truth: np.ndarray, pred: np.ndarray) -> list[float]:
    """The competition's definition, one image at a time, with exact fractions."""
    from fractions import Fraction

    out = []
    for t, p in zip(truth, pred, strict=True):
        inter, union = int((t & p).sum()), int((t | p).sum())
        if union == 0:
            out.append(1.0)
            continue
        iou = Fraction(inter, union)
        out.append(sum(iou > Fraction(50 + 5 * k, 100) for k in range(10)) / 10)
    return out


def test_empty_truth_and_empty_prediction_is_perfect() -> None:
    empty = np.zeros((1, 5, 5), bool)
    assert iou_per_image(empty, empty).tolist() == [1.0]
    assert score_per_image(empty, empty).tolist() == [1.0]


def test_empty_truth_with_one_predicted_pixel_scores_zero() -> None:
    truth = np.zeros((1, 5, 5), bool)
    pred = truth.copy()
    pred[0, 2, 2] = True
    assert iou_per_image(truth, pred).tolist() == [0.0]
    assert score_per_image(truth, pred).tolist() == [0.0]


def test_missed_salt_scores_zero() -> None:
    truth = np.zeros((1, 5, 5), bool)
    truth[0, :2] = True
    assert score_per_image(truth, np.zeros_like(truth)).tolist() == [0.0]


def test_iou_exactly_at_a_threshold_does_not_pass_it() -> None:
    truth, pred = masks_with(truth_pixels=4, pred_pixels=3, overlap=3)  # IoU = 3/4 exactly
    assert iou_per_image(truth, pred)[0] == 0.75
    # passes 0.50, 0.55, 0.60, 0.65, 0.70 but not 0.75
    assert score_per_image(truth, pred)[0] == pytest.approx(0.5)


def test_iou_just_above_a_threshold_passes_it() -> None:
    truth, pred = masks_with(truth_pixels=401, pred_pixels=301, overlap=301, size=21)  # 0.7506
    assert score_per_image(truth, pred)[0] == pytest.approx(0.6)  # 0.50 .. 0.75 pass
    truth, pred = masks_with(truth_pixels=400, pred_pixels=300, overlap=300, size=21)  # 0.75
    assert score_per_image(truth, pred)[0] == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("truth_pixels", "pred_pixels", "overlap", "iou", "score"),
    [
        (10, 10, 10, 1.0, 1.0),
        (10, 5, 5, 0.5, 0.0),  # exactly 0.5 passes nothing
        (20, 11, 11, 0.55, 0.1),  # exactly 0.55 passes 0.50 only
        (10, 10, 9, 9 / 11, 0.7),  # 0.818: 0.50 .. 0.80
        (4, 4, 2, 2 / 6, 0.0),
        (19, 20, 19, 0.95, 0.9),  # exactly 0.95 passes all but 0.95
    ],
)
def test_known_ious(truth_pixels: int, pred_pixels: int, overlap: int, iou: float, score: float) -> None:
    truth, pred = masks_with(truth_pixels, pred_pixels, overlap)
    assert iou_per_image(truth, pred)[0] == pytest.approx(iou)
    assert score_per_image(truth, pred)[0] == pytest.approx(score)


def test_agrees_with_a_plain_loop_on_random_masks() -> None:
    rng = np.random.default_rng(0)
    truth = rng.random((300, 6, 6)) < rng.random((300, 1, 1))
    # predictions that overlap the truth to varying degrees, plus some empties
    pred = np.where(rng.random((300, 6, 6)) < 0.8, truth, ~truth)
    pred[::7] = False
    truth[::11] = False
    expected = loop_score(truth, pred)
    assert score_per_image(truth, pred).tolist() == pytest.approx(expected)
    assert competition_score(truth, pred) == pytest.approx(np.mean(expected))


def test_batch_result_types() -> None:
    truth = np.zeros((3, 4, 4), bool)
    out = score_per_image(truth, truth)
    assert out.dtype == np.float64 and out.shape == (3,)
    assert iou_per_image(truth, truth).dtype == np.float64
    assert isinstance(competition_score(truth, truth), float)


def test_shape_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="must both be"):
        iou_per_image(np.zeros((2, 4, 4), bool), np.zeros((2, 4, 5), bool))
    with pytest.raises(ValueError, match="must both be"):
        score_per_image(np.zeros((4, 4), bool), np.zeros((4, 4), bool))


def test_torch_metrics_equal_the_numpy_ones():
    rng = np.random.default_rng(0)
    truth = rng.random((40, 12, 12)) < rng.random((40, 1, 1))
    pred = rng.random((40, 12, 12)) < rng.random((40, 1, 1))
    truth[:5], pred[:3] = False, False  # empty truth with empty and non-empty predictions
    t, p = torch.from_numpy(truth), torch.from_numpy(pred)
    np.testing.assert_array_equal(iou_per_image_torch(t, p).numpy(), iou_per_image(truth, pred))
    np.testing.assert_array_equal(score_per_image_torch(t, p).numpy(), score_per_image(truth, pred))
    exact = (*masks_with(40, 40, 30, size=10),)  # IoU 30/50 = 0.6 exactly: passes 0.55, not 0.6
    assert score_per_image_torch(*map(torch.from_numpy, exact)).item() == score_per_image(*exact)[0] == 0.2
