"""Shared helpers of the benchmarks: a temporary copy of the workflow with a trivial campaign."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.conftest import copy_workflow as _copy_workflow  # noqa: E402 (one list of parts)


def copy_workflow(dest: Path) -> Path:
    """A fresh copy of the workflow, as the tests make it, plus the trivial trainer."""
    _copy_workflow(dest)
    shutil.copy2(REPO / "bench" / "trivial_trainer.py", dest / "trivial_trainer.py")
    return dest


def archived_workflow(rev: str, dest: Path) -> Path:
    """The workflow as it was at git revision ``rev`` (``git archive``: tracked files only, as a
    fresh clone has them), plus today's trivial trainer: the baseline of ``--against REV``."""
    dest.mkdir(parents=True)
    tar = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", rev], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=tar, check=True)
    shutil.copy2(REPO / "bench" / "trivial_trainer.py", dest / "trivial_trainer.py")
    return dest


def short_rev(rev: str) -> str:
    return subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", rev],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def trivial_campaign(
    wf: Path,
    systems: int,
    runs: int,
    *,
    benchmark: str = "trivial",
    command: str = "{python} trivial_trainer.py --seed {seed}",
) -> Path:
    """Benchmark ``benchmark`` (default: bench/trivial_trainer.py) on ``systems`` local systems
    x ``runs``; returns the overlay (it replaces the default benchmark and system)."""
    data = wf / "tiny.txt"
    data.write_text("a tiny dataset\n")
    names = [f"sys{i:03d}" for i in range(systems)]
    overlay = {
        "campaign": {"benchmarks": [benchmark], "systems": names, "reference_system": names[0]},
        "benchmarks": {
            benchmark: {
                "description": "a stand-in trainer of the benchmarks under bench/",
                "scale": "bench",
                "runs": runs,
                "quality": {"metric": "acc", "target": 0.5},
                "dataset": {
                    "files": [
                        {
                            "name": "tiny.txt",
                            "url": "file://{workflow_dir}/tiny.txt",
                            "sha256": hashlib.sha256(data.read_bytes()).hexdigest(),
                        }
                    ]
                },
                "implementation": {"command": command},
            }
        },
        "systems": {n: {"description": "bench", "backend": "local", "threads": 1} for n in names},
    }
    path = wf / f"{benchmark}.yaml"
    path.write_text(yaml.safe_dump(overlay))
    return path


# A user's Python caches the bytecode of the workflow's modules (scripts/**/__pycache__) on the
# first run and reads it on every later one. PYTHONDONTWRITEBYTECODE=1 (set on the machines of
# this project's sessions) makes every job of a fresh copy compile the ~40 modules it imports
# again: 38 ms of each run's 0.3 s. The benchmarks run as a user's Python does, unless
# MLPERF_BENCH_NO_BYTECODE=1 keeps the caller's setting.
KEEP_NO_BYTECODE = os.environ.get("MLPERF_BENCH_NO_BYTECODE") == "1"


def bench_env() -> dict[str, str]:
    """The environment of the workflow under measurement: the caller's, without Snakemake's
    variables and (see KEEP_NO_BYTECODE) without PYTHONDONTWRITEBYTECODE."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAKEMAKE")}
    if not KEEP_NO_BYTECODE:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def bytecode_note() -> str:
    """One line for a benchmark's output: whether the workflow's bytecode was cached."""
    if KEEP_NO_BYTECODE and os.environ.get("PYTHONDONTWRITEBYTECODE"):
        return "bytecode: not cached (PYTHONDONTWRITEBYTECODE kept: every process compiles)"
    return "bytecode: cached after the first process, as a user's Python does"


def snakemake(wf: Path, *args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Wall seconds and result of one snakemake invocation in ``wf`` (:func:`bench_env`)."""
    env = bench_env()
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", *args], cwd=wf, capture_output=True, text=True, env=env
    )
    elapsed = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"snakemake {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return elapsed, proc


def shell(script: str, cwd: Path) -> float:
    t = time.perf_counter()
    subprocess.run(["bash", "-c", script], cwd=cwd, check=True, env=bench_env())
    return time.perf_counter() - t


def commit() -> str:
    try:
        return subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
