"""The benchmarks under bench/ keep working: each runs in its quick mode here; the full sizes
run on demand and their numbers are in docs/PERFORMANCE.md. Nothing here asserts a speed."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.conftest import REPO


def bench(name: str, timeout: float = 300) -> str:
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / name), "--quick"],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def number(pattern: str, text: str) -> float:
    m = re.search(pattern, text)
    assert m, f"{pattern!r} not in:\n{text}"
    return float(m.group(1))


def test_dataset_verify() -> None:
    out = bench("dataset_verify.py")
    assert number(r"verify / md5sum: ([\d.]+)x", out) > 0
    assert 1.0 <= number(r"([\d.]+) reads per byte", out) < 1.1  # the one-pass proof holds


def test_parse_logs() -> None:
    out = bench("parse_logs.py")
    assert "50 logs" in out and number(r"speed-up over mlp_parser: ([\d.]+)x", out) > 0


def test_dry_run_scale() -> None:
    out = bench("dry_run_scale.py")
    rows = re.findall(r"^\s+(\d+)\s+(\d+)(?:\s+[\d.]+){5}$", out, re.M)
    assert [int(r[0]) for r in rows] == [100, 400]
    assert all(int(jobs) > int(runs) for runs, jobs in rows)  # every run was planned
    assert number(r"-n -q [\d.]+ s = ([\d.]+)x its floor", out) > 0  # the floor was measured


@pytest.mark.parametrize(
    ("name", "pattern"),
    [
        ("overhead_per_run.py", r"overhead per run above the loop: (-?[\d.]+) s"),
        ("noop.py", r"no-op: ([\d.]+) s"),
        ("trainer.py", r"median time to target: ([\d.]+) s"),
    ],
)
def test_workflow_benches(name: str, pattern: str) -> None:
    number(pattern, bench(name, timeout=600))


def test_slurm_latency_skips_without_slurm(tmp_path) -> None:
    """Without Slurm's commands the Slurm bench says so and exits 0 (tests/test_slurm.py runs
    it where a Slurm is up)."""
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "slurm_latency.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={"PATH": str(tmp_path), "HOME": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("slurm_latency: skipped: no Slurm here (Slurm's client commands")
    assert ".ci/slurm-up.sh" in proc.stdout


def test_slurm_latency_schedule_is_the_executors() -> None:
    """The schedule the Slurm bench prints (no Slurm needed) is the executor's: the first check
    after I s, then 10 s more after each check that found nothing, at most 180 s."""
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench/slurm_latency.py"), "--schedule", "--init-seconds", "5"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    row = re.search(r"^\s+5 (.*)$", proc.stdout, re.M)
    assert row, proc.stdout
    cells = re.findall(r"(\d+) / +(\d+) +([\d.]+)/min", row.group(1))
    # T=10 s: checks at 5 and 20 s; T=60 s: at 45 and 80 s; T=5400 s: at the 180 s cap
    assert [int(worst) for worst, _, _ in cells] == [15, 35, 105, 180]
    assert int(cells[3][1]) == 90  # a long run is seen on average half the cap late
    assert float(cells[0][2]) == 6.0  # 2 checks in the first 20 s
