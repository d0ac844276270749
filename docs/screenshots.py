"""Pictures for the docs from a real run, so that they can be refreshed.

    python docs/screenshots.py PROJECT [--out docs/img] [--site site]

PROJECT is a checkout after `make run` (or `dvc repro`): its mlflow.db, models/, prepared/ and
eval/. The script writes into --out:

- mlflow-runs.png: the MLflow runs table, through `mlflow ui` on a free loopback port over the
  run's store, opened at #/experiments/<id>/runs?workflowType=machine_learning (MLflow 3's UI
  otherwise opens on its GenAI overview), with the panel docked at its right cut off;
- dvc-plots.png: the page `dvc plots show` writes (offline: .dvc/plots/page.html carries vega);
- predictions.png: tiles of the first fold's held-out images with that fold's prediction
  (flip TTA, the tuned threshold and minimum area), drawn by saltseg.plots.overlay_grid.

With --site DIR (after `mkdocs build`), every page of the built site is rendered too, and the
script fails on a page that renders blank or that loads a script, style or font from elsewhere.

Chromium comes from Debian (`apt-get install -y chromium`); CI does not install it: this script
is for people refreshing the docs. It runs with the network off: every request that does not go
to the loopback goes to a closed proxy port. PNGs are kept under 300 KB (palette, then smaller).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

LIMIT_BYTES = 300_000
BIN = Path(sys.executable).parent  # mlflow and dvc of the environment running this script
# A page that fetches anything from elsewhere does not work offline.
EXTERNAL = re.compile(r"""<(?:script|link|img)\b[^>]*\b(?:src|href)=["']?(?:https?:)?//""", re.I)


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        if found := shutil.which(name):
            return found
    sys.exit("chromium not found: apt-get install -y chromium (Debian's package)")


def shoot(url: str, out: Path, width: int = 1600, height: int = 1000) -> None:
    """A PNG of `url` as headless Chromium renders it with no network beyond the loopback."""
    with tempfile.TemporaryDirectory() as profile:
        command = [
            chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--proxy-server=http://127.0.0.1:9",  # closed port: the network is off, loopback is not
            f"--user-data-dir={profile}", f"--screenshot={out}", f"--window-size={width},{height}",
            "--virtual-time-budget=15000", url,
        ]  # fmt: skip
        subprocess.run(command, check=True, capture_output=True, timeout=180)


def shrink(path: Path, limit: int = LIMIT_BYTES) -> None:
    """Rewrite the PNG at `path` as a 256-colour palette image, smaller until under `limit` bytes."""
    image = Image.open(path).convert("RGB")
    while True:
        image.quantize(256).save(path, optimize=True)
        if path.stat().st_size <= limit:
            return
        image = image.resize((int(image.width * 0.85), int(image.height * 0.85)), Image.LANCZOS)


def crop_side_panel(path: Path) -> None:
    """Cut off a panel docked at the right (MLflow 3.17's assistant opens there): the page's grey
    background shows as a full-height gap between two white cards; keep what is left of it."""
    image = Image.open(path).convert("RGB")
    grey = np.asarray(image.convert("L"), dtype=np.int16)[image.height // 4 : 3 * image.height // 4 : 10]
    background = ((grey >= 238) & (grey <= 248)).all(axis=0)  # columns of page background all the way
    gap = np.flatnonzero(background[image.width // 2 : -40]) + image.width // 2
    if len(gap):
        image.crop((0, 0, int(gap[0]) + 6, image.height)).save(path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(1)
    sys.exit(f"{url}: no answer within {seconds:.0f} s")


def mlflow_runs(project: Path, out: Path) -> None:
    from mlflow.tracking import MlflowClient

    from saltseg.config import load_params

    uri = f"sqlite:///{project / 'mlflow.db'}"
    name = load_params(project / "params.yaml").tracking.experiment
    experiment = MlflowClient(tracking_uri=uri).get_experiment_by_name(name)
    if experiment is None:
        sys.exit(f"{project / 'mlflow.db'}: no experiment {name!r}; run `make run` there first")
    port = free_port()
    store = ["--backend-store-uri", uri, "--host", "127.0.0.1", "--port", str(port)]
    command = [str(BIN / "mlflow"), "ui", *store]
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen(command, cwd=project, stdout=log, stderr=log, start_new_session=True)
        try:
            wait_for(f"http://127.0.0.1:{port}/health")
            url = f"http://127.0.0.1:{port}/#/experiments/{experiment.experiment_id}/runs?workflowType=machine_learning"
            shoot(url, out, width=2000, height=720)  # wide: more of the table beside the panel
        finally:
            os.killpg(server.pid, signal.SIGTERM)  # the server and the workers it started
            server.wait(timeout=60)
    crop_side_panel(out)
    shrink(out)


def dvc_plots(project: Path, out: Path) -> None:
    with tempfile.TemporaryDirectory() as folder:
        env = os.environ | {"DVC_NO_ANALYTICS": "1"}
        subprocess.run([str(BIN / "dvc"), "plots", "show", "-o", folder], cwd=project, env=env, check=True,
                       capture_output=True)  # fmt: skip
        shoot(Path(folder, "index.html").as_uri(), out, height=1200)
    shrink(out)


def predictions(project: Path, out: Path, n: int = 8) -> None:
    """The first fold's model on tiles it never trained on: one empty, the rest across the range
    of salt coverage, thresholded as evaluation tuned it."""
    from saltseg.config import load_params
    from saltseg.data.folds import fold_indices, load_folds
    from saltseg.data.prepared import load_prepared
    from saltseg.inference import binarize, fold_members, load_models, load_thresholds, predict_proba
    from saltseg.metrics import iou_per_image
    from saltseg.plots import overlay_grid

    params = load_params(project / "params.yaml")
    prepared = load_prepared(project / "prepared" / "train.npz")
    fold = params.split.folds[0]
    _, val = fold_indices(prepared.ids, load_folds(project / "prepared" / "folds.csv"), fold)
    coverage = prepared.masks[val].mean(axis=(1, 2))
    order = np.argsort(coverage, kind="stable")
    salt, empty = val[order][coverage[order] > 0], val[coverage == 0][:1]
    picked = np.concatenate([empty, salt[np.linspace(0, len(salt) - 1, n - len(empty)).round().astype(int)]])
    models, cfg, policy = load_models(fold_members(project / "models", [fold])[fold], params.runtime)
    tuned = load_thresholds(project / "eval" / "thresholds.json")
    proba = predict_proba(
        models, prepared.images[picked], cfg, tuned.get("tta", True), 64, policy, prepared.depths[picked]
    )
    masks = binarize(proba, tuned["threshold"], tuned["min_area"])
    truth = prepared.masks[picked]
    ious = iou_per_image(truth, masks)
    titles = [f"salt {c:.0%}, IoU {i:.2f}" for c, i in zip(truth.mean(axis=(1, 2)), ious, strict=True)]
    overlay_grid(prepared.images[picked], truth, masks, titles, out, cols=n)
    shrink(out)


def check_site(site: Path) -> list[str]:
    """Render every page of the built site offline; the problems found (empty: none)."""
    problems = []
    pages = sorted(p for p in site.rglob("index.html"))
    with tempfile.TemporaryDirectory() as folder:
        for page in pages:
            html = page.read_text(encoding="utf-8")
            if found := EXTERNAL.search(html):
                problems.append(f"{page}: loads from elsewhere: {found.group(0)}")
            png = Path(folder) / "page.png"
            shoot(page.resolve().as_uri(), png, height=900)
            colours = Image.open(png).convert("RGB").getcolors(maxcolors=1 << 16)
            if colours is not None and len(colours) < 16:
                problems.append(f"{page}: renders (nearly) blank")
            print(f"rendered {page.relative_to(site)}", file=sys.stderr)
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("project", type=Path, help="a checkout after `make run`")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "img")
    parser.add_argument("--site", type=Path, help="a built site (`mkdocs build`) to render page by page")
    args = parser.parse_args()
    project = args.project.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(project / "src"))  # the run's own saltseg reads its files
    for name, make in (("mlflow-runs", mlflow_runs), ("dvc-plots", dvc_plots), ("predictions", predictions)):
        make(project, args.out / f"{name}.png")
        print(f"wrote {args.out / name}.png ({(args.out / f'{name}.png').stat().st_size // 1000} KB)")
    if args.site:
        problems = check_site(args.site)
        print("\n".join(problems) or f"every page of {args.site} rendered offline")
        sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
