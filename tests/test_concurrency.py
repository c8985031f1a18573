"""Concurrent runs on one machine: disjoint GPUs through CUDA_VISIBLE_DEVICES, never more than
the system declares, and the tables say which runs overlapped."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import yaml

from tests.conftest import fake_campaign, snakemake

TARGET = "results/fake/summary.csv"


def gpu_campaign(wf: Path, devices: list[int]) -> list[str]:
    """Two fake runs of one GPU each, 1 thread, 2-4 s long, on a machine with ``devices``."""
    bench = fake_campaign(wf, runs=2, faults={"env_dir": "envs", "epoch_s": 1.0})
    system = wf / "gpus.yaml"
    system.write_text(
        yaml.safe_dump(
            {
                "systems": {
                    "local": {
                        "threads": 1,
                        "gpus": 1,
                        "gpu_devices": devices,
                        "gpu_lock_dir": str(wf / "gpu-locks"),
                    }
                }
            }
        )
    )
    return ["--configfile", str(bench), str(system)]


def trainer_records(wf: Path) -> dict[int, dict]:
    records = [json.loads(p.read_text()) for p in (wf / "envs").glob("run_*.json")]
    assert len(records) == 2, records
    return {r["run"]: r for r in records}


def results(wf: Path) -> dict[int, dict]:
    return {
        r: json.loads((wf / f"results/fake/local/run_0{r}/result.json").read_text()) for r in (1, 2)
    }


def test_two_concurrent_runs_get_different_gpus_and_both_are_recorded(workflow_copy: Path):
    wf = workflow_copy
    args = gpu_campaign(wf, devices=[0, 1])
    proc = snakemake(wf, TARGET, "--cores", "2", "--resources", "gpu=2", *args)
    assert proc.returncode == 0, proc.stderr[-3000:]

    seen = trainer_records(wf)
    visible = {run: r["env"]["CUDA_VISIBLE_DEVICES"] for run, r in seen.items()}
    assert sorted(visible.values()) == ["0", "1"]  # disjoint, from the declared list
    # they really ran at the same time
    assert seen[1]["start"] < seen[2]["end"] and seen[2]["start"] < seen[1]["end"]

    res = results(wf)
    for run in (1, 2):
        assert res[run]["gpu_devices"] == [visible[run]]
        assert res[run]["gpu_assignment"] == "lock"
        meta = json.loads((wf / f"results/fake/local/run_0{run}/run.json").read_text())
        assert meta["gpu_devices"] == [visible[run]]
    runs = pd.read_csv(wf / "results/fake/runs.csv", dtype={"gpu_devices": str})
    assert sorted(runs["gpu_devices"]) == ["0", "1"]
    assert list(runs["overlapping_runs"]) == [1, 1]
    assert pd.read_csv(wf / TARGET).loc[0, "n_overlapped"] == 2


def test_runs_wait_for_a_gpu_rather_than_exceed_the_declared_ones(workflow_copy: Path):
    wf = workflow_copy
    # Snakemake would start both (gpu=2), but the system declares one GPU: they take turns
    args = gpu_campaign(wf, devices=[3])
    proc = snakemake(wf, TARGET, "--cores", "2", "--resources", "gpu=2", *args)
    assert proc.returncode == 0, proc.stderr[-3000:]

    seen = trainer_records(wf)
    assert {r["env"]["CUDA_VISIBLE_DEVICES"] for r in seen.values()} == {"3"}
    first, second = sorted(seen.values(), key=lambda r: r["start"])
    assert first["end"] <= second["start"]  # never both on GPU 3 at once
    res = results(wf)
    assert all(r["gpu_devices"] == ["3"] for r in res.values())
    waited = [
        json.loads((wf / f"results/fake/local/run_0{r}/run.json").read_text())["gpu_wait_s"]
        for r in (1, 2)
    ]
    assert max(waited) > 0.5 and min(waited) < 0.5
    logs = [(wf / f"logs/train_run/fake/local/run_0{r}.log").read_text() for r in (1, 2)]
    assert any("waiting for 1 free GPU(s) of ['3']" in log for log in logs)
    runs = pd.read_csv(wf / "results/fake/runs.csv")
    assert list(runs["overlapping_runs"]) == [0, 0]  # the trainers did not overlap
