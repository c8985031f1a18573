"""The runs' power logs in the submission tree (scripts/submission/power.py): copied byte for
byte as power/result_N/node_0.txt where every run has one from a command source, left out with
a note for nvml (the GPUs only) and where a run lacks one, and what mlperf-logging's power
checker says parsed into the verdict's problems. Real files: Lenovo's published v5.0 BERT logs
with their published power folder (tests/data/published/mlperf-more, whose README gives the
summarizer's energy of it) as a campaign's runs, and the real package checker and summarizer."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from mlperf_logging.result_summarizer import result_summarizer

from scripts.submission.checker_log import read_output, run_checker
from scripts.submission.plan import submission_plan
from scripts.submission.power import choose
from tests.conftest import published
from tests.test_submission import campaign_config, make_runs, submit

MORE = published() / "mlperf-more"
LENOVO_BERT = MORE / "training_results_v5.0/Lenovo/results/SR780aV3-8xB200_SXM_180GB/bert"
RUNS = "results/bert-v5.0/sut"
TREE = "submission/ACME/results/sut/bert"


def power_runs(root: Path, source: str = "command", without: tuple[int, ...] = ()) -> None:
    """A 10-run campaign of Lenovo's published logs, each run with the published power log of
    its result as run_NN/power/node_0.txt and run.json's power_sampling of ``source``; the
    runs in ``without`` were not sampled."""
    make_runs(root, logs=LENOVO_BERT)
    for n in range(1, 11):
        run = root / RUNS / f"run_{n:02d}"
        if n in without:
            continue
        (run / "power").mkdir()
        shutil.copyfile(LENOVO_BERT / f"power/result_{n - 1}/node_0.txt", run / "power/node_0.txt")
        meta = json.loads((run / "run.json").read_text())
        meta["power_sampling"] = {"source": source, "file": "power/node_0.txt", "problem": ""}
        (run / "run.json").write_text(json.dumps(meta))


@pytest.fixture(scope="module")
def with_power(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("power")
    power_runs(root)
    status, verdict = submit(root, campaign_config(root))
    assert status == 0 and verdict is not None
    return root, verdict


def test_command_power_logs_go_in_byte_for_byte_and_the_package_checker_accepts_them(
    with_power: tuple[Path, dict[str, Any]],
) -> None:
    root, verdict = with_power
    assert verdict["passed"] is True, verdict["problems"]
    assert verdict["power"] == {
        "bert-v5.0": {
            "sut": {"included": True, "sources": ["command"], "note": verdict["notes"][0]}
        }
    }
    (note,) = verdict["notes"]
    assert "power/result_N/node_0.txt, checked by the package checker's power checks" in note
    tree = root / TREE
    assert sorted(p.name for p in (tree / "power").iterdir()) == [f"result_{n}" for n in range(10)]
    for n in range(10):
        (copied,) = (tree / "power" / f"result_{n}").iterdir()
        assert copied.name == "node_0.txt"
        published_log = LENOVO_BERT / f"power/result_{n}/node_0.txt"
        assert copied.read_bytes() == published_log.read_bytes()
    log = (root / "submission/package_check.log").read_text()
    assert "Package does not contain power result" not in log
    assert "PACKAGE CHECKER FOUND NO ERRORS, SUCCESS !" in log
    # the power folder draws the results folder's two warnings, said in the note
    assert any("Unknown files in result directory" in w for w in verdict["warnings"])
    # the result summarizer scores the tree's energy as it scored Lenovo's published folder
    with open(MORE / "expected-energy.tsv") as fh:
        expected = next(csv.DictReader(fh, delimiter="\t"))
    assert result_summarizer._has_power(str(tree))
    _, energy, _ = result_summarizer._compute_strong_score_standalone(
        "bert", "sut", True, str(tree), "training", "5.0.0"
    )
    assert energy == float(expected["energy_j"])


def test_the_power_checkers_findings_on_a_tree_edited_by_hand_are_problems(
    with_power: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    """One result's power folder removed: the package checker accepts it under olympic scoring
    and says SUCCESS, but the summarizer cannot score the folder: a problem. A misnamed node
    file: the same."""
    shutil.copytree(with_power[0] / "submission/ACME", tmp_path / "submission/ACME")
    power = tmp_path / TREE / "power"
    shutil.rmtree(power / "result_3")
    _, output, code = run_checker(Path("submission/ACME"), "5.0.0", cwd=tmp_path)
    assert "PACKAGE CHECKER FOUND NO ERRORS, SUCCESS !" in output
    said = read_output(output, {}, code, [TREE])
    assert not said.passed
    assert said.problems == [
        f"power: {TREE}/power/result_3/ is missing: once the folder has power/, every result "
        "file needs its power folder (mlperf-logging's power_checker; the result summarizer "
        "cannot score the folder's energy without it)"
    ]
    (power / "result_5/node_0.txt").rename(power / "result_5/node_1.txt")
    _, output, code = run_checker(Path("submission/ACME"), "5.0.0", cwd=tmp_path)
    said = read_output(output, {}, code, [TREE])
    assert not said.passed
    assert said.problems[1] == (
        f"power: {TREE}/power/result_5: its node files are not node_0 to node_<n-1> "
        "(mlperf-logging's power_checker)"
    )
    assert said.problems[-1] == (
        f"compliance: {TREE}: 2 logs do not comply ({TREE}/result_3.txt: power: no "
        f"power/result_3/; {TREE}/result_5.txt: power: node files misnamed); the package "
        "checker accepts at most 1 under olympic scoring"
    )


def test_nvml_power_is_left_out_with_a_note(tmp_path: Path) -> None:
    power_runs(tmp_path, source="nvml")
    status, verdict = submit(tmp_path, campaign_config(tmp_path))
    assert status == 0 and verdict is not None and verdict["passed"] is True
    assert not (tmp_path / TREE / "power").exists()
    assert verdict["power"]["bert-v5.0"]["sut"]["included"] is False
    (note,) = verdict["notes"]
    assert note.startswith("bert-v5.0 on sut: no power in the tree: runs run_01, run_02")
    assert "power.source nvml, the GPUs' power only, not the node's power" in note
    assert not any("Unknown files" in w for w in verdict["warnings"])


def test_a_run_without_a_power_log_leaves_power_out_naming_it(tmp_path: Path) -> None:
    power_runs(tmp_path, without=(4,))
    status, verdict = submit(tmp_path, campaign_config(tmp_path))
    assert status == 0 and verdict is not None and verdict["passed"] is True
    assert not (tmp_path / TREE / "power").exists()
    (note,) = verdict["notes"]
    assert note.startswith(
        "bert-v5.0 on sut: no power in the tree: 1 of its 10 runs have no power log from a "
        "command source (run_04 (not sampled)): MLPerf's power rules want one for every result"
    )
    assert verdict["power"]["bert-v5.0"]["sut"] == {
        "included": False, "sources": ["command", "none"], "note": note
    }  # fmt: skip
    # a log recorded but gone is named too
    (tmp_path / RUNS / "run_07/power/node_0.txt").unlink()
    (entry,) = submission_plan(campaign_config(tmp_path))["trees"]["ACME"]["entries"]
    assert "run_04 (not sampled), run_07 (power/node_0.txt is gone)" in str(
        choose(entry, tmp_path).note
    )


def test_a_run_the_workflow_gave_no_energy_leaves_power_out(tmp_path: Path) -> None:
    power_runs(tmp_path)
    result = tmp_path / RUNS / "run_02/result.json"
    why = "power: the command source failed 9 of 60 samples: ... more than 5%: no energy"
    result.write_text(
        json.dumps({"time_to_train_s": 200.0, "energy_j": None, "power_problems": [why]})
    )
    (entry,) = submission_plan(campaign_config(tmp_path))["trees"]["ACME"]["entries"]
    choice = choose(entry, tmp_path)
    assert choice.files == []
    assert choice.note == (
        "bert-v5.0 on sut: no power in the tree: the workflow gave 1 run(s) no energy (run_02; "
        f"run_02: {why}), and the result summarizer would score their power logs as they are"
    )
    never = tmp_path / "never"
    make_runs(never)  # no run sampled: no power and no note
    assert choose(entry, never).note is None and choose(entry, never).files == []
