"""Torch datasets over the prepared arrays: no PNG decoding during training.

Augmentation seeds travel with the batches. `EpochBatches` draws, from the epoch's seed
alone, the shuffled order and one seed per batch; whichever worker process loads a batch
reseeds the augmentations with that batch's seed. So batch b of an epoch holds the same
images, augmented the same way, with 0, 1 or 8 workers, persistent or not, uninterrupted
or resumed: `runtime.num_workers` changes speed, never results. (A Compose copied into
each worker with one seed would make every worker draw the same augmentations.) Under
torchrun each of the N processes takes every N-th image of each batch, with seeds of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W) -> float32 (N, 1, H, W) in [0, 1]: the model's input scale."""
    return torch.from_numpy(images).float().div_(255.0).unsqueeze(1)


class SeededBatch(NamedTuple):
    """The indices of one batch and the seed its augmentations are drawn from."""

    seed: int
    indices: list[int]


class EpochBatches(Sampler[SeededBatch]):
    """Shuffled batches of range(n); `set_epoch(seed)` before each pass picks order and seeds.

    `rank` of `world_size` processes gets its share of every batch: the same order on every
    rank, disjoint shares, one augmentation seed per batch and rank. `draws` (n,) ints >= 1: image
    i stands `draws[i]` times in the pool each epoch's n images are drawn from without replacement
    (`small_salt_draws`); an epoch keeps its n images and its steps, and may hold an image twice.
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        drop_last: bool,
        rank: int = 0,
        world_size: int = 1,
        draws: np.ndarray | None = None,
    ) -> None:
        self.n, self.batch_size, self.drop_last, self.seed = n, batch_size, drop_last, 0
        self.rank, self.world_size = rank, world_size
        self.pool = (
            None if draws is None else torch.repeat_interleave(torch.arange(n), torch.as_tensor(draws))
        )

    def set_epoch(self, seed: int) -> None:
        self.seed = seed

    def __len__(self) -> int:
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)

    def __iter__(self) -> Iterator[SeededBatch]:
        generator = torch.Generator().manual_seed(self.seed)
        if self.pool is None:
            order = torch.randperm(self.n, generator=generator).tolist()
        else:
            order = self.pool[torch.randperm(len(self.pool), generator=generator)[: self.n]].tolist()
        # One column of seeds per rank: with one process, the same numbers as a flat draw.
        seeds = torch.randint(2**31, (len(self), self.world_size), generator=generator)[:, self.rank]
        for b, seed in enumerate(seeds.tolist()):
            batch = order[b * self.batch_size : (b + 1) * self.batch_size]
            yield SeededBatch(seed, batch[self.rank :: self.world_size])


# Salt on at most this share of a tile makes it small salt: the TGS coverage bin models lose most on.
SMALL_SALT = 0.1


def small_salt_draws(masks: np.ndarray, repeats: int) -> np.ndarray:
    """int64 (N,) `EpochBatches` draws: `repeats` for a mask (N, H, W) with salt on at most
    SMALL_SALT of its pixels (and some), 1 for the others."""
    coverage = masks.reshape(len(masks), -1).mean(axis=1, dtype=np.float64)
    return np.where((coverage > 0) & (coverage <= SMALL_SALT), repeats, 1).astype(np.int64)


def column_masks(masks: np.ndarray) -> np.ndarray:
    """bool (N,): masks (N, H, W) with salt in which every column is all salt or all sediment.

    About 2.8% of the TGS masks (80 of the 2,880 in the real-cpu folds) are such straight
    vertical bands, salt to the tile's top and bottom edges, on images that often look like
    sediment: the out-of-fold models leave 59 of them empty (docs/real-data.md).
    """
    salt = masks.astype(bool)
    whole = salt.all(axis=1) | ~salt.any(axis=1)  # (N, W): a column all salt or all sediment
    return whole.all(axis=1) & salt.any(axis=(1, 2))


class SaltDataset(Dataset):
    """(image, mask, depth): float32 (1, 101, 101) tensors, optionally augmented, and a float32 scalar.

    `transform` is an albumentations Compose taking `image` and `mask` (uint8). A DataLoader
    whose batch_sampler yields `SeededBatch`es reseeds it once per batch (`__getitems__`).
    `depths` (N,) default to zeros, for models without model.depth_channel, which never see them.
    """

    def __init__(self, images: np.ndarray, masks: np.ndarray, transform=None, depths=None) -> None:  # noqa: ANN001
        self.images, self.masks, self.transform = images, masks.astype(np.uint8), transform
        self.depths = np.zeros(len(images), np.float32) if depths is None else np.asarray(depths, np.float32)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        image, mask = self.images[i], self.masks[i]
        if self.transform is not None:
            out = self.transform(image=image, mask=mask)
            image, mask = out["image"], out["mask"]
        x = torch.from_numpy(np.ascontiguousarray(image)).float().div_(255.0)[None]
        y = torch.from_numpy(np.ascontiguousarray(mask)).float()[None]
        return x, y, torch.tensor(self.depths[i])

    def __getitems__(self, batch: SeededBatch | list[int]) -> list[tuple[torch.Tensor, ...]]:
        if isinstance(batch, SeededBatch):
            if self.transform is not None:
                self.transform.set_random_seed(batch.seed)
            batch = batch.indices
        return [self[i] for i in batch]
