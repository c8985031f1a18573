"""result.json's compliance fields: a log the round's compliance checker fails is not
converged (as mlperf-logging's result summarizer drops it), with the checker's rule; without a
ruleset, and in a result.json from before the fields, compliance is "not applicable"."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from scripts.core.run_records import ResultRecord, RunRecord
from scripts.mlperf import compliance
from scripts.run import result_json
from scripts.run.published import cli
from tests.conftest import need_fixtures

RULESET = "5.0.0"
RETINANET = "nyx_n1_ngc25.04_pytorch/retinanet/result_0.txt"
BERT_NOT_CONVERGED = "tyche_ngpu64_ngc25.04_pytorch/bert/result_4.txt"
BERT_CONVERGED = "tyche_ngpu64_ngc25.04_pytorch/bert/result_0.txt"
QUALITY = {
    "retinanet": {"metric": "mAP", "target": 0.34, "direction": "higher"},
    "bert": {"metric": "mlm_accuracy", "target": 0.72, "direction": "higher"},
}


@pytest.fixture(scope="module")
def results() -> Path:
    return need_fixtures() / "mlperf-v5.0-nvidia" / "results"


def run_json(tmp_path: Path, benchmark: str) -> Path:
    meta = tmp_path / "run.json"
    RunRecord.of(benchmark=benchmark, system="nyx", run=1, seed=None).write(meta)
    return meta


def write(tmp_path: Path, log: Path, benchmark: str, *options: str) -> ResultRecord:
    """result.json of ``log`` as a job writes it, through the job's own options."""
    parser = argparse.ArgumentParser()
    result_json.add_result_arguments(parser)
    out = tmp_path / "result.json"
    args = parser.parse_args(
        ["--result", str(out), "--quality-json", json.dumps(QUALITY[benchmark]), *options]
    )
    result_json.write_result_if_asked(args, log, run_json(tmp_path, benchmark))
    return ResultRecord.read(out)


def test_a_log_the_checker_fails_is_not_converged_with_the_rule(
    results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    r = write(tmp_path, results / BERT_NOT_CONVERGED, "bert", "--compliance-ruleset", RULESET)
    verdict = compliance.check_log(results / BERT_NOT_CONVERGED, ruleset=RULESET)
    assert (r.compliance, r.compliance_detail) == ("fail", verdict.detail)
    assert "eval_accuracy" in r.compliance_detail
    assert r.compliance_ruleset == RULESET and r.compliance_checker == verdict.checker
    assert r.converged is False
    assert (
        f"fails the compliance checker of mlperf-logging 4.1.68 (ruleset 5.0.0): {verdict.detail}"
        in r.problems
    )
    assert "fails the compliance check: Failed checks for eval_accuracy" in capsys.readouterr().out


def test_a_log_that_meets_the_target_but_breaks_a_rule_is_not_converged(
    results: Path, tmp_path: Path
) -> None:
    log = tmp_path / "result_0.txt"
    lines = (results / RETINANET).read_text(encoding="latin-1").splitlines(keepends=True)
    log.write_text("".join(x for x in lines if '"key": "cache_clear"' not in x), encoding="latin-1")
    (tmp_path / "plain").mkdir()
    plain = write(tmp_path / "plain", log, "retinanet")
    assert plain.converged is True  # the workflow's own parser finds nothing wrong
    r = write(tmp_path, log, "retinanet", "--compliance-ruleset", RULESET)
    assert r.compliance == "fail" and r.converged is False
    assert r.compliance_detail == "Required AT_LEAST_ONE occurrence of 'cache_clear' but found 0"
    assert r.time_to_train_s == plain.time_to_train_s  # kept, but never scored


def test_a_published_converged_run_passes_and_stays_converged(
    results: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    r = write(
        tmp_path, results / BERT_CONVERGED, "bert",
        "--compliance-ruleset", RULESET, "--compliance-cache", str(cache),
    )  # fmt: skip
    assert (r.compliance, r.compliance_detail, r.converged) == ("pass", "", True)
    assert len(list(cache.glob("*.json"))) == 1  # the verdict is cached for the next parse


def test_without_a_ruleset_compliance_is_not_applicable(results: Path, tmp_path: Path) -> None:
    r = write(tmp_path, results / BERT_NOT_CONVERGED, "bert")
    assert r.compliance == "not applicable"
    assert r.compliance_detail == result_json.NO_COMPLIANCE_RULESET
    assert r.compliance_ruleset is None and r.compliance_checker is None
    assert r.format_version == 1
    assert not any("compliance" in p for p in r.problems)


def test_an_old_result_json_without_the_fields_reads_as_not_applicable(tmp_path: Path) -> None:
    old = tmp_path / "result.json"
    old.write_text(json.dumps({"benchmark": "b", "system": "s", "run": 1, "converged": True}))
    assert result_json.compliance_of(ResultRecord.read(old)) == ("not applicable", "")
    fail = ResultRecord.from_json({"compliance": "fail", "compliance_detail": "x"})
    assert result_json.compliance_of(fail) == ("fail", "x")
    maybe = ResultRecord.from_json({"compliance": "maybe"})
    assert result_json.compliance_of(maybe) == ("not applicable", "")


def test_an_imported_run_records_the_verdict_through_the_import_command(
    results: Path, tmp_path: Path
) -> None:
    spec = {
        "benchmark": "bert",
        "system": "tyche",
        "run": 5,
        "scale": 1,
        "mlperf_name": "bert",
        "config_fingerprint": "f",
        "comparability": {},
    }
    out = tmp_path / "result.json"
    argv = [
        "--source", str(results / BERT_NOT_CONVERGED), "--spec", json.dumps(spec),
        "--log", str(tmp_path / "mlperf.log"), "--meta", str(tmp_path / "run.json"),
        "--result", str(out), "--quality-json", json.dumps(QUALITY["bert"]),
        "--compliance-ruleset", RULESET, "--compliance-cache", str(tmp_path / "cache"),
    ]  # fmt: skip
    assert cli.main(argv) == 0
    r = ResultRecord.read(out)
    assert (r.compliance, r.converged, r.run) == ("fail", False, 5)
