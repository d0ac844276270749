"""Training augmentations (albumentations 2.x), applied to image and mask together."""

from __future__ import annotations

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no update check over the network

import albumentations as A  # noqa: E402
import cv2  # noqa: E402

from saltseg.config import AugmentConfig  # noqa: E402
from saltseg.data.tgs import SIZE  # noqa: E402


def build_augment(cfg: AugmentConfig, seed: int) -> A.Compose:
    """The seed's augmentations: flips, random crop-and-resize, small rotations, rolling.

    Works on uint8 (101, 101) images and uint8 (101, 101) masks. Randomness comes
    from `seed` only (albumentations ignores np.random), so a run is reproducible.
    """
    roll_px = int(round(cfg.roll_limit * SIZE))
    transforms = [
        A.HorizontalFlip(p=cfg.hflip),
        A.VerticalFlip(p=cfg.vflip),
        # cv2.INTER_NEAREST is not pixel-centre aligned with the image's bilinear resize (the mask
        # lands up to half a pixel off); INTER_NEAREST_EXACT samples the same centres.
        A.RandomResizedCrop(
            size=(SIZE, SIZE),
            scale=cfg.crop_scale,
            ratio=(0.75, 1.333),
            mask_interpolation=cv2.INTER_NEAREST_EXACT,
            p=cfg.crop_resize,
        ),
        # Reflecting the border keeps rotated corners plausible instead of black wedges. warpAffine
        # maps image and mask through the same centres, so its default INTER_NEAREST is aligned.
        A.Rotate(limit=cfg.rotate_limit, border_mode=cv2.BORDER_REFLECT_101, p=cfg.rotate),
        # A circular horizontal shift: with BORDER_WRAP this equals np.roll on image and mask.
        A.Affine(translate_px={"x": (-roll_px, roll_px), "y": 0}, border_mode=cv2.BORDER_WRAP, p=cfg.roll),
    ]
    return A.Compose([t for t in transforms if t.p > 0], seed=seed)
