"""Data-parallel training: the one-process no-ops, the shards, and a real 2-process torchrun fold."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient
from tiny_training import kill_in_stage_two

from saltseg.data.dataset import EpochBatches
from saltseg.distributed import Context, context
from saltseg.errors import SaltError
from saltseg.tracking import FOLD_TAG


def test_outside_torchrun_every_helper_is_the_identity():
    dist = context()
    model = torch.nn.Linear(2, 1)
    assert not dist.enabled and dist.is_main and dist.world_size == 1
    assert dist.wrap(model) is model
    assert dist.batch_size(30) == 30
    assert dist.mean(0.25) == 0.25
    assert dist.from_main(max, 3, 7) == 7
    assert dist.device(torch.device("cuda", 1)) == torch.device("cuda", 1)


def _epoch(sampler: EpochBatches, seed: int) -> list:
    sampler.set_epoch(seed)
    return list(sampler)


def test_ranks_share_each_batch_of_one_order():
    alone = _epoch(EpochBatches(10, 4, drop_last=True), seed=7)
    ranks = [_epoch(EpochBatches(10, 4, drop_last=True, rank=r, world_size=2), seed=7) for r in (0, 1)]
    for whole, first, second in zip(alone, *ranks, strict=True):
        assert sorted(first.indices + second.indices) == sorted(whole.indices), "disjoint shares of one batch"
        assert len(first.indices) == len(second.indices) == 2
        assert first.seed != second.seed  # each rank draws its own augmentations
    assert _epoch(EpochBatches(10, 4, drop_last=True, rank=0, world_size=2), seed=8) != ranks[0]


def test_global_batch_is_split_evenly_over_the_ranks():
    dist = Context(enabled=True, rank=1, world_size=4)
    assert dist.batch_size(32) == 8
    assert dist.device(torch.device("cuda")) == torch.device("cuda", 0)  # local rank 0
    with pytest.raises(SaltError, match="train.batch_size 30 must be a multiple of the 4"):
        dist.batch_size(30)


def test_ddp_finds_every_output_of_the_empty_head_in_the_loss(tmp_path):
    """DDP (no unused parameters) refuses the step after one in which a parameter got no
    gradient: a batch without salt, whose deep-supervision term is zero, must still reach all."""
    import torch.distributed as tdist
    from torch.nn.parallel import DistributedDataParallel

    from saltseg.config import ModelConfig
    from saltseg.hardware import FP32_CPU
    from saltseg.loop import logits_of
    from saltseg.losses import get_train_loss
    from saltseg.models import build_model

    cfg = ModelConfig(input_size=32, start_filters=4, depth=3, empty_head=True)
    tdist.init_process_group("gloo", store=tdist.FileStore(str(tmp_path / "store"), 1), rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        model = build_model(cfg).train()
        ddp, loss_fn = DistributedDataParallel(model), get_train_loss("lovasz", False, 0.1, 0.05)
        x, salt = torch.rand(2, 1, 101, 101), torch.zeros(2, 1, 101, 101)
        salt[0, :, :30, :30] = 1
        for targets in (torch.zeros_like(salt), salt, torch.zeros_like(salt)):
            loss_fn(logits_of(ddp, x, cfg, FP32_CPU), targets).backward()
        assert all(p.grad is not None for p in model.parameters())
    finally:
        tdist.destroy_process_group()


def _torchrun_fold(tiny_data, folder: Path, lovasz_epochs: int) -> list[str]:
    """`torchrun --nproc-per-node 2 -m saltseg train ...`: fold 0 of the tiny data in two gloo processes."""
    prepared, folds = tiny_data
    raw = {
        "split": {"folds": [0, 1]},
        "model": {"start_filters": 4, "depth": 2, "input_size": 64},
        "train": {
            "batch_size": 8,
            "stages": [
                {"loss": "bce", "epochs": 2, "lr": 0.01},
                {"loss": "lovasz", "epochs": lovasz_epochs, "lr": 0.003},
            ],
        },
        "runtime": {},
        "tracking": {"uri": f"sqlite:///{folder}/mlflow.db"},
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "params.yaml").write_text(yaml.safe_dump(raw))
    torchrun = Path(sys.executable).with_name("torchrun")
    return [
        str(torchrun), "--standalone", "--nproc-per-node", "2",
        "-m", "saltseg", "train", "--fold", "0", "--params", str(folder / "params.yaml"),
        "--prepared", str(prepared), "--folds", str(folds), "--out-dir", str(folder / "model"),
        "--metrics", str(folder / "metrics.json"), "--history", str(folder / "history.csv"),
    ]  # fmt: skip


def _child_runs(folder: Path):
    client = MlflowClient(f"sqlite:///{folder}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("saltseg").experiment_id])
    return client, [r for r in runs if "mlflow.parentRunId" in r.data.tags]


@pytest.mark.slow
def test_torchrun_two_processes_train_one_fold_and_resume_exactly(tiny_data, tmp_path):
    env = os.environ | {"CI": "1"}
    whole = subprocess.run(
        _torchrun_fold(tiny_data, tmp_path / "whole", 3), env=env, capture_output=True, text=True
    )
    assert whole.returncode == 0, whole.stderr[-3000:]

    # One set of outputs, written by rank 0 alone; every epoch reported and logged once.
    assert sorted(p.name for p in (tmp_path / "whole/model").iterdir()) == ["best.pt", "validation.png"]
    history = pd.read_csv(tmp_path / "whole/history.csv")
    metrics = json.loads((tmp_path / "whole/metrics.json").read_text())
    assert len(history) == metrics["epochs"] == 5
    assert whole.stderr.count("fold 0 epoch 5/5 (lovasz 3/3)") == 1  # rank 0 alone reports
    client, children = _child_runs(tmp_path / "whole")
    assert len(children) == 1 and children[0].data.tags["world_size"] == "2"
    logged = client.get_metric_history(children[0].info.run_id, "train_loss")
    assert [m.step for m in logged] == list(range(1, 6))
    assert [m.value for m in logged] == [float(f"{v:.4g}") for v in history["train_loss"]]  # as shown

    # The same job killed mid stage 2 (every process at once, as a lost machine would be)
    # and started again: the same epochs, to the last digit, as the uninterrupted job.
    command = _torchrun_fold(tiny_data, tmp_path / "killed", 3)
    state = tmp_path / "killed/model/last.pt"
    job = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    kill_in_stage_two(job, state, lambda: os.killpg(job.pid, signal.SIGKILL))
    assert not (tmp_path / "killed/metrics.json").exists()

    resumed = subprocess.run(command, env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    np.testing.assert_array_equal(pd.read_csv(tmp_path / "killed/history.csv").to_numpy(), history.to_numpy())
    again = json.loads((tmp_path / "killed/metrics.json").read_text())
    assert {k: v for k, v in again.items() if k != "train_seconds"} == {
        k: v for k, v in metrics.items() if k != "train_seconds"
    }
    assert len(_child_runs(tmp_path / "killed")[1]) == 1, "the resumed job continues its fold's run"


@pytest.mark.slow
def test_torchrun_without_fold_trains_every_fold_in_turn(tiny_data, tmp_path):
    command = _torchrun_fold(tiny_data, tmp_path, 1)
    at = command.index("--fold")
    del command[at : at + 2]
    templates = {
        "--out-dir": "model{fold}",
        "--metrics": "metrics{fold}.json",
        "--history": "history{fold}.csv",
    }
    for option, template in templates.items():
        command[command.index(option) + 1] = str(tmp_path / template)
    proc = subprocess.run(command, env=os.environ | {"CI": "1"}, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for k in (0, 1):
        assert (tmp_path / f"model{k}/best.pt").is_file()
        assert json.loads((tmp_path / f"metrics{k}.json").read_text())["fold"] == k
        assert proc.stdout.count(f"fold {k}: best") == 1, "rank 0 alone reports"
    _, children = _child_runs(tmp_path)
    trained = sorted((r.data.tags[FOLD_TAG], r.data.tags["world_size"]) for r in children)
    assert trained == [("0", "2"), ("1", "2")]
