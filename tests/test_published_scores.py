"""Published folders that the import once scored otherwise than mlperf-logging's result
summarizer (issue 20): Stable Diffusion evaluated offline, logs named result_<datestamp>_NN.txt,
and a tree with a folder name holding a space, a broken systems json and a ``mask`` folder.

The real folders are tests/data/published/mlperf-more (see its README: Apache-2.0, from
mlcommons/training_results_v5.0 and v4.1); ``expected.tsv`` is the summarizer's own output."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from scripts.analysis import summary_table
from scripts.core.layout import result_files
from scripts.core.run_records import RunRecord
from scripts.mlperf.checker_outcome import summarizer_window, window_problems
from scripts.mlperf.log_parser import parse_text
from scripts.run.published.overlay import build_overlay
from scripts.run.published.run import import_run
from scripts.run.published.tree import MAX_NAME, round_benchmarks, system_name
from tests.conftest import need_fixtures
from tests.test_import_round import import_folder

MORE = "mlperf-more"


def more_rows() -> list[dict[str, str]]:
    with (need_fixtures() / MORE / "expected.tsv").open() as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def round_quality(round_: str, benchmark: str) -> tuple[dict[str, Any], str]:
    """The quality section and compliance ruleset of a round's benchmark definition."""
    bench = (round_benchmarks(round_) or {})[f"{benchmark}-v{round_}"]
    return dict(bench["quality"]), bench["mlperf"]["ruleset"]


@pytest.mark.parametrize("row", more_rows(), ids=lambda r: f"{r['submitter']}/{r['benchmark']}")
def test_each_more_folder_scores_as_the_official_result_summarizer(
    row: dict[str, str], tmp_path: Path
) -> None:
    root = need_fixtures() / MORE / f"training_results_v{row['round']}" / row["submitter"]
    folder = root / "results" / row["system"] / row["benchmark"]
    quality, ruleset = round_quality(row["round"], row["benchmark"])
    runs = import_folder(folder, tmp_path, quality, ruleset=ruleset)
    summary = summary_table.summarize_system(runs, resamples=200)
    assert summary["n_runs"] == int(row["n_logs"])
    assert summary["valid"], summary["reason"]
    assert summary["score_s"] == pytest.approx(float(row["score_min"]) * 60, rel=1e-9)
    assert summary["rcp_scaling_factor"] == float(row["scaling"])


def test_offline_evaluated_stable_diffusion_counts_every_run_the_checker_accepts(
    tmp_path: Path,
) -> None:
    """Dell's v5.0 folder: result_6's last evaluation (in file order, after run_stop) misses
    the target, but an earlier one met it; the v5.0 checker (ATLEAST_ONE_CHECK) accepts the
    log, so the run converged, and the workflow's own reading is a note, not a dropped run."""
    folder = (
        need_fixtures() / MORE / "training_results_v5.0/Dell/results"
        / "2xXE9680Lx8H200-SXM-141GB/stable_diffusion"
    )  # fmt: skip
    quality, ruleset = round_quality("5.0", "stable_diffusion")
    runs = import_folder(folder, tmp_path, quality, ruleset=ruleset)
    assert runs["converged"].all() and runs["compliance"].eq("pass").all()
    result_6 = json.loads((tmp_path / "results/b/s/run_07/result.json").read_text())
    assert result_6["converged"] and result_6["log_problems"] == []
    assert result_6["problems"] and all(p.startswith("note: ") for p in result_6["problems"])
    assert "does not meet target" in result_6["problems"][0]
    assert "accepts the log" in result_6["problems"][0]
    summary = summary_table.summarize_system(runs, resamples=200)
    assert summary["score_s"] == pytest.approx(18.25278125 * 60, rel=1e-9)  # 1095.167 s


def test_datestamped_log_names_are_every_run_of_lambdas_folder(tmp_path: Path) -> None:
    folder = (
        need_fixtures() / MORE / "training_results_v4.1/Lambda/results"
        / "lambda_1cc_n8_H100-SXM-80GB_ngc24.04_nemo/bert"
    )  # fmt: skip
    files = result_files(folder)
    assert [f.name[-6:-4] for f in files] == [f"{n:02d}" for n in range(1, 11)]
    quality, ruleset = round_quality("4.1", "bert")
    runs = import_folder(folder, tmp_path, quality, ruleset=ruleset)
    summary = summary_table.summarize_system(runs, resamples=200)
    assert summary["score_s"] == pytest.approx(0.94619375 * 60, rel=1e-9)


# ---------------------------------------------------------------------------------------------
# the summarizer's time window, and the rules the workflow keeps on top of the checker


def _log(*events: tuple[int, str, str]) -> str:
    return "".join(
        f':::MLLOG {{"namespace": "", "time_ms": {t}, "event_type": "POINT_IN_TIME", '
        f'"key": "{key}", "value": null, "metadata": {meta}}}\n'
        for t, key, meta in events
    )


@pytest.mark.parametrize(
    ("events", "window", "problem"),
    [
        ([(1000, "run_start", "{}"), (5000, "run_stop", "{}")], (1.0, 5.0), None),
        # the last run_start before the first run_stop, as _query_run_start_stop's loop
        (
            [(1000, "run_start", "{}"), (2000, "run_start", "{}"), (5000, "run_stop", "{}"),
             (9000, "run_stop", "{}")],
            (2.0, 5.0),
            None,
        ),
        ([(1000, "run_start", "{}")], (1.0, None), "no run_stop event"),
        ([(5000, "run_stop", "{}"), (6000, "run_start", "{}")], (6.0, 5.0), "is before"),
        ([(5000, "run_start", "{}"), (5000, "run_stop", "{}")], (5.0, 5.0), "is at"),
    ],
)  # fmt: skip
def test_the_window_is_the_summarizers_and_impossible_ones_give_no_time(
    events: list[tuple[int, str, str]], window: tuple[Any, Any], problem: str | None
) -> None:
    start, stop = summarizer_window(parse_text(_log(*events)))
    assert (start, stop) == window
    problems = window_problems(start, stop)
    assert (problems == []) if problem is None else (problem in problems[0])


# ---------------------------------------------------------------------------------------------
# a round of awkward folders is imported whole


def awkward_round(tmp_path: Path) -> Path:
    """A v0.6 round: NVIDIA's DGX-1 GNMT under a folder name holding a space, with a
    systems json that is not JSON, and its logs again as Google's ``mask`` folder whose logs
    say ``submission_benchmark: mask``."""
    root = tmp_path / "training_results_v0.6"
    src = need_fixtures() / "mlperf-v0.6-nvidia" / "dgx1_ngc19.05_pytorch" / "gnmt"
    spaced = root / "NVIDIA" / "results" / "DGX 1 (ngc19.05)" / "gnmt"
    shutil.copytree(src, spaced)
    (root / "NVIDIA" / "systems").mkdir(parents=True)
    (root / "NVIDIA" / "systems" / "DGX 1 (ngc19.05).json").write_text("{'not': json,}")
    mask = root / "Google" / "results" / "tpu-v3-32" / "mask"
    mask.mkdir(parents=True)
    for f in result_files(src)[:5]:
        logged = 'submission_benchmark: {"value": "gnmt"'
        text = f.read_text()
        assert logged in text
        (mask / f.name).write_text(text.replace(logged, logged.replace("gnmt", "mask")))
    return root


def test_a_round_with_a_spaced_name_a_broken_json_and_a_mask_folder_is_imported_whole(
    tmp_path: Path,
) -> None:
    root = awkward_round(tmp_path)
    overlay, notes = build_overlay(root)
    assert sorted(overlay["systems"]) == ["google-tpu-v3-32", "nvidia-dgx-1-ngc19-05"]
    assert set(overlay["campaign"]["benchmarks"]) == {"gnmt-v0.6", "maskrcnn-v0.6"}
    [warning] = [n for n in notes if n.startswith("warning:")]
    assert "DGX 1 (ngc19.05).json" in warning and "imported without its description" in warning
    # one import run of each: the mask logs are maskrcnn's, the broken json is recorded
    spaced = Path(overlay["systems"]["nvidia-dgx-1-ngc19-05"]["import_dir"]) / "gnmt"
    spec = {
        "benchmark": "gnmt-v0.6", "system": "nvidia-dgx-1-ngc19-05", "run": 1,
        "scale": "published", "mlperf_name": "gnmt", "config_fingerprint": "c",
        "comparability": {},
    }  # fmt: skip
    meta = import_run(
        result_files(spaced)[0], spec, tmp_path / "a.log", tmp_path / "a.json"
    )
    assert meta.import_problems == [] and meta.system_json is not None
    assert "not a JSON system description" in meta.system_json["error"]
    assert meta.system_json["n_accelerators"] is None
    mask = Path(overlay["systems"]["google-tpu-v3-32"]["import_dir"]) / "mask"
    spec_mask = {**spec, "benchmark": "maskrcnn-v0.6", "mlperf_name": "maskrcnn",
                 "folder_aliases": ["mask"]}  # fmt: skip
    meta = import_run(
        result_files(mask)[0], spec_mask, tmp_path / "b.log", tmp_path / "b.json"
    )
    assert meta.import_problems == []


def test_two_folders_with_one_name_are_both_refused_and_named(tmp_path: Path) -> None:
    root = tmp_path / "training_results_v0.6"
    src = need_fixtures() / "mlperf-v0.6-nvidia" / "dgx1_ngc19.05_pytorch" / "gnmt"
    for name in ("nyx_n1", "nyx.n1", "other"):
        shutil.copytree(src, root / "NVIDIA" / "results" / name / "gnmt")
    overlay, notes = build_overlay(root)
    assert list(overlay["systems"]) == ["nvidia-other"]
    [clash] = [n for n in notes if "both give the system name" in n]
    assert "nyx_n1" in clash and "nyx.n1" in clash and "'nvidia-nyx-n1'" in clash


def test_one_unreadable_folder_never_stops_the_round(tmp_path: Path) -> None:
    root = tmp_path / "training_results_v0.6"
    src = need_fixtures() / "mlperf-v0.6-nvidia" / "dgx1_ngc19.05_pytorch" / "gnmt"
    shutil.copytree(src, root / "NVIDIA" / "results" / "good" / "gnmt")
    bad = root / "NVIDIA" / "results" / "bad"
    bad.mkdir()
    (bad / "gnmt").symlink_to(bad / "gnmt")  # a loop: cannot be listed
    overlay, notes = build_overlay(root)
    assert list(overlay["systems"]) == ["nvidia-good"]
    assert any(str(bad) in n and "skipped" in n for n in notes), notes


@pytest.mark.parametrize(
    ("submitter", "folder", "name"),
    [
        ("NVIDIA", "nyx_n1_ngc25.04_pytorch", "nvidia-nyx-n1-ngc25-04-pytorch"),
        ("nettrix", "X640 G40_A100_PCIe_NVBridge_mxnet",
         "nettrix-x640-g40-a100-pcie-nvbridge-mxnet"),
        ("A+B", "__x__", "a-b-x"),
        ("Org", "é", "org"),
    ],
)  # fmt: skip
def test_system_names_come_from_any_folder_name(submitter: str, folder: str, name: str) -> None:
    assert system_name(submitter, folder) == name


def test_a_long_folder_name_keeps_a_unique_name() -> None:
    a = system_name("Org", "x" * 80 + "a")
    b = system_name("Org", "x" * 80 + "b")
    assert a != b and len(a) <= MAX_NAME and len(b) <= MAX_NAME


def _verdict(status: str, ruleset: str) -> Any:
    from scripts.mlperf.compliance import Verdict

    return Verdict(status, "" if status == "pass" else "a rule", ruleset, "mlperf-logging")


# PCL's v1.0 MindSpore BERT logs an eval_accuracy during init, before run_start (training
# results v1.0, PCL/results/CloudBrainII_256_mindspore_close/bert/result_0.txt); the v1.0
# checker accepts it, and the workflow's own rule made all 10 runs "did not converge"
PCL_LIKE = _log(
    (1000, "init_start", "{}"),
    (1500, "eval_accuracy", '{"epoch_num": 0}'),
    (2000, "init_stop", "{}"),
    (3000, "run_start", "{}"),
    (9000, "run_stop", '{"status": "aborted"}'),
).replace('"key": "eval_accuracy", "value": null', '"key": "eval_accuracy", "value": 0.75')


@pytest.mark.parametrize(
    ("backend", "status", "ruleset", "converged"),
    [
        ("import", "pass", "1.0.0", True),  # the checker decides, as the summarizer counts it
        ("import", "fail", "1.0.0", False),  # the summarizer drops a failed log
        ("import", "pass", "0.6.0", False),  # v0.6: the workflow's rules (status success ...)
        ("local", "pass", "1.0.0", False),  # a run made here: its own target and rules
    ],
)
def test_a_log_the_checker_accepts_counts_only_for_an_import_of_v07_on(
    tmp_path: Path, backend: str, status: str, ruleset: str, converged: bool
) -> None:
    from scripts.run.result_json import parse_run

    log = tmp_path / "mlperf.log"
    log.write_text(PCL_LIKE)
    meta = RunRecord.of(benchmark="b", system="s", run=1, backend=backend)
    quality = {"metric": "mlm", "target": 0.72}
    result = parse_run(log, meta, quality, verdict=_verdict(status, ruleset))
    assert result.converged is converged
    if converged:
        assert result.time_to_train_s == 6.0 and result.log_problems == []
        assert all(p.startswith("note: ") for p in result.problems or [])
        text = " ".join(result.problems or [])
        assert "before run_start" in text and "aborted" in text


def test_a_log_of_another_benchmark_has_no_result_even_when_the_checker_accepts_it(
    tmp_path: Path,
) -> None:
    from scripts.run.result_json import parse_run

    log = tmp_path / "mlperf.log"
    log.write_text(PCL_LIKE)
    meta = RunRecord.of(benchmark="b", system="s", run=1, backend="import",
                        import_problems=["submission_benchmark is 'ssd'"])  # fmt: skip
    result = parse_run(log, meta, {"target": 0.72}, verdict=_verdict("pass", "1.0.0"))
    assert not result.converged and result.time_to_train_s is None
    assert (result.log_problems or [])[0] == "submission_benchmark is 'ssd'"
