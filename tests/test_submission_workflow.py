"""``snakemake submission/verdict.json`` end to end (issue 24, "What it must show"), on one
campaign: ten bert-v5.0 runs of the replay trainer (tests/data/bert_replay: NVIDIA's published
v5.0 BERT logs re-timed to now, each logging its run's seed), its system given a submission:
block. The tree passes mlperf-logging's package checker and the verdict names the systems json
fields nobody knew; then run 2 is made again with run 1's seed and the rebuilt verdict fails,
naming the seed rule. The failure cases with a hand-edited tree are in tests/test_submission.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from scripts.core.run_records import RunRecord
from tests.bert_replay import BENCHMARK, SYSTEM, install
from tests.conftest import jobs_run, snakemake

pytestmark = pytest.mark.workflow

BLOCK = {
    "submitter": "ACME",
    "division": "closed",
    "status": "available",
    "system_name": "ACME replay box",
    "fields": {"cooling": "air"},
}


def _verdict(wf: Path) -> dict:
    return json.loads((wf / "submission" / "verdict.json").read_text())


def test_a_bert_campaign_submits_and_a_repeated_seed_fails_naming_the_seed_rule(
    workflow_copy: Path,
) -> None:
    wf = workflow_copy
    block = wf / "submit.yaml"
    block.write_text(yaml.safe_dump({"systems": {SYSTEM: {"submission": BLOCK}}}))
    configs = [*install(wf), str(block)]
    done = snakemake(wf, "submission/verdict.json", "--cores", "2", "--configfile", *configs)
    assert done.returncode == 0, done.stderr[-3000:]
    verdict = _verdict(wf)
    assert verdict["passed"] is True, verdict["problems"]
    assert (verdict["round"], verdict["ruleset"]) == ("5.0", "5.0.0")
    assert verdict["runs"] == {BENCHMARK: {SYSTEM: 10}}
    # a required field nobody knew is named (and written empty); one the block gives is not
    missing = verdict["missing_fields"][SYSTEM]
    assert "host_memory_capacity" in missing and "cooling" not in missing
    tree = wf / "submission" / "ACME"
    systems = json.loads((tree / "systems" / f"{SYSTEM}.json").read_text())
    assert systems["host_memory_capacity"] == "" and systems["status"] == "Available on-premise"
    assert systems["accelerators_per_node"] == "0" and systems["accelerator_model_name"] == "N/A"
    for n in range(10):
        run = wf / "results" / BENCHMARK / SYSTEM / f"run_{n + 1:02d}" / "mlperf.log"
        result = tree / "results" / SYSTEM / "bert" / f"result_{n}.txt"
        assert result.read_bytes() == run.read_bytes()
    readme = tree / "benchmarks" / "bert" / "implementations" / BENCHMARK / "README.md"
    assert "tests/data/bert_replay/replay.py" in readme.read_text()
    assert "SUCCESS" in (wf / "submission" / "package_check.log").read_text()

    # run 2 again with run 1's seed: the same campaign, one run and the submission redone
    seeds = [
        RunRecord.read(wf / "results" / BENCHMARK / SYSTEM / f"run_{n:02d}" / "run.json").seed
        for n in range(1, 11)
    ]
    seeds[1] = seeds[0]
    repeat = wf / "repeat.yaml"
    repeat.write_text(yaml.safe_dump({"benchmarks": {BENCHMARK: {"seeds": seeds}}}))
    moved = subprocess.run(
        [sys.executable, "-m", "scripts", "rerun", BENCHMARK, SYSTEM, "2"],
        cwd=wf,
        capture_output=True,
        text=True,
    )
    assert moved.returncode == 0, moved.stderr
    again = snakemake(
        wf, "submission/verdict.json", "--cores", "2", "--configfile", *configs, str(repeat)
    )
    assert again.returncode == 0, again.stderr[-3000:]
    ran = sorted(job.split()[0] for job in jobs_run(again.stderr))
    assert ran == ["submission", "train_run"], again.stderr[-5000:]
    verdict = _verdict(wf)
    assert verdict["passed"] is False
    (problem,) = verdict["problems"]
    assert problem.startswith(
        "seed rule (mlperf-logging's package checker wants a distinct logged seed for every run)"
    )
    assert f"submission/ACME/results/{SYSTEM}/bert/result_1.txt logs seed {seeds[0]}" in problem
