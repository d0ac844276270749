"""`dvc plots show` on this project's dvc.yaml and .dvc/: offline, each curve once, a line per min area,
a bar per coverage class.

Runs the real `dvc plots show` in a temporary git + DVC repository holding the project's
dvc.yaml, params.yaml and .dvc/ configuration and plot templates, with small CSVs in the
formats `salt train --history` and `salt evaluate` write.
"""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
DVC = str(Path(sys.executable).with_name("dvc"))
FOLDS, MIN_AREAS, THRESHOLDS = range(5), (0, 20, 120), (0.4, 0.5, 0.6)
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
)


def _project(folder: Path) -> Path:
    subprocess.run(["git", "init", "-q", str(folder)], check=True)
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / name, folder / name)
    shutil.copytree(
        ROOT / ".dvc", folder / ".dvc", ignore=shutil.ignore_patterns("tmp", "cache", "config.local")
    )
    (folder / "plots" / "train").mkdir(parents=True)
    for fold in FOLDS:
        epochs = np.arange(1, 4)
        history = {"epoch": epochs, "stage": "bce", "train_loss": 1 / epochs, "val_loss": 1.1 / epochs,
                   "val_iou": 0.5 + fold / 100 + epochs / 10, "val_score": 0.4 + epochs / 10}  # fmt: skip
        pd.DataFrame(history).to_csv(folder / "plots" / "train" / f"fold{fold}.csv", index=False)
    (folder / "eval").mkdir()
    grid = [{"threshold": t, "min_area": a, "score_tta": 0.6 + t / 10 - a / 1000, "score_no_tta": 0.5}
            for t in THRESHOLDS for a in MIN_AREAS]  # fmt: skip
    pd.DataFrame(grid).to_csv(folder / "eval" / "threshold_grid.csv", index=False)
    by_class = {"class": [0, 1, 3], "n_images": [40, 7, 12], "score": [0.9, 0.2, 0.6], "iou": [0.9, 0.3, 0.7]}
    pd.DataFrame(by_class).to_csv(folder / "eval" / "coverage_classes.csv", index=False)
    for png in (
        "score_vs_threshold.png",
        "worst_predictions.png",
        "score_by_coverage.png",
        "worst_by_class.png",
    ):
        (folder / "eval" / png).write_bytes(PNG)
    return folder


def _title(spec: dict) -> str:
    """The chart's file or plot id ("dvc.yaml::" marks a chart from the top-level plots)."""
    title = spec["title"]["text"] if isinstance(spec["title"], dict) else spec["title"]
    return title.removeprefix("dvc.yaml::")


def test_dvc_plots_show_is_offline_draws_each_curve_once_and_a_line_per_min_area(tmp_path):
    project = _project(tmp_path / "project")
    done = subprocess.run(
        [DVC, "plots", "show", "-o", "out"], cwd=project, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    html = (project / "out" / "index.html").read_text()

    assert not re.search(r"<script[^>]*\bsrc\s*=", html), "the page loads a script from elsewhere"
    assert "vegaEmbed" in html and "cdn.jsdelivr" not in html

    specs = [json.loads(s) for s in re.findall(r"var spec = (\{.*?\});\n", html, flags=re.S)]
    # A chart of one file has no "filename" in its rows, only in its title.
    rows = [(spec, {"filename": _title(spec), **row}) for spec in specs for row in spec["data"]["values"]]
    for fold in FOLDS:
        name = f"plots/train/fold{fold}.csv"
        # Each fold's curves are in one chart only, each curve with one point per epoch.
        assert len({id(spec) for spec, row in rows if row["filename"] == name}) == 1, name
        for field in ("train_loss", "val_loss", "val_iou", "val_score"):
            assert sum(row["filename"] == name and row.get("field") == field for _, row in rows) == 3, (
                name,
                field,
            )

    grid_specs = [s for s in specs if s["data"]["values"][0].get("filename") == "eval/threshold_grid.csv"]
    assert sorted(s["encoding"]["y"]["field"] for s in grid_specs) == ["score_no_tta", "score_tta"]
    for spec in grid_specs:
        # One line per min area: the chart's series are keyed by min area, each a function of threshold.
        assert spec["encoding"]["color"]["field"] == "min area"
        assert {"calculate": "toNumber(datum.min_area)", "as": "min area"} in spec["transform"]
        points = pd.DataFrame(spec["data"]["values"])
        assert sorted(points["min_area"].astype(int).unique()) == list(MIN_AREAS)
        assert not points.duplicated(["min_area", "threshold"]).any()

    class_specs = [s for s in specs if s["data"]["values"][0].get("filename") == "eval/coverage_classes.csv"]
    assert len(class_specs) == 1
    bars = class_specs[0]
    # A bar per class with its score, and the image count written over it.
    assert [layer["mark"]["type"] for layer in bars["layer"]] == ["bar", "text"]
    assert bars["encoding"]["y"]["field"] == "score"
    assert {"calculate": "'n=' + datum.n_images", "as": "count"} in bars["transform"]
    points = pd.DataFrame(bars["data"]["values"])
    assert points["class"].astype(int).tolist() == [0, 1, 3]
    assert points["n_images"].astype(int).tolist() == [40, 7, 12]
    images = {s for s in re.findall(r"<img[^>]*>", html)}
    for png in ("score_by_coverage.png", "worst_by_class.png"):
        assert any(png in tag for tag in images), png
