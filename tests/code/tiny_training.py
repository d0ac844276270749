"""Small, learnable data sets and shrunken configurations for the training tests."""

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from empty_store import sqlite_store

from saltseg.config import (
    ModelConfig,
    Params,
    SplitConfig,
    StageConfig,
    TrackingConfig,
    TrainConfig,
)


def blocky_salt(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (n, 101, 101) and bool masks: quiet rectangles in noisy layers."""
    rng = np.random.default_rng(seed)
    rows = np.sin(np.arange(101) / 3.0)[:, None] * 40
    images = np.clip(128 + rows + rng.normal(0, 25, (n, 101, 101)), 0, 255)
    masks = np.zeros((n, 101, 101), bool)
    for i in range(n):
        if i % 3:  # a third of the images stay empty, as in the real data
            r, c = rng.integers(0, 60, 2)
            h, w = rng.integers(20, 41, 2)
            masks[i, r : r + h, c : c + w] = True
    images[masks] = 128 + rng.normal(0, 3, masks.sum())
    return images.astype(np.uint8), masks


def tiny_params(tmp_path: Path, lovasz_epochs: int = 2) -> Params:
    """The real defaults shrunk: a 4-filter network, 2 folds, a couple of epochs; MLflow tracks
    into tmp_path/mlflow.db (empty_store.sqlite_store)."""
    return Params(
        split=SplitConfig(folds=(0, 1)),
        model=ModelConfig(start_filters=4, depth=2, input_size=64),
        train=TrainConfig(
            batch_size=8,
            stages=(StageConfig("bce", 2, 0.01), StageConfig("lovasz", lovasz_epochs, 0.003)),
        ),
        tracking=TrackingConfig(uri=sqlite_store(tmp_path / "mlflow.db")),
    )


def kill_in_stage_two(job: subprocess.Popen, state: Path, kill: Callable[[], None]) -> None:
    """Wait until the resume state `state` says stage 2 is under way, then `kill()` the job."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if state.exists():
            saved = torch.load(state, weights_only=True)
            if saved["next_stage"] == 1 and saved["next_epoch"] >= 1:
                break
        assert job.poll() is None, "the run ended before it could be killed in stage 2"
        time.sleep(0.02)
    kill()
    job.wait()
