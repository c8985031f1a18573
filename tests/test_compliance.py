"""mlperf-logging's own checks on NVIDIA's published v5.0 logs: the compliance checker's
verdict (and its cache), the RCP checker's, and the seed rule, each compared with the package
called directly (mlperf-v5.0-nvidia of tests/data/published; derived logs in tmp_path)."""

from __future__ import annotations

import csv
import json
import logging
import random
import shutil
from pathlib import Path

import pytest
from mlperf_logging.package_checker.seed_checker import SeedChecker
from mlperf_logging.rcp_checker import rcp_checker
from mlperf_logging.result_summarizer import result_summarizer

from scripts.core.layout import result_files
from scripts.mlperf import compliance
from tests.conftest import need_fixtures

RULESET = "5.0.0"
NON_CONVERGED = "tyche_ngpu64_ngc25.04_pytorch/bert/result_4.txt"
PASSING = "nyx_n1_ngc25.04_pytorch/retinanet/result_0.txt"


@pytest.fixture(scope="module")
def v50() -> Path:
    return need_fixtures() / "mlperf-v5.0-nvidia"


@pytest.fixture(scope="module")
def results(v50: Path) -> Path:
    return v50 / "results"


def folders(results: Path) -> list[Path]:
    return sorted(p for p in results.glob("*/*") if p.is_dir())


def summarizer_accepts(log: Path) -> bool:
    """The result summarizer's own reading of one log: ValueError is a dropped run."""
    try:
        result_summarizer._read_result_file(str(log), "training", RULESET)
    except ValueError:
        return False
    return True


def expected_rows(v50: Path) -> list[dict[str, str]]:
    with open(v50 / "expected.tsv", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def test_every_published_log_passes_but_the_one_that_never_reaches_the_target(
    v50: Path, results: Path
) -> None:
    logs = sorted(results.glob("*/*/result_*.txt"))
    assert len(logs) == sum(int(r["n_logs"]) for r in expected_rows(v50)) == 68
    verdicts = {
        log.relative_to(results).as_posix(): compliance.check_log(log, ruleset=RULESET)
        for log in logs
    }
    failed = {name: v for name, v in verdicts.items() if v.status != "pass"}
    assert list(failed) == [NON_CONVERGED]
    v = failed[NON_CONVERGED]
    assert v == compliance.Verdict(
        "fail",
        "Failed checks for eval_accuracy : (v['value'] >= 0.720) and v['value'] < 1.0",
        RULESET,
        "mlperf-logging 4.1.68",
    )
    assert all(
        v.detail == "" and v.checker == "mlperf-logging 4.1.68"
        for n, v in verdicts.items()
        if n != NON_CONVERGED
    )
    # the summarizer, called directly, drops exactly the same log
    assert {n for n, log in zip(verdicts, logs, strict=True) if not summarizer_accepts(log)} == {
        NON_CONVERGED
    }


def test_a_truncated_log_fails_naming_the_cut_line(results: Path, tmp_path: Path) -> None:
    data = (results / PASSING).read_bytes()
    cut = tmp_path / "result_0.txt"
    cut.write_bytes(data[: len(data) // 2])
    v = compliance.check_log(cut, ruleset=RULESET)
    assert v.status == "fail"
    assert v.detail.startswith("Log lines had parsing errors. First: ")  # the half line
    assert "\n" not in v.detail and len(v.detail) <= compliance.DETAIL_MAX_CHARS
    assert not summarizer_accepts(cut)


def test_random_bytes_and_odd_lines_fail_without_an_exception(tmp_path: Path) -> None:
    noise = tmp_path / "noise.txt"
    noise.write_bytes(random.Random(0).randbytes(20000))
    v = compliance.check_log(noise, ruleset=RULESET)
    assert v.status == "fail" and v.detail.startswith("No log lines detected (+")
    # a line the package's parser itself raises on (no time_ms: KeyError, not ValueError)
    odd = tmp_path / "odd.txt"
    odd.write_text(':::MLLOG {"key": "run_start", "value": null}\n')
    v = compliance.check_log(odd, ruleset=RULESET)
    assert v == compliance.Verdict(
        "fail",
        "the compliance checker raised KeyError: 'time_ms'",
        RULESET,
        "mlperf-logging 4.1.68",
    )
    # the package's global queue of configs is left empty: the next log is judged alone
    assert compliance.check_log(noise, ruleset=RULESET).detail.startswith("No log lines")


def test_the_checker_output_never_reaches_the_callers_stdout_or_stderr(
    results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    noise = tmp_path / "noise.txt"
    noise.write_bytes(random.Random(1).randbytes(5000))
    root = logging.getLogger()
    handlers = root.handlers[:]
    compliance.check_log(noise, ruleset=RULESET)
    compliance.check_log(results / NON_CONVERGED, ruleset=RULESET)
    compliance.rcp_verdict(result_files(results / "nyx_n1_ngc25.04_pytorch/bert"), ruleset=RULESET)
    assert capsys.readouterr() == ("", "")
    assert root.handlers == handlers  # restored, and no basicConfig handler left behind


def test_the_bounded_capture_keeps_the_head_and_counts_the_rest() -> None:
    sink = compliance._Bounded(10)
    assert sink.write("0123456") == 7 and sink.write("789abcdef") == 9
    assert sink.getvalue() == "0123456789" and sink.dropped == 6


def test_no_ruleset_is_not_applicable_and_never_reads_the_log(tmp_path: Path) -> None:
    v = compliance.check_log(tmp_path / "missing.txt", ruleset=None, cache_dir=tmp_path / "c")
    assert v.status == "not applicable" and v.ruleset is None and v.detail == compliance.NO_RULESET
    assert not (tmp_path / "c").exists()


def test_a_log_that_cannot_be_read_is_an_error_not_a_verdict(tmp_path: Path) -> None:
    for cache in (None, tmp_path / "cache"):
        with pytest.raises(FileNotFoundError):
            compliance.check_log(tmp_path / "missing.txt", ruleset=RULESET, cache_dir=cache)


def test_a_ruleset_the_checker_does_not_know_is_refused_naming_the_known_ones(
    results: Path,
) -> None:
    with pytest.raises(ValueError, match=r"no compliance rules for training '9\.9\.9'.*5\.0\.0"):
        compliance.check_log(results / PASSING, ruleset="9.9.9")
    assert {"0.6.0", "5.0.0", "5.1.0"} <= set(compliance.rulesets())


def test_a_cached_verdict_comes_back_without_running_the_checker(
    results: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    first = {
        name: compliance.check_log(results / name, ruleset=RULESET, cache_dir=cache)
        for name in (PASSING, NON_CONVERGED)
    }
    files = sorted(cache.glob("*.json"))
    assert len(files) == 2
    record = json.loads(files[0].read_text())
    assert record["ruleset"] == RULESET and record["checker"] == "mlperf-logging 4.1.68"
    assert record["checker_s"] >= 0

    def unavailable(*args: object) -> None:
        raise AssertionError("the checker ran although the verdict is cached")

    monkeypatch.setattr(compliance, "_run_checker", unavailable)
    for name, verdict in first.items():
        assert compliance.check_log(results / name, ruleset=RULESET, cache_dir=cache) == verdict
    # the key is the log's content: the same bytes elsewhere hit, other bytes miss
    copy = tmp_path / "copy.txt"
    shutil.copyfile(results / NON_CONVERGED, copy)
    assert compliance.check_log(copy, ruleset=RULESET, cache_dir=cache) == first[NON_CONVERGED]
    copy.write_bytes(copy.read_bytes() + b"\n")
    with pytest.raises(AssertionError, match="the checker ran"):
        compliance.check_log(copy, ruleset=RULESET, cache_dir=cache)
    # and another ruleset is another verdict
    with pytest.raises(AssertionError, match="the checker ran"):
        compliance.check_log(results / PASSING, ruleset="5.1.0", cache_dir=cache)


@pytest.mark.parametrize("garbage", [b'{"status": "pa', b"", b"[1, 2]", b'{"status": "pass"}'])
def test_a_corrupt_cache_file_is_ignored_and_rewritten(
    results: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, garbage: bytes
) -> None:
    cache = tmp_path / "cache"
    log = results / NON_CONVERGED
    verdict = compliance.check_log(log, ruleset=RULESET, cache_dir=cache)
    (cache_file,) = cache.glob("*.json")
    cache_file.write_bytes(garbage)
    runs: list[Path] = []
    real = compliance._run_checker

    def counted(path: Path, usage: str, ruleset: str) -> tuple[bool, str]:
        runs.append(path)
        return real(path, usage, ruleset)

    monkeypatch.setattr(compliance, "_run_checker", counted)
    assert compliance.check_log(log, ruleset=RULESET, cache_dir=cache) == verdict
    assert runs == [log]
    assert json.loads(cache_file.read_text())["detail"] == verdict.detail
    assert compliance.check_log(log, ruleset=RULESET, cache_dir=cache) == verdict
    assert runs == [log]  # the rewritten file is used
    assert [p.name for p in cache.iterdir()] == [cache_file.name]  # no temporary file left


def test_check_seeds_flags_runs_sharing_a_seed_and_runs_without_one() -> None:
    assert compliance.check_seeds({"1": 11, "2": 12, "3": 13}) == []
    out = compliance.check_seeds({"1": 5, "2": 7, "3": 5, "4": None})
    assert out == [
        f"run 4 logs no seed: {compliance.SEED_RULE}",
        f"runs 1, 3 share seed 5: {compliance.SEED_RULE}",
    ]


def test_nvidias_runs_each_log_their_own_seed_as_the_package_checker_wants(
    results: Path, tmp_path: Path
) -> None:
    for folder in folders(results):
        logs = result_files(folder)
        seeds = {log.name: compliance.logged_seeds(log, ruleset=RULESET) for log in logs}
        assert all(len(s) == 1 for s in seeds.values()), folder
        assert compliance.check_seeds({n: s[0] for n, s in seeds.items()}) == []
        assert SeedChecker(RULESET).check_seeds([str(p) for p in logs]) is True
    bert = {
        p.name: compliance.logged_seeds(p, ruleset=RULESET)[0]
        for p in result_files(results / "nyx_n1_ngc25.04_pytorch/bert")
    }
    assert bert["result_0.txt"] == 27912
    # the same run twice: the package checker fails it, and so does check_seeds
    twice = tmp_path / "twice"
    twice.mkdir()
    for name in ("result_0.txt", "result_1.txt"):
        shutil.copyfile(results / PASSING, twice / name)
    logs = result_files(twice)
    assert SeedChecker(RULESET).check_seeds([str(p) for p in logs]) is False
    seeds = {p.name: compliance.logged_seeds(p, ruleset=RULESET)[0] for p in logs}
    assert compliance.check_seeds(seeds) == [
        f"runs result_0.txt, result_1.txt share seed 3947156326: {compliance.SEED_RULE}"
    ]


def expected_factors(v50: Path) -> dict[str, float]:
    return {
        f"{r['system']}/{r['benchmark']}": float(r["scaling_factor"]) for r in expected_rows(v50)
    }


def test_rcp_verdicts_are_the_packages_and_the_published_scaling_factors(
    v50: Path, results: Path
) -> None:
    factors = expected_factors(v50)
    assert len(factors) == len(folders(results)) == 8
    for folder in folders(results):
        name = folder.relative_to(results).as_posix()
        v = compliance.rcp_verdict(result_files(folder), ruleset=RULESET)
        passed, message, factor = rcp_checker.check_directory(
            str(folder), "training", RULESET, False, False, rcp_file=None,
            rcp_pass="pruned_rcps", rcp_bypass=False, set_scaling=False,
        )  # fmt: skip
        assert (v.status != "fail", v.detail, v.factor) == (passed, message, float(factor)), name
        assert v.benchmark == folder.name and v.ruleset == RULESET
        assert v.status == ("scaled" if factor > 1 else "pass"), name
        if (folder / "scaling.json").is_file():
            published = json.loads((folder / "scaling.json").read_text())["scaling_factor"]
            assert v.factor == pytest.approx(published, rel=1e-12) == factors[name]
        assert v.factor == pytest.approx(factors[name], rel=1e-12)
    # the folder with the non-converged run passes: one run may be dropped
    tyche = compliance.rcp_verdict(
        result_files(results / "tyche_ngpu64_ngc25.04_pytorch/bert"), ruleset=RULESET
    )
    assert (tyche.status, tyche.factor, tyche.detail) == ("pass", 1.0, "RCP found")


def test_two_nonconverged_runs_fail_the_rcp_check_as_the_package_fails_them(
    results: Path, tmp_path: Path
) -> None:
    tyche = results / "tyche_ngpu64_ngc25.04_pytorch/bert"
    folder = tmp_path / "bert"
    folder.mkdir()
    logs = result_files(tyche)
    for i, log in enumerate(logs):  # result_5 is a second copy of the non-converged run
        shutil.copyfile(
            tyche / NON_CONVERGED.split("/")[-1] if i == 5 else log, folder / f"result_{i}.txt"
        )
    direct = rcp_checker.check_directory(
        str(folder), "training", RULESET, False, False, rcp_pass="pruned_rcps", set_scaling=False
    )
    v = compliance.rcp_verdict(result_files(folder), ruleset=RULESET)
    assert (v.status, v.detail) == ("fail", "Insufficient convergence") == ("fail", direct[1])
    assert direct[0] is False


def test_rcp_verdict_is_not_applicable_without_rcps(results: Path, tmp_path: Path) -> None:
    logs = result_files(results / "nyx_n1_ngc25.04_pytorch/retinanet")
    assert compliance.rcp_verdict(logs, ruleset=None).status == "not applicable"
    assert compliance.rcp_verdict([], ruleset=RULESET).status == "not applicable"
    v = compliance.rcp_verdict(logs, ruleset="0.7.0")  # the RCP checker starts at 1.0.0
    assert (v.status, v.factor) == ("not applicable", None)
    assert v.detail == "mlperf-logging 4.1.68 has no RCPs for retinanet 0.7.0"
    noise = tmp_path / "noise.txt"
    noise.write_bytes(random.Random(2).randbytes(3000))
    assert compliance.rcp_verdict([noise, noise], ruleset=RULESET).status == "fail"


def test_the_command_line_prints_the_verdict_as_json(
    results: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert compliance.main(["check", str(results / NON_CONVERGED), "--ruleset", RULESET]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == compliance.check_log(results / NON_CONVERGED, ruleset=RULESET).to_dict()
    assert out["status"] == "fail" and "eval_accuracy" in out["detail"]
    assert compliance.main(["check", str(results / PASSING), "--ruleset", "9.9.9"]) == 2
    assert "no compliance rules" in capsys.readouterr().err


def test_runs_made_here_of_an_mlperf_benchmark_get_the_rcp_checkers_factor_in_the_score(
    v50: Path, results: Path, tmp_path: Path
) -> None:
    """The RCP check for your own runs: NVIDIA's dlrm logs as if they were run here (a run.json
    as the runner writes it: no published factor) are scaled as rcp_checker scales them, and
    the same logs imported keep their folder's scaling.json."""
    from scripts.analysis import runs_table, summary_table
    from scripts.run import result_json

    folder = results / "nyx_n1_ngc25.03_hugectr/dlrm_dcnv2"
    quality = {"target": 0.80275, "direction": "higher"}
    files = []
    for i, log in enumerate(result_files(folder), 1):
        run_dir = tmp_path / "results/dlrm/mine" / f"run_{i:02d}"
        run_dir.mkdir(parents=True)
        shutil.copyfile(log, run_dir / "mlperf.log")
        meta = {"benchmark": "dlrm", "system": "mine", "run": i, "seed": i, "fingerprint": "f"}
        (run_dir / "run.json").write_text(json.dumps(meta))
        result_json.write_result(
            run_dir / "mlperf.log", run_dir / "run.json", quality, "run_stop",
            run_dir / "result.json", compliance_ruleset=RULESET,
        )  # fmt: skip
        files.append(run_dir / "result.json")
    runs = runs_table.collect(files)
    want = compliance.rcp_verdict([f.with_name("mlperf.log") for f in files], ruleset=RULESET)
    assert want.status == "scaled" and want.factor > 1
    assert set(runs["rcp"]) == {"scaled"}
    assert set(runs["rcp_scaling_factor"]) == {want.factor}
    summary = summary_table.summarize(runs)
    (row,) = summary.to_dict("records")
    assert row["rcp"] == "scaled" and row["rcp_scaling_factor"] == want.factor
    assert row["score_s"] == pytest.approx(row["score_unscaled_s"] * want.factor, rel=1e-12)
    published = json.loads((folder / "scaling.json").read_text())["scaling_factor"]
    assert want.factor == pytest.approx(published, rel=1e-12)  # what NVIDIA's folder holds


def test_logs_without_an_evaluation_fail_the_rcp_check_instead_of_crashing_it(
    results: Path, tmp_path: Path
) -> None:
    """mlperf-logging's rcp_checker raises UnboundLocalError (conv_epoch) on a log with no
    eval_accuracy, e.g. a synthetic smoke run's (--skip-eval): the verdict is fail, with why,
    and the tables are still made."""
    logs = result_files(results / "nyx_n1_ngc25.04_pytorch/retinanet")
    bare = tmp_path / "result_0.txt"
    bare.write_text(
        "".join(line for line in Path(logs[0]).open() if '"key": "eval_accuracy"' not in line)
    )
    with pytest.raises(UnboundLocalError):  # the package's own behaviour, which this guards
        rcp_checker.get_submission_epochs([str(bare)], RULESET, False)
    v = compliance.rcp_verdict([bare], ruleset=RULESET)
    assert v.status == "fail" and "rcp_checker raised UnboundLocalError" in v.detail
