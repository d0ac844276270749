"""Augmentations move image and mask together and are reproducible from the seed."""

import cv2
import numpy as np
import pytest

from saltseg.config import AugmentConfig
from saltseg.data.augment import build_augment

# A blob's augmented image is 0 or 255 away from its edge and grey on it (bilinear). A mask
# aligned with the image may disagree with (image > 127) only where the image is grey;
# a mask shifted by a fraction of a pixel also claims pixels that are clearly dark or bright.
CLEAR = 64  # "clearly": image < 128 - CLEAR or image > 127 + CLEAR
# Share of an image's pixels allowed to be clearly wrong. Measured over these 60 blobs (pixels
# per image, at most): crop alone 172 with INTER_NEAREST masks, 0 with INTER_NEAREST_EXACT;
# rotation alone 0; crop, rotation, flip and roll together 122 before, 21 after (two
# interpolations in a row blur the edge beyond one pixel).
MAX_CLEARLY_WRONG = 0.003


def _pair(seed=0):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (101, 101), dtype=np.uint8)
    mask = (image > 128).astype(np.uint8)  # the mask is a function of the image pixel
    return image, mask


def _blob(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A smooth random blob, 255 inside and 0 outside, and its mask (image > 127) as uint8 0/1."""
    rng = np.random.default_rng(seed)
    field = cv2.resize(rng.normal(size=(6, 6)).astype(np.float32), (101, 101), interpolation=cv2.INTER_CUBIC)
    image = np.where(field > 0, 255, 0).astype(np.uint8)
    return image, (image > 127).astype(np.uint8)


def test_flips_and_roll_move_image_and_mask_exactly_together():
    # No interpolation here, so pixel by pixel; crop and rotation: the blob test below.
    cfg = AugmentConfig(hflip=0.5, crop_resize=0.0, rotate=0.0, roll=1.0)
    transform = build_augment(cfg, seed=1)
    image, mask = _pair()
    for _ in range(10):
        out = transform(image=image, mask=mask)
        assert out["image"].shape == (101, 101)
        np.testing.assert_array_equal(out["mask"], (out["image"] > 128).astype(np.uint8))


@pytest.mark.parametrize(
    "cfg",
    [
        AugmentConfig(hflip=0.0, crop_resize=1.0, rotate=0.0, roll=0.0),
        AugmentConfig(hflip=0.0, crop_resize=0.0, rotate=1.0, roll=0.0),
        AugmentConfig(hflip=0.5, crop_resize=1.0, rotate=1.0, roll=1.0),
        AugmentConfig(),
    ],
    ids=["crop", "rotate", "all", "default"],
)
def test_crop_and_rotation_keep_the_mask_on_the_image_pixels(cfg):
    transform = build_augment(cfg, seed=2)
    for seed in range(60):
        image, mask = _blob(seed)
        out = transform(image=image, mask=mask)
        assert set(np.unique(out["mask"])) <= {0, 1}
        salt, pixels = out["mask"] == 1, out["image"].astype(int)
        wrong = (salt & (pixels < 128 - CLEAR)) | (~salt & (pixels > 127 + CLEAR))
        assert wrong.mean() <= MAX_CLEARLY_WRONG, f"blob {seed}: {wrong.sum()} pixels clearly off"


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
