"""``implementation.synthetic`` (issue 23): a smoke run on the implementation's generated data
(NVIDIA's USE_SYNTHETIC_DATA=1). It runs, is labelled in result.json, runs.csv and the report,
and never gives a score: summary.csv's row is not valid and the leaderboard lists the system
among the unranked, with the reason. One layer per test; the whole campaign in docker is
tests/test_synthetic_workflow.py."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from scripts.analysis import leaderboard as lb
from scripts.analysis import report, run_columns, runs_table, summary_table
from scripts.core.run_records import ResultRecord
from scripts.mlperf import compliance
from scripts.run.backends.errors import ContainerError
from scripts.run.backends.implementation_runs import SYNTHETIC_SKIP, check_run_data
from scripts.run.result_json import write_result
from scripts.run.runner import execute
from scripts.run.spec import SYNTHETIC_ENV, RunSpec
from tests.conftest import REPO, paths, published  # noqa: F401 (paths: the fixture)
from tests.test_implementation_runs import docker_config, spec_of
from tests.test_leaderboard import runs_frame
from tests.test_run_training import good_log_command, spec

RECORDS = REPO / "tests" / "data" / "records"
QUALITY = {"metric": "acc", "target": 0.9}


def test_off_by_default_it_changes_no_fingerprint_and_no_spec(tmp_path: Path) -> None:
    plain = docker_config(tmp_path)
    assert plain["benchmarks"]["gnmt"]["implementation"]["synthetic"] is False  # the default
    before = spec_of(plain, tmp_path)
    assert "synthetic" not in before.comparability and SYNTHETIC_ENV not in before.env
    assert not before.synthetic and '"synthetic"' not in before.to_json()


def test_on_the_run_gets_use_synthetic_data_and_a_fingerprint_of_its_own(tmp_path: Path) -> None:
    plain = spec_of(docker_config(tmp_path), tmp_path)
    config = docker_config(tmp_path)
    impl = config["benchmarks"]["gnmt"]["implementation"]
    impl["synthetic"] = True
    impl["env"] = {SYNTHETIC_ENV: "0"}  # the implementation's own value never turns it off
    smoke = spec_of(config, tmp_path)
    assert smoke.synthetic and smoke.comparability["synthetic"] is True
    assert smoke.env[SYNTHETIC_ENV] == "1"
    assert smoke.config_fingerprint != plain.config_fingerprint
    assert RunSpec.from_json(smoke.to_json()).synthetic  # as the runner reads it


def test_the_expected_mounts_check_is_skipped_for_a_synthetic_run_and_the_log_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = docker_config(tmp_path, expected_mounts="expected-mounts.csv")
    real = spec_of(config, tmp_path)
    with pytest.raises(ContainerError, match="cannot check the data mounts"):
        check_run_data(real)  # no such csv: the check ran
    config["benchmarks"]["gnmt"]["implementation"]["synthetic"] = True
    check_run_data(spec_of(config, tmp_path))
    assert SYNTHETIC_SKIP in capsys.readouterr().out


def test_result_json_says_synthetic_and_older_files_read_as_not(tmp_path: Path, paths) -> None:  # noqa: F811
    plain = spec(good_log_command(tmp_path))
    smoke = RunSpec.from_json(
        plain.to_json().replace('"comparability": {', '"comparability": {"synthetic": true, ', 1)
    )
    execute(smoke, **paths)
    out = tmp_path / "run_01" / "result.json"
    result = write_result(paths["log_path"], paths["meta_path"], QUALITY, "run_stop", out)
    assert result.synthetic is True and json.loads(out.read_text())["synthetic"] is True
    old = ResultRecord.read(RECORDS / "local.result.json")
    assert old.synthetic is False and not old.has("synthetic")
    frame = runs_table.collect([out, RECORDS / "local.result.json"])
    assert sorted(frame["synthetic"].tolist()) == [False, True]


def test_a_system_with_a_synthetic_run_has_no_score_and_is_unranked() -> None:
    runs = runs_frame({"real": [50.0, 51.0, 52.0, 53.0, 54.0], "smoke": [5.0] * 5})
    runs["synthetic"] = [False] * 5 + [True] * 5
    summary = summary_table.summarize(runs).set_index("system")
    assert summary.loc["real", "valid"] and summary.loc["real", "score_s"] > 0
    smoke = summary.loc["smoke"]
    assert not smoke["valid"] and pd.isna(smoke["score_s"]) and pd.isna(smoke["score_unscaled_s"])
    assert smoke["reason"] == run_columns.SYNTHETIC_REASON
    assert smoke["n_converged"] == 5  # what the runs did is still told
    board = lb.leaderboard(summary.reset_index(), runs, resamples=200).set_index("system")
    assert board.loc["real", "rank"] == 1
    assert pd.isna(board.loc["smoke", "rank"])
    assert board.loc["smoke", "reason"] == run_columns.SYNTHETIC_REASON


def test_a_table_made_before_the_column_has_no_synthetic_run() -> None:
    runs = runs_frame({"a": [1.0]}).drop(columns=["synthetic"])
    assert run_columns.synthetic_runs(runs) == [False]
    as_read = pd.DataFrame({"synthetic": [float("nan"), "True", "False", True]})
    assert run_columns.synthetic_runs(as_read) == [False, True, False, True]


def test_the_report_shows_the_label_next_to_the_system() -> None:
    runs = runs_frame({"real": [1.0], "smoke": [1.0]})
    runs["synthetic"] = [False, True]
    synthetic = report.synthetic_systems(runs)
    assert synthetic == {"smoke"}
    shown = report.labelled(runs, synthetic)["system"].tolist()
    assert shown == ["real", f"smoke {report.SYNTHETIC_LABEL}"]


def test_the_checker_fails_a_log_of_a_run_that_skipped_its_evaluations(tmp_path: Path) -> None:
    """NVIDIA's run_and_time.sh gives a synthetic run ``--skip-eval``: its log has no
    eval_accuracy, which the v5.1 checker requires (AT_LEAST_ONE). Compliance still runs on a
    synthetic run and says so; the run is unscored either way."""
    src = published() / "mlperf-v5.1-implementations" / "NVIDIA" / "results"
    log = src / "tyche_ngpu8_ngc25.04_pytorch" / "retinanet" / "result_0.txt"
    evals = ('"key": "eval_accuracy"', '"key": "eval_start"', '"key": "eval_stop"')
    lines = [x for x in log.read_text().splitlines(True) if not any(e in x for e in evals)]
    skipped = tmp_path / "synthetic.log"
    skipped.write_text("".join(lines))
    verdict = compliance.check_log(skipped, ruleset="5.1.0", cache_dir=tmp_path / "cache")
    assert verdict.status == "fail"
    assert "Required AT_LEAST_ONE occurrence of 'eval_accuracy' but found 0" in verdict.detail
