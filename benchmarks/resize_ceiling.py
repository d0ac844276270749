"""What a model at a smaller input size could score at best, per coverage class.

A model at input size S that learned its training targets perfectly predicts them; mapped back
to 101 px (bilinear, as saltseg.models.fit.to_original maps logits) and thresholded at 0.5,
they score this against the true 101-px masks. Two kinds of targets:

- binarised: the mask resized to S like the image and binarised at 0.5 (train.loss_at input);
- soft: the same resized mask not binarised (train.soft_targets).

If a coverage class scores far below its ceiling, the resolution is not what loses it. Over the
images in the folds only (those split.test_fraction holds out are left out); seconds on a CPU.

    python benchmarks/resize_ceiling.py --prepared prepared/train.npz --folds prepared/folds.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from saltseg.config import ModelConfig
from saltseg.data.folds import load_folds
from saltseg.data.prepared import load_prepared
from saltseg.loop import train_targets
from saltseg.metrics import score_per_image
from saltseg.models.fit import to_original


def ceilings(masks: np.ndarray, classes: np.ndarray, sizes: list[int]) -> pd.DataFrame:
    """Rows (size, targets), columns: the mean score of each coverage class and of all images."""
    y = torch.from_numpy(masks.astype(np.float32))[:, None]
    rows = {}
    for size in sizes:
        cfg = ModelConfig(input_size=size)
        for soft in (False, True):
            back = to_original(train_targets(y, cfg, at_input=True, soft=soft), cfg)
            scores = score_per_image(masks.astype(bool), (back > 0.5).numpy()[:, 0])
            by_class = pd.Series(scores).groupby(classes).mean()
            rows[(size, "soft" if soft else "binarised")] = by_class.to_dict() | {"all": scores.mean()}
    return pd.DataFrame(rows).T


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prepared", type=Path, default=Path("prepared/train.npz"))
    parser.add_argument("--folds", type=Path, default=Path("prepared/folds.csv"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[48, 64, 80, 96])
    args = parser.parse_args()
    prepared = load_prepared(args.prepared)
    folds = load_folds(args.folds).set_index("id").loc[prepared.ids]
    in_folds = (folds["fold"] >= 0).to_numpy()  # the images split.test_fraction held out stay unseen
    classes = folds["coverage_class"].to_numpy()[in_folds]
    print(ceilings(prepared.masks[in_folds], classes, args.sizes).round(3).to_string())


if __name__ == "__main__":
    main()
