"""The benchmarks under bench/ keep working: each runs in its quick mode here; the full sizes
run on demand and their numbers are in docs/PERFORMANCE.md. Nothing here asserts a speed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, published

V50 = "mlperf-v5.0-nvidia"  # of the published logs (tests/data/published)


def torch_cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def bench(name: str, timeout: float = 300, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / name), "--quick", *args],
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


def test_dataset_tree() -> None:
    out = bench("dataset_tree.py")
    assert number(r"check of an intact tree \(each run\): ([\d.]+) ms", out) > 0
    assert number(r"check with one touched file \(hashed\): ([\d.]+) ms", out) > 0


def test_parse_logs() -> None:
    out = bench("parse_logs.py")
    assert "50 logs" in out and number(r"speed-up over mlp_parser: ([\d.]+)x", out) > 0


def test_parse_logs_v50() -> None:
    """The real v5.0 logs, once each; our scores are the official result summarizer's."""
    out = bench("parse_logs.py", 300, "--round", "5.0", "--v50", str(published() / V50))
    assert "68 real v5.0 logs" in out and number(r"speed-up over mlp_parser: ([\d.]+)x", out) > 0
    assert "our score = the official result summarizer's: 8 of 8 result folders" in out


@pytest.mark.workflow
def test_import_round() -> None:
    """A whole round (the NVIDIA v5.0 fixtures) through the workflow and through the official
    summarizer: both timed, every folder's score the same."""
    out = bench("import_round.py", 600, str(published() / V50))
    assert "68 logs" in out and number(r"summarizer / ours: ([\d.]+)x", out) > 0
    assert number(r"ours again, nothing new: +([\d.]+) s", out) > 0
    assert "8 of 8 folders equal to mlperf-logging's result summarizer" in out


@pytest.mark.workflow
def test_dry_run_scale() -> None:
    out = bench("dry_run_scale.py")
    rows = re.findall(r"^\s+(\d+)\s+(\d+)(?:\s+[\d.]+){5}$", out, re.M)
    assert [int(r[0]) for r in rows] == [100, 400]
    assert all(int(jobs) > int(runs) for runs, jobs in rows)  # every run was planned
    assert number(r"-n -q [\d.]+ s = ([\d.]+)x its floor", out) > 0  # the floor was measured


def test_seal_check() -> None:
    out = bench("seal_check.py")
    assert "200 sealed runs" in out and number(r"seal check of 200 runs: ([\d.]+) s", out) > 0
    assert "a truncated log among them was found: yes" in out


@pytest.mark.workflow
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


@pytest.mark.workflow
@pytest.mark.parametrize(
    ("name", "pattern"),
    [
        ("overhead_per_run.py", r"overhead ratio this commit / \w+: ([\d.]+) \(medians"),
        ("noop.py", r"no-op ratio this commit / \w+: ([\d.]+) \(medians"),
    ],
)
def test_workflow_benches_compare_with_a_git_revision_in_one_run(name: str, pattern: str) -> None:
    # HEAD against itself: the archived copy (tracked files, as a clone has them) runs the same
    # campaign, so both sides really ran; nothing is asserted about the ratio's size
    assert number(pattern, bench(name, 600, "--against", "HEAD")) > 0


@pytest.mark.workflow
def test_perturbation() -> None:
    out = bench("perturbation.py", 900)
    assert number(r"time to train, workflow / bare: ([\d.]+)", out) > 0
    assert number(r"time per epoch, workflow / bare: ([\d.]+)", out) > 0
    assert number(r"harness CPU per second of training: ([\d.]+)% of a core", out) >= 0
    assert number(r"chatty trainer, bare / workflow time to train: ([\d.]+)", out) > 0


def test_parse_memory() -> None:
    out = bench("parse_memory.py")
    assert "logs of 20 MB" in out
    rows = re.findall(r"^(parse|import)\s+(random|text|one-line)\s+[\d.]+\s+[\d.]+", out, re.M)
    assert len(rows) == 4  # every log was parsed in its own process
    assert number(r"highest peak RSS: ([\d.]+) MB", out) > 0


def gpu_check(*args: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHON": sys.executable}
    if path is not None:
        env["PATH"] = path
    return subprocess.run(
        ["bash", str(REPO / "bench" / "gpu_check.sh"), *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
        env=env,
    )


@pytest.mark.workflow
def test_gpu_check_runs_its_whole_path_on_the_cpu() -> None:
    """The CPU smoke mode: the campaign through snakemake and the timed training, small."""
    proc = gpu_check("--device", "cpu", "--quick", "--runs", "1", "--seconds", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "embedded campaign, 1 runs" in out
    assert number(r"median time to target: ([\d.]+) s", out) > 0
    assert number(r"median time per epoch: ([\d.]+) s", out) > 0
    assert number(r"median tokens/s: (\d+)", out) > 0
    assert number(r"synthetic tokens: timed: [\d.]+ s, \d+ steps, (\d+) tokens/s", out) > 0


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine has nvidia-smi")
def test_gpu_check_without_a_gpu_says_so_and_fails(tmp_path: Path) -> None:
    proc = gpu_check()
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: no NVIDIA GPU here: nvidia-smi is not installed")
    assert "Traceback" not in proc.stderr


@pytest.mark.skipif(torch_cuda(), reason="torch can use a GPU here")
def test_gpu_check_with_a_cpu_only_torch_says_so(tmp_path: Path) -> None:
    """A driver is there (a stand-in nvidia-smi that lists one GPU, as the real one would) but
    torch cannot use it: the message says which torch and what to install."""
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho '0, NVIDIA Test GPU, 550.00, 81559 MiB'\n")
    smi.chmod(0o755)
    proc = gpu_check(path=f"{tmp_path}:{os.environ['PATH']}")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "nvidia-smi: 0, NVIDIA Test GPU" in proc.stdout
    assert re.match(r"error: the GPU is there but torch cannot use it: torch \S+ ", proc.stderr)
    assert "Traceback" not in proc.stderr


def test_gpu_check_nvml_without_nvml_says_so_and_fails(tmp_path: Path) -> None:
    """--nvml (power.source nvml on a real GPU) first asks NVML itself: with a stand-in
    nvidia-smi but no driver it stops in one line, before the campaign. The NVML run itself
    needs a GPU (never run here)."""
    from scripts.run.nvml_power import nvml_problem

    if nvml_problem() is None:
        pytest.skip("NVML works here")
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho '0, NVIDIA Test GPU, 550.00, 81559 MiB'\n")
    smi.chmod(0o755)
    proc = gpu_check("--nvml", path=f"{tmp_path}:{os.environ['PATH']}")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr == "error: --nvml: NVML not found: no NVIDIA driver on this host\n"
    assert subprocess.run(["bash", "-n", str(REPO / "bench" / "gpu_check.sh")]).returncode == 0


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
