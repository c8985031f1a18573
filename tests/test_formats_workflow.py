"""Format versions in the workflow: a campaign made by the workflow before run.json and
result.json carried format_version is picked up without any run executing again, and a file of
a newer workflow stops it before any job."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import (
    REPO,
    WORKFLOW_PARTS,
    copy_workflow,
    fake_campaign,
    jobs_run,
    snakemake,
    snapshot,
)

TARGET = "results/fake/summary.csv"
# main's head when format versions were added (the last workflow without them)
BEFORE_VERSIONS = "73864c044948fa391b621cfad4f974e91f491297"
# main's head before plan.py, backends/, preflight.py and the column registry (issue 13)
BEFORE_PLAN = "03872ebec71641e2f2aaace91948816d35e90f10"


def old_workflow(dest: Path, commit: str = BEFORE_VERSIONS) -> Path:
    """The whole tree of the workflow at ``commit``, from this repository's git."""
    known = subprocess.run(
        ["git", "-C", str(REPO), "cat-file", "-e", f"{commit}^{{commit}}"],
        capture_output=True,
    )
    if known.returncode != 0:
        pytest.skip(f"this checkout has no commit {commit[:12]} (a shallow clone?)")
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", commit], capture_output=True, check=True
    ).stdout
    dest.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def trainer_starts(wf: Path) -> int:
    return len(list((wf / "markers").glob("run_*.*")))


def new_code_in(wf: Path) -> None:
    """This workflow's code in place of the old one in ``wf``; results/, data/, logs/,
    .snakemake and the campaign's own files stay."""
    for part in WORKFLOW_PARTS:
        path = wf / part
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    copy_workflow(wf)


def picked_up_by_the_new_code(
    wf: Path, overlay: str, before: dict[str, object], starts: int
) -> None:
    """This workflow's code in place of the old one in ``wf``: it runs no training, changes no
    file under results/, and status sees every run done."""
    new_code_in(wf)
    again = snakemake(wf, TARGET, "--cores", "2", "--configfile", overlay)
    assert again.returncode == 0, again.stderr[-3000:]
    jobs = jobs_run(again.stdout + again.stderr)
    print("jobs of the new workflow:", jobs)
    assert not [j for j in jobs if j.startswith(("train_run", "verify_dataset", "unpack"))], jobs
    assert trainer_starts(wf) == starts
    assert snapshot(wf) == before  # every file under results/: same bytes, same mtime
    status = subprocess.run(
        [sys.executable, "-m", "scripts.campaign.status", "--configfile", overlay],
        cwd=wf,
        capture_output=True,
        text=True,
    )
    assert status.returncode == 0, status.stderr
    assert "2 runs: 2 done" in status.stdout


@pytest.mark.workflow
def test_a_campaign_made_before_format_versions_is_picked_up_without_running_again(
    tmp_path: Path,
) -> None:
    wf = old_workflow(tmp_path / "wf")
    overlay = str(fake_campaign(wf, runs=2, faults={"marker_dir": "markers"}))
    first = snakemake(wf, TARGET, "--cores", "2", "--configfile", overlay)
    assert first.returncode == 0, first.stderr[-3000:]
    for run in ("01", "02"):  # made by the old code: no versions
        assert "format_version" not in json.loads(
            (wf / f"results/fake/local/run_{run}/run.json").read_text()
        )
        assert "format_version" not in json.loads(
            (wf / f"results/fake/local/run_{run}/result.json").read_text()
        )
    assert "format_version" not in json.loads((wf / "data/fake/manifest.json").read_text())
    before, starts = snapshot(wf), trainer_starts(wf)
    assert "results/fake/local/run_02/result.json" in before and TARGET in before
    assert starts == 2
    picked_up_by_the_new_code(wf, overlay, before, starts)


@pytest.mark.workflow
def test_a_campaign_made_before_the_plan_and_backends_split_is_picked_up_without_running_again(
    tmp_path: Path,
) -> None:
    # issue 13: plan.py, backends/, preflight.py, the column registry, renamed modules
    wf = old_workflow(tmp_path / "wf", BEFORE_PLAN)
    overlay = str(fake_campaign(wf, runs=2, faults={"marker_dir": "markers"}))
    first = snakemake(wf, TARGET, "--cores", "2", "--configfile", overlay)
    assert first.returncode == 0, first.stderr[-3000:]
    assert (wf / "scripts/docker_backend.py").exists() and not (wf / "scripts/plan.py").exists()
    before, starts = snapshot(wf), trainer_starts(wf)
    assert "results/fake/local/run_02/result.json" in before and TARGET in before
    assert starts == 2
    picked_up_by_the_new_code(wf, overlay, before, starts)


@pytest.mark.workflow
def test_a_run_json_of_a_newer_workflow_stops_the_workflow_before_any_job(
    workflow_copy: Path,
) -> None:
    wf = workflow_copy
    overlay = str(fake_campaign(wf, runs=2))
    first = snakemake(wf, TARGET, "--cores", "2", "--configfile", overlay)
    assert first.returncode == 0, first.stderr[-3000:]
    meta_path = wf / "results/fake/local/run_01/run.json"
    meta = json.loads(meta_path.read_text())
    assert meta["format_version"] == 1
    assert (
        json.loads((wf / "results/fake/local/run_01/result.json").read_text())["format_version"]
        == 1
    )
    meta_path.write_text(json.dumps({**meta, "format_version": 2}, indent=2))
    newer = meta_path.read_bytes()
    (wf / TARGET).unlink()  # a job to do, were the workflow to go on
    again = snakemake(wf, TARGET, "--cores", "2", "--configfile", overlay)
    assert again.returncode != 0
    assert jobs_run(again.stdout + again.stderr) == []
    assert (
        "results/fake/local/run_01/run.json has format_version 2, but this workflow reads "
        "run.json up to version 1 (made by a newer workflow?)" in again.stderr
    )
    assert "Traceback" not in again.stderr
    assert not (wf / TARGET).exists() and meta_path.read_bytes() == newer
    status = subprocess.run(
        [sys.executable, "-m", "scripts.campaign.status", "--configfile", overlay],
        cwd=wf,
        capture_output=True,
        text=True,
    )
    assert status.returncode == 2
    assert "run_01/run.json has format_version 2" in status.stderr
    assert len(status.stderr.splitlines()) == 1
