"""One run-id format everywhere: folders, running markers, failed logs, rerun and status, for
campaigns of any size (a campaign of 120 runs has ids 001 .. 120)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from scripts.campaign import archive as campaign
from scripts.campaign import config_checks, run_specs, topology
from scripts.core import layout
from scripts.run.spec import RunSpec
from tests.conftest import fake_campaign, jobs_run, set_faults, snakemake

TARGET = "results/fake/summary.csv"


def test_run_ids_widen_with_the_run_count() -> None:
    assert layout.run_ids(3) == ["01", "02", "03"]
    assert layout.run_ids(99)[-1] == "99"
    ids = layout.run_ids(120)
    assert ids[0] == "001" and ids[6] == "007" and ids[-1] == "120"
    assert ids == sorted(ids)  # as text, in run order
    assert topology.run_ids(120) == ids  # the config's ids are the layout's
    assert [layout.run_number(layout.run_name(i)) for i in ids] == list(range(1, 121))
    assert layout.run_number("run_7") is None and layout.run_number("run_01.json") is None


def test_a_run_spec_carries_the_id_of_its_campaign() -> None:
    full = config_checks.load_campaign()
    full["benchmarks"]["gnmt"]["runs"] = 120
    spec = run_specs.run_spec(full, "gnmt", "local", 7, python="py", dataset_dir="d", run_dir="r")
    assert spec.run_id == "007"
    assert RunSpec.from_json(spec.to_json()).run_id == "007"
    old = json.loads(spec.to_json())
    del old["run_id"]  # a spec written before run ids were recorded: at least two digits
    assert RunSpec.from_json(json.dumps(old)).run_id == "07"


def test_rerun_finds_a_run_whatever_the_width(tmp_path: Path) -> None:
    for name in ("run_007", "run_105"):
        (tmp_path / "results/b/s" / name).mkdir(parents=True)
    dest = campaign.replace_run(tmp_path, "b", "s", 7)
    assert dest.name.startswith("run_007.replaced-")
    assert not (tmp_path / "results/b/s/run_007").exists()
    with pytest.raises(FileNotFoundError, match="no folder of run 8"):
        campaign.replace_run(tmp_path, "b", "s", 8)
    (tmp_path / "results/b/s/run_105").rename(tmp_path / "results/b/s/run_0105")
    (tmp_path / "results/b/s/run_105").mkdir()
    with pytest.raises(FileNotFoundError, match="are both run 105"):
        campaign.replace_run(tmp_path, "b", "s", 105)


def _status(wf: Path, overlay: Path) -> str:
    return subprocess.run(
        [sys.executable, "-m", "scripts.campaign.status", "--configfile", str(overlay)],
        cwd=wf,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def _wait_for(predicate, timeout: float = 600.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    pytest.fail("timed out waiting")


@pytest.mark.workflow
def test_a_campaign_of_120_runs_uses_three_digit_ids_everywhere(workflow_copy: Path) -> None:
    """Run 7 crashes on both of its attempts (retries: 1), run 42 hangs until its runner is
    stopped: their markers, failed logs and status all say run_007 and run_042; then both are
    redone, and `campaign rerun` of runs 105 and 9 makes exactly those two train again."""
    wf = workflow_copy
    faults = {"epoch_s": 0, "crash": [7], "hang": [42]}
    overlay = fake_campaign(wf, runs=120, faults=faults)
    data = yaml.safe_load(overlay.read_text())
    data["systems"] = {"local": {"retries": 1, "threads": 1}}
    overlay.write_text(yaml.safe_dump(data))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAKEMAKE")}
    with (wf / "first.log").open("w") as out:  # a file: a full pipe would block snakemake
        main = subprocess.Popen(
            [sys.executable, "-m", "snakemake", TARGET, "--cores", "2"]
            + ["--configfile", str(overlay)],
            cwd=wf,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        marker = wf / "logs/running/fake/local/run_042.json"
        _wait_for(marker.exists)
        assert "run_042  running" in _status(wf, overlay)
        os.kill(json.loads(marker.read_text())["pid"], signal.SIGTERM)  # its runner
        main.wait(timeout=900)
    finally:
        if main.poll() is None:
            main.kill()
            main.wait()
    assert main.returncode != 0  # two runs failed; keep-going finished the other 118
    failed = wf / "logs/failed/fake/local"
    assert sorted(p.name.split(".")[:2] for p in failed.glob("run_007.*")) == [
        ["run_007", "attempt1"],
        ["run_007", "attempt2"],
    ]
    assert [p.name.split(".")[1] for p in failed.glob("run_042.*")] == ["attempt1"]
    assert not list(failed.glob("run_07.*")) and not list((wf / "logs/running").rglob("*.json"))
    status = _status(wf, overlay)
    assert "fake/local: 120 runs: 118 done, 2 failed" in status
    assert "run_007  failed      trainer exited with status 3" in status
    assert "run_007.attempt2." in status and "interrupted by signal 15" in status
    assert "run_120  done" in status and "run_001  done" in status

    set_faults(wf, {"epoch_s": 0})
    proc = snakemake(wf, TARGET, "--cores", "2", "--configfile", str(overlay))
    assert proc.returncode == 0, proc.stderr[-3000:]
    trained = sorted(j for j in jobs_run(proc.stderr) if j.startswith("train_run"))
    assert trained == [f"train_run benchmark=fake, system=local, run={r}" for r in ("007", "042")]
    assert "fake/local: 120 runs: 120 done" in _status(wf, overlay)

    for run in ("105", "9"):
        moved = subprocess.run(
            [sys.executable, "-m", "scripts.campaign.archive", "rerun", "fake", "local", run],
            cwd=wf,
            capture_output=True,
            text=True,
        )
        assert moved.returncode == 0, moved.stderr
    kept = sorted(p.name.split(".")[0] for p in (wf / "results/archive/fake/local").iterdir())
    assert kept == ["run_009", "run_105"]
    status = _status(wf, overlay)
    assert "118 done, 2 missing" in status and "run_105  missing" in status
    again = snakemake(wf, TARGET, "--cores", "2", "--configfile", str(overlay))
    assert again.returncode == 0, again.stderr[-3000:]
    trained = sorted(j for j in jobs_run(again.stderr) if j.startswith("train_run"))
    assert trained == [f"train_run benchmark=fake, system=local, run={r}" for r in ("009", "105")]
    assert "fake/local: 120 runs: 120 done" in _status(wf, overlay)
