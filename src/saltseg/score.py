"""The competition score of an ensemble on labelled images that chose nothing about it.

Two ways in, one way of scoring: `salt score --data DIR` scores any labelled Kaggle-layout
folder with the champion (or `--model URI`), loaded as `salt predict` loads it; the pipeline's
`score` stage scores the version this pipeline run registered, loaded through MLflow, on the
images split.test_fraction held out, and records the number in metrics/scores.json (beside the
out-of-fold headline), on the pipeline's parent run and on the registry version. Both predict with
`saltseg.predict.predict_masks`, so the two give one number for the same images.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from saltseg.atomic import write_text
from saltseg.config import Params
from saltseg.coverage_report import coverage_table
from saltseg.data.folds import coverage_class, held_out_set, load_folds
from saltseg.data.prepared import load_prepared
from saltseg.inference import Ensemble
from saltseg.metrics import iou_per_image, score_per_image
from saltseg.predict import predict_masks

TEST_SCORE_TAG = "test_score"


def score_images(
    ensemble: Ensemble, images: np.ndarray, masks: np.ndarray, depths: np.ndarray, n_classes: int
) -> tuple[dict, pd.DataFrame]:
    """({"score", "iou", "n_images"}, the per-coverage-class table) of `ensemble`'s masks for
    images uint8 (N, 101, 101) against masks bool (N, 101, 101); depths int (N,)."""
    predicted, _ = predict_masks(ensemble, images, depths=depths if ensemble.needs_depths else None)
    scores, ious = score_per_image(masks, predicted), iou_per_image(masks, predicted)
    classes = coverage_class(masks.mean(axis=(1, 2), dtype=np.float64), n_classes)
    summary = {"score": float(scores.mean()), "iou": float(ious.mean()), "n_images": len(masks)}
    return summary, coverage_table(scores, ious, classes)


def score_folder(params: Params, data_dir: Path, model_uri: str | None, registry_json: Path, prepared: Path):  # noqa: ANN201
    """`salt score --data`: the score of the champion (or `model_uri`) on data_dir's labelled images."""
    from saltseg.data.tgs import read_layout
    from saltseg.predict import load_ensemble

    layout = read_layout(data_dir, test=False)
    ensemble = load_ensemble(
        params, model_uri, None, None, params.evaluate.batch_size, registry_json, prepared
    )
    return score_images(ensemble, layout.images, layout.masks, layout.depths, params.split.coverage_classes)


# The numbers `dvc metrics show` prints: the ones to quote and compare, one narrow row.
HEADLINE = ("score_nested", "score", "score_default", "iou")


def run_score_stage(
    params: Params, prepared_path: Path, folds_csv: Path, registry_json: Path, evaluation: Path, out: Path
) -> dict:
    """The `score` stage: the headline numbers of `evaluation` (metrics/evaluate.json) and, with a
    test set (split.test_fraction), `test_score`: the ensemble registry.json says this run
    registered, loaded through MLflow, on the held-out images, also recorded on the registry
    version and the parent run. Without a test set it loads no model. Writes `out`; returns it."""
    from saltseg.records import read_json
    from saltseg.registry import read_record

    evaluated = read_json(evaluation, "run `salt evaluate` first")
    headline = {key: round(float(evaluated[key]), 6) for key in HEADLINE}
    held = held_out_set(load_prepared(prepared_path), load_folds(folds_csv))
    if len(held):
        record = read_record(registry_json)
        ensemble = _registered(params, record["model_uri"])
        summary, _ = score_images(
            ensemble, held.images, held.masks, held.depths, params.split.coverage_classes
        )
        _record_in_mlflow(record, summary)
        headline["test_score"] = round(summary["score"], 6)
    write_text(out, json.dumps(headline, indent=2) + "\n")
    return headline


def _registered(params: Params, uri: str) -> Ensemble:
    import dataclasses

    from saltseg.predict import load_registered

    return dataclasses.replace(load_registered(uri, params), batch_size=params.evaluate.batch_size)


def _record_in_mlflow(record: dict, summary: dict) -> None:
    """The test score on the registry version and on the parent run that registered it."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    name, number = record["name"], str(record["version"])
    client.set_model_version_tag(name, number, TEST_SCORE_TAG, f"{summary['score']:.6f}")
    run_id = client.get_model_version(name, number).run_id
    for key, value in summary.items():
        client.log_metric(run_id, f"test_{key}", float(value))


def report(summary: dict, table: pd.DataFrame) -> str:
    """Lines for people: the score, the IoU and one line per coverage class."""
    lines = [
        f"competition score {summary['score']:.4f}, mean IoU {summary['iou']:.4f} "
        f"on {summary['n_images']} images"
    ]
    for _, row in table.iterrows():
        lines.append(
            f"  class {int(row['class']):>2}: score {row['score']:.4f}, IoU {row['iou']:.4f} "
            f"({int(row['n_images'])} images)"
        )
    return "\n".join(lines)
