"""A campaign's runs as an MLPerf submission (scripts/submission/): what is eligible, the
systems json, the tree, and mlperf-logging's own package checker run on trees made from
NVIDIA's published v5.0 BERT logs (hand-made campaign folders: each run's mlperf.log is one of
the published result_N.txt, with its run.json and result.json)."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlperf_logging.system_desc_checker import system_desc_checker

from scripts.campaign import action_plan, config_checks
from scripts.campaign.actions import RemoveStale
from scripts.core import hashing
from scripts.core.config import ConfigError
from scripts.submission import cli
from scripts.submission.checker_log import read_output, run_checker
from scripts.submission.plan import eligible_inputs, plan_file, submission_plan
from scripts.submission.system_desc import (
    CHECKED_STATUSES,
    REQUIRED_FIELDS,
    status_for,
    system_desc,
)
from scripts.submission.tree import build
from tests.conftest import published
from tests.test_preflight import ROOT, bench, run_files, state

REPO = Path(__file__).resolve().parents[1]
NYX_BERT = published() / "mlperf-v5.0-nvidia" / "results" / "nyx_n1_ngc25.04_pytorch" / "bert"
BLOCK = {"submitter": "ACME", "division": "closed", "status": "available", "system_name": "ACME 8x"}
ENVIRONMENT = {
    "system": "sut",
    "backend": "local",
    "python": "3.11.7",
    "packages": {"torch": "2.5.1", "numpy": "1.26.4", "sacrebleu": None},
    "cpu_model": "Intel(R) Xeon(R) Platinum 8480C",
    "cpu_count": 224,
    "gpus": ["NVIDIA H100 80GB HBM3, 81559 MiB, 550.54.15"] * 8,
    "os": "Linux 5.15.0-105-generic",
    "workflow_git": {"commit": "abc123", "dirty": False},
    "digest": "e" * 64,
}


def campaign_config(tmp_path: Path, runs: int = 10, **extra: Any) -> dict[str, Any]:
    """bert-v5.0 on 'sut' (a submission block), the embedded gnmt, 'local' (no block) and an
    import system of NVIDIA's published logs with a block."""
    overlay = {
        "campaign": {"benchmarks": ["gnmt", "bert-v5.0"], "systems": ["local", "sut", "nv"]},
        "benchmarks": {
            "bert-v5.0": {
                "runs": runs,
                "implementation": {"command": "{python} replay.py --seed {seed}"},
                "dataset": {
                    "files": [{"name": "x", "url": "file:///dev/null", "sha256": "0" * 64}]
                },
                **extra,
            }
        },
        "systems": {
            "sut": {
                "backend": "local",
                "gpus": 8,
                "topology": {"sockets": 2, "cores_per_socket": 56, "threads_per_core": 2},
                "submission": {**BLOCK, "fields": {"cooling": "air"}},
            },
            "nv": {
                "backend": "import",
                "import_dir": str(NYX_BERT.parent),
                "submission": {**BLOCK, "submitter": "NVIDIA"},
            },
        },
    }
    path = tmp_path / "overlay.yaml"
    path.write_text(yaml.safe_dump(overlay))
    return config_checks.load_campaign([REPO / "config/benchmarks/mlperf-v5.0.yaml", path])


def make_runs(root: Path, runs: int = 10, logs: Path = NYX_BERT) -> None:
    """results/bert-v5.0/sut/run_NN with NVIDIA's result_{N-1}.txt as its mlperf.log, and the
    system's environment.json."""
    system = root / "results" / "bert-v5.0" / "sut"
    record = {"benchmark": "bert-v5.0", "hyperparameters": {}, "system": {"backend": "local"}}
    for n in range(1, runs + 1):
        run = system / f"run_{n:02d}"
        run.mkdir(parents=True)
        shutil.copyfile(logs / f"result_{(n - 1) % 10}.txt", run / "mlperf.log")
        meta = {
            "benchmark": "bert-v5.0",
            "system": "sut",
            "run": n,
            "seed": n,
            "command": f"python3 replay.py --seed {n}",
            "config_fingerprint": hashing.canonical_sha256(record),
            "comparability": record,
            "environment_digest": ENVIRONMENT["digest"],
        }
        (run / "run.json").write_text(json.dumps(meta))
        (run / "result.json").write_text(json.dumps({"benchmark": "bert-v5.0", "run": n}))
    (system / "environment.json").write_text(json.dumps(ENVIRONMENT))


def submit(tmp_path: Path, config: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
    plan = plan_file(submission_plan(config), tmp_path)
    verdict = tmp_path / "submission" / "verdict.json"
    status = cli.main(["--plan", plan, "--output", str(verdict), "--root", str(tmp_path)])
    return status, json.loads(verdict.read_text()) if verdict.exists() else None


# -- what is eligible -------------------------------------------------------------------------


def test_only_systems_with_a_block_and_mlperf_benchmarks_are_planned(tmp_path: Path) -> None:
    plan = submission_plan(campaign_config(tmp_path))
    assert (plan["round"], plan["ruleset"], list(plan["trees"])) == ("5.0", "5.0.0", ["ACME"])
    (entry,) = plan["trees"]["ACME"]["entries"]
    assert (entry["benchmark"], entry["mlperf_name"], entry["system"]) == (
        "bert-v5.0",
        "bert",
        "sut",
    )
    assert entry["runs"] == [f"results/bert-v5.0/sut/run_{n:02d}" for n in range(1, 11)]
    assert entry["implementation"] == {"kind": "pointer", "name": "bert-v5.0", "stamp": None}
    skipped = "\n".join(plan["skipped"])
    assert "system local: no submission: block" in skipped
    assert "system nv: backend import: its runs are published results, never submitted" in skipped
    assert "benchmark gnmt: not an MLPerf benchmark" in skipped and "toy" in skipped
    files = eligible_inputs(plan)
    assert files[0] == "results/bert-v5.0/sut/environment.json" and len(files) == 1 + 3 * 10
    assert "results/bert-v5.0/sut/run_10/mlperf.log" in files


def test_every_run_goes_in_under_m_of_n(tmp_path: Path) -> None:
    plan = submission_plan(campaign_config(tmp_path, runs=12, window=10))
    (entry,) = plan["trees"]["ACME"]["entries"]
    assert len(entry["runs"]) == 12 and entry["window"] == 10


def test_nothing_eligible_and_two_rounds_are_refused_by_name(tmp_path: Path) -> None:
    config = campaign_config(tmp_path)
    config["systems"]["sut"].pop("submission")
    with pytest.raises(ConfigError, match="nothing to submit.*system sut: no submission: block"):
        submission_plan(config)
    config = campaign_config(tmp_path)
    v51 = config_checks.load_campaign([REPO / "config/benchmarks/mlperf-v5.1.yaml"])
    config["benchmarks"]["retinanet-v5.1"] = {
        **v51["benchmarks"]["retinanet-v5.1"],
        "implementation": config["benchmarks"]["bert-v5.0"]["implementation"],
    }
    config["campaign"]["benchmarks"].append("retinanet-v5.1")
    with pytest.raises(ConfigError, match=r"round 5.0 \(bert-v5.0\); round 5.1 \(retinanet-v5.1\)"):
        submission_plan(config)


def test_the_plan_file_is_named_by_its_content(tmp_path: Path) -> None:
    plan = submission_plan(campaign_config(tmp_path))
    path = Path(plan_file(plan, tmp_path))
    assert path.parent == tmp_path / ".snakemake" / "submission-plans"
    assert json.loads(path.read_text()) == plan and plan_file(plan, tmp_path) == str(path)
    plan["trees"]["ACME"]["systems"]["sut"]["submission"]["division"] = "open"
    assert plan_file(plan, tmp_path) != str(path)


# -- systems/<system>.json --------------------------------------------------------------------


def test_the_systems_json_is_filled_from_the_environment_and_names_what_nobody_knew() -> None:
    facts = {"submission": {**BLOCK, "fields": {"cooling": "air", "framework_name": "x"}},
             "gpus": 8, "nodes": 2, "topology": {"sockets": 2, "cores_per_socket": 56}}  # fmt: skip
    desc = system_desc(facts, ENVIRONMENT, "5.0")
    assert list(desc.fields)[: len(REQUIRED_FIELDS)] == list(REQUIRED_FIELDS)
    f = desc.fields
    assert (f["submitter"], f["status"], f["number_of_nodes"], f["accelerators_per_node"]) == (
        "ACME", "Available on-premise", "2", "8"
    )  # fmt: skip
    assert (f["host_processors_per_node"], f["host_processor_core_count"]) == ("2", "56")
    assert f["host_processor_model_name"] == "Intel(R) Xeon(R) Platinum 8480C"
    assert (f["accelerator_model_name"], f["accelerator_memory_capacity"]) == (
        "NVIDIA H100 80GB HBM3", "81559 MiB"
    )  # fmt: skip
    assert (
        f["framework"] == "PyTorch 2.5.1" and f["cooling"] == "air" and f["framework_name"] == "x"
    )
    assert f["other_software_stack"] == {
        "python": "3.11.7", "torch": "2.5.1", "numpy": "1.26.4", "gpu_driver": "550.54.15"
    }  # fmt: skip
    assert "cooling" not in desc.unknown and "hw_notes" not in desc.unknown
    assert {"host_memory_capacity", "host_storage_type", "accelerator_interconnect"} <= set(
        desc.unknown
    )
    assert all(f[name] == "" for name in desc.unknown)
    cpu_only = system_desc({**facts, "gpus": 0}, {}, "3.1")
    assert cpu_only.fields["accelerator_model_name"] == "N/A"
    assert cpu_only.fields["status"] == "available"  # before 4.0 the checker reads no status
    assert "host_processor_model_name" in cpu_only.unknown  # no environment.json


def _check(tmp_path: Path, fields: dict[str, Any], ruleset: str = "5.0.0") -> bool:
    path = tmp_path / "sut.json"
    path.write_text(json.dumps(fields))
    logging.disable(logging.CRITICAL)  # the checker logs through the root logger
    try:
        valid, *_ = system_desc_checker.check_system_desc(str(path), "training", ruleset)
    finally:
        logging.disable(logging.NOTSET)
    return bool(valid)


def test_the_required_fields_and_statuses_are_the_installed_checkers(tmp_path: Path) -> None:
    facts = {"submission": BLOCK, "gpus": 8, "nodes": 1, "topology": None}
    fields = system_desc(facts, ENVIRONMENT, "5.0").fields
    assert _check(tmp_path, fields)
    for name in REQUIRED_FIELDS:  # each one is required: the list is neither short nor long
        assert not _check(tmp_path, {k: v for k, v in fields.items() if k != name}), name
    for status in CHECKED_STATUSES:
        assert _check(tmp_path, {**fields, "status": status})
    for word in ("available", "preview", "research"):
        assert not _check(tmp_path, {**fields, "status": word})
        assert _check(tmp_path, {**fields, "status": status_for(word, "5.0")})
        assert _check(tmp_path, {**fields, "status": status_for(word, "3.1")}, "3.1.0")


# -- the package checker's output in words -----------------------------------------------------


CHECKER_OUTPUT = """\
INFO -  Checking System Description Files
ERROR -   System description checker failed for ACME 8x : ['Missing field cooling']
ERROR - System description file checker failed
INFO -  Running compliance checks in dir submission/ACME/results/sut/bert
INFO - Running compliance on file: submission/ACME/results/sut/bert/result_2.txt
WARNING -  Required EXACTLY_ONE occurrence of 'run_stop' but found 0
INFO - ------------------------------
INFO - Running compliance on file: submission/ACME/results/sut/bert/result_3.txt
WARNING -  Required EXACTLY_ONE occurrence of 'run_stop' but found 0
ERROR -  2 files do not comply, directory cannot be accepted
ERROR -  Seed checker failed and found the following errors: Result file d/result_1.txt logs \
seed 27912 on /workspace/bert/run_pretraining.py:1399. However, result file d/result_0.txt \
already logs the same seed on the same line.
Result file d/result_5.txt logs seed 27912 on /workspace/bert/run_pretraining.py:1399. However, \
result file d/result_0.txt already logs the same seed on the same line.
ERROR - Seed checker failed
INFO -  Running RCP Checker, pass: pruned_rcps
WARNING -  Run incomplete or did not converge. Marking as infinite.
ERROR - RCP Test Failed: Insufficient convergence
INFO - PACKAGE CHECKER FOUND ERRORS, LOOK INTO ERROR LOG LINES AND FIX THEM.

** Detailed log output is also at /dev/null
"""


def test_the_checkers_errors_are_problems_in_the_words_of_their_rules() -> None:
    said = read_output(CHECKER_OUTPUT, {"ACME 8x": "submission/ACME/systems/sut.json"})
    assert not said.passed
    dir_ = "submission/ACME/results/sut/bert"
    assert said.problems == [
        "system description submission/ACME/systems/sut.json: Missing field cooling",
        f"compliance: {dir_}: 2 logs do not comply ({dir_}/result_2.txt: Required EXACTLY_ONE "
        f"occurrence of 'run_stop' but found 0; {dir_}/result_3.txt: Required EXACTLY_ONE "
        "occurrence of 'run_stop' but found 0); the package checker accepts at most 1 under "
        "olympic scoring",
        *(
            "seed rule (mlperf-logging's package checker wants a distinct logged seed for every "
            f"run): d/result_{n}.txt logs seed 27912 from run_pretraining.py:1399, as "
            "d/result_0.txt does; give every run its own seed (the benchmark's seeds:, or leave "
            "seeds out: each run then gets its own)"
            for n in (1, 5)
        ),
        f"RCP check: {dir_}: Insufficient convergence (mlperf-logging's rcp_checker)",
    ]
    assert f"{dir_}/result_2.txt: Required EXACTLY_ONE occurrence of 'run_stop' but found 0" in (
        said.warnings
    )


def test_a_checker_that_stops_or_says_nothing_is_a_problem() -> None:
    crashed = read_output("INFO - x\nTraceback (most recent call last):\n  ...\nKeyError: 'a'\n")
    assert not crashed.passed
    assert crashed.problems == ["the package checker stopped with an error: KeyError: 'a'"]
    usage = read_output("usage: ...\nerror: argument ruleset: invalid choice: '9.9.9'\n", None, 2)
    assert usage.problems == [
        "the package checker did not finish (exit status 2, no verdict in its output): "
        "error: argument ruleset: invalid choice: '9.9.9'"
    ]
    assert read_output("INFO - PACKAGE CHECKER FOUND NO ERRORS, SUCCESS !\n").passed


# -- the tree and the verdict, with the real checker ------------------------------------------


@pytest.fixture(scope="module")
def passed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A 10-run campaign of NVIDIA's published logs, submitted once for the tests that read it."""
    root = tmp_path_factory.mktemp("campaign")
    make_runs(root)
    status, verdict = submit(root, campaign_config(root))
    assert status == 0 and verdict is not None
    return root, verdict


def test_ten_published_runs_make_a_tree_the_package_checker_passes(
    passed: tuple[Path, dict[str, Any]],
) -> None:
    root, verdict = passed
    assert verdict["passed"] is True, verdict["problems"]
    assert (verdict["round"], verdict["ruleset"], verdict["format_version"]) == ("5.0", "5.0.0", 1)
    assert verdict["checker"].startswith("mlperf-logging ") and verdict["problems"] == []
    assert verdict["runs"] == {"bert-v5.0": {"sut": 10}}
    assert "host_memory_capacity" in verdict["missing_fields"]["sut"]
    assert any("fields the workflow cannot know" in w for w in verdict["warnings"])
    assert any('log submission_org "NVIDIA"' in w for w in verdict["warnings"])
    assert any(s.startswith("benchmark gnmt: not an MLPerf") for s in verdict["skipped"])
    tree = root / "submission" / "ACME"
    for n in range(10):
        log = tree / "results" / "sut" / "bert" / f"result_{n}.txt"
        assert log.read_bytes() == (NYX_BERT / f"result_{n}.txt").read_bytes()
    systems = json.loads((tree / "systems" / "sut.json").read_text())
    assert systems["system_name"] == "ACME 8x" and systems["host_memory_capacity"] == ""
    impl = tree / "benchmarks" / "bert" / "implementations" / "bert-v5.0"
    readme = (impl / "README.md").read_text()
    assert "`python3 replay.py --seed 1`" in readme and "image: none" in readme
    log = (root / "submission" / "package_check.log").read_text()
    assert "mlperf_logging.package_checker submission/ACME training 5.0.0" in log
    assert "PACKAGE CHECKER FOUND NO ERRORS, SUCCESS !" in log


def test_a_missing_system_field_is_named_by_the_real_checker(
    passed: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    shutil.copytree(passed[0] / "submission" / "ACME", tmp_path / "submission" / "ACME")
    systems = tmp_path / "submission" / "ACME" / "systems" / "sut.json"
    fields = json.loads(systems.read_text())
    del fields["cooling"]
    systems.write_text(json.dumps(fields))
    _, output, code = run_checker(Path("submission/ACME"), "5.0.0", cwd=tmp_path)
    said = read_output(output, {"ACME 8x": "submission/ACME/systems/sut.json"}, code)
    assert not said.passed
    assert said.problems == [
        "system description submission/ACME/systems/sut.json: Missing field cooling"
    ]


def test_two_runs_with_one_seed_fail_and_the_verdict_names_the_seed_rule(tmp_path: Path) -> None:
    make_runs(tmp_path)
    first = (tmp_path / "results/bert-v5.0/sut/run_01/mlperf.log").read_text()
    seed = json.loads(next(x for x in first.splitlines() if '"key": "seed"' in x)[9:])["value"]
    second = tmp_path / "results/bert-v5.0/sut/run_02/mlperf.log"
    lines = second.read_text().splitlines(keepends=True)
    for i, line in enumerate(lines):
        if '"key": "seed"' in line:
            event = json.loads(line[9:])
            lines[i] = ":::MLLOG " + json.dumps({**event, "value": seed}) + "\n"
    second.write_text("".join(lines))
    status, verdict = submit(tmp_path, campaign_config(tmp_path))
    assert status == 0 and verdict is not None and verdict["passed"] is False
    (problem,) = verdict["problems"]
    assert problem.startswith("seed rule (mlperf-logging's package checker wants a distinct")
    assert f"submission/ACME/results/sut/bert/result_1.txt logs seed {seed}" in problem
    assert "as submission/ACME/results/sut/bert/result_0.txt does" in problem


def test_a_published_implementation_goes_in_as_its_image_was_built(tmp_path: Path) -> None:
    """A benchmark run from a published folder (container.source): the tree holds the build
    context of each system's image, the generated config_<SYSTEM>.sh included; without the
    context, the source with a warning."""
    make_runs(tmp_path)
    plan = submission_plan(campaign_config(tmp_path))
    (entry,) = plan["trees"]["ACME"]["entries"]
    context = tmp_path / "build" / "bert-v5.0" / "sut" / "context"
    (context / ".git").mkdir(parents=True)
    (context / "run_and_time.sh").write_text("#!/bin/bash\n")
    (context / "config_sut.sh").write_text("export DGXNGPU=8\n")
    stamp = tmp_path / "results" / "bert-v5.0" / "sut" / "image.json"
    stamp.write_text(json.dumps({"context_sha256": hashing.tree_sha256(context)}))
    entry["implementation"] = {
        "kind": "source", "name": "tyche_ngpu8_ngc25.04_pytorch",
        "context": "build/bert-v5.0/sut/context", "source": "impl", "subdir": "",
        "stamp": "results/bert-v5.0/sut/image.json",
    }  # fmt: skip
    built = build(plan, tmp_path, tmp_path / "submission")
    impl = tmp_path / "submission/ACME/benchmarks/bert/implementations/tyche_ngpu8_ngc25.04_pytorch"
    assert sorted(p.name for p in impl.iterdir()) == ["config_sut.sh", "run_and_time.sh"]
    assert not [w for w in built.warnings if "context" in w]
    shutil.rmtree(context)
    (tmp_path / "impl").mkdir()
    (tmp_path / "impl" / "run_and_time.sh").write_text("#!/bin/bash\n")
    built = build(plan, tmp_path, tmp_path / "submission")
    assert sorted(p.name for p in impl.iterdir()) == ["run_and_time.sh"]
    assert any("build/bert-v5.0/sut/context is gone" in w for w in built.warnings)


def test_a_rerun_replaces_the_tree_and_a_wrong_run_count_is_said(tmp_path: Path) -> None:
    make_runs(tmp_path, runs=10)
    assert submit(tmp_path, campaign_config(tmp_path))[1]["passed"]  # type: ignore[index]
    stale = tmp_path / "submission" / "OLDCO" / "results"
    stale.mkdir(parents=True)
    mine = tmp_path / "submission" / "published" / "results"  # a user's: never removed
    mine.mkdir(parents=True)
    record = tmp_path / "submission" / ".trees-made.json"
    assert json.loads(record.read_text()) == ["ACME"]
    record.write_text(json.dumps(["ACME", "OLDCO"]))  # as an earlier submitter's job left it
    shutil.rmtree(tmp_path / "results/bert-v5.0/sut/run_10")
    status, verdict = submit(tmp_path, campaign_config(tmp_path, runs=9))
    assert status == 0 and verdict is not None and not verdict["passed"]
    results = tmp_path / "submission" / "ACME" / "results" / "sut" / "bert"
    assert sorted(p.name for p in results.glob("result_*.txt")) == [
        f"result_{n}.txt" for n in range(9)
    ]
    assert not (tmp_path / "submission" / "OLDCO").exists() and mine.is_dir()
    assert json.loads(record.read_text()) == ["ACME"]
    assert [p for p in verdict["problems"] if p.startswith("run count:")] == [
        "run count: submission/ACME/results/sut/bert holds 9 result_*.txt files, and the round's "
        "rules want exactly 10 of this benchmark (benchmark_meta's count): make the benchmark's "
        "runs: 10"
    ]


def test_runs_that_are_not_comparable_are_refused_with_the_differences(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_runs(tmp_path)
    meta_path = tmp_path / "results/bert-v5.0/sut/run_03/run.json"
    meta = json.loads(meta_path.read_text())
    meta["comparability"] = {**meta["comparability"], "hyperparameters": {"lr": 0.1}}
    meta_path.write_text(json.dumps(meta))
    status, verdict = submit(tmp_path, campaign_config(tmp_path))
    assert (status, verdict) == (1, None)
    err = capsys.readouterr().err
    assert "submission refused: the runs of results/bert-v5.0/sut are not comparable" in err
    assert "runs 03 were made under a different configuration" in err
    assert "hyperparameters.lr: 0.1 -> null" in err
    assert not (tmp_path / "submission" / "ACME").exists()


# -- a verdict of runs that are no longer all there --------------------------------------------


def test_a_run_moved_aside_makes_the_verdict_stale_at_load_time() -> None:
    """After ``python -m scripts rerun``, Snakemake redoes neither the run nor the verdict for a
    missing input alone: the load-time checks remove the verdict, so asking for it redoes both.
    Only an MLPerf benchmark's runs count (those with a compliance ruleset)."""
    verdict = ROOT / "submission" / "verdict.json"
    gone = run_files("02", log=False, meta=False, result=False)
    moved = bench(run_files("01"), gone, tables=())  # no table made yet: only the verdict goes
    mlperf = dataclasses.replace(moved, compliance_ruleset="5.0.0")
    assert action_plan.plan_actions(state(benchmarks=(mlperf,), verdict=verdict)) == [
        RemoveStale(((verdict, "run(s) s/run_02 of b have no result yet"),), ROOT)
    ]
    assert action_plan.plan_actions(state(benchmarks=(moved,), verdict=verdict)) == []
    done = dataclasses.replace(bench(run_files("01"), tables=()), compliance_ruleset="5.0.0")
    assert action_plan.plan_actions(state(benchmarks=(done,), verdict=verdict)) == []
    assert action_plan.plan_actions(state(benchmarks=(mlperf,))) == []  # no verdict
