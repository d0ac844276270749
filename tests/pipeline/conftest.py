"""Fixtures for the pipeline tests: real `dvc` and a real MLflow store in a copy of the project.

`pipeline_copy` runs the whole pipeline once per session with configs/ci-tiny.yaml;
any test may reuse the finished copy (read it; do not change it).
"""

from __future__ import annotations

import time

import pytest
from project_copy import TINY, FinishedPipeline, make_copy


@pytest.fixture(scope="session")
def pipeline_copy(tmp_path_factory: pytest.TempPathFactory) -> FinishedPipeline:
    """The whole pipeline run once, for every test that inspects its outputs (read-only please)."""
    copy = make_copy(tmp_path_factory.mktemp("pipeline") / "project")
    copy.run("salt", "params", "use", str(TINY))
    start = time.monotonic()
    proc = copy.run("dvc", "repro", timeout=1800)  # minutes on a busy 2-core machine
    seconds = time.monotonic() - start
    return FinishedPipeline(copy, copy.tracking_uri(), seconds, proc.stdout + proc.stderr)
