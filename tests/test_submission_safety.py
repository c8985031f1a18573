"""The submission's defences (scripts/submission/, issue 24's review): what the package checker
skips or says in passing is never read as a pass, an untrusted implementation folder never
writes outside the tree, a refused or stale submission leaves no old tree or SUCCESS, and the
configuration cannot contradict itself or name the job's own files. Real files, and
mlperf-logging's own package checker where its output is read."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from scripts.campaign import action_plan
from scripts.campaign.actions import RemoveStale
from scripts.campaign.stale import SubmissionFiles, stale_verdict, submission_files
from scripts.core.config import ConfigError
from scripts.submission import tree
from scripts.submission.checker_log import read_output, run_checker
from scripts.submission.plan import submission_plan
from scripts.submission.system_desc import system_desc
from tests.test_preflight import ROOT, bench, run_files, state
from tests.test_submission import BLOCK, NYX_BERT, campaign_config, make_runs, submit

FACTS = {"submission": BLOCK, "gpus": 8, "nodes": 1, "topology": None}


def checker_tree(root: Path, name: str = "bert", edit: dict[int, Any] | None = None) -> str:
    """submission/ACME/ with NVIDIA's ten published v5.0 BERT logs as results/sut/<name>/
    (``edit``: result number -> a function of its text); the checker's output."""
    folder = root / "submission" / "ACME" / "results" / "sut" / name
    folder.mkdir(parents=True)
    for n in range(10):
        text = (NYX_BERT / f"result_{n}.txt").read_text()
        (folder / f"result_{n}.txt").write_text((edit or {}).get(n, lambda t: t)(text))
    systems = root / "submission" / "ACME" / "systems"
    systems.mkdir()
    (systems / "sut.json").write_text(json.dumps(system_desc(FACTS, {}, "5.0").fields))
    _, output, code = run_checker(Path("submission/ACME"), "5.0.0", cwd=root)
    assert code == 0, output
    return output


# -- what the checker skips or says in passing (review findings 1 and 6) ----------------------


def test_a_benchmark_name_the_round_does_not_list_is_refused_and_never_a_pass(
    tmp_path: Path,
) -> None:
    """The package checker only warns "Skipping benchmark: BERT", checks nothing and prints
    SUCCESS: the plan refuses the name, and the verdict never reads that as a pass."""
    config = campaign_config(tmp_path)
    config["benchmarks"]["bert-v5.0"]["mlperf_name"] = "BERT"
    with pytest.raises(ConfigError, match=r"mlperf_name 'BERT' is not a Training benchmark of "):
        submission_plan(config)
    output = checker_tree(tmp_path, "BERT")
    assert "SUCCESS" in output and "Skipping benchmark: BERT" in output
    said = read_output(output, {}, 0, ["submission/ACME/results/sut/BERT"])
    assert not said.passed
    assert said.problems[0].startswith("the package checker skipped the results of BERT")
    assert said.problems[1].startswith(
        "the package checker never checked submission/ACME/results/sut/BERT"
    )


def test_the_olympic_verdict_is_the_folders_and_a_seed_parse_error_is_one_problem(
    tmp_path: Path,
) -> None:
    """Real output: a log without run_stop is accepted under olympic scoring (said of the
    folder, not of the last log); a log with a line that is not JSON is one seed problem."""
    no_stop = checker_tree(
        tmp_path / "a",
        edit={0: lambda t: "".join(x for x in t.splitlines(True) if '"run_stop"' not in x)},
    )
    said = read_output(no_stop, {}, 0)
    folder = "submission/ACME/results/sut/bert"
    assert said.passed
    assert f"{folder}: 1 file does not comply, accepting this under olympic scoring" in (
        said.warnings
    )
    assert f"{folder}/result_0.txt: Required EXACTLY_ONE occurrence of 'run_stop' but found 0" in (
        said.warnings
    )
    assert not [w for w in said.warnings if "result_9.txt" in w]
    broken = checker_tree(
        tmp_path / "b", edit={3: lambda t: t.replace(":::MLLOG {", ":::MLLOG {{", 1)}
    )
    said = read_output(broken, {}, 0)
    assert said.problems == [
        "seed rule (mlperf-logging's package checker wants a distinct logged seed for every "
        f"run): the seed checker could not read {folder}/result_3.txt: it has lines that are "
        "not MLLOG JSON; its compliance warnings quote them"
    ]
    assert not [w for w in said.warnings if "------" in w or "Log lines had" in w]


def test_the_olympic_acceptance_is_the_benchmarks_own() -> None:
    text = (
        "INFO -  Running compliance checks in dir t/results/s/{b}\n"
        "ERROR -  5 files do not comply, directory cannot be accepted\n"
        "INFO - PACKAGE CHECKER FOUND ERRORS, LOOK INTO ERROR LOG LINES AND FIX THEM.\n"
    )
    unet = read_output(text.format(b="unet3d")).problems[0]
    assert unet.endswith("the package checker accepts at most 4 under olympic scoring")
    bert = read_output(text.format(b="bert")).problems[0]
    assert bert.endswith("the package checker accepts at most 1 under olympic scoring")


# -- an untrusted implementation folder (findings 2 and 3) -------------------------------------


def test_links_of_a_published_folder_never_lead_a_write_out_of_the_tree(tmp_path: Path) -> None:
    """Two systems' build contexts merge into one implementation folder: A's lib is a link
    out of its context, B has a real lib/x.py; A's absolute link to /etc is left out; a link
    to a file inside the context goes in as the file."""
    outside = tmp_path / "outside"
    outside.mkdir()
    a, b, dest = tmp_path / "a", tmp_path / "b", tmp_path / "submission" / "impl"
    a.mkdir()
    (a / "lib").symlink_to(outside)
    (a / "hostlink").symlink_to("/etc/hostname")
    (a / "run.sh").write_text("#!/bin/bash\n")
    (a / "run_link.sh").symlink_to("run.sh")
    (a / "docs").mkdir()
    (a / "docs_link").symlink_to("docs")
    os.mkfifo(a / "pipe")  # copying it would block
    (b / "lib").mkdir(parents=True)
    (b / "lib" / "x.py").write_text("x = 1\n")
    (b / "docs_link").mkdir()
    (b / "docs_link" / "y.md").write_text("y\n")
    first = tree._copy_merged(a, dest)
    second = tree._copy_merged(b, dest)
    assert list(outside.iterdir()) == []
    assert sorted(first.left_out) == ["hostlink", "lib", "pipe"]
    assert not (dest / "hostlink").exists() and not (dest / "hostlink").is_symlink()
    assert (dest / "lib" / "x.py").read_text() == "x = 1\n" and not (dest / "lib").is_symlink()
    assert (dest / "run_link.sh").read_text() == "#!/bin/bash\n"
    assert not (dest / "run_link.sh").is_symlink()
    assert os.readlink(dest / "docs_link") == "docs"  # inside: the same link
    assert second.conflicts == ["docs_link (not a folder in the tree)"]
    assert not (dest / "docs" / "y.md").exists()
    reverse = tmp_path / "submission" / "reverse"
    tree._copy_merged(b, reverse)
    said = tree._copy_merged(a, reverse)  # a folder where the link would go: no IsADirectoryError
    assert said.conflicts == ["docs_link (a folder in the tree already)"]
    assert (reverse / "docs_link").is_dir() and not (reverse / "docs_link").is_symlink()
    assert (reverse / "lib" / "x.py").is_file()


def test_without_the_build_context_the_subdir_of_the_source_goes_in(tmp_path: Path) -> None:
    make_runs(tmp_path)
    plan = submission_plan(campaign_config(tmp_path))
    (entry,) = plan["trees"]["ACME"]["entries"]
    impl = tmp_path / "impl"
    (impl / "NVIDIA" / "bert").mkdir(parents=True)
    (impl / "README.md").write_text("the whole repository\n")
    (impl / "NVIDIA" / "bert" / "run_and_time.sh").write_text("#!/bin/bash\n")
    entry["implementation"] = {
        "kind": "source", "name": "bert", "context": "build/bert-v5.0/sut/context",
        "source": "impl", "subdir": "NVIDIA/bert", "stamp": "results/bert-v5.0/sut/image.json",
    }  # fmt: skip
    built = tree.build(plan, tmp_path, tmp_path / "submission")
    dest = tmp_path / "submission/ACME/benchmarks/bert/implementations/bert"
    assert sorted(p.name for p in dest.iterdir()) == ["run_and_time.sh"]
    assert any("source impl/NVIDIA/bert without" in w for w in built.warnings)
    entry["implementation"]["subdir"] = "../.."  # out of the source: a pointer, not a copy
    built = tree.build(plan, tmp_path, tmp_path / "submission")
    assert sorted(p.name for p in dest.iterdir()) == ["README.md"]
    assert any("leads out of the source" in w for w in built.warnings)


# -- what a refused or stale submission leaves (findings 4, 8, 9) ------------------------------


def test_a_refused_submission_leaves_no_old_tree_and_no_old_success(tmp_path: Path) -> None:
    make_runs(tmp_path)
    config = campaign_config(tmp_path)
    status, verdict = submit(tmp_path, config)
    assert status == 0 and verdict is not None and verdict["passed"]
    out = tmp_path / "submission"
    assert (out / "ACME").is_dir() and (out / "package_check.log").is_file()
    meta_path = tmp_path / "results/bert-v5.0/sut/run_03/run.json"
    meta = json.loads(meta_path.read_text())
    meta["comparability"] = {**meta["comparability"], "hyperparameters": {"lr": 0.1}}
    meta_path.write_text(json.dumps(meta))
    assert submit(tmp_path, config) == (1, None)
    assert sorted(p.name for p in out.iterdir()) == [".trees-made.json"]


def test_a_stale_verdict_takes_its_trees_and_log_with_it(tmp_path: Path) -> None:
    out = tmp_path / "submission"
    (out / "ACME" / "results").mkdir(parents=True)
    (out / "mine" / "results").mkdir(parents=True)  # a user's folder: not made by the job
    (out / "package_check.log").write_text("PACKAGE CHECKER FOUND NO ERRORS, SUCCESS !\n")
    (out / ".trees-made.json").write_text('["ACME"]\n')
    verdict = {"runs": {"b": {"s": 2}}, "trees": [{"submitter": "ACME"}]}
    (out / "verdict.json").write_text(json.dumps(verdict))
    files = submission_files(tmp_path)
    assert files == SubmissionFiles(
        out / "verdict.json", {"b": ("s",)}, (out / "package_check.log", out / "ACME")
    )
    stale = stale_verdict(files, {"b": ["s/run_02"]})
    assert [p for p, _ in stale] == [out / "verdict.json", out / "package_check.log", out / "ACME"]
    RemoveStale(tuple(stale), tmp_path).apply(False, lambda _: None)
    assert sorted(p.name for p in out.iterdir()) == [".trees-made.json", "mine"]


def test_only_the_verdicts_own_runs_make_it_stale() -> None:
    """A system without a submission: block (not in the verdict) moving a run aside leaves
    the verdict alone."""
    verdict = SubmissionFiles(ROOT / "submission" / "verdict.json", {"b": ("other",)})
    gone = run_files("02", log=False, meta=False, result=False)
    moved = dataclasses_replace(bench(run_files("01"), gone, tables=()))
    assert action_plan.plan_actions(state(benchmarks=(moved,), verdict=verdict)) == []
    mine = SubmissionFiles(verdict.verdict, {"b": ("s",)})
    assert action_plan.plan_actions(state(benchmarks=(moved,), verdict=mine)) == [
        RemoveStale(((verdict.verdict, "run(s) s/run_02 of b have no result yet"),), ROOT)
    ]


def dataclasses_replace(b: Any) -> Any:
    import dataclasses

    return dataclasses.replace(b, compliance_ruleset="5.0.0")


def test_a_folder_the_job_did_not_make_is_never_replaced(tmp_path: Path) -> None:
    make_runs(tmp_path)
    published = tmp_path / "submission" / "ACME" / "results"
    published.mkdir(parents=True)
    (published / "keep.txt").write_text("a user's\n")
    assert submit(tmp_path, campaign_config(tmp_path)) == (1, None)
    assert (published / "keep.txt").read_text() == "a user's\n"


# -- a configuration that contradicts itself (findings 7, 8, 10) -------------------------------


def test_the_block_cannot_be_contradicted_or_name_the_jobs_files(tmp_path: Path) -> None:
    config = campaign_config(tmp_path)
    config["systems"]["sut"]["submission"]["fields"] = {"division": "open", "cooling": "air"}
    with pytest.raises(ConfigError, match=r"systems.sut.submission.fields gives division"):
        submission_plan(config)
    facts = {**FACTS, "submission": {**BLOCK, "fields": {"division": "open"}}}
    assert system_desc(facts, {}, "5.0").fields["division"] == "closed"
    for name in ("verdict.json", "package_check.log"):
        config = campaign_config(tmp_path)
        config["systems"]["sut"]["submission"]["submitter"] = name
        with pytest.raises(ConfigError, match=f"submitter '{name}' is the name of the job's"):
            submission_plan(config)


def test_two_systems_of_one_submitter_cannot_share_a_system_name(tmp_path: Path) -> None:
    config = campaign_config(tmp_path)
    config["systems"]["sut2"] = {**config["systems"]["sut"]}
    config["campaign"]["systems"].append("sut2")
    with pytest.raises(ConfigError, match=r"systems sut and sut2 of submitter ACME both have "):
        submission_plan(config)


# -- M-of-N (finding 5) ------------------------------------------------------------------------


def test_under_m_of_n_the_verdict_names_the_window_and_the_run_count_is_expected(
    tmp_path: Path,
) -> None:
    """12 runs, window 10: the verdict names the median window (runs 02..11, worked out by
    hand below), every window's score and each result file's run; the tree's M_OF_N.md says
    the same outside results/ and draws no warning of the real checker; the run count problem
    says it is expected under the protocol, and the verdict still fails."""
    make_runs(tmp_path, runs=12)
    times = [200, 190, 210, 205, 198, 202, 207, 199, 201, 203, 250, 260]
    for n, t in enumerate(times, 1):
        run = tmp_path / f"results/bert-v5.0/sut/run_{n:02d}"
        (run / "result.json").write_text(json.dumps({"time_to_train_s": t, "converged": True}))
        if n > 10:  # runs 11 and 12 replay logs 0 and 1: give them seeds of their own
            log = run / "mlperf.log"
            lines = log.read_text().splitlines(keepends=True)
            for i, line in enumerate(lines):
                if '"key": "seed"' in line:
                    event = json.loads(line[9:])
                    lines[i] = ":::MLLOG " + json.dumps({**event, "value": 1000 + n}) + "\n"
            log.write_text("".join(lines))
    status, verdict = submit(tmp_path, campaign_config(tmp_path, runs=12, window=10))
    assert status == 0 and verdict is not None and not verdict["passed"]
    (window,) = verdict["m_of_n"]
    # olympic means (drop the fastest and slowest of each ten): 1615/8, 1625/8, 1677/8
    assert window["window_scores_s"] == [201.875, 203.125, 209.625]
    assert (window["window_first_run"], window["window_score_s"]) == ("run_02", 203.125)
    assert window["window_runs"] == [f"run_{n:02d}" for n in range(2, 12)]
    assert window["results"]["result_0.txt"] == "run_01"
    assert window["results"]["result_11.txt"] == "run_12"
    folder = "submission/ACME/results/sut/bert"
    (count,) = [p for p in verdict["problems"] if p.startswith("run count")]
    assert count.startswith(
        "run count (expected under the M-of-N protocol; the check still fails): "
        f"{folder} holds all 12 logs"
    )
    assert "the window submitted is runs run_02..run_11" in count and "a window of" not in count
    assert "runs run_02..run_11" in verdict["notes"][0]
    notes = (tmp_path / "submission" / "ACME" / "M_OF_N.md").read_text()
    assert "runs run_02..run_11 (first run run_02), score 203.125" in notes
    assert "- result_11.txt: run_12" in notes
    assert not [w for w in verdict["warnings"] if "M_OF_N" in w or "Unknown files" in w]


def test_a_tree_of_a_job_before_the_record_is_known_by_its_check_log(tmp_path: Path) -> None:
    out = tmp_path / "submission"
    (out / "ACME" / "results").mkdir(parents=True)
    (out / "package_check.log").write_text(
        "$ /usr/bin/python3 -m mlperf_logging.package_checker submission/ACME training 5.0.0 "
        "--log_output /dev/null\nINFO - PACKAGE CHECKER FOUND NO ERRORS, SUCCESS !\n"
    )
    assert tree.made_trees(out) == ["ACME"]
    assert tree.not_ours({"trees": {"ACME": {}}}, out) == []
    (out / "package_check.log").unlink()
    (refused,) = tree.not_ours({"trees": {"ACME": {}}}, out)
    assert refused.endswith(
        "was not made by the submission job (not in "
        f"{out}/.trees-made.json); move it away, it is never replaced"
    )
