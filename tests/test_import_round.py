"""A whole published MLPerf round imported in one step and scored exactly as mlperf-logging's
result summarizer scores it: NVIDIA's v5.0 folders (expected.tsv is the summarizer's own
output), the RCP scaling factor, a non-converged run, a 3-run benchmark, folders numbered
result_1..10, a folder alias, the published system description, and Intel's v0.6 lines."""

from __future__ import annotations

import csv
import json
import random
import re
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from mlperf_logging.compliance_checker import mlp_parser
from mlperf_logging.result_summarizer import result_summarizer as summarizer

from scripts.analysis import runs_table, summary_table
from scripts.analysis.scoring import olympic_score
from scripts.campaign import topology
from scripts.core.layout import benchmark_folder, result_files
from scripts.core.run_records import ResultRecord, RunRecord
from scripts.mlperf.log_parser import parse_file, parse_text
from scripts.mlperf.outcome import eval_events, run_outcome
from scripts.run.published import cli
from scripts.run.published.folder import SYSTEM_COLUMNS, scaling_factor, system_columns
from scripts.run.published.overlay import build_overlay
from scripts.run.published.run import import_run
from scripts.run.published.tree import OverlayError, detect_round, round_benchmarks, system_name
from scripts.run.result_json import write_result
from tests.conftest import REPO, copy_workflow, need_fixtures, snakemake

V50 = "mlperf-v5.0-nvidia"
V06 = "mlperf-v0.6-nvidia"
CHECKER = Path(mlp_parser.__file__).resolve().parents[1]  # compliance_checker/
DGX1_SCORE_S = 1233.20325  # NVIDIA's published v0.6 GNMT result on DGX-1 (tests/test_import.py)
DGX2_SCORE_S = 656.17275  # and on DGX-2
GNMT_V06 = {"metric": "bleu", "target": 24.0, "direction": "higher"}


def expected_rows() -> list[dict[str, str]]:
    """expected.tsv: what the official summarizer computed for each v5.0 fixture folder."""
    path = need_fixtures() / V50 / "expected.tsv"
    with path.open() as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def checker_quality(benchmark: str) -> dict[str, Any]:
    """The v5.0 quality target as the closed compliance checker tests it (the first bound of
    eval_accuracy's ATLEAST_ONE_CHECK in training_5.0.0/closed_<benchmark>.yaml)."""
    rules = yaml.safe_load((CHECKER / "training_5.0.0" / f"closed_{benchmark}.yaml").read_text())
    for rule in rules:
        check = (rule.get("KEY") or {}).get("ATLEAST_ONE_CHECK")
        if check:
            m = re.search(r"v\['value'\](?:\['\w+'\])?\s*(>=|<=)\s*([0-9.]+)", check)
            assert m, check
            direction = "higher" if m.group(1) == ">=" else "lower"
            return {"metric": "quality", "target": float(m.group(2)), "direction": direction}
    raise AssertionError(f"no ATLEAST_ONE_CHECK in closed_{benchmark}.yaml")


def v50_quality(benchmark: str) -> dict[str, Any]:
    """The round's definition when config/benchmarks/mlperf-v5.0.yaml exists, else the
    compliance checker's target."""
    definitions = round_benchmarks("5.0") or {}
    bench = definitions.get(f"{benchmark}-v5.0")
    return dict(bench["quality"]) if bench else checker_quality(benchmark)


def import_folder(
    folder: Path,
    tmp: Path,
    quality: dict[str, Any],
    *,
    benchmark: str = "b",
    system: str = "s",
    mlperf: dict[str, Any] | None = None,
    ruleset: str | None = None,
) -> pd.DataFrame:
    """Every result file of ``folder`` imported as the runs of one system (import_run, then
    result.json as the import job writes it: with ``ruleset``, judged by mlperf-logging's
    compliance checker of that ruleset), collected into runs.csv's frame."""
    results = []
    mlperf_name = folder.name if folder.name != "mask" else "maskrcnn"
    for run, source in enumerate(result_files(folder), start=1):
        run_dir = tmp / "results" / benchmark / system / f"run_{run:02d}"
        spec = {
            "benchmark": benchmark,
            "system": system,
            "run": run,
            "scale": "published",
            "mlperf_name": mlperf_name,
            "config_fingerprint": "cfp",
            "comparability": {},
            "mlperf": mlperf or {},
        }
        log, meta = run_dir / "mlperf.log", run_dir / "run.json"
        import_run(source, spec, log, meta)
        write_result(
            log,
            meta,
            quality,
            "run_stop",
            run_dir / "result.json",
            compliance_ruleset=ruleset,
            compliance_cache=tmp / "compliance" if ruleset else None,
        )
        results.append(run_dir / "result.json")
    return runs_table.collect(results)


# ---------------------------------------------------------------------------------------------
# the v5.0 folders score as the official summarizer scored them


SD_LOG = "".join(
    f':::MLLOG {{"namespace": "", "time_ms": {t}, "event_type": "{kind}", "key": "{key}", '
    f'"value": {value}, "metadata": {meta}}}\n'
    for t, kind, key, value, meta in (
        (1000, "INTERVAL_START", "run_start", "null", "{}"),
        (5000, "POINT_IN_TIME", "eval_accuracy", "80.0", '{"samples_count": 8, "metric": "FID"}'),
        (6000, "POINT_IN_TIME", "eval_accuracy", "0.16", '{"samples_count": 8, "metric": "CLIP"}'),
        (7000, "INTERVAL_END", "run_stop", "null", '{"status": "success"}'),
    )
)
SD_QUALITY = {
    "metric": "fid",
    "target": 90.0,
    "direction": "lower",
    "value_key": "FID",
    "also_targets": {"CLIP": 0.15},
    "also_directions": {"CLIP": "higher"},
}


def parse_run_reads_also_directions() -> bool:
    """Whether scripts.run.result_json.parse_run gives run_outcome the quality's also_directions
    (Stable Diffusion's CLIP is higher-is-better while FID is lower)."""
    from tempfile import TemporaryDirectory  # only here: one probe at collection

    from scripts.run.result_json import parse_run

    with TemporaryDirectory() as tmp:
        log = Path(tmp) / "mlperf.log"
        log.write_text(SD_LOG)
        meta = RunRecord.of(benchmark="b", system="s", run=1)
        return bool(parse_run(log, meta, SD_QUALITY).converged)


def v50_param(row: dict[str, str]) -> Any:
    marks = []
    if row["benchmark"] == "stable_diffusion" and not parse_run_reads_also_directions():
        reason = (
            "scripts/run/result_json.py parse_run must pass also_directions=quality.get("
            "'also_directions') to run_outcome (CLIP is higher-is-better, FID lower)"
        )
        marks.append(pytest.mark.xfail(strict=True, reason=reason))
    return pytest.param(row, marks=marks, id=f"{row['system']}/{row['benchmark']}")


def test_stable_diffusions_fid_and_clip_events_are_one_evaluation_as_the_checker_has_them() -> None:
    """v5.0 Stable Diffusion logs FID and CLIP as two eval_accuracy events naming their metric;
    the compliance checker aggregates them per samples_count (aggregated_eval_accuracy), and so
    does the parser: one evaluation, FID the quality, CLIP (higher is better) also met."""
    parsed = parse_text(SD_LOG)
    (ev,) = eval_events(parsed)
    assert ev.value == {"FID": 80.0, "CLIP": 0.16} and ev.time_s == 6.0
    assert ev.metadata == {"samples_count": 8}
    args = {k: v for k, v in SD_QUALITY.items() if k not in ("metric", "target", "direction")}
    o = run_outcome(parsed, 90.0, "lower", **args)
    assert o.converged and o.final_quality == 80.0 and o.final_components == {"CLIP": 0.16}
    low_clip = run_outcome(parse_text(SD_LOG.replace("0.16", "0.14")), 90.0, "lower", **args)
    assert not low_clip.converged
    assert "final eval_accuracy CLIP 0.14 does not meet target 0.15" in low_clip.problems
    folder = need_fixtures() / V50 / "results" / "nyx_n1_ngc25.04_nemo" / "stable_diffusion"
    for f in result_files(folder):
        assert run_outcome(parse_file(f), 90.0, "lower", **args).converged, f


@pytest.mark.parametrize("row", [v50_param(r) for r in expected_rows()])
def test_each_v50_folder_scores_as_the_official_result_summarizer(
    row: dict[str, str], tmp_path: Path
) -> None:
    root = need_fixtures() / V50
    folder = root / "results" / row["system"] / row["benchmark"]
    runs = import_folder(folder, tmp_path, v50_quality(row["benchmark"]), ruleset="5.0.0")
    summary = summary_table.summarize_system(runs, resamples=200)
    assert summary["n_runs"] == int(row["n_logs"])
    assert summary["valid"], summary["reason"]
    assert summary["score_s"] == pytest.approx(float(row["score_min"]) * 60, rel=1e-9)
    assert summary["rcp_scaling_factor"] == float(row["scaling_factor"])
    assert summary["score_s"] == pytest.approx(
        summary["score_unscaled_s"] * float(row["scaling_factor"]), rel=1e-12
    )
    desc = json.loads((root / "systems" / f"{row['system']}.json").read_text())
    assert summary["submitter"] == row["submitter"] == desc["submitter"]
    assert summary["division"] == "closed"
    assert summary["accelerator"] == desc["accelerator_model_name"]
    assert summary["n_nodes"] == int(desc["number_of_nodes"])
    assert summary["n_accelerators"] == int(desc["number_of_nodes"]) * int(
        desc["accelerators_per_node"]
    )
    assert summary["framework"] == desc["framework"]


def test_the_non_converged_tyche_bert_run_is_dropped_as_the_slowest(tmp_path: Path) -> None:
    folder = need_fixtures() / V50 / "results" / "tyche_ngpu64_ngc25.04_pytorch" / "bert"
    runs = import_folder(folder, tmp_path, v50_quality("bert"))  # the parser alone
    assert runs["converged"].tolist() == [True] * 4 + [False] + [True] * 5  # result_4.txt
    checked = import_folder(folder, tmp_path / "checked", v50_quality("bert"), ruleset="5.0.0")
    assert checked["converged"].tolist() == runs["converged"].tolist()  # the checker agrees
    summary = summary_table.summarize_system(runs, resamples=200)
    assert summary["n_converged"] == 9 and summary["dropped_slowest_run"] == 5
    assert summary["rcp_scaling_factor"] == 1.0


def test_a_three_run_benchmark_averages_the_middle_run(tmp_path: Path) -> None:
    folder = need_fixtures() / V50 / "results" / "eos-dfw_n64_ngc25.01_nemo" / "llama31_405b"
    runs = import_folder(folder, tmp_path, v50_quality("llama31_405b"))
    summary = summary_table.summarize_system(runs, resamples=200)
    middle = sorted(runs["time_to_train_s"])[1]
    assert summary["n_runs"] == 3 and summary["score_unscaled_s"] == pytest.approx(middle)
    meta = json.loads((tmp_path / "results/b/s/run_01/run.json").read_text())
    assert meta["rcp_scaling_factor"] == 1.1666666666666667
    assert meta["system_json"]["path"].endswith("systems/eos-dfw_n64_ngc25.01_nemo.json")
    assert len(meta["system_json"]["sha256"]) == 64
    assert meta["system_json"]["n_accelerators"] == 512


# ---------------------------------------------------------------------------------------------
# the scoring rule itself, against the summarizer's own functions


def summarizer_score(times: list[float], converged: list[bool], drop: int, factor: float) -> Any:
    """_compute_strong_score_standalone's arithmetic: the converged scores, the number dropped,
    _compute_olympic_average, None past max_dropped_scores, times the factor."""
    scores = [t for t, c in zip(times, converged, strict=True) if c]
    dropped = len(times) - len(scores)
    if dropped > drop:
        return None
    mean = summarizer._compute_olympic_average(scores, dropped, drop)
    return None if mean is None else mean * factor


@pytest.mark.parametrize("drop", [1, 4])
def test_olympic_score_agrees_with_the_summarizers_average(drop: int) -> None:
    rng = random.Random(drop)
    for _ in range(300):
        n = rng.randint(2 * drop + 1, 14)
        times = [round(rng.uniform(100, 200), 3) for _ in range(n)]
        converged = [rng.random() > 0.15 for _ in range(n)]
        factor = rng.choice([1.0, 1.0082028337061892, 1.1666666666666667])
        want = summarizer_score(times, converged, drop, factor)
        got = olympic_score(
            times, converged, max_nonconverged=drop, drop=drop, scaling_factor=factor
        )
        assert got.valid == (want is not None), (times, converged)
        if want is not None:
            assert got.score_s == pytest.approx(want, rel=1e-12)
            assert got.unscaled_s * factor == pytest.approx(got.score_s, rel=1e-15)


def test_unet3d_drops_four_runs_at_each_end_and_allows_four_that_missed() -> None:
    times = [float(t) for t in range(100, 110)]
    s = olympic_score(times, [True] * 10, max_nonconverged=4, drop=4)
    assert s.valid and s.score_s == (104 + 105) / 2 and len(s.dropped) == 8
    five_missed = [True] * 5 + [False] * 5
    assert not olympic_score(times, five_missed, max_nonconverged=4, drop=4).valid
    assert not olympic_score(times[:8], [True] * 8, max_nonconverged=4, drop=4).valid


def test_olympic_drop_reaches_the_summary_from_the_runs_or_the_command_line() -> None:
    runs = pd.DataFrame(
        {
            "benchmark": "unet3d-v3.0",
            "system": "s",
            "run": range(1, 11),
            "time_to_train_s": [float(t) for t in range(100, 110)],
            "converged": [True] * 9 + [False],
            "fingerprint": "fp",
            "scale": "published",
            "olympic_drop": 4,
            "rcp_scaling_factor": 1.5,
        }
    )
    row = summary_table.summarize_system(runs, resamples=100)
    assert row["valid"] and row["score_unscaled_s"] == (104 + 105) / 2  # 4 fastest, 1 + 3 slowest
    assert row["score_s"] == 1.5 * row["score_unscaled_s"]
    one = summary_table.summarize_system(runs, resamples=100, olympic_drop=1)
    assert one["score_unscaled_s"] == sum(range(101, 109)) / 8
    # runs made here record no drop: a benchmark allowing 4 misses drops 4 (the summarizer's
    # max_dropped_scores is both numbers)
    here = runs.drop(columns=["olympic_drop", "rcp_scaling_factor"])
    assert summary_table.summarize_system(here, 4, resamples=100)["score_s"] == (104 + 105) / 2
    assert (
        summary_table.summarize_system(here, 1, resamples=100)["score_s"] == one["score_unscaled_s"]
    )
    mixed = runs.assign(rcp_scaling_factor=[1.5] * 9 + [1.0])
    with pytest.raises(summary_table.AggregationError, match="different RCP scaling factors"):
        summary_table.summarize_system(mixed, resamples=100)


def test_scaling_json_is_read_as_the_summarizer_reads_it(tmp_path: Path) -> None:
    assert scaling_factor(tmp_path) == 1.0 == summarizer._get_scaling_factor(tmp_path)
    (tmp_path / "scaling.json").write_text('{"scaling_factor": 1.0324858757062148}')
    assert scaling_factor(tmp_path) == summarizer._get_scaling_factor(str(tmp_path))
    (tmp_path / "scaling.json").write_text('{"factor": 2}')
    with pytest.raises(ValueError, match=r"scaling.json: expected \{\"scaling_factor\""):
        scaling_factor(tmp_path)


def test_system_columns_are_derived_as_the_summarizer_derives_them() -> None:
    desc = {
        "submitter": "Google",
        "division": "closed",
        "number_of_nodes": "2",
        "accelerators_per_node": "4",
        "accelerator_model_name": "tpu-v3",
        "framework": "TensorFlow 1.14 commit hash = abc123",
    }
    cols = system_columns(desc)
    assert cols["accelerator"] == summarizer._pretty_accelerator_model_name(desc) == "TPUv3"
    assert cols["framework"] == summarizer._pretty_framework(desc) == "TensorFlow 1.14"
    assert (cols["n_nodes"], cols["n_accelerators"]) == (2, 8)
    assert system_columns(None) == dict.fromkeys(SYSTEM_COLUMNS)


# ---------------------------------------------------------------------------------------------
# the overlay


def test_system_names_lowercase_and_replace_underscores_dots_and_pluses() -> None:
    assert system_name("NVIDIA", "nyx_n1_ngc25.04_pytorch") == (
        "nvidia-nyx-n1-ngc25-04-pytorch"
    )
    assert system_name("Dell", "XE9680x8H100+SXM") == "dell-xe9680x8h100-sxm"
    # any other character too (tests/test_published_scores.py has more)
    assert system_name("A B", "x") == "a-b-x"


def test_the_round_comes_from_the_path_or_a_clear_error(tmp_path: Path) -> None:
    assert detect_round(tmp_path / "training_results_v4.1" / "NVIDIA") == "4.1"
    assert detect_round(need_fixtures() / V50) == "5.0"
    with pytest.raises(OverlayError, match="give it with --round"):
        detect_round(tmp_path)


def checkout(tmp_path: Path) -> Path:
    """A training_results_v5.0 checkout holding the fixture's NVIDIA folder."""
    root = tmp_path / "training_results_v5.0"
    (root / "NVIDIA").mkdir(parents=True)
    for part in ("results", "systems"):  # copies: a published tree's links are not followed
        shutil.copytree(need_fixtures() / V50 / part, root / "NVIDIA" / part)
    (root / "Other" / "results" / "box" / "bert").mkdir(parents=True)
    return root


def test_an_overlay_has_one_import_system_per_result_folder(tmp_path: Path) -> None:
    root = need_fixtures() / V50
    overlay, notes = build_overlay(root)  # one submitter's folder
    assert overlay["systems"].keys() == {
        system_name("NVIDIA", d.name) for d in (root / "results").iterdir()
    }
    nyx = overlay["systems"]["nvidia-nyx-n1-ngc25-04-pytorch"]
    assert nyx["backend"] == "import"
    assert nyx["import_dir"] == str((root / "results" / "nyx_n1_ngc25.04_pytorch").resolve())
    assert nyx["description"] == (
        "NVIDIA Nyx (1x NVIDIA DGX B200), 8x NVIDIA Blackwell GPU (B200-SXM-180GB), NVIDIA "
        "PyTorch Release 25.04; published MLPerf Training v5.0 results (closed)"
    )
    wanted = {f"{r['benchmark']}-v5.0" for r in expected_rows()}
    assert set(overlay["campaign"]["benchmarks"]) == wanted
    assert overlay["campaign"]["systems"] == sorted(overlay["systems"])
    if round_benchmarks("5.0") is None:
        assert notes == [
            "config/benchmarks/mlperf-v5.0.yaml does not exist: the overlay names the "
            "benchmarks <folder>-v5.0 but cannot define them"
        ]
        assert "benchmarks" not in overlay
    else:
        assert set(overlay["benchmarks"]) == wanted


def test_a_checkout_is_read_per_submitter_and_system_glob(tmp_path: Path) -> None:
    root = checkout(tmp_path)
    overlay, _ = build_overlay(root, submitter="nvidia", system_glob="nyx_*")
    assert sorted(overlay["systems"]) == [
        "nvidia-nyx-n1-ngc25-03-dgl",
        "nvidia-nyx-n1-ngc25-03-hugectr",
        "nvidia-nyx-n1-ngc25-04-nemo",
        "nvidia-nyx-n1-ngc25-04-pytorch",
    ]
    with pytest.raises(OverlayError, match="holds no results of submitter 'Intel'"):
        build_overlay(root, submitter="Intel")


def test_the_overlay_command_writes_yaml_and_names_a_missing_round(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = checkout(tmp_path)
    out = tmp_path / "overlay.yaml"
    argv = [
        "overlay",
        str(root),
        "--submitter",
        "NVIDIA",
        "--system",
        "tyche*",
        "--output",
        str(out),
    ]
    assert cli.main(argv) == 0
    overlay = yaml.safe_load(out.read_text())
    assert list(overlay["systems"]) == ["nvidia-tyche-ngpu64-ngc25-04-pytorch"]
    assert overlay["campaign"]["benchmarks"] == ["bert-v5.0"]
    assert cli.main(["overlay", str(tmp_path / "x"), "--output", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: cannot tell the MLPerf round of") and len(err[-1]) < 200


# ---------------------------------------------------------------------------------------------
# folders: result_1..10, aliases; Intel's Python-dict lines


def test_a_folder_numbered_result_1_to_10_imports_in_order(tmp_path: Path) -> None:
    src = need_fixtures() / V06 / "dgx1_ngc19.05_pytorch" / "gnmt"
    folder = tmp_path / "dgx1" / "gnmt"
    folder.mkdir(parents=True)
    for n in range(10):
        shutil.copy(src / f"result_{n}.txt", folder / f"result_{n + 1}.txt")
    files = result_files(folder)
    assert [f.name for f in files] == [f"result_{n}.txt" for n in range(1, 11)]  # 10 last
    runs = import_folder(folder, tmp_path, GNMT_V06)
    assert runs["time_to_train_s"].iloc[0] == 1225.22  # result_0.txt, now result_1.txt
    summary = summary_table.summarize_system(runs, resamples=200)
    assert summary["score_s"] == pytest.approx(DGX1_SCORE_S, abs=1e-6)
    assert summary["rcp_scaling_factor"] == 1.0 and summary["submitter"] is None


def test_the_v06_fixtures_still_give_the_published_scores(tmp_path: Path) -> None:
    for system, want in (("dgx1", DGX1_SCORE_S), ("dgx2", DGX2_SCORE_S)):
        folder = need_fixtures() / V06 / f"{system}_ngc19.05_pytorch" / "gnmt"
        runs = import_folder(folder, tmp_path / system, GNMT_V06)
        summary = summary_table.summarize_system(runs, resamples=200)
        assert summary["score_s"] == pytest.approx(want, abs=1e-6)
        assert summary["score_unscaled_s"] == summary["score_s"]


def test_a_folder_alias_such_as_googles_mask_is_the_benchmarks_folder(tmp_path: Path) -> None:
    system_dir = tmp_path / "results" / "tpu-v3-32"
    (system_dir / "mask").mkdir(parents=True)
    log = REPO / "tests" / "data" / "v06" / "dgx1_pytorch_maskrcnn_result_0.txt"
    for n in range(3):
        shutil.copy(log, system_dir / "mask" / f"result_{n}.txt")
    bench = {"mlperf_name": "maskrcnn", "folder_aliases": ["mask"]}
    assert benchmark_folder(system_dir, bench) == system_dir / "mask"
    assert benchmark_folder(system_dir, {"mlperf_name": "maskrcnn"}) is None
    config = {
        "systems": {"g": {"backend": "import", "import_dir": str(system_dir)}},
        "benchmarks": {"maskrcnn-v0.6": bench},
    }
    assert topology.import_folder(config, "maskrcnn-v0.6", "g") == system_dir / "mask"
    quality = {"metric": "bbox_map", "target": 0.377, "value_key": "BBOX"}
    runs = import_folder(system_dir / "mask", tmp_path, quality, benchmark="maskrcnn-v0.6")
    assert len(runs) == 3  # imported (the excerpt has no run_start: runs without a result)


INTEL_LOG = """\
:::MLL 1560873514.706088809 submission_benchmark: {"value": "minigo", "metadata": {"lineno": 0}}
:::MLL 1560873515.984077135 cache_clear: {value: true, metadata: {lineno: 0, file: manual}}
:::MLL 1560873710.141025 run_start: {"value": null, "metadata": {'lineno': 615, 'file': 'x.py'}}
:::MLL 1560873720.5 eval_result: {"value": {"iteration": 3}, "metadata": {"timestamp": 10.4}}
"""


def test_intels_python_dict_lines_fail_as_in_the_official_v06_parser(tmp_path: Path) -> None:
    """Intel's v0.6 MiniGo logs write some payloads as Python dicts. mlperf-logging's v0.6
    parser (ruleset_060) reads payloads with json.loads, not ast.literal_eval: those lines fail
    to parse, and the summarizer drops a file with a failed line ('Parse error'). Ours reads
    the same events and counts the same lines as malformed; without run_start the run has no
    result (not converged), as the summarizer counts it."""
    path = tmp_path / "result_0.txt"
    path.write_text(INTEL_LOG)
    official, failed = mlp_parser.parse_file(str(path), ruleset="0.6.0")
    ours = parse_file(path)
    assert [e.key for e in ours.events] == [ll.key for ll in official]
    assert ours.malformed_line_nos == [2, 3] and len(failed) == 2
    result = write_result_of(path, tmp_path)
    assert not result.converged and "no run_start event" in (result.log_problems or [])


def write_result_of(log: Path, tmp: Path) -> ResultRecord:
    meta = tmp / "run.json"
    meta.write_text(json.dumps({"benchmark": "minigo-v0.6", "system": "intel", "run": 1}))
    quality = {"metric": "win_rate", "target": 0.5}
    return write_result(log, meta, quality, "eval_result", tmp / "result.json")


# ---------------------------------------------------------------------------------------------
# one workflow run of a generated overlay


@pytest.mark.workflow
def test_snakemake_runs_a_generated_overlay_alone(tmp_path: Path) -> None:
    """The overlay of the v5.0 fixture's rgat folder is the only config file snakemake gets
    (the round's definitions come with it), and summary.csv holds the summarizer's score."""
    fixtures = need_fixtures()
    wf = copy_workflow(tmp_path / "wf")
    (row,) = [r for r in expected_rows() if r["benchmark"] == "rgat"]
    overlay = wf / "overlay.yaml"
    argv = ["overlay", str(fixtures / V50), "--system", row["system"], "--output", str(overlay)]
    assert cli.main(argv) == 0
    written = yaml.safe_load(overlay.read_text())
    assert written["campaign"]["benchmarks"] == ["rgat-v5.0"]
    assert written["benchmarks"]["rgat-v5.0"]["mlperf_name"] == "rgat"
    proc = snakemake(wf, "--cores", "2", "--configfile", str(overlay))  # the default target
    assert proc.returncode == 0, proc.stderr[-4000:]
    summary = pd.read_csv(wf / "results" / "rgat-v5.0" / "summary.csv")
    assert summary["system"].tolist() == [system_name("NVIDIA", row["system"])]
    got = summary.iloc[0]
    assert got["score_s"] == pytest.approx(float(row["score_min"]) * 60, rel=1e-9)
    # summary.csv holds 10 significant digits (columns.FLOAT_FORMAT)
    assert got["rcp_scaling_factor"] == pytest.approx(float(row["scaling_factor"]), rel=1e-9)
    assert (got["submitter"], got["n_accelerators"], got["n_nodes"]) == ("NVIDIA", 8, 1)
