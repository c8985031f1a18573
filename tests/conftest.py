"""Shared test helpers: the repository root, a temporary copy of the workflow, snakemake runs."""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts.data.unpack import prepare

REPO = Path(__file__).resolve().parents[1]
PUBLISHED = REPO / "tests" / "data" / "published"  # the archives; see its README.md
WORKFLOW_PARTS = (
    "Snakefile",
    "rules",
    "config",
    "scripts",
    "envs",
    "resources",
    "profiles",
    "report",
    "requirements.txt",  # pins the wheels of the embedded benchmark's image
)


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


_published_root: list[Path] = []  # the unpacked tree, once per test session


def published() -> Path:
    """The root of the published MLPerf logs the tests read (tests/data/published/*.tar.xz:
    mlperf-v0.6-nvidia/, mlperf-v5.0-nvidia/, mlperf-more/), unpacked on the first call into a
    temporary folder that is removed when the session ends. Safe to call at import time. The
    tree is shared by every test of the session: a test that changes a log changes a copy."""
    if not _published_root:
        root = Path(tempfile.mkdtemp(prefix="mlperf-published-"))
        atexit.register(_remove, root, os.getpid())
        for archive in sorted(PUBLISHED.glob("*.tar.xz")):
            with tarfile.open(archive) as tar:
                if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4
                    tar.extractall(root, filter="data")
                else:
                    tar.extractall(root)
        _published_root.append(root)
    return _published_root[0]


need_fixtures = published  # the name from when the tests read ../shared/fixtures


def _remove(root: Path, pid: int) -> None:
    if os.getpid() == pid:  # not in a forked child that exits normally
        shutil.rmtree(root, ignore_errors=True)


def set_faults(wf: Path, faults: dict[str, Any]) -> None:
    """What tests/fake_trainer.py does wrong, per run (see its docstring)."""
    (wf / "faults.json").write_text(json.dumps(faults))


def fake_campaign(
    wf: Path, runs: int = 3, faults: dict[str, Any] | None = None, timeout_s: float = 60
) -> Path:
    """A benchmark 'fake' whose trainer is tests/fake_trainer.py; returns the overlay path."""
    shutil.copy2(REPO / "tests" / "fake_trainer.py", wf / "fake_trainer.py")
    set_faults(wf, faults or {})
    data = wf / "tiny.txt"
    data.write_text("a tiny dataset\n")
    overlay = {
        "campaign": {"benchmarks": ["fake"]},
        "benchmarks": {
            "fake": {
                "description": "fake trainer for tests",
                "scale": "test",
                "runs": runs,
                "timeout_s": timeout_s,
                "quality": {"metric": "acc", "target": 0.9},
                "dataset": {
                    "files": [
                        {
                            "name": "tiny.txt",
                            "url": "file://{workflow_dir}/tiny.txt",
                            "sha256": hashlib.sha256(data.read_bytes()).hexdigest(),
                        }
                    ]
                },
                "implementation": {
                    "command": "{python} fake_trainer.py --seed {seed} --run {run} "
                    "--target {target}",
                },
            }
        },
    }
    path = wf / "fake.yaml"
    path.write_text(yaml.safe_dump(overlay))
    return path


def jobs_run(output: str) -> list[str]:
    """'rule wildcards' of every job a snakemake invocation ran, from its log."""
    jobs = []
    for block in re.split(r"\n(?=\[\w{3} \w{3} )", output):
        rule = re.search(r"^\s*(?:local)?rule (\w+):", block, re.M)
        if rule:
            wc = re.search(r"wildcards: (.*)", block)
            jobs.append(f"{rule.group(1)} {wc.group(1) if wc else ''}".strip())
    return jobs


def snapshot(root: Path) -> dict[str, tuple[str, int]]:
    """sha256 and mtime (ns) of every file under results/."""
    return {
        str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted((root / "results").rglob("*"))
        if p.is_file()
    }


def need_docker() -> str:
    """A Docker engine that answers, and the name of the local base image the docker tests
    build on (MLPERF_CI_BASE_IMAGE, made by .ci/docker-up.sh). Missing is a failure under CI,
    a skip elsewhere."""
    return need_engine("docker", 'eval "$(.ci/docker-up.sh)"')


def need_podman() -> str:
    """Podman that works (its containers.conf and store from .ci/podman-up.sh, in
    CONTAINERS_CONF and CONTAINERS_STORAGE_CONF), and the local base image in its store.
    Missing is a failure under CI, a skip elsewhere."""
    return need_engine("podman", 'eval "$(.ci/podman-up.sh)"')


def need_engine(cli: str, start: str) -> str:
    """The base image of the container tests of engine ``cli``, or a failure (under CI) or a
    skip naming what is missing and ``start``, the command that provides it."""
    base = os.environ.get("MLPERF_CI_BASE_IMAGE", "mlperf-ci/debian-python:bookworm")
    problem = None
    try:
        out = subprocess.run(
            [cli, "image", "inspect", "--format", "{{.Id}}", base],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if out.returncode != 0:
            problem = f"{cli} cannot use the base image {base}: {out.stderr.strip()}"
    except (OSError, subprocess.TimeoutExpired) as exc:
        problem = f"no {cli} engine: {exc}"
    if problem is None:
        return base
    hint = f"; start one with: {start}"
    if os.environ.get("CI") == "true":
        pytest.fail(problem + hint)
    pytest.skip(problem + hint)


def containers_labelled(
    label: str = "org.mlperf-workflow.container", cli: str = "docker"
) -> list[str]:
    """Names of the containers (running or not) that the workflow started, in the engine
    ``cli``."""
    out = subprocess.run(
        [cli, "ps", "--all", "--filter", f"label={label}", "--format", "{{.Names}}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return out.stdout.split()


@pytest.fixture
def paths(tmp_path: Path) -> dict[str, Path]:
    """The files scripts.run.runner.execute takes, for a run made in ``tmp_path``."""
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"files": []}))
    # the unpacked tree beside it, and its manifest: the runner checks them before each run
    prepare([], tmp_path, tmp_path / "dataset", tmp_path / "dataset.manifest.json")
    environment = tmp_path / "environment.json"
    environment.write_text(json.dumps({"digest": "envdigest"}))
    return {
        "log_path": tmp_path / "run_01" / "mlperf.log",
        "meta_path": tmp_path / "run_01" / "run.json",
        "failed_dir": tmp_path / "logs" / "failed" / "b" / "s",
        "dataset_manifest": manifest,
        "environment": environment,
    }
