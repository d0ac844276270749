"""Ablation on the real data: each technique of the top TGS solutions switched on alone over a profile.

Every arm trains the same folds of the same split with one `salt train` (side by side,
runtime.fold_jobs at a time, as the train stage trains them; each fold a run in the project's
MLflow store, under a pipeline run labelled `<profile>/<arm>`), then scores each fold
on its held-out images exactly as the pipeline predicts them (flip TTA, the fold's snapshot
ensemble when it has one) at the fixed threshold 0.5 with no minimum area: nothing is tuned on
the predictions scored. The kept checkpoint is chosen on the same held-out images (the seed's
rule), alike in every arm.

    dvc repro split                                   # prepared/ from data/ (the real data)
    python benchmarks/ablation.py --folds 0 1         # every technique arm; or --arms baseline scse ...
    python benchmarks/ablation.py --arms pseudo --teacher models:/saltseg-ensemble/N   # after a full run
    python benchmarks/ablation.py --table             # docs/ablation.md from docs/ablation.json
    python benchmarks/ablation.py --profile configs/real-cpu.yaml --arms baseline label101 \
        small_salt_x3 lovasz_symmetric small_salt_x6 small_salt_x2 px64_input focal \
        --results docs/small_salt.json --out-markdown docs/small_salt.md
    python benchmarks/ablation.py --profile configs/real-cpu.yaml --arms baseline soft_targets \
        --tag intel --results docs/small_salt.json --out-markdown docs/small_salt.md
    python benchmarks/ablation.py --profile configs/budget.yaml --arms baseline px64_loss101 \
        px48_loss101 px48_short batch16 scse_budget ep42_20 f16 ema d4_34_16 d4_32_16 \
        ep32_24 batch64 aug_flips aug_strong monitor_score \
        --results docs/budget.json --out-markdown docs/budget.md

The pseudo arm labels the test images with `--teacher` (a model registered by an earlier
pipeline run on the same data, e.g. the real-cpu champion: `salt champion`) through `salt
pseudo`; its score is optimistic, since the teacher's folds saw the images scored here.

Results accumulate in docs/ablation.json (one entry per arm, with machine, date, commit, data
fingerprint, budget); the table in docs/ablation.md is rebuilt from it after every arm.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def _stages(first: int, lovasz: int, loss: str = "bce") -> list[dict]:
    """`first` epochs of `loss`, then `lovasz` of Lovasz, at configs/real-cpu.yaml's learning rates."""
    return [{"loss": loss, "epochs": first, "lr": 0.005}, {"loss": "lovasz", "epochs": lovasz, "lr": 0.001}]


# name -> (what it switches on, params overrides as dotted keys)
ARMS: dict[str, tuple[str, dict[str, object]]] = {
    "baseline": ("the profile as it is", {}),
    "scse": ("scSE attention on every decoder level", {"model.scse": True}),
    "hypercolumn": ("hypercolumn head", {"model.hypercolumn": True}),
    "coord": ("vertical-position input channel", {"model.coord_channels": True}),
    "lovasz_elu": ("Lovasz hinge on elu+1", {"train.lovasz_elu": True}),
    "warm_restarts": (
        "cosine warm restarts, 2 cycles a stage, + snapshot ensemble of the last stage's cycles",
        {"train.scheduler": "warm_restarts", "train.cycles": 2, "train.snapshots": True},
    ),
    "empty_head": ("deep supervision + image-level empty head", {"model.empty_head": True}),
    "depth": ("depth as a constant input channel", {"model.depth_channel": True}),
    # Pad against resize at the seed's 128 px: 4x the pixels of the base's 64, so both arms pay it.
    "resize128": ("resize 101 -> 128 (control for pad128)", {"model.input_size": 128}),
    "pad128": ("reflect-pad 101 -> 128 instead of resizing", {"model.input_size": 128, "model.fit": "pad"}),
    # What helped, together: the CPU-scaled configs/beyond-seed.yaml.
    "combined": (
        "empty head + scSE + hypercolumn (configs/beyond-seed.yaml's switches)",
        {"model.empty_head": True, "model.scse": True, "model.hypercolumn": True},
    ),
    # The budget of configs/real-cpu.yaml (--profile configs/budget.yaml, docs/budget.md): input
    # size, where the loss is computed, batch and epochs at about the same time a fold.
    "px64_loss101": (
        "64 px, loss at 101 px, 22 + 11 epochs (real-cpu before 2026-11-26's budget change)",
        {"model.input_size": 64, "train.loss_at": "original", "train.stages": _stages(22, 11)},
    ),
    "px48_loss101": (
        "48 px, loss at 101 px, 29 + 13 epochs",
        {"train.loss_at": "original", "train.stages": _stages(29, 13)},
    ),
    "px48_short": (
        "48 px, loss at 48 px, 29 + 13 epochs (fewer than the time allows)",
        {"train.stages": _stages(29, 13)},
    ),
    "batch16": (
        "batch 16, 64 px, loss at 101 px, 18 + 10 epochs",
        {
            "model.input_size": 64,
            "train.loss_at": "original",
            "train.batch_size": 16,
            "train.stages": _stages(18, 10),
        },
    ),
    "scse_budget": (
        "scSE, 32 + 16 epochs (about the profile's time a fold)",
        {"model.scse": True, "train.stages": _stages(32, 16)},
    ),
    "ep42_20": ("48 px, 42 + 20 epochs (~11% more time)", {"train.stages": _stages(42, 20)}),
    "f16": ("16 start filters, 27 + 13 epochs", {"model.start_filters": 16, "train.stages": _stages(27, 13)}),
    "ema": ("weight average, train.ema_decay 0.995", {"train.ema_decay": 0.995}),
    "d4_34_16": (
        "4 levels (the seed's), 34 + 16 epochs",
        {"model.depth": 4, "train.stages": _stages(34, 16)},
    ),
    "d4_32_16": (
        "4 levels (the seed's), 32 + 16 epochs",
        {"model.depth": 4, "train.stages": _stages(32, 16)},
    ),
    "ep32_24": (
        "32 + 24 epochs (the same 56, more of them Lovasz; ~3% more time)",
        {"train.stages": _stages(32, 24)},
    ),
    "batch64": (
        "batch 64, 48 + 22 epochs (~10% more time a fold: fewer, larger steps)",
        {"train.batch_size": 64, "train.stages": _stages(48, 22)},
    ),
    "aug_flips": (
        "augment: flips only (no crop-resize, rotation, roll)",
        {"augment.crop_resize": 0.0, "augment.rotate": 0.0, "augment.roll": 0.0},
    ),
    "aug_strong": (
        "augment: crop-resize, rotation, roll at p 0.5 (profile: 0.3)",
        {"augment.crop_resize": 0.5, "augment.rotate": 0.5, "augment.roll": 0.5},
    ),
    "monitor_score": (
        "keep checkpoints on the competition metric (train.monitor val_score)",
        {"train.monitor": "val_score"},
    ),
    # Small salt (--profile configs/real-cpu.yaml, docs/small_salt.md): what makes the model see
    # tiles with under 10% salt, in the profile's time a fold.
    "label101": (
        "the has-salt label from the 101-px mask (the loss at 48 px had made 1-32 px of salt empty)",
        {},
    ),
    "small_salt_x3": (
        "tiles with 0-10% salt 3 times in the pool each epoch is drawn from",
        {"train.small_salt_repeats": 3},
    ),
    "lovasz_symmetric": ("Lovasz hinge on salt and on sediment, averaged", {"train.lovasz_symmetric": True}),
    "lovasz_batch": (
        "Lovasz hinge of each batch as one image, not per image",
        {"train.lovasz_per_image": False},
    ),
    "small_salt_x2": (
        "tiles with 0-10% salt twice in the pool each epoch is drawn from",
        {"train.small_salt_repeats": 2},
    ),
    "small_salt_x6": (
        "tiles with 0-10% salt 6 times in the pool each epoch is drawn from",
        {"train.small_salt_repeats": 6},
    ),
    "focal": (
        "focal BCE (gamma 2) in stage 1, over the profile with small salt 3x (compare small_salt_x3)",
        {"train.stages": _stages(40, 20, loss="focal")},
    ),
    "soft_targets": (
        "BCE against the mask resized to 48 px, values in [0, 1], not binarised at 0.5",
        {"train.soft_targets": True},
    ),
    "bce_dice": (
        "BCE + soft Dice per image in stage 1 (a small body weighs in Dice as much as a large one)",
        {"train.stages": _stages(40, 20, loss="bce_dice")},
    ),
    "small_dice": (
        "BCE in stage 1, + soft Dice on the images with 0-10% salt only (loss bce_small_dice)",
        {"train.stages": _stages(40, 20, loss="bce_small_dice")},
    ),
    "px64_input": (
        "64 px, loss at 64 px, 24 + 12 epochs (about the profile's time a fold)",
        {"model.input_size": 64, "train.stages": _stages(24, 12)},
    ),
    "ep46_23": (
        "46 + 23 epochs instead of 40 + 20 (~15% more time: what the 30 minutes leave)",
        {"train.stages": _stages(46, 23, loss="bce_small_dice")},
    ),
    "boundary2": (
        "the BCE of the pixels along the mask's edges weighs 3x (train.boundary_weight 2), stage 1",
        {"train.boundary_weight": 2.0},
    ),
    "f12_24_12": (
        "12 start filters, 24 + 12 epochs (~1.7x the CPU a step: about the profile's time a fold)",
        {"model.start_filters": 12, "train.stages": _stages(24, 12, loss="bce_small_dice")},
    ),
    "aux03": (
        "deep supervision weighed 0.3 instead of 0.1 (train.aux_weight)",
        {"train.aux_weight": 0.3},
    ),
    "skip_columns": (
        "the masks whose every column is all salt or all sediment left out of training, not of "
        "validation (train.skip_column_masks)",
        {"train.skip_column_masks": True},
    ),
    "space_to_depth": (
        "the tile resized to 96 px and folded into 4 channels at 48 px (model.space_to_depth 2): "
        "the stem sees twice the pixels a side, the network still computes at 48 px",
        {"model.space_to_depth": 2},
    ),
    "aux_level": (
        "deep supervision at each decoder level's own size (24, 12, 6 px) against the targets "
        "max-pooled to it, not upsampled to 48 px (model.aux_at_level)",
        {"model.aux_at_level": True},
    ),
    # The teacher (--teacher) is set at run time: it depends on the data. Scores are optimistic.
    "pseudo": ("pseudo-labelled test images from --teacher added to training (optimistic)", {}),
}


BUDGET_ARMS = (
    "px64_loss101",
    "px48_loss101",
    "px48_short",
    "batch16",
    "scse_budget",
    "ep42_20",
    "f16",
    "ema",
    "d4_34_16",
    "d4_32_16",
    "ep32_24",
    "batch64",
    "aug_flips",
    "aug_strong",
    "monitor_score",
)  # over configs/budget.yaml (real-cpu as it stood)
SMALL_SALT_ARMS = (
    "label101",
    "small_salt_x3",
    "lovasz_symmetric",
    "small_salt_x2",
    "small_salt_x6",
    "px64_input",
    "focal",
    "soft_targets",
    "bce_dice",
    "small_dice",
    "ep46_23",
    "boundary2",
    "f12_24_12",
    "aux03",
    "skip_columns",
    "lovasz_batch",
    "space_to_depth",
    "aux_level",
)  # over configs/real-cpu.yaml
TECHNIQUE_ARMS = [a for a in ARMS if a not in BUDGET_ARMS + SMALL_SALT_ARMS and a != "pseudo"]  # the default


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    return f"{os.cpu_count()} cores, {cpu}"


def _commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def arm_params(profile: Path, arm: str, teacher: str | None = None) -> dict:
    """The profile's complete params with the arm's overrides, labelled `<profile>/<arm>`."""
    from saltseg.config import params_from_dict, params_to_dict
    from saltseg.profiles import resolve

    values = params_to_dict(resolve(profile))
    overrides = ARMS[arm][1] | ({"pseudo.teacher": teacher} if arm == "pseudo" else {})
    for key, value in overrides.items():
        section, name = key.split(".")
        values[section][name] = value
    values["profile"] = f"{profile.stem}/{arm}"
    return params_to_dict(params_from_dict(values))  # validated


def fold_scores(prepared, folds_df, fold: int, fold_dir: Path, runtime) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    """(per-image scores, ids) of the fold's held-out images predicted by its members (best.pt,
    or its snapshots), flip TTA, threshold 0.5, no min area."""
    from saltseg.data.folds import fold_indices
    from saltseg.inference import binarize, fold_members, load_models, predict_proba
    from saltseg.metrics import score_per_image

    _, val_idx = fold_indices(prepared.ids, folds_df, fold)
    (members,) = fold_members(fold_dir.parent, [fold]).values()
    models, cfg, policy = load_models(members, runtime)
    depths = prepared.depths[val_idx]
    proba = predict_proba(models, prepared.images[val_idx], cfg, True, 64, policy, depths)
    return score_per_image(prepared.masks[val_idx], binarize(proba, 0.5)), prepared.ids[val_idx]


def run_arm(arm: str, args: argparse.Namespace) -> dict:
    import yaml
    from train_job import timed_salt_train

    from saltseg.config import RuntimeConfig, params_from_dict
    from saltseg.data.folds import load_folds
    from saltseg.data.prepared import load_prepared

    work = args.work / (f"{arm}@{args.tag}" if args.tag else arm)
    work.mkdir(parents=True, exist_ok=True)
    if arm == "pseudo" and not args.teacher:
        raise SystemExit("the pseudo arm needs --teacher URI (a model registered for this data)")
    values = arm_params(args.profile, arm, args.teacher)
    params_file = work / "params.yaml"
    params_file.write_text(yaml.safe_dump(values, sort_keys=False))
    pseudo = work / "pseudo.npz"  # an empty set unless the arm names a teacher
    salt = [sys.executable, "-m", "saltseg"]
    data = values["data"]["source"]
    labelling = ["pseudo", "--params", str(params_file), "--data", data, "--prepared", str(args.prepared)]
    subprocess.run([*salt, *labelling, "--out", str(pseudo)], check=True)
    prepared = load_prepared(args.prepared)
    folds_df = load_folds(args.folds_csv)
    runtime = params_from_dict(values).runtime
    result: dict = {"what": ARMS[arm][0], "folds": {}, "train_seconds": {}}
    # The arm's folds in one `salt train`, runtime.fold_jobs at a time, as the train stage runs them.
    folds_args = [f"--fold={fold}" for fold in args.folds] + ["--pseudo", str(pseudo)]
    _, seconds = timed_salt_train(params_file, args.prepared, args.folds_csv, work, *folds_args)
    scores, ids, device = [], [], RuntimeConfig(runtime.device)
    for fold in args.folds:
        per_image, fold_ids = fold_scores(prepared, folds_df, fold, work / f"fold{fold}", device)
        result["folds"][str(fold)] = float(per_image.mean())
        result["train_seconds"][str(fold)] = seconds[fold]
        scores.append(per_image)
        ids.append(fold_ids)
    # Where small salt is lost: the mean score of each coverage class over the arm's folds.
    classes = folds_df.set_index("id")["coverage_class"].loc[np.concatenate(ids)].to_numpy()
    by_class = pd.Series(np.concatenate(scores)).groupby(classes).mean()
    result["by_coverage"] = {str(k): round(float(v), 4) for k, v in by_class.items()}
    result["score"] = sum(result["folds"].values()) / len(result["folds"])
    result |= {
        "date": datetime.date.today().isoformat(),
        "machine": _machine(),
        "commit": _commit(),
        "data": prepared.fingerprint[:16],
        "profile": str(args.profile),
        "epochs": [f"{s['loss']} {s['epochs']}" for s in values["train"]["stages"]],
    }
    return result


def _baseline(results: dict, key: str) -> str | None:
    """The row an arm's result `key` ("arm" or "arm@tag") is compared with: the baseline of the
    same tag, i.e. measured in the same batch of runs (another machine sums in another order)."""
    tag = key.partition("@")[2]
    base = f"baseline@{tag}" if tag else "baseline"
    return base if base in results and base != key else None


def table(results: dict) -> str:
    first = next(iter(results.values()))
    lines = [
        "# Ablation on the real data",
        "",
        f"Each arm changes `configs/{Path(first['profile']).name}` as its row says and trains folds "
        f"{', '.join(first['folds'])} of the same 5-fold split of the 3,200 labelled images "
        f"(data {first['data']}); score = competition metric on each fold's held-out images, "
        "flip TTA, threshold 0.5, no minimum area (nothing tuned on what is scored). "
        "Made by `benchmarks/ablation.py`; every fold is a run in MLflow under `<profile>/<arm>`. "
        "An arm@tag row was run with `--tag tag` and is compared with baseline@tag, measured "
        "beside it. Differences under ~0.01 are within the noise of two folds. < 10% salt: the mean score of "
        "the held-out images with salt on 0-10% of their pixels (where arms record it). Train "
        "seconds are indicative only: some arms shared the 2 cores with other jobs.",
        "",
        "| arm | what | "
        + " | ".join(f"fold {k}" for k in first["folds"])
        + " | mean | vs baseline | < 10% salt | train s/fold | machine, date |",
        "| --- | --- | "
        + " | ".join("---:" for _ in first["folds"])
        + " | ---: | ---: | ---: | ---: | --- |",
    ]
    for arm, r in results.items():
        base = _baseline(results, arm)
        delta = "" if base is None else f"{r['score'] - results[base]['score']:+.3f}"
        seconds = sum(r["train_seconds"].values()) / len(r["train_seconds"])
        folds = " | ".join(f"{r['folds'][k]:.3f}" for k in first["folds"])
        small = r.get("by_coverage", {}).get("1")  # coverage class 1: under 10% salt
        small = "" if small is None else f"{small:.3f}"
        lines.append(
            f"| {arm} | {r['what']} | {folds} | {r['score']:.3f} | {delta} | {small} | {seconds:.0f} | "
            f"{r['machine']}, {r['date']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profile", type=Path, default=ROOT / "configs/ablation.yaml")
    parser.add_argument("--arms", nargs="+", choices=list(ARMS), default=TECHNIQUE_ARMS)
    parser.add_argument("--teacher", help="model URI of the pseudo arm's teacher (registered for this data)")
    parser.add_argument("--folds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--prepared", type=Path, default=Path("prepared/train.npz"))
    parser.add_argument("--folds-csv", type=Path, default=Path("prepared/folds.csv"))
    parser.add_argument("--work", type=Path, default=Path("ablation"), help="checkpoints of every arm")
    parser.add_argument("--results", type=Path, default=ROOT / "docs/ablation.json")
    parser.add_argument("--out-markdown", type=Path, default=ROOT / "docs/ablation.md")
    parser.add_argument(
        "--tag", help="record each arm as ARM@TAG (e.g. another machine), compared with baseline@TAG"
    )
    parser.add_argument("--table", action="store_true", help="only rebuild the table from --results")
    args = parser.parse_args()
    results = json.loads(args.results.read_text()) if args.results.is_file() else {}
    for arm in [] if args.table else args.arms:
        key = f"{arm}@{args.tag}" if args.tag else arm
        results[key] = run_arm(arm, args)
        args.results.write_text(json.dumps(results, indent=2) + "\n")
        args.out_markdown.write_text(table(results))
        print(f"{key}: {results[key]['score']:.4f} {results[key]['folds']}", flush=True)
    if args.table:
        args.out_markdown.write_text(table(results))


if __name__ == "__main__":
    main()
