"""Shared test helpers: the repository root, a temporary copy of the workflow, snakemake runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO.parent / "shared" / "fixtures"
WORKFLOW_PARTS = ("Snakefile", "rules", "config", "scripts", "envs", "resources", "profiles")


def copy_workflow(dest: Path) -> Path:
    """A fresh copy of the workflow (no results, no data) in ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for part in WORKFLOW_PARTS:
        src = REPO / part
        if src.is_dir():
            shutil.copytree(src, dest / part, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            shutil.copy2(src, dest / part)
    return dest


def snakemake(workdir: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Run snakemake in ``workdir`` (targets first, then options) and capture its output."""
    cmd = [sys.executable, "-m", "snakemake", *args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAKEMAKE")}
    return subprocess.run(
        cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout, env=env
    )


@pytest.fixture
def workflow_copy(tmp_path: Path) -> Path:
    return copy_workflow(tmp_path / "wf")


def need_fixtures() -> Path:
    """The shared real MLPerf logs; missing is a failure under CI, a skip elsewhere."""
    if FIXTURES.is_dir():
        return FIXTURES
    if os.environ.get("CI") == "true":
        pytest.fail(f"{FIXTURES} is missing; CI must provide ../shared/fixtures")
    pytest.skip(f"{FIXTURES} is missing")
