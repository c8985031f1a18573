"""The import backend's batch: every run of a benchmark's import systems in one job
(scripts/run/published/batch.py import_batch, ``python -m scripts import batch``), over one or
several worker processes, with the same files either way, and a bad log that names itself
without losing the others."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.core.layout import result_files
from scripts.run.published.batch import batch_plan, import_batch
from tests.conftest import REPO, need_fixtures

V06 = "mlperf-v0.6-nvidia"
GNMT = {"metric": "bleu", "target": 24.0, "direction": "higher"}


def gnmt_plan(tmp_path: Path, folder: Path, *, ruleset: str | None = "0.6.0") -> dict:
    """A batch plan of every log of ``folder`` as the runs of system ``dgx1``."""
    runs = []
    for run, source in enumerate(result_files(folder), start=1):
        spec = {
            "benchmark": "gnmt-v0.6",
            "system": "dgx1",
            "run": run,
            "scale": "MLPerf",
            "mlperf_name": "gnmt",
            "config_fingerprint": "cfp",
            "comparability": {"x": 1},
        }
        runs.append((source, str(tmp_path / "results" / f"run_{run:02d}"), spec))
    bench = {"quality": GNMT, "log": {"time_to_train": "run_stop"}, "mlperf": {"round": "0.6"}}
    return batch_plan(
        "gnmt-v0.6",
        bench,
        runs,
        compliance_ruleset=ruleset,
        compliance_cache=str(tmp_path / "cache") if ruleset else None,
    )


def run_files(root: Path) -> dict[str, str]:
    """Every file the batch wrote under results/ as text to compare: JSON without the seals'
    mtimes (when the copy was written) and the tree's own path; a log by its sha256."""

    def timeless(value: object) -> object:
        if isinstance(value, dict):
            return {k: timeless(v) for k, v in value.items() if k != "mtime_ns"}
        return [timeless(v) for v in value] if isinstance(value, list) else value

    out: dict[str, str] = {}
    for path in sorted((root / "results").rglob("*")):
        if not path.is_file():
            continue
        if path.suffix == ".json":
            text = json.dumps(timeless(json.loads(path.read_text())), sort_keys=True)
            out[str(path.relative_to(root))] = text.replace(str(root), "<root>")
        else:
            out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def test_two_workers_write_what_one_writes_in_plan_order(tmp_path: Path) -> None:
    folder = need_fixtures() / V06 / "dgx1_ngc19.05_pytorch" / "gnmt"
    written = {}
    for workers in (1, 2):
        root = tmp_path / f"w{workers}"
        plan = gnmt_plan(root, folder)
        lines: list[str] = []
        outcomes = import_batch(plan, workers=workers, progress=lines.append)
        assert [o["dir"] for o in outcomes] == [r["dir"] for r in plan["runs"]]
        assert all(o["converged"] and o["compliance"] == "pass" for o in outcomes)
        assert [line.split("]")[0] for line in lines] == [f"[{i}/10" for i in range(1, 11)]
        written[workers] = run_files(root)
    assert len(written[1]) == 30 and written[1].keys() == written[2].keys()
    differ = [name for name in written[1] if written[1][name] != written[2][name]]
    assert not differ, f"one and two workers wrote different {differ[:3]}"
    result = json.loads((tmp_path / "w2" / "results" / "run_01" / "result.json").read_text())
    assert result["time_to_train_s"] == 1225.22  # result_0.txt, as the per-run import gave it


def test_a_bad_log_is_named_and_the_other_runs_are_imported(tmp_path: Path) -> None:
    src = tmp_path / "gnmt"
    shutil.copytree(need_fixtures() / V06 / "dgx1_ngc19.05_pytorch" / "gnmt", src)
    plan = gnmt_plan(tmp_path, src)
    plan["runs"][3]["spec"]["mlperf_name"] = "resnet"  # the folder of another benchmark
    (src / "result_5.txt").unlink()  # gone since the plan was made
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    proc = subprocess.run(
        [sys.executable, "-m", "scripts", "import", "batch", "--plan", path, "--workers", "2"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    # one bad log never stops the rest: each is a run without a result, named on its line
    assert proc.returncode == 0, proc.stderr
    wrong = "submission_benchmark is 'gnmt', but benchmark 'gnmt-v0.6' logs 'resnet'"
    lines = proc.stdout.splitlines()
    assert any("run_04: did NOT converge" in x and wrong in x for x in lines), proc.stdout
    gone = "result_5.txt cannot be read: No such file or directory"
    assert any("run_06: did NOT converge" in x and gone in x for x in lines), proc.stdout
    assert "gnmt-v0.6: 10 of 10 runs imported" in proc.stdout
    done = sorted(p.parent.name for p in (tmp_path / "results").glob("run_*/result.json"))
    assert done == [f"run_{i:02d}" for i in range(1, 11)]
    for run, why in (("run_04", wrong), ("run_06", gone)):
        result = json.loads((tmp_path / "results" / run / "result.json").read_text())
        assert not result["converged"] and result["time_to_train_s"] is None
        assert why in result["log_problems"][0]


@pytest.mark.parametrize(
    ("text", "why"),
    [("{", "not JSON"), ('{"format": 99, "runs": []}', "not a batch plan of format 1")],
)
def test_a_file_that_is_no_plan_is_refused_with_its_name(
    tmp_path: Path, text: str, why: str
) -> None:
    path = tmp_path / "plan.json"
    path.write_text(text)
    proc = subprocess.run(
        [sys.executable, "-m", "scripts.run.published.cli", "batch", "--plan", str(path)],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1
    assert f"error: {path}: " in proc.stderr and why in proc.stderr


@pytest.mark.workflow
def test_a_changed_published_log_redoes_its_batch_and_nothing_else(tmp_path: Path) -> None:
    """The workflow's batch job (rules/import.smk) imports the 10 runs; nothing is redone
    when nothing changed; a log rewritten in place (its run_stop gone) redoes the batch under
    the profile's rerun triggers, and runs.csv then shows that run unconverged."""
    from tests.conftest import copy_workflow, jobs_run, snakemake

    src = tmp_path / "dgx1"
    shutil.copytree(need_fixtures() / V06 / "dgx1_ngc19.05_pytorch", src)
    wf = copy_workflow(tmp_path / "wf")
    overlay = wf / "overlay.yaml"
    overlay.write_text(
        json.dumps(
            {
                "campaign": {"benchmarks": ["gnmt-v0.6"], "systems": ["nvidia-dgx1-v0.6"]},
                "systems": {"nvidia-dgx1-v0.6": {"import_dir": str(src)}},
            }
        )
    )
    args = ["results/gnmt-v0.6/runs.csv", "--cores", "2", "--configfile"]
    args += ["config/systems/nvidia-dgx1-v0.6.yaml", str(overlay)]
    first = snakemake(wf, *args)
    assert first.returncode == 0, first.stderr[-3000:]
    assert [j for j in jobs_run(first.stderr) if j.startswith("import_")] == ["import_gnmt_v0_6"]
    again = snakemake(wf, *args)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
    log = src / "gnmt" / "result_9.txt"  # run 10
    log.write_text("".join(x for x in log.read_text().splitlines(True) if "run_stop" not in x))
    redo = snakemake(wf, *args)
    assert redo.returncode == 0, redo.stderr[-3000:]
    assert [j for j in jobs_run(redo.stderr) if not j.startswith("collect")] == ["import_gnmt_v0_6"]
    runs = {int(r["run"]): r for r in csv.DictReader((wf / "results/gnmt-v0.6/runs.csv").open())}
    assert runs[10]["converged"] == "False" and runs[9]["converged"] == "True"


@pytest.mark.workflow
def test_a_changed_statistics_setting_redoes_the_tables_and_no_run(tmp_path: Path) -> None:
    """The profile never redoes a job for its params (rerun-triggers [mtime, input]); the
    load-time check records the tables' settings (plan.table_settings), so another bootstrap
    seed removes summary.csv and the leaderboard, which are made again, and imports nothing."""
    from tests.conftest import copy_workflow, jobs_run, snakemake

    wf = copy_workflow(tmp_path / "wf")
    overlay = wf / "overlay.yaml"
    src = need_fixtures() / V06 / "dgx1_ngc19.05_pytorch"
    overlay.write_text(
        json.dumps(
            {
                "campaign": {"benchmarks": ["gnmt-v0.6"], "systems": ["nvidia-dgx1-v0.6"]},
                "systems": {"nvidia-dgx1-v0.6": {"import_dir": str(src)}},
            }
        )
    )
    seed = wf / "seed.yaml"
    seed.write_text(json.dumps({"statistics": {"bootstrap_seed": 7}}))
    targets = ["results/gnmt-v0.6/summary.csv", "results/gnmt-v0.6/leaderboard.csv"]
    args = [*targets, "--cores", "2", "--configfile", "config/systems/nvidia-dgx1-v0.6.yaml"]
    first = snakemake(wf, *args, str(overlay))
    assert first.returncode == 0, first.stderr[-3000:]
    before = (wf / targets[0]).read_text()
    same = snakemake(wf, *args, str(overlay))
    assert "Nothing to be done" in same.stdout + same.stderr
    redo = snakemake(wf, *args, str(overlay), str(seed))
    assert redo.returncode == 0, redo.stderr[-3000:]
    rules = sorted(j.split()[0] for j in jobs_run(redo.stderr))
    assert rules == ["leaderboard", "summarize"]
    assert "made with other settings: statistics.bootstrap_seed: 20190618 -> 7" in redo.stderr
    after = (wf / targets[0]).read_text()
    assert after != before  # the bootstrap interval drew other resamples
