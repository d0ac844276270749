"""Torch datasets over the prepared arrays: no PNG decoding during training."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W) -> float32 (N, 1, H, W) in [0, 1]: the model's input scale."""
    return torch.from_numpy(images).float().div_(255.0).unsqueeze(1)


class SaltDataset(Dataset):
    """(image, mask) pairs as float32 (1, 101, 101) tensors, optionally augmented.

    `transform` is an albumentations Compose taking `image` and `mask` (uint8).
    """

    def __init__(self, images: np.ndarray, masks: np.ndarray, transform=None) -> None:  # noqa: ANN001
        self.images, self.masks, self.transform = images, masks.astype(np.uint8), transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.images[i], self.masks[i]
        if self.transform is not None:
            out = self.transform(image=image, mask=mask)
            image, mask = out["image"], out["mask"]
        x = torch.from_numpy(np.ascontiguousarray(image)).float().div_(255.0)[None]
        y = torch.from_numpy(np.ascontiguousarray(mask)).float()[None]
        return x, y
