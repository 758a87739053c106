"""Fixtures of the report tests: a run folder around the known trace store (`helpers`), an
analysis folder, an eval summary, and the headless Chromium that renders the page."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from tests.report.helpers import ANALYSIS, EVAL, RUN, SVG, build_store


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A training run folder: traces.db and ropd_run.json naming RUN."""
    folder = tmp_path / "run"
    folder.mkdir()
    build_store(folder / "traces.db")
    (folder / "ropd_run.json").write_text(json.dumps({"run_id": RUN, "method": "ropd"}))
    return folder


@pytest.fixture
def analysis_dir(tmp_path: Path) -> Path:
    """What `ropd analyze` writes: analysis.json and an SVG plot (with a script it must not run)."""
    folder = tmp_path / "analysis"
    folder.mkdir()
    (folder / "analysis.json").write_text(json.dumps(ANALYSIS))
    (folder / "roc.svg").write_text(SVG)
    return folder


@pytest.fixture
def eval_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "eval-final"
    folder.mkdir()
    (folder / "summary.json").write_text(json.dumps(EVAL))
    return folder


CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


@pytest.fixture(scope="session")
def chromium() -> str:
    """A headless-capable Chromium; skipped without one, except in CI, where it must exist."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    message = f"no Chromium binary on PATH (looked for {', '.join(CHROMIUM_NAMES)})"
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI must run the browser test (apt-get install chromium)")
    pytest.skip(message)
