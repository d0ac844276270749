"""Losses against hand-computed values and a brute-force Lovasz extension."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from saltseg.config import LOSSES, TrainConfig
from saltseg.errors import SaltError
from saltseg.losses import (
    bce,
    bce_per_image,
    boundary_weights,
    empty_head_loss,
    get_loss,
    get_train_loss,
    image_losses,
    level_targets,
    lovasz_hinge,
    lovasz_per_image,
    stage_train_loss,
)


def jaccard_loss_of_set(mistakes: np.ndarray, labels: np.ndarray) -> float:
    """Delta_J(M) = |M| / |{y = 1} u M| for the set M of mispredicted pixels (0 for 0/0)."""
    union = np.count_nonzero(labels.astype(bool) | mistakes)
    return np.count_nonzero(mistakes) / union if union else 0.0


def lovasz_extension_reference(m: np.ndarray, labels: np.ndarray) -> float:
    """The Lovasz extension of Delta_J at m >= 0, from its definition as a Choquet integral:

    f(m) = integral over t >= 0 of Delta_J({i : m_i > t}) dt, which for piecewise-constant
    level sets is a finite sum over the intervals between consecutive distinct values of m.
    """
    levels = np.unique(np.concatenate([[0.0], m]))
    total = 0.0
    for low, high in zip(levels[:-1], levels[1:], strict=True):
        total += (high - low) * jaccard_loss_of_set(m > low, labels)
    return total


def hinge_reference(logits: np.ndarray, labels: np.ndarray, elu: bool) -> float:
    errors = 1.0 - logits * (2.0 * labels - 1.0)
    m = np.where(errors > 0, errors, np.exp(errors) - 1.0) + 1.0 if elu else np.maximum(errors, 0.0)
    return lovasz_extension_reference(m, labels)


def reference(logits: np.ndarray, labels: np.ndarray, per_image: bool, elu: bool) -> float:
    """Brute-force Lovasz hinge of (N, H, W) arrays, in float64."""
    if per_image:
        return float(
            np.mean([hinge_reference(x.ravel(), y.ravel(), elu) for x, y in zip(logits, labels, strict=True)])
        )
    return hinge_reference(logits.ravel(), labels.ravel(), elu)


def test_perfect_confident_prediction_costs_nothing() -> None:
    labels = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    logits = 3.0 * (2 * labels - 1)  # every margin >= 1: every hinge error <= 0
    assert lovasz_hinge(logits, labels).item() == 0.0


def test_hand_computed_value() -> None:
    # labels [1, 1, 0], logits [2, 0, -0.5] -> hinge errors [-1, 1, 0.5], rectified [0, 1, 0.5].
    # For t in [0, 0.5) pixels {1, 2} are wrong: Delta = 2 / |{0,1} u {2}| = 2/3;
    # for t in [0.5, 1) only pixel 1: Delta = 1/2. Loss = 0.5 * 2/3 + 0.5 * 1/2 = 7/12.
    logits = torch.tensor([[2.0, 0.0, -0.5]])
    labels = torch.tensor([[1.0, 1.0, 0.0]])
    assert lovasz_hinge(logits, labels).item() == pytest.approx(7 / 12, abs=1e-6)


def test_ties_give_the_same_value_in_any_order() -> None:
    # Both pixels wrong with error 1: Delta({0, 1}) = 2 / 2 = 1 whichever comes first.
    for labels in ([1.0, 0.0], [0.0, 1.0]):
        assert lovasz_hinge(torch.zeros(1, 2), torch.tensor([labels])).item() == pytest.approx(1.0)


@pytest.mark.parametrize("size", [2, 3])
@pytest.mark.parametrize("per_image", [True, False])
@pytest.mark.parametrize("elu", [False, True])
def test_matches_brute_force_lovasz_extension(size: int, per_image: bool, elu: bool) -> None:
    rng = np.random.default_rng(size + 10 * per_image + 100 * elu)
    for _ in range(20):
        labels = (rng.random((3, size, size)) > 0.5).astype(np.float64)
        labels[0] = 0  # one all-empty image in every batch
        logits = rng.normal(0, 1.5, (3, size, size))
        got = lovasz_hinge(torch.tensor(logits), torch.tensor(labels), per_image=per_image, elu=elu)
        assert got.item() == pytest.approx(reference(logits, labels, per_image, elu), rel=1e-5, abs=1e-6)


def _lovasz_full_sort(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The Lovasz hinge of each row as Berman et al. write it: every error sorted (stably)."""
    errors = 1.0 - logits * (2.0 * labels - 1.0)
    errors_sorted, perm = torch.sort(errors, dim=1, descending=True, stable=True)
    gt = torch.gather(labels, 1, perm)
    gts = gt.sum(dim=1, keepdim=True)
    jaccard = 1.0 - (gts - gt.cumsum(dim=1)) / (gts + (1.0 - gt).cumsum(dim=1))
    weights = torch.cat([jaccard[:, :1], jaccard[:, 1:] - jaccard[:, :-1]], dim=1)
    return (F.relu(errors_sorted) * weights).sum(dim=1)


def test_sorting_only_the_positive_errors_gives_the_full_sorts_loss_and_gradient_bit_for_bit() -> None:
    """The hinge sorts its errors clamped at 0 (faster): the pixels it ties at 0 have no hinge and
    no gradient, and the others keep their ranks, so nothing differs from the full sort, not even
    a bit, also with ties (bf16-rounded logits, as autocast gives them) and rows all correct."""
    gen = torch.Generator().manual_seed(0)
    logits = (torch.randn(6, 400, generator=gen) * 3).bfloat16().float()
    labels = (torch.rand(6, 400, generator=gen) > 0.6).float()
    logits[0] = 5.0 * (2.0 * labels[0] - 1.0)  # every pixel right by a margin: no error > 0
    labels[1] = 0.0  # an empty mask
    ours, full = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    got, want = lovasz_per_image(ours, labels), _lovasz_full_sort(full, labels)
    got.sum().backward()
    want.sum().backward()
    assert torch.equal(got, want)
    assert torch.equal(ours.grad, full.grad)
    assert got[0].item() == 0.0 and got[1].item() > 0.0


def test_per_image_differs_from_batch_loss() -> None:
    logits = torch.tensor([[[2.0, -2.0]], [[0.0, 0.0]]])
    labels = torch.tensor([[[1.0, 0.0]], [[1.0, 1.0]]])
    per_image = lovasz_hinge(logits, labels, per_image=True).item()
    batch = lovasz_hinge(logits, labels, per_image=False).item()
    # image 0 is perfect (0); image 1 misses both salt pixels with error 1: Delta = 1 -> mean 0.5.
    assert per_image == pytest.approx(0.5)
    assert batch == pytest.approx(reference(logits.numpy(), labels.numpy(), False, False))
    assert batch != pytest.approx(per_image)


def test_both_input_shapes_agree() -> None:
    logits = torch.randn(4, 1, 5, 5, generator=torch.Generator().manual_seed(0))
    labels = (torch.rand(4, 1, 5, 5, generator=torch.Generator().manual_seed(1)) > 0.5).float()
    four_d = lovasz_hinge(logits, labels)
    assert lovasz_hinge(logits[:, 0], labels[:, 0]).item() == pytest.approx(four_d.item())
    assert lovasz_hinge(logits, labels[:, 0]).item() == pytest.approx(four_d.item())
    assert bce(logits[:, 0], labels[:, 0]).item() == pytest.approx(bce(logits, labels).item())


@pytest.mark.parametrize("elu", [False, True])
@pytest.mark.parametrize("per_image", [True, False])
def test_all_empty_masks_give_finite_loss_and_gradients(elu: bool, per_image: bool) -> None:
    logits = torch.randn(3, 1, 8, 8, requires_grad=True)
    loss = lovasz_hinge(logits, torch.zeros(3, 1, 8, 8), per_image=per_image, elu=elu)
    loss.backward()
    assert math.isfinite(loss.item()) and loss.item() > 0
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_all_empty_masks_and_confident_empty_prediction() -> None:
    logits = torch.full((2, 4, 4), -5.0, requires_grad=True)
    loss = lovasz_hinge(logits, torch.zeros(2, 4, 4))
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(logits.grad).all()


def test_bce_matches_definition() -> None:
    logits = torch.tensor([[0.0, 2.0], [-1.0, 3.0]])
    labels = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    p = torch.sigmoid(logits)
    expected = -(labels * p.log() + (1 - labels) * (1 - p).log()).mean()
    assert bce(logits, labels).item() == pytest.approx(expected.item(), rel=1e-6)
    assert bce(logits, labels).item() == pytest.approx(
        F.binary_cross_entropy_with_logits(logits, labels).item()
    )


def test_get_loss() -> None:
    logits, labels = torch.zeros(1, 2), torch.tensor([[1.0, 0.0]])
    assert get_loss("bce") is bce
    assert get_loss("lovasz")(logits, labels).item() == pytest.approx(1.0)
    # elu: both pixels have error 1 -> elu(1) + 1 = 2, times Delta = 1.
    assert get_loss("lovasz", elu=True)(logits, labels).item() == pytest.approx(2.0)
    with pytest.raises(SaltError, match=f"unknown loss 'dice'; valid: {', '.join(LOSSES)}"):
        get_loss("dice")


def test_mismatched_shapes_fail() -> None:
    with pytest.raises(ValueError, match="do not match"):
        lovasz_hinge(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 5))


# --- the empty head's loss (model.empty_head) ------------------------------------------------

LN3 = math.log(3.0)


def test_per_image_losses_average_to_the_stage_losses() -> None:
    logits = torch.randn(4, 1, 5, 5, generator=torch.Generator().manual_seed(0))
    labels = (torch.rand(4, 1, 5, 5, generator=torch.Generator().manual_seed(1)) > 0.5).float()
    labels[0] = 0
    assert bce_per_image(logits, labels).shape == (4,)
    assert bce_per_image(logits, labels).mean().item() == pytest.approx(bce(logits, labels).item())
    for elu in (False, True):
        rows = lovasz_per_image(logits, labels, elu=elu)
        assert rows.mean().item() == pytest.approx(lovasz_hinge(logits, labels, elu=elu).item())
        assert torch.equal(image_losses("lovasz", elu)(logits, labels), rows)
    assert image_losses("bce") is bce_per_image
    with pytest.raises(SaltError, match=f"unknown loss 'dice'; valid: {', '.join(LOSSES)}"):
        image_losses("dice")


def test_empty_head_loss_hand_computed_with_bce() -> None:
    # Two images of 1 x 2 pixels: image 0 has salt [1, 0], image 1 none.
    targets = torch.tensor([[[[1.0, 0.0]]], [[[0.0, 0.0]]]])
    logits = torch.zeros(2, 1, 1, 2)  # every pixel: BCE ln 2
    # Level a: image 0 at logit 0 (ln 2); image 1 badly wrong, but it has no salt: ignored.
    level_a = torch.tensor([[[[0.0, 0.0]]], [[[5.0, 5.0]]]])
    # Level b: image 0 right with margin ln 3: each pixel -ln(3/4) = ln(4/3).
    level_b = torch.tensor([[[[LN3, -LN3]]], [[[9.0, 9.0]]]])
    has_salt = torch.tensor([LN3, -LN3])  # both right: BCE ln(4/3) each
    got = empty_head_loss(logits, (level_a, level_b), has_salt, targets, bce, bce_per_image, 0.1, 0.05)
    aux = (math.log(2) + math.log(4 / 3)) / 2
    expected = math.log(2) + 0.1 * aux + 0.05 * math.log(4 / 3)
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_empty_head_loss_hand_computed_with_lovasz() -> None:
    # Image 0: labels [1, 1, 0], logits [2, 0, -0.5]: Lovasz 7/12 (test_hand_computed_value).
    # Image 1 empty, logits [1, 1, 1]: every error 2, its loss 2; the stage loss sees it, the
    # deep supervision does not: stage (7/12 + 2) / 2 = 31/24, aux 7/12.
    targets = torch.tensor([[[[1.0, 1.0, 0.0]]], [[[0.0, 0.0, 0.0]]]])
    logits = torch.tensor([[[[2.0, 0.0, -0.5]]], [[[1.0, 1.0, 1.0]]]])
    stage, rows = get_loss("lovasz"), image_losses("lovasz")
    got = empty_head_loss(logits, (logits,), torch.zeros(2), targets, stage, rows, 1.0, 0.0)
    assert got.item() == pytest.approx(31 / 24 + 7 / 12, abs=1e-6)
    # Without decoder levels to supervise (depth 1) only the has-salt term is added: ln 2.
    alone = empty_head_loss(logits, (), torch.zeros(2), targets, stage, rows, 1.0, 1.0)
    assert alone.item() == pytest.approx(31 / 24 + math.log(2), abs=1e-6)


def test_a_coarse_level_learns_the_targets_max_pooled_so_one_pixel_of_salt_stays() -> None:
    # Image 0: one salt pixel of 16 at (1, 2); image 1 none. At 2 x 2 the pooled target holds salt
    # in the cell of that pixel only: [[0, 1], [0, 0]]; a resize would have averaged it to 1/4.
    targets = torch.zeros(2, 1, 4, 4)
    targets[0, 0, 1, 2] = 1.0
    level = torch.zeros(2, 1, 2, 2)
    assert torch.equal(level_targets(targets, level)[0, 0], torch.tensor([[0.0, 1.0], [0.0, 0.0]]))
    assert level_targets(targets, targets) is targets
    # Image 0's level logits right with margin ln 3 in every cell: BCE ln(4/3) each; image 1 has no
    # salt and no say. Final logits 0 everywhere: ln 2.
    level[0, 0] = torch.tensor([[-LN3, LN3], [-LN3, -LN3]])
    got = empty_head_loss(
        torch.zeros(2, 1, 4, 4), (level,), torch.zeros(2), targets, bce, bce_per_image, 1.0, 0.0
    )
    assert got.item() == pytest.approx(math.log(2) + math.log(4 / 3), rel=1e-6)


def test_batch_without_salt_still_reaches_every_output() -> None:
    """DDP needs a gradient for every parameter each step, a zero one included."""
    targets = torch.zeros(3, 1, 4, 4)
    logits, level = torch.randn(3, 1, 4, 4, requires_grad=True), torch.randn(3, 1, 4, 4, requires_grad=True)
    has_salt = torch.randn(3, requires_grad=True)
    loss = empty_head_loss(logits, (level,), has_salt, targets, bce, bce_per_image, 0.1, 0.05)
    loss.backward()
    assert math.isfinite(loss.item())
    assert level.grad is not None and torch.equal(level.grad, torch.zeros_like(level))
    assert has_salt.grad is not None and (has_salt.grad > 0).all()  # pushed towards "empty"
    expected = bce(logits, targets) + 0.05 * F.binary_cross_entropy_with_logits(has_salt, torch.zeros(3))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_train_loss_is_the_stage_loss_on_plain_logits() -> None:
    """With the switch off nothing changes: the same function, the same bits."""
    logits = torch.randn(4, 1, 5, 5, generator=torch.Generator().manual_seed(2))
    labels = (torch.rand(4, 1, 5, 5, generator=torch.Generator().manual_seed(3)) > 0.5).float()
    for name in ("bce", "lovasz"):
        for elu in (False, True):
            got = get_train_loss(name, elu, 0.1, 0.05)(logits, labels)
            assert torch.equal(got, get_loss(name, elu)(logits, labels))
    has_salt = torch.tensor([1.0, -1.0, 0.0, 2.0])
    structured = get_train_loss("bce", False, 0.1, 0.05)((logits, (logits,), has_salt), labels)
    expected = empty_head_loss(logits, (logits,), has_salt, labels, bce, bce_per_image, 0.1, 0.05)
    assert torch.equal(structured, expected)


def test_symmetric_lovasz_averages_the_salt_and_the_sediment_class() -> None:
    """An empty mask, logits [0.5, -3] (hand-computed): the salt class's hinge errors are
    [1.5, 0] with Jaccard increments [1, 0] -> 1.5; the sediment class (logits negated, every
    pixel its class) has errors [1.5, 0] with increments [0.5, 0.5] -> 0.75; their mean 1.125."""
    logits, labels = torch.tensor([[[0.5, -3.0]]]), torch.zeros(1, 1, 2)
    assert lovasz_hinge(logits, labels).item() == pytest.approx(1.5)
    assert lovasz_hinge(logits, labels, symmetric=True).item() == pytest.approx(1.125)
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(3, 4, 4)), (rng.random((3, 4, 4)) > 0.6).astype(np.float64)
    expected = (reference(x, y, True, False) + reference(-x, 1 - y, True, False)) / 2
    got = get_loss("lovasz", symmetric=True)(torch.tensor(x), torch.tensor(y))
    assert got.item() == pytest.approx(expected, rel=1e-5)
    rows = image_losses("lovasz", symmetric=True)(torch.tensor(x), torch.tensor(y))
    assert rows.mean().item() == pytest.approx(expected, rel=1e-5)


def test_lovasz_of_the_batch_as_one_image() -> None:
    """Two images (hand-computed): both pixels of the first salt, predicted at logit 3 (errors
    -2); the second empty, a false positive at logit 1 (error 2) beside a confident sediment
    pixel. Per image: 0 and 2 (increments [1, 0]), mean 1. As one image the false positive is
    one pixel of a union of three: sorted errors [2, -2, -2, -3], increments [1/3, 1/3, 1/3, 0]:
    2/3. Deep supervision stays per image, over the images with salt: here the first, 0."""
    logits = torch.tensor([[[3.0, 3.0]], [[1.0, -4.0]]])
    labels = torch.tensor([[[1.0, 1.0]], [[0.0, 0.0]]])
    cfg = TrainConfig(aux_weight=1.0, empty_weight=0.0)
    assert stage_train_loss(cfg, "lovasz")(logits, labels).item() == pytest.approx(1.0)
    batch = dataclasses.replace(cfg, lovasz_per_image=False)
    assert stage_train_loss(batch, "lovasz")(logits, labels).item() == pytest.approx(2 / 3)
    assert get_loss("lovasz", per_image=False)(logits, labels).item() == pytest.approx(2 / 3)
    with_head = stage_train_loss(batch, "lovasz")((logits, (logits,), torch.zeros(2)), labels)
    assert with_head.item() == pytest.approx(2 / 3)


def test_the_has_salt_label_given_wins_over_the_resized_target() -> None:
    """A body of a few pixels can vanish from a mask resized for the loss: the caller's label
    of the 101-px mask (1) teaches the head "salt", not the empty target's 0."""
    logits, targets, has_salt = torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4), torch.tensor([0.7])
    labelled = get_train_loss("bce", False, 0.1, 1.0)((logits, (), has_salt), targets, torch.ones(1))
    expected = bce(logits, targets) + F.binary_cross_entropy_with_logits(has_salt, torch.ones(1))
    assert labelled.item() == pytest.approx(expected.item(), rel=1e-6)
    from_target = get_train_loss("bce", False, 0.1, 1.0)((logits, (), has_salt), targets)
    assert from_target.item() == pytest.approx(
        (bce(logits, targets) + F.binary_cross_entropy_with_logits(has_salt, torch.zeros(1))).item(), rel=1e-6
    )


def test_focal_bce_weighs_each_pixel_by_its_error_squared() -> None:
    """Hand-computed: logit 0 on salt, p_t 0.5: 0.25 ln 2; logit ln 3 on salt, p_t 0.75:
    0.0625 ln(4/3); logit ln 3 on sediment, p_t 0.25: 0.5625 ln 4."""
    logits = torch.tensor([[[0.0, math.log(3.0), math.log(3.0)]]])
    labels = torch.tensor([[[1.0, 1.0, 0.0]]])
    terms = [0.25 * math.log(2), 0.0625 * math.log(4 / 3), 0.5625 * math.log(4)]
    assert get_loss("focal")(logits, labels).item() == pytest.approx(sum(terms) / 3, rel=1e-6)
    assert image_losses("focal")(logits, labels).tolist() == pytest.approx([sum(terms) / 3], rel=1e-6)


def test_bce_dice_adds_one_minus_the_soft_dice_of_each_image() -> None:
    """Hand-computed. Image 1: logits 0, ln 3, ln 3 on salt, salt, sediment: p 0.5, 0.75, 0.75,
    BCE (ln 2 + ln 4/3 + ln 4) / 3, Dice (2 * 1.25 + 1) / (2 + 2 + 1) = 0.7. Image 2, no salt:
    logits -ln 3 (p 0.25) everywhere, BCE ln 4/3, Dice 1 / (0.75 + 1) = 4/7."""
    logits = torch.tensor([[[0.0, math.log(3.0), math.log(3.0)]], [[-math.log(3.0)] * 3]])
    labels = torch.tensor([[[1.0, 1.0, 0.0]], [[0.0, 0.0, 0.0]]])
    first = (math.log(2) + math.log(4 / 3) + math.log(4)) / 3 + 1 - 0.7
    second = math.log(4 / 3) + 1 - 4 / 7
    assert image_losses("bce_dice")(logits, labels).tolist() == pytest.approx([first, second], rel=1e-6)
    assert get_loss("bce_dice")(logits, labels).item() == pytest.approx((first + second) / 2, rel=1e-6)


def test_bce_small_dice_adds_the_dice_term_to_small_salt_only() -> None:
    """Hand-computed, 20 pixels an image, logits 0 (p 0.5, BCE ln 2 everywhere): salt on 1 pixel
    (5%, small) adds 1 - (2 * 0.5 + 1) / (10 + 1 + 1) = 5/6; on 10 pixels (50%) or none, nothing."""
    logits = torch.zeros(3, 1, 4, 5)
    labels = torch.zeros(3, 1, 4, 5)
    labels[0, 0, 0, 0] = 1.0
    labels[1, 0, :2] = 1.0
    expected = [math.log(2) + 5 / 6, math.log(2), math.log(2)]
    assert image_losses("bce_small_dice")(logits, labels).tolist() == pytest.approx(expected, rel=1e-6)
    assert get_loss("bce_small_dice")(logits, labels).item() == pytest.approx(sum(expected) / 3, rel=1e-6)


def test_boundary_weights_mark_both_sides_of_an_edge_and_never_the_tile_border() -> None:
    """Hand-computed on one row 0 0 1 1 1: the 3x3 dilation is 0 1 1 1 1, the erosion 0 0 0 1 1,
    so pixels 2 and 3 (either side of the edge) weigh 1 + w; the salt at the tile's right border
    is no edge. A soft target weighs its dilation minus its erosion."""
    row = torch.tensor([[[[0.0, 0.0, 1.0, 1.0, 1.0]]]])
    assert boundary_weights(row, 2.0).tolist() == [[1.0, 3.0, 3.0, 1.0, 1.0]]
    soft = torch.tensor([[[0.0, 0.5, 0.5]]])  # (N, H, W): dilation 0.5 0.5 0.5, erosion 0 0 0.5
    assert boundary_weights(soft, 2.0).tolist() == [[2.0, 2.0, 1.0]]


@pytest.mark.parametrize("name", ["bce", "focal", "bce_dice", "bce_small_dice"])
def test_boundary_weight_weighs_the_bce_of_edge_pixels(name: str) -> None:
    """Logits 0 on 0 0 1 1 1 (BCE ln 2 a pixel; focal 0.25 ln 2): with weight 2 the pixels 2 and 3
    weigh 3, so the BCE term becomes 9/5 of itself, the mean of 1 3 3 1 1; the Dice term of
    bce_dice is untouched. Weight 0 is the loss as it was."""
    logits = torch.zeros(1, 1, 1, 5)
    labels = torch.tensor([[[[0.0, 0.0, 1.0, 1.0, 1.0]]]])
    plain = image_losses(name)(logits, labels)
    weighted = image_losses(name, boundary_weight=2.0)(logits, labels)
    term = (0.25 if name == "focal" else 1.0) * math.log(2)
    assert (weighted - plain).item() == pytest.approx(term * 4 / 5, rel=1e-6)
    assert get_loss(name, boundary_weight=2.0)(logits, labels).item() == pytest.approx(weighted.item())
    assert torch.equal(image_losses(name, boundary_weight=0.0)(logits, labels), plain)


def test_boundary_weight_never_reaches_the_lovasz_hinge() -> None:
    logits = torch.tensor([[[0.5, -1.0, 2.0, 0.0]]])
    labels = torch.tensor([[[1.0, 0.0, 0.0, 1.0]]])
    form = {"aux_weight": 0.1, "empty_weight": 0.05}
    plain = get_train_loss("lovasz", False, **form)(logits, labels)
    assert torch.equal(get_train_loss("lovasz", False, **form, boundary_weight=3.0)(logits, labels), plain)
