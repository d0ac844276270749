"""Training one fold: determinism, the BCE -> Lovasz hand-off, best-only checkpoints, resume."""

import dataclasses
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient
from tiny_training import kill_in_stage_two, tiny_params

from saltseg.config import AugmentConfig, RuntimeConfig
from saltseg.data.augment import build_augment
from saltseg.data.dataset import EpochBatches, SaltDataset, column_masks, small_salt_draws
from saltseg.data.folds import fold_indices, load_folds
from saltseg.data.prepared import load_prepared
from saltseg.distributed import Context
from saltseg.hardware import FP32_CPU
from saltseg.loop import make_loader
from saltseg.models import checkpoint_config
from saltseg.train import FoldPaths, make_scheduler, train_fold
from saltseg.train_stage import run_fold

AUGMENT = AugmentConfig(hflip=0.5, crop_resize=0.5, rotate=0.5, roll=0.5)


def _paths(folder):
    return FoldPaths(folder / "model", folder / "metrics.json", folder / "history.csv")


def _train(tiny_data, folder, params, **kwargs):
    prepared_path, folds_path = tiny_data
    prepared = load_prepared(prepared_path)
    split = fold_indices(prepared.ids, load_folds(folds_path), 0)
    return train_fold(params, prepared, split, 0, _paths(folder), key="k", **kwargs)


def _comparable(metrics):
    return {k: v for k, v in metrics.items() if k != "train_seconds"}


def test_same_run_twice_gives_the_same_metrics(tiny_data, tmp_path):
    params = tiny_params(tmp_path)
    first = _train(tiny_data, tmp_path / "a", params)
    second = _train(tiny_data, tmp_path / "b", params)
    assert _comparable(first) == _comparable(second)
    assert (tmp_path / "a/history.csv").read_text() == (tmp_path / "b/history.csv").read_text()


def test_stage_two_starts_from_stage_one_best_weights(tiny_data, tmp_path):
    params = tiny_params(tmp_path)
    seen = {}

    def on_stage_start(stage, model):
        if stage == 1:
            kept = torch.load(tmp_path / "model/best.pt", weights_only=True)
            seen["stage"] = kept["stage"]
            seen["equal"] = all(torch.equal(v, kept["model"][k]) for k, v in model.state_dict().items())

    _train(tiny_data, tmp_path, params, on_stage_start=on_stage_start)
    assert seen == {"stage": "bce", "equal": True}


def test_checkpoint_is_kept_only_when_validation_iou_improves(tiny_data, tmp_path):
    params = tiny_params(tmp_path, lovasz_epochs=3)
    metrics = _train(tiny_data, tmp_path, params)
    history = pd.read_csv(tmp_path / "history.csv")
    kept = torch.load(tmp_path / "model/best.pt", weights_only=True)
    best_epoch = int(history["val_iou"].idxmax()) + 1  # the first of equal maxima; epochs count from 1
    assert kept["epoch"] == best_epoch == metrics["best_epoch"]
    assert kept["score"] == pytest.approx(history["val_iou"].max())
    assert len(history) == 5 and metrics["epochs"] == 5
    assert not (tmp_path / "model/last.pt").exists(), "a finished run leaves no resume state"


def test_fold_run_is_tracked_under_a_parent_run(tiny_data, tmp_path):
    params = tiny_params(tmp_path)
    prepared_path, folds_path = tiny_data
    for fold in (0, 1):
        run_fold(params, prepared_path, folds_path, fold, _paths(tmp_path / f"fold{fold}"))
    client = MlflowClient(params.tracking.uri)
    runs = client.search_runs([client.get_experiment_by_name("saltseg").experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 2
    for child in children:
        assert child.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        for tag in ("git_commit", "dvc_data_hash", "torch_version", "device", "hardware_policy"):
            assert tag in child.data.tags
        history = client.get_metric_history(child.info.run_id, "val_iou")
        assert [m.step for m in history] == [1, 2, 3, 4]  # MLflow steps are the 1-based epochs
        artifacts = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert {"best.pt", "history.csv", "metrics.json", "validation.png"} <= artifacts


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_result(tiny_data, tmp_path):
    prepared_path, folds_path = tiny_data
    params = tiny_params(tmp_path, lovasz_epochs=6)
    raw = {
        "split": {"folds": [0, 1]},
        "model": {"start_filters": 4, "depth": 2, "input_size": 64},
        "train": {
            "batch_size": 8,
            "stages": [{"loss": s.loss, "epochs": s.epochs, "lr": s.lr} for s in params.train.stages],
            # Killed inside a cosine cycle: the resumed run must restart the cycles as the whole run does.
            "scheduler": "warm_restarts",
            "cycles": 2,
            "snapshots": True,
        },
        # Persistent workers: the resumed run restarts them, and must still draw the same batches.
        "runtime": {"num_workers": 2},
    }

    def command(name):
        folder = tmp_path / name
        params_file = tmp_path / f"{name}.yaml"
        raw["tracking"] = {"uri": f"sqlite:///{tmp_path / name}.db"}
        params_file.write_text(yaml.safe_dump(raw))
        return [
            sys.executable, "-m", "saltseg", "train", "--fold", "0", "--params", str(params_file),
            "--prepared", str(prepared_path), "--folds", str(folds_path), "--out-dir", str(folder / "model"),
            "--metrics", str(folder / "metrics.json"), "--history", str(folder / "history.csv"),
        ]  # fmt: skip

    env = os.environ | {"CI": "1"}
    subprocess.run(command("whole"), check=True, env=env, capture_output=True)

    state = tmp_path / "killed/model/last.pt"
    proc = subprocess.Popen(command("killed"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kill_in_stage_two(proc, state, lambda: proc.send_signal(signal.SIGKILL))
    assert not (tmp_path / "killed/metrics.json").exists()

    subprocess.run(command("killed"), check=True, env=env, capture_output=True)
    whole = json.loads((tmp_path / "whole/metrics.json").read_text())
    resumed = json.loads((tmp_path / "killed/metrics.json").read_text())
    assert resumed["epochs"] == whole["epochs"] == 8
    assert _comparable(resumed) == _comparable(whole)
    np.testing.assert_array_equal(
        pd.read_csv(tmp_path / "killed/history.csv").to_numpy(),
        pd.read_csv(tmp_path / "whole/history.csv").to_numpy(),
    )
    for name in ("best.pt", "snapshot1.pt", "snapshot2.pt"):  # the same weights give the same bytes
        assert (tmp_path / "killed/model" / name).read_bytes() == (
            tmp_path / "whole/model" / name
        ).read_bytes()


def test_empty_head_trains_and_evaluate_scores_its_checkpoint(tiny_data, tmp_path):
    from saltseg.evaluate import out_of_fold
    from saltseg.inference import load_models, predict_proba
    from saltseg.models import checkpoint_config, load_checkpoint_model

    params = tiny_params(tmp_path, lovasz_epochs=1)
    params = dataclasses.replace(params, model=dataclasses.replace(params.model, empty_head=True))
    metrics = _train(tiny_data, tmp_path, params)
    history = pd.read_csv(tmp_path / "history.csv")
    assert len(history) == metrics["epochs"] == 3
    assert np.isfinite(history[["train_loss", "val_loss", "val_iou"]].to_numpy()).all()
    best = tmp_path / "model/best.pt"
    assert checkpoint_config(best) == params.model
    assert load_checkpoint_model(best).empty_head is not None
    # Evaluation rebuilds the headed network and predicts with it (gated, in eval mode).
    prepared_path, folds_path = tiny_data
    prepared, folds = load_prepared(prepared_path), load_folds(folds_path)
    oof = out_of_fold(prepared, folds, {0: [best]}, batch_size=8, runtime=RuntimeConfig(device="cpu"))
    _, val_idx = fold_indices(prepared.ids, folds, 0)
    models, cfg, policy = load_models([best], RuntimeConfig(device="cpu"))
    expected = predict_proba(models, prepared.images[val_idx], cfg, True, 8, policy)
    np.testing.assert_array_equal(oof.tta[val_idx], expected)


def test_loss_at_input_trains_a_fold_with_a_loss_of_its_own(tiny_data, tmp_path):
    base = tiny_params(tmp_path, lovasz_epochs=1)
    model = dataclasses.replace(base.model, input_size=48, empty_head=True)
    runs = {}
    for loss_at in ("original", "input"):
        params = dataclasses.replace(
            base, model=model, train=dataclasses.replace(base.train, loss_at=loss_at)
        )
        runs[loss_at] = (
            _train(tiny_data, tmp_path / loss_at, params),
            pd.read_csv(tmp_path / loss_at / "history.csv"),
        )
    (metrics, history), (_, original) = runs["input"], runs["original"]
    assert (
        metrics["epochs"] == 3
        and np.isfinite(history[["train_loss", "val_loss", "val_iou"]].to_numpy()).all()
    )
    assert checkpoint_config(tmp_path / "input/model/best.pt") == model  # predicts like any other
    # The same batches and initial weights, another loss: other losses and weights from step one.
    assert (history["train_loss"] != original["train_loss"]).all()
    assert (history["val_loss"] != original["val_loss"]).all()


def test_monitored_loss_is_minimised(tiny_data, tmp_path):
    base = tiny_params(tmp_path)
    params = dataclasses.replace(base, train=dataclasses.replace(base.train, monitor="val_loss"))
    metrics = _train(tiny_data, tmp_path, params)
    history = pd.read_csv(tmp_path / "history.csv")
    kept = torch.load(tmp_path / "model/best.pt", weights_only=True)
    assert history["val_loss"].nunique() > 1
    assert kept["score"] == pytest.approx(history["val_loss"].min())
    assert metrics["best_val_loss"] == pytest.approx(history["val_loss"].min())


def test_epochs_are_numbered_from_one_over_both_stages(tiny_data, tmp_path, capsys):
    params = tiny_params(tmp_path)  # 2 BCE + 2 Lovasz epochs
    logged = []
    metrics = _train(tiny_data, tmp_path, params, log=lambda m, step: logged.append(step))
    history = pd.read_csv(tmp_path / "history.csv")
    assert history["epoch"].tolist() == logged == [1, 2, 3, 4]
    assert history["stage"].tolist() == ["bce", "bce", "lovasz", "lovasz"]
    assert metrics["best_epoch"] in (1, 2, 3, 4)
    best = history.loc[history["epoch"] == metrics["best_epoch"]].iloc[0]
    assert best["val_iou"] == history["val_iou"].max() and best["stage"] == metrics["best_stage"]
    assert torch.load(tmp_path / "model/best.pt", weights_only=True)["epoch"] == metrics["best_epoch"]
    lines = [ln.split(": ")[0] for ln in capsys.readouterr().err.splitlines() if "epoch" in ln]
    assert lines == [
        "fold 0 epoch 1/4 (bce 1/2)",
        "fold 0 epoch 2/4 (bce 2/2)",
        "fold 0 epoch 3/4 (lovasz 1/2)",
        "fold 0 epoch 4/4 (lovasz 2/2)",
    ]


def test_loader_workers_change_speed_never_results(tiny_data, tmp_path):
    """Two persistent workers give the same history as none: each batch carries its own seed."""
    base = tiny_params(tmp_path, lovasz_epochs=1)
    workers = dataclasses.replace(base, runtime=dataclasses.replace(base.runtime, num_workers=2))
    _train(tiny_data, tmp_path / "none", base)
    _train(tiny_data, tmp_path / "two", workers)
    assert (tmp_path / "none/history.csv").read_text() == (tmp_path / "two/history.csv").read_text()


def _epoch_batches(num_workers: int, seed: int) -> list[torch.Tensor]:
    """One epoch of augmented images from a loader over 16 copies of one asymmetric image,
    so that batches can differ only by their augmentations."""
    image = np.tile(np.arange(101, dtype=np.uint8) * 2, (101, 1))
    image[:30, :20] = 255
    dataset = SaltDataset(np.stack([image] * 16), np.zeros((16, 101, 101), bool), build_augment(AUGMENT, 0))
    loader = make_loader(dataset, 4, RuntimeConfig(num_workers=num_workers), FP32_CPU, Context())
    loader.batch_sampler.set_epoch(seed)
    return [x for x, _, _ in loader]


def test_each_batch_draws_its_own_augmentations_whichever_worker_loads_it():
    two = _epoch_batches(num_workers=2, seed=7)  # workers 0 and 1 load batches 0, 2 and 1, 3
    for a in range(4):
        for b in range(a + 1, 4):
            assert not torch.equal(two[a], two[b]), f"batches {a} and {b} were augmented alike"
    for again in (_epoch_batches(num_workers=2, seed=7), _epoch_batches(num_workers=0, seed=7)):
        assert all(torch.equal(x, y) for x, y in zip(two, again, strict=True))
    assert not torch.equal(torch.stack(two), torch.stack(_epoch_batches(num_workers=0, seed=8)))


# --- warm restarts and snapshots -------------------------------------------------------------


def _snapshot_params(tmp_path, **train):
    """Stages of 2 BCE and 6 Lovasz epochs, each split into 2 cosine cycles; snapshots kept."""
    base = tiny_params(tmp_path, lovasz_epochs=6)
    options = {"scheduler": "warm_restarts", "cycles": 2, "snapshots": True} | train
    return dataclasses.replace(base, train=dataclasses.replace(base.train, **options))


def test_warm_restarts_split_a_stage_into_equal_cosine_cycles(tmp_path):
    cfg = _snapshot_params(tmp_path, snapshots=False).train
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.01)
    scheduler = make_scheduler(optimizer, cfg, epochs=6)  # 2 cycles of 3 epochs
    lrs = []
    for _ in range(6):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    # By hand: lr (1 + cos(pi t / 3)) / 2 for t = 0, 1, 2 of each cycle.
    assert lrs == pytest.approx([0.01, 0.0075, 0.0025, 0.01, 0.0075, 0.0025])


def test_snapshots_are_kept_at_the_cycle_ends_of_the_last_stage_only(tiny_data, tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    for stale in ("snapshot1.pt", "snapshot3.pt"):  # left by a run of another configuration
        (folder / stale).write_bytes(b"stale")
    _train(tiny_data, tmp_path, _snapshot_params(tmp_path))
    history = pd.read_csv(tmp_path / "history.csv")
    # Cycles of 1 BCE epoch (lr 0.01 throughout) and of 3 Lovasz epochs (0.003 times 1, 3/4, 1/4).
    lovasz = [0.003, 0.00225, 0.00075]
    assert history["lr"].tolist() == pytest.approx([0.01, 0.01, *lovasz, *lovasz])
    assert sorted(p.name for p in folder.iterdir()) == ["best.pt", "snapshot1.pt", "snapshot2.pt"]
    for cycle, epoch in ((1, 5), (2, 8)):  # the Lovasz cycles end with epochs 5 and 8
        kept = torch.load(folder / f"snapshot{cycle}.pt", weights_only=True)
        assert (kept["cycle"], kept["cycles"], kept["epoch"], kept["stage"]) == (cycle, 2, epoch, "lovasz")
        assert kept["score"] == history.loc[epoch - 1, "val_iou"] and kept["fold"] == 0
        assert checkpoint_config(folder / f"snapshot{cycle}.pt") == tiny_params(tmp_path).model
    first, second = (torch.load(folder / f"snapshot{c}.pt", weights_only=True)["model"] for c in (1, 2))
    assert not all(torch.equal(first[k], second[k]) for k in first)

    _train(tiny_data, tmp_path, _snapshot_params(tmp_path, snapshots=False))  # another configuration
    assert sorted(p.name for p in folder.iterdir()) == ["best.pt"]


def test_validation_figure_shows_the_snapshot_mean_that_evaluation_scores(tiny_data, tmp_path, monkeypatch):
    from saltseg import train_stage
    from saltseg.evaluate import out_of_fold

    shown, draw = {}, train_stage.overlay_grid

    def overlay_grid(images, masks, pred, titles, out):
        shown["pred"] = pred
        draw(images, masks, pred, titles, out)

    monkeypatch.setattr(train_stage, "overlay_grid", overlay_grid)
    from saltseg import inference  # the figure imports it once the fold has ended

    loaded, load = [], inference.load_models
    monkeypatch.setattr(
        inference, "load_models", lambda paths, runtime: loaded.append(paths) or load(paths, runtime)
    )
    params = _snapshot_params(tmp_path)
    prepared_path, folds_path = tiny_data
    folder = tmp_path / "fold0"
    run_fold(params, prepared_path, folds_path, 0, _paths(folder))
    prepared, folds = load_prepared(prepared_path), load_folds(folds_path)
    members = (folder / "model/snapshot1.pt", folder / "model/snapshot2.pt")
    assert loaded == [members], "the figure shows the fold's model: its snapshots, not best.pt"
    oof = out_of_fold(prepared, folds, {0: members}, params.train.batch_size, params.runtime)
    _, val_idx = fold_indices(prepared.ids, folds, 0)
    masks = prepared.masks[val_idx]
    order = np.argsort(-masks.reshape(len(masks), -1).mean(1), kind="stable")[: len(shown["pred"])]
    np.testing.assert_array_equal(shown["pred"], oof.plain[val_idx][order] > 0.5)


class _Interrupted(Exception):
    pass


def _interrupt_at(number):
    def log(_metrics, step):
        if step == number:  # before this epoch's resume state is saved: it is trained again
            raise _Interrupted

    return log


@pytest.mark.parametrize(
    "options", [{"scheduler": "cosine", "cycles": 1, "snapshots": False}, {}, {"ema_decay": 0.8}]
)
def test_resuming_mid_cycle_gives_the_same_weights(tiny_data, tmp_path, options):
    params = _snapshot_params(tmp_path, **options)
    with pytest.raises(_Interrupted):
        _train(tiny_data, tmp_path / "resumed", params, log=_interrupt_at(7))
    state = torch.load(tmp_path / "resumed/model/last.pt", weights_only=True)
    # Mid second Lovasz cycle, its first snapshot kept; epoch 8's lr comes from the scheduler state.
    assert (state["next_stage"], state["next_epoch"]) == (1, 4)
    _train(tiny_data, tmp_path / "resumed", params)
    _train(tiny_data, tmp_path / "whole", params)
    assert (tmp_path / "resumed/history.csv").read_text() == (tmp_path / "whole/history.csv").read_text()
    kept = sorted(p.name for p in (tmp_path / "whole/model").iterdir())
    assert kept == (["best.pt", "snapshot1.pt", "snapshot2.pt"] if params.train.snapshots else ["best.pt"])
    for name in kept:  # the same weights give the same bytes
        assert (tmp_path / "resumed/model" / name).read_bytes() == (
            tmp_path / "whole/model" / name
        ).read_bytes()


# --- a moving average of the weights ---------------------------------------------------------


def test_the_weight_average_is_what_validation_scores_and_checkpoints_keep(tiny_data, tmp_path):
    from saltseg.hardware import for_params
    from saltseg.loop import Validation, validate
    from saltseg.losses import stage_train_loss
    from saltseg.models import build_model

    base = tiny_params(tmp_path, lovasz_epochs=3)
    params = dataclasses.replace(base, train=dataclasses.replace(base.train, ema_decay=0.8))

    def saved_after(epoch, folder):
        with pytest.raises(_Interrupted):  # in the epoch after `epoch`, before its state is saved
            _train(tiny_data, tmp_path / folder, params, log=_interrupt_at(epoch + 1))
        state = torch.load(tmp_path / folder / "model/last.pt", weights_only=True)
        model = build_model(params.model)
        model.load_state_dict(state["model"])
        own = {k: v.clone() for k, v in model.state_dict().items()}
        names = [k for k, v in own.items() if v.is_floating_point()]
        average = dict(zip(names, state["average"]["average"], strict=True))
        return state, model, own, average

    state, model, own, average = saved_after(4, "a")
    assert not all(torch.equal(own[k], average[k]) for k in average), "4 epochs of steps move the weights"
    prepared_path, folds_path = tiny_data
    prepared = load_prepared(prepared_path)
    _, val_idx = fold_indices(prepared.ids, load_folds(folds_path), 0)
    policy = for_params(params)
    val = Validation.on(policy, prepared.images[val_idx], prepared.masks[val_idx], prepared.depths[val_idx])
    loss_fn = stage_train_loss(params.train, "lovasz")

    def val_loss(weights):
        model.load_state_dict(own | weights)
        return validate(model, model, val, loss_fn, params.model, policy, params.train.batch_size)["val_loss"]

    assert val_loss(average) == pytest.approx(state["history"][-1]["val_loss"], abs=1e-6)
    assert val_loss({}) != pytest.approx(state["history"][-1]["val_loss"], abs=1e-6)

    kept = torch.load(tmp_path / "a/model/best.pt", weights_only=True)
    # The same run, stopped after the kept epoch: the kept weights are its average, not its own.
    _, _, own_then, average_then = saved_after(kept["epoch"], "b")
    assert all(torch.equal(kept["model"][k], average_then[k]) for k in average_then)
    assert not all(torch.equal(kept["model"][k], own_then[k]) for k in average_then)


@pytest.mark.slow
def test_a_finished_fold_is_not_trained_again(tiny_data, tmp_path):
    """`salt train --fold 0` twice: the second says so and exits 0 without an epoch, with no new
    MLflow run and the checkpoint untouched; --force retrains and retires the fold's earlier run."""
    from saltseg.config import params_to_dict

    prepared_path, folds_path = tiny_data
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params_to_dict(tiny_params(tmp_path, lovasz_epochs=1))))
    command = [
        sys.executable, "-m", "saltseg", "train", "--fold", "0", "--params", str(params_file),
        "--prepared", str(prepared_path), "--folds", str(folds_path), "--out-dir", str(tmp_path / "model"),
        "--metrics", str(tmp_path / "metrics.json"), "--history", str(tmp_path / "history.csv"),
    ]  # fmt: skip
    env = os.environ | {"CI": "1"}
    subprocess.run(command, check=True, env=env, capture_output=True)
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")

    def live_runs() -> list:
        return client.search_runs([client.get_experiment_by_name("saltseg").experiment_id])

    before, weights = len(live_runs()), (tmp_path / "model" / "best.pt").read_bytes()
    again = subprocess.run(command, check=True, env=env, capture_output=True, text=True)
    assert "fold 0: already trained for these params and data" in again.stdout
    assert "epoch" not in again.stdout + again.stderr  # a first run prints "fold 0 epoch 1/3 ..."
    assert len(live_runs()) == before and (tmp_path / "model" / "best.pt").read_bytes() == weights
    subprocess.run([*command, "--force"], check=True, env=env, capture_output=True)
    assert len(live_runs()) == before, "the retrained fold replaces its run under the same parent"


def test_small_salt_draws_count_the_tiles_with_up_to_ten_percent_salt():
    masks = np.zeros((4, 10, 10), bool)
    masks[1, 0, :1] = True  # 1%
    masks[2, :1, :] = True  # 10%: still small
    masks[3, :2, :] = True  # 20%
    assert small_salt_draws(masks, 3).tolist() == [1, 3, 3, 1]


def test_column_masks_are_the_salty_ones_whose_every_column_is_all_or_nothing():
    masks = np.zeros((5, 4, 3), bool)
    masks[1][:, 1] = True  # one whole column: a vertical band
    masks[2][:, :] = True  # all salt
    masks[3][:3, 1] = True  # a column cut short of the bottom edge
    masks[4][:, 0] = True
    masks[4][0, 2] = True  # a band, and one pixel elsewhere
    assert column_masks(masks).tolist() == [False, True, True, False, False]  # [0]: empty


def test_skip_column_masks_leaves_the_bands_out_of_training_only(tiny_data, tmp_path, monkeypatch):
    import saltseg.train as train_module

    prepared_path, folds_path = tiny_data
    prepared = load_prepared(prepared_path)
    train_idx, val_idx = split = fold_indices(prepared.ids, load_folds(folds_path), 0)
    bands = [*train_idx[:3], val_idx[0]]
    prepared.masks[bands] = False
    prepared.masks[bands, :, 40:60] = True  # vertical bands: three training images, one held out
    seen = {}
    real_dataset, real_on = train_module.SaltDataset, train_module.Validation.on
    monkeypatch.setattr(
        train_module, "SaltDataset", lambda images, *a: seen.setdefault("train", real_dataset(images, *a))
    )
    monkeypatch.setattr(
        train_module.Validation,
        "on",
        lambda policy, images, *a: seen.setdefault("val", real_on(policy, images, *a)),
    )
    base = tiny_params(tmp_path, lovasz_epochs=1)
    params = dataclasses.replace(base, train=dataclasses.replace(base.train, skip_column_masks=True))
    train_fold(params, prepared, split, 0, _paths(tmp_path), key="k")
    assert len(seen["train"]) == len(train_idx) - 3
    assert len(seen["val"].images) == len(val_idx)


def test_drawing_with_repeats_keeps_the_epoch_and_shows_small_salt_more_often():
    plain, ones = (
        EpochBatches(10, 4, drop_last=True),
        EpochBatches(10, 4, drop_last=True, draws=np.ones(10, int)),
    )
    draws = np.array([4, 1, 1, 1, 1, 1, 1, 1, 1, 1])  # image 0 small salt, 4 times in the pool
    weighted = EpochBatches(10, 4, drop_last=True, draws=draws)
    seen = {"plain": 0, "weighted": 0}
    for seed in range(200):
        for sampler in (plain, ones, weighted):
            sampler.set_epoch(seed)
        batches = list(weighted)
        assert len(batches) == len(plain) == 2 and all(len(b.indices) == 4 for b in batches)
        assert list(ones) == list(plain)  # draws of 1: the plain shuffle, batch for batch
        seen["plain"] += sum(b.indices.count(0) for b in plain)
        seen["weighted"] += sum(b.indices.count(0) for b in batches)
    # 8 of 10 images a pass: plain 0.8 of image 0 an epoch; 8 of a pool of 13 holding it 4 times: ~2.5
    assert abs(seen["plain"] / 200 - 0.8) < 0.1
    assert abs(seen["weighted"] / 200 - 8 * 4 / 13) < 0.25


def test_the_has_salt_label_is_the_101_px_masks_when_the_loss_is_at_input_size():
    """One pixel of salt disappears from the 48-px target; the label the loss gets keeps it."""
    from saltseg.config import ModelConfig
    from saltseg.loop import train_epoch
    from saltseg.models import build_model

    masks = np.zeros((2, 101, 101), bool)
    masks[0, 50, 50] = True
    images = np.full((2, 101, 101), 128, np.uint8)
    cfg = ModelConfig(input_size=48, depth=2, start_filters=4, empty_head=True)
    loader = make_loader(SaltDataset(images, masks), 2, RuntimeConfig(), FP32_CPU, Context())
    loader.batch_sampler.set_epoch(0)
    seen = []

    def loss_fn(output, targets, salt):
        seen.append((targets.flatten(1).amax(1).tolist(), sorted(salt.tolist())))
        return output.logits.mean()

    model = build_model(cfg)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)

    class Bar:
        def advance(self, n):
            pass

    train_epoch(model, model, loader, loss_fn, optimizer, cfg, FP32_CPU, Bar(), at_input=True)
    ((targets_max, salt),) = seen
    assert targets_max == [0.0, 0.0] and salt == [0.0, 1.0]
