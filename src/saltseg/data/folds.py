"""K folds stratified by salt coverage, and an optional test set (output of `salt data split`).

The folds CSV has columns id,fold,coverage_class. Class 0 holds the empty masks and
classes 1..n-1 split the coverage range (0, 1] into equal-width bins, the usual TGS
stratification, so every fold sees the same mix of empty, small and large salt bodies.

With split.test_fraction > 0, that share of the images is carved off first (stratified the
same way, seeded) and marked with fold TEST_FOLD: no fold trains on them, no checkpoint,
threshold or minimum area is chosen on them; only the registered ensemble is scored on them
(`salt score`), which makes its test score the one number nothing was selected on.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from saltseg.atomic import atomic_file
from saltseg.config import Params, SplitConfig
from saltseg.data.prepared import Prepared
from saltseg.errors import SaltError

COLUMNS = ["id", "fold", "coverage_class"]
TEST_FOLD = -1  # the `fold` of the images held out for the test score


def coverage_class(coverage: np.ndarray, n_classes: int) -> np.ndarray:
    """Salt fraction float (N,) in [0, 1] -> int64 (N,): 0 if empty, else ceil(c * (n-1)).

    With n_classes=11: (0, 0.1] -> 1, (0.1, 0.2] -> 2, ..., (0.9, 1] -> 10.
    """
    if n_classes < 2:
        raise SaltError(f"split.coverage_classes must be >= 2, got {n_classes}")
    cov = np.asarray(coverage, dtype=np.float64)
    if not np.all((cov >= 0) & (cov <= 1)):  # also rejects NaN
        raise SaltError("coverage values must lie in [0, 1]")
    # Rounding first keeps e.g. 0.3 * 10 = 3.0000000000000004 in class 3.
    scaled = np.round(cov * (n_classes - 1), 9)
    return np.clip(np.ceil(scaled), 0, n_classes - 1).astype(np.int64)


def _merge_rare(classes: np.ndarray, k: int) -> np.ndarray:
    """Merge classes with fewer than k members into their smaller neighbouring class.

    StratifiedKFold warns (and stratifies poorly) when a class has fewer members than folds.
    """
    labels = classes.copy()
    while True:
        values, counts = np.unique(labels, return_counts=True)
        if len(values) <= 1 or counts.min() >= k:
            return labels
        i = int(np.argmin(counts))
        neighbours = [j for j in (i - 1, i + 1) if 0 <= j < len(values)]
        j = min(neighbours, key=lambda j: counts[j])
        labels[labels == values[i]] = values[j]


def _carve_test(strata: np.ndarray, cfg: SplitConfig) -> np.ndarray:
    """bool (N,): the test images, split.test_fraction of them, stratified by `strata`, seeded."""
    from sklearn.model_selection import train_test_split

    positions = np.arange(len(strata))
    # Stratifying needs two members per class at least (one each side).
    _, test = train_test_split(
        positions, test_size=cfg.test_fraction, stratify=_merge_rare(strata, 2), random_state=cfg.seed
    )
    held = np.zeros(len(strata), dtype=bool)
    held[test] = True
    return held


def make_folds(ids: Sequence[str], coverage: np.ndarray, cfg: SplitConfig) -> pd.DataFrame:
    """Assign each id to one of the folds cfg.folds, or to TEST_FOLD (split.test_fraction)
    -> DataFrame id,fold,coverage_class (input order). Without a test set the folds are those
    of the whole set, as before the setting existed."""
    from sklearn.model_selection import StratifiedKFold  # slow to import; only the split stage needs it

    ids = [str(i) for i in ids]
    coverage = np.asarray(coverage)
    k = len(cfg.folds)
    if len(ids) != len(coverage):
        raise ValueError(f"{len(ids)} ids but {len(coverage)} coverage values")
    if len(set(ids)) != len(ids):
        raise SaltError("split: ids are not unique")
    classes = coverage_class(coverage, cfg.coverage_classes)
    held = _carve_test(classes, cfg) if cfg.test_fraction > 0 else np.zeros(len(ids), dtype=bool)
    folded = np.flatnonzero(~held)
    if len(folded) < k:
        raise SaltError(f"split: {len(folded)} images outside the test set cannot fill {k} folds")
    strata = _merge_rare(classes[folded], k)
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=cfg.seed)
    fold = np.full(len(ids), TEST_FOLD, dtype=np.int64)
    for j, (_, val) in enumerate(splitter.split(np.zeros(len(folded)), strata)):
        fold[folded[val]] = cfg.folds[j]
    return pd.DataFrame({"id": ids, "fold": fold, "coverage_class": classes})


def write_folds(folds: pd.DataFrame, path: str | Path) -> None:
    """Write the folds table as CSV (id,fold,coverage_class), atomically."""
    with atomic_file(path) as tmp:
        folds[COLUMNS].to_csv(tmp, index=False)


def load_folds(path: str | Path) -> pd.DataFrame:
    """Read a folds CSV; SaltError naming the file when missing or malformed.

    The path is kept in `df.attrs["source"]` so later errors can name the file.
    """
    path = Path(path)
    if not path.is_file():
        raise SaltError(f"{path}: folds file not found (run `salt data split`)")
    try:
        df = pd.read_csv(path, dtype={"id": str}, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise SaltError(f"{path}: not a readable CSV ({exc})") from None
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise SaltError(f"{path}: missing column(s) {', '.join(missing)}; expected {','.join(COLUMNS)}")
    for column in ("fold", "coverage_class"):
        if not pd.api.types.is_integer_dtype(df[column]):
            raise SaltError(f"{path}: column {column} must hold integers")
    if df["id"].duplicated().any():
        raise SaltError(f"{path}: duplicate id {df['id'][df['id'].duplicated()].iloc[0]}")
    df = df[COLUMNS].reset_index(drop=True)
    df.attrs["source"] = str(path)
    return df


def fold_indices(
    prepared_ids: Sequence[str], folds_df: pd.DataFrame, fold: int
) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, val_idx): int64 positions in `prepared_ids` in the other folds / in `fold`.

    Images of the test set (TEST_FOLD) are in neither."""
    source = folds_df.attrs.get("source", "folds")
    per_id = _fold_of(prepared_ids, folds_df)
    labels = sorted(set(per_id.tolist()) - {TEST_FOLD})
    if fold not in labels:
        raise SaltError(f"{source}: no fold {fold}; the folds are {labels}")
    return np.flatnonzero((per_id != fold) & (per_id != TEST_FOLD)), np.flatnonzero(per_id == fold)


def train_steps(folds_df: pd.DataFrame, folds: Sequence[int], batch_size: int, epochs: int) -> int:
    """Optimizer steps that training every fold in `folds` takes: each fold's training images (the
    other folds', not the test set) in whole batches, `epochs` times. The batching rule is
    saltseg.loop.make_loader's (a last partial batch dropped unless it is the only one), written
    again here because this layer loads no torch. Pseudo-labelled images, which join some runs,
    are not counted."""
    sizes = folds_df["fold"].value_counts()
    development = int(sizes.drop(TEST_FOLD, errors="ignore").sum())
    steps = 0
    for fold in folds:
        n = development - int(sizes.get(fold, 0))
        steps += epochs * (n // batch_size if n > batch_size else min(n, 1))
    return steps


def stage_train_steps(params: Params, folds_df: pd.DataFrame) -> int:
    """`train_steps` of the train stage: every fold of split.folds through every stage's epochs."""
    epochs = sum(stage.epochs for stage in params.train.stages)
    return train_steps(folds_df, params.split.folds, params.train.batch_size, epochs)


def _fold_of(prepared_ids: Sequence[str], folds_df: pd.DataFrame) -> np.ndarray:
    """int64 (N,): the fold of each prepared id; SaltError when ids and fold file disagree."""
    source = folds_df.attrs.get("source", "folds")
    ids = [str(i) for i in prepared_ids]
    assigned = dict(zip(folds_df["id"].astype(str), folds_df["fold"].astype(int), strict=True))
    if set(ids) != set(assigned) or len(assigned) != len(folds_df):
        unfolded = sorted(set(ids) - set(assigned))
        unprepared = sorted(set(assigned) - set(ids))
        raise SaltError(
            f"{source}: ids do not match the prepared data ({len(unfolded)} prepared id(s) without a fold"
            f"{', e.g. ' + unfolded[0] if unfolded else ''}; {len(unprepared)} fold id(s) not prepared"
            f"{', e.g. ' + unprepared[0] if unprepared else ''}); rerun `salt data split`"
        )
    return np.array([assigned[i] for i in ids], dtype=np.int64)


def held_out_indices(prepared_ids: Sequence[str], folds_df: pd.DataFrame) -> np.ndarray:
    """int64 positions in `prepared_ids` of the test set (empty without split.test_fraction)."""
    return np.flatnonzero(_fold_of(prepared_ids, folds_df) == TEST_FOLD)


def development(prepared: Prepared, folds_df: pd.DataFrame) -> tuple[Prepared, pd.DataFrame]:
    """The prepared arrays and the fold table without the test set: what training, checkpoint
    choice and post-processing may see. The arrays keep the whole data set's fingerprint."""
    held = held_out_indices(prepared.ids, folds_df)
    if not len(held):
        return prepared, folds_df
    kept = folds_df[folds_df["fold"] != TEST_FOLD].reset_index(drop=True)
    kept.attrs = dict(folds_df.attrs)
    return prepared.subset(np.setdiff1d(np.arange(len(prepared)), held)), kept


def held_out_set(prepared: Prepared, folds_df: pd.DataFrame) -> Prepared:
    """The images held out for the test score (none without split.test_fraction)."""
    return prepared.subset(held_out_indices(prepared.ids, folds_df))
