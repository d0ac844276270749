"""The whole pipeline under real DVC and a real MLflow store (configs/ci-tiny.yaml).

One `dvc repro` per session (the `pipeline_copy` fixture); every test here reads its
results back the way a person would: through `dvc` commands and `MlflowClient`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from project_copy import FinishedPipeline

from saltseg.config import Params, load_params
from saltseg.data import rle
from saltseg.data.prepared import load_prepared
from saltseg.tracking import FOLD_TAG, PIPELINE_KEY_TAG

# One worker runs every test of the finished pipeline under pytest-xdist, so it is built once.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("pipeline_copy")]

STAGES = ("synth", "prepare", "split", "pseudo", "train", "evaluate", "register", "score", "predict")


@pytest.fixture(scope="module")
def params(pipeline_copy: FinishedPipeline) -> Params:
    return load_params(pipeline_copy.root / "params.yaml")


@pytest.fixture(scope="module")
def client(pipeline_copy: FinishedPipeline):  # noqa: ANN201
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=pipeline_copy.tracking_uri, registry_uri=pipeline_copy.tracking_uri)


@pytest.fixture(scope="module")
def runs(pipeline_copy: FinishedPipeline, params: Params, client) -> list:  # noqa: ANN001
    experiment = client.get_experiment_by_name(params.tracking.experiment)
    assert experiment is not None, (
        f"no experiment {params.tracking.experiment!r} in {pipeline_copy.tracking_uri}"
    )
    return client.search_runs([experiment.experiment_id])


def test_repro_ran_every_stage(pipeline_copy: FinishedPipeline, params: Params) -> None:
    output = pipeline_copy.repro_output
    for stage in STAGES:
        assert f"Running stage '{stage}'" in output, stage
    assert "data.dvc" not in output, "plain `dvc repro` must leave the absent real data alone"


def test_mlflow_store_lives_in_the_copy(
    pipeline_copy: FinishedPipeline, params: Params, runs: list, client
) -> None:  # noqa: ANN001
    root = pipeline_copy.root
    assert pipeline_copy.tracking_uri == f"sqlite:///{root / 'mlflow.db'}"
    assert (root / "mlflow.db").is_file()
    experiment = client.get_experiment_by_name(params.tracking.experiment)
    assert Path(experiment.artifact_location.removeprefix("file://")).is_relative_to(root)
    for run in runs:  # artifacts too: nothing is written outside the copy
        location = run.info.artifact_uri.removeprefix("file://")
        assert Path(location).is_relative_to(root), run.info.artifact_uri


def test_one_parent_run_with_one_child_per_fold(
    pipeline_copy: FinishedPipeline, params: Params, runs: list
) -> None:
    parents = [r for r in runs if PIPELINE_KEY_TAG in r.data.tags]
    assert len(parents) == 1, [r.data.tags.get(PIPELINE_KEY_TAG) for r in parents]
    parent = parents[0]
    assert "mlflow.parentRunId" not in parent.data.tags
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(int(r.data.tags[FOLD_TAG]) for r in children) == list(params.split.folds)
    assert len(runs) == 1 + len(children), "every run is the parent or one of its folds"
    assert all(r.info.status == "FINISHED" for r in runs)


def test_fold_runs_have_stepwise_metrics_and_checkpoints(
    pipeline_copy: FinishedPipeline, params: Params, runs: list, client
) -> None:  # noqa: ANN001
    epochs = sum(stage.epochs for stage in params.train.stages)
    lock = yaml.safe_load((pipeline_copy.root / "dvc.lock").read_text())["stages"]
    synthetic_md5 = next(o["md5"] for o in lock["synth"]["outs"] if o["path"] == "synthetic")
    head = pipeline_copy.copy.run("git", "rev-parse", "HEAD").stdout.strip()
    for run in (r for r in runs if FOLD_TAG in r.data.tags):
        fold = run.data.tags[FOLD_TAG]
        for metric in ("val_iou", "val_loss", "train_loss"):
            history = client.get_metric_history(run.info.run_id, metric)
            assert sorted(m.step for m in history) == list(range(1, epochs + 1)), (fold, metric)
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert "best.pt" in artifacts, (fold, artifacts)
        assert run.data.params["fold"] == fold
        # Lineage: the data version DVC recorded and the commit the copy was run at.
        assert run.data.tags["dvc_data_hash"] == synthetic_md5
        assert run.data.tags["git_commit"].startswith(head)


def _metric_files(shown: object) -> set[str]:
    """Every file name under a `dvc metrics show --json` answer (its nesting varies by version)."""
    if isinstance(shown, dict):
        return {k for k in shown if k.endswith(".json")} | {
            f for v in shown.values() for f in _metric_files(v)
        }
    return set()


def test_dvc_metrics_plots_and_experiments(
    pipeline_copy: FinishedPipeline, params: Params, tmp_path: Path
) -> None:
    copy = pipeline_copy.copy
    shown = json.loads(copy.run("dvc", "metrics", "show", "--json").stdout)
    assert _metric_files(shown) == {"metrics/scores.json"}, (
        "the headline only: per-fold detail is not a metric"
    )
    table = copy.run("dvc", "metrics", "show").stdout
    assert max(map(len, table.splitlines())) <= 120, table
    assert {"score_nested", "test_score"} <= set(table.split()), table

    copy.run("dvc", "plots", "show", "-o", str(tmp_path / "dvc_plots"))
    index = (tmp_path / "dvc_plots" / "index.html").read_text()
    assert "plots/train" in index

    table = copy.run("dvc", "exp", "show", "--no-pager", "--csv").stdout
    header = table.splitlines()[0]
    assert "metrics/evaluate.json" in header or "score" in header, header
    assert "workspace" in table


def test_submission_covers_every_test_image(pipeline_copy: FinishedPipeline) -> None:
    root = pipeline_copy.root
    test_ids = sorted(p.stem for p in (root / "synthetic" / "test" / "images").glob("*.png"))
    assert test_ids
    table = pd.read_csv(root / "submission.csv", dtype=str, keep_default_na=False)
    assert list(table.columns) == ["id", "rle_mask"]
    assert table["id"].is_unique
    assert sorted(table["id"]) == test_ids
    for image_id, code in zip(table["id"], table["rle_mask"], strict=True):
        mask = rle.decode(code)  # raises on a malformed run
        assert rle.encode(mask) == code, f"{image_id}: not the canonical encoding"


def test_registry_holds_the_champion_ensemble(
    pipeline_copy: FinishedPipeline, params: Params, runs: list, client
) -> None:  # noqa: ANN001
    record = json.loads((pipeline_copy.root / "registry.json").read_text())
    data_hash = load_prepared(pipeline_copy.root / "prepared" / "train.npz").fingerprint
    name, alias = params.register.model_name, f"{params.register.alias}-{data_hash}"
    assert (record["name"], record["alias"], record["data_hash"]) == (name, alias, data_hash)
    champion = client.get_model_version_by_alias(name, alias)
    assert int(champion.version) == record["version"]
    parent = next(r for r in runs if PIPELINE_KEY_TAG in r.data.tags)
    assert champion.run_id == parent.info.run_id
    evaluated = json.loads((pipeline_copy.root / "metrics" / "evaluate.json").read_text())
    assert record["score_nested"] == pytest.approx(evaluated["score_nested"])
    assert champion.tags["oof_score_nested"] == f"{evaluated['score_nested']:.6f}"


def test_the_registered_ensemble_has_an_untouched_test_score(
    pipeline_copy: FinishedPipeline, params: Params, runs: list, client, tmp_path: Path
) -> None:  # noqa: ANN001
    """ci-tiny holds out 20 images: the `test` stage scores the registered version on them
    through MLflow, and `salt score --data` on the same images as a folder gives the same number."""
    copy, root = pipeline_copy.copy, pipeline_copy.root
    tested = json.loads((root / "metrics" / "scores.json").read_text())
    evaluated = json.loads((root / "metrics" / "evaluate.json").read_text())
    assert {k: tested[k] for k in ("score_nested", "score")} == pytest.approx(
        {k: evaluated[k] for k in ("score_nested", "score")}
    )
    folds = pd.read_csv(root / "prepared" / "folds.csv", dtype={"id": str})
    held = set(folds.loc[folds["fold"] == -1, "id"])
    for k in params.split.folds:  # no fold trained or validated on them
        n_val = json.loads((root / "metrics" / "train" / f"fold{k}.json").read_text())["n_val"]
        assert n_val == (folds["fold"] == k).sum()
    assert json.loads((root / "metrics" / "evaluate.json").read_text())["n_images"] == 80
    record = json.loads((root / "registry.json").read_text())
    version = client.get_model_version(record["name"], str(record["version"]))
    assert version.tags["test_score"] == f"{tested['test_score']:.6f}"
    parent = next(r for r in runs if PIPELINE_KEY_TAG in r.data.tags)
    logged = client.get_run(parent.info.run_id).data.metrics
    assert logged["test_score"] == pytest.approx(tested["test_score"]) and logged["test_n_images"] == 20

    copy.run("salt", "data", "holdout", "--out", str(tmp_path / "holdout"))
    assert {p.stem for p in (tmp_path / "holdout" / "train" / "images").glob("*.png")} == held
    out = tmp_path / "score.json"
    copy.run(
        "salt",
        "score",
        "--data",
        str(tmp_path / "holdout"),
        "--model",
        record["model_uri"],
        "--out",
        str(out),
    )
    scored = json.loads(out.read_text())
    assert round(scored["score"], 4) == round(tested["test_score"], 4)
    assert scored["n_images"] == 20 and sum(c["n_images"] for c in scored["coverage_classes"]) == 20


def test_second_repro_is_a_no_op(pipeline_copy: FinishedPipeline) -> None:
    copy = pipeline_copy.copy
    status = copy.run("dvc", "status", "dvc.yaml")
    assert "Data and pipelines are up to date" in status.stdout, status.stdout
    again = copy.run("dvc", "repro")
    output = again.stdout + again.stderr
    assert "Running stage" not in output, output
    assert "Data and pipelines are up to date" in output


def test_quality_gate_is_runnable(pipeline_copy: FinishedPipeline, tmp_path: Path) -> None:
    """The CI gate (`salt evaluate --min-score X` with its defaults) passes and fails as it should.

    The tiny model learns little, so this checks the command, not the model. Run with the
    defaults the gate rewrites the pipeline's own evaluation outputs: they must come out the same.
    """
    copy = pipeline_copy.copy
    before = json.loads((pipeline_copy.root / "metrics" / "evaluate.json").read_text())
    copy.run("salt", "evaluate", "--min-score", "0.0")
    after = json.loads((pipeline_copy.root / "metrics" / "evaluate.json").read_text())
    assert after == before
    failed = copy.run(
        "salt", "evaluate", "--min-score", "1.01", "--no-track",
        "--out-dir", str(tmp_path / "eval"), "--out-metrics", str(tmp_path / "evaluate.json"),
        check=False,
    )  # fmt: skip
    assert failed.returncode == 1
    assert failed.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "below the required 1.01" in failed.stderr
