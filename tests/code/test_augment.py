"""Augmentations move image and mask together and are reproducible from the seed."""

import numpy as np

from saltseg.config import AugmentConfig
from saltseg.data.augment import build_augment


def _pair(seed=0):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (101, 101), dtype=np.uint8)
    mask = (image > 128).astype(np.uint8)  # the mask is a function of the image pixel
    return image, mask


def test_image_and_mask_stay_aligned_under_every_transform():
    cfg = AugmentConfig(hflip=0.5, crop_resize=0.0, rotate=0.0, roll=1.0)
    transform = build_augment(cfg, seed=1)
    image, mask = _pair()
    for _ in range(10):
        out = transform(image=image, mask=mask)
        assert out["image"].shape == (101, 101)
        np.testing.assert_array_equal(out["mask"], (out["image"] > 128).astype(np.uint8))


def test_roll_is_a_circular_horizontal_shift():
    cfg = AugmentConfig(hflip=0.0, crop_resize=0.0, rotate=0.0, roll=1.0)
    image, mask = _pair()
    out = build_augment(cfg, seed=3)(image=image, mask=mask)
    shifts = [k for k in range(-101, 101) if np.array_equal(np.roll(image, k, axis=1), out["image"])]
    assert shifts, "the rolled image is not a circular shift of the input"
    np.testing.assert_array_equal(out["mask"], np.roll(mask, shifts[0], axis=1))


def test_no_vertical_flip_by_default():
    cfg = AugmentConfig()
    assert "VerticalFlip" not in repr(build_augment(cfg, seed=0))


def test_same_seed_same_augmentations():
    image, mask = _pair()
    a = build_augment(AugmentConfig(), seed=5)
    b = build_augment(AugmentConfig(), seed=5)
    for _ in range(5):
        np.testing.assert_array_equal(a(image=image, mask=mask)["image"], b(image=image, mask=mask)["image"])
