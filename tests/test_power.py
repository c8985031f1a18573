"""Energy of published MLPerf power results (scripts/mlperf/power.py), checked against
mlperf-logging's
own result summarizer and package checker: Lenovo's v5.0 BERT power folder, synthetic power
files against ``_compute_power_node``/``_compute_power_sw``/``_compute_total_power``, the
folder's olympic energy against ``_index_olympic_average``, each package-checker power rule,
files that are not regular files, and one workflow run over an overlay with and without power.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import importlib.util
import io
import json
import os
import shutil
import threading
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from mlperf_logging.compliance_checker import mlp_parser
from mlperf_logging.package_checker.power_checker import PowerChecker
from mlperf_logging.result_summarizer import result_summarizer as summarizer

from scripts.analysis import leaderboard, plots, run_columns, summary_table
from scripts.core import layout
from scripts.mlperf import power
from scripts.run.published import cli
from scripts.run.published.folder import folder_files
from scripts.run.published.run import import_run
from scripts.run.published.tree import system_name
from scripts.workflow import import_jobs
from tests.conftest import copy_workflow, need_fixtures, snakemake
from tests.test_import_round import import_folder as import_round_folder

RULESET = "5.0.0"
LENOVO_SYSTEM = "SR780aV3-8xB200_SXM_180GB"
LENOVO_ENERGY_J = 1949215.9387540054  # the summarizer's Energy (expected-energy.tsv)
BERT_QUALITY = {"metric": "mlm_accuracy", "target": 0.72, "direction": "higher"}
BERT_MLPERF = {"round": "5.0", "ruleset": RULESET, "olympic_drop": 1}
HYPOTHESIS = settings(derandomize=True, max_examples=80, deadline=None, database=None)
T0 = 1745514104000  # a time_ms of the Lenovo files


def _pristine_parser() -> Any:
    """mlp_parser's ruleset_500 loaded afresh from its file: scripts.mlperf.compliance speeds up the
    parser of the checker it runs in this process (scripts/mlperf/fast_checker.py), and the
    reference here is the file as shipped."""
    path = Path(mlp_parser.__file__).parent / "ruleset_500.py"
    spec = importlib.util.spec_from_file_location("pristine_power_ruleset_500", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PRISTINE = _pristine_parser()


def official_parse(path: str, ruleset: str = RULESET) -> Any:
    """The summarizer's parse of a power file (``parse_file(path, ruleset)``), pristine."""
    assert ruleset == RULESET
    return PRISTINE.parse_file(path)


@contextlib.contextmanager
def pristine_summarizer() -> Any:
    """The result summarizer reading power files with the pristine parser."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(summarizer, "parse_file", official_parse)
        yield


def lenovo_bert() -> Path:
    return (
        need_fixtures()
        / "mlperf-more"
        / "training_results_v5.0"
        / "Lenovo"
        / "results"
        / LENOVO_SYSTEM
        / "bert"
    )


def quiet(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """An official function, its prints (warnings, notices) kept off the test's output."""
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args, **kwargs)


def line(t: float | int | str, key: str, value: Any, **meta: Any) -> str:
    """One ``:::MLLOG`` line as mllog writes it."""
    rec = {
        "namespace": "",
        "time_ms": t,
        "event_type": "POINT_IN_TIME",
        "key": key,
        "value": value,
        "metadata": {"file": "power_measurement.py", "lineno": 1, **meta},
    }
    return ":::MLLOG " + json.dumps(rec) + "\n"


def import_folder(folder: Path, tmp: Path, ruleset: str | None = RULESET) -> pd.DataFrame:
    """Every result file of ``folder`` imported as one system's runs of bert (as the import job
    does: tests/test_import_round.py), collected into runs.csv's frame."""
    return import_round_folder(
        folder, tmp, BERT_QUALITY, benchmark="bert", mlperf=BERT_MLPERF, ruleset=ruleset
    )


# ---------------------------------------------------------------------------------------------
# Lenovo's v5.0 BERT power folder


def test_expected_energy_tsv_holds_the_summarizers_energy() -> None:
    path = need_fixtures() / "mlperf-more" / "expected-energy.tsv"
    with path.open() as fh:
        (row,) = [r for r in csv.DictReader(fh, delimiter="\t") if r["system"] == LENOVO_SYSTEM]
    assert float(row["energy_j"]) == LENOVO_ENERGY_J


def test_lenovo_bert_energy_is_the_summarizers_to_1e_9(tmp_path: Path) -> None:
    folder = lenovo_bert()
    runs = import_folder(folder, tmp_path)
    summary = summary_table.summarize(runs)
    got = float(summary["energy_j"].iloc[0])
    with pristine_summarizer():
        _, official, factor = quiet(
            summarizer._compute_strong_score_standalone,
            "bert",
            LENOVO_SYSTEM,
            summarizer._has_power(str(folder)),
            str(folder),
            "training",
            RULESET,
        )
    assert official == pytest.approx(LENOVO_ENERGY_J, rel=1e-9)
    assert got == pytest.approx(LENOVO_ENERGY_J, rel=1e-9)
    assert got == pytest.approx(official, rel=1e-9)
    assert float(summary["energy_kwh"].iloc[0]) == pytest.approx(got / 3.6e6, rel=1e-12)
    assert factor == 1.0 and bool(summary["valid"].iloc[0])
    # each run's energy is the summarizer's own, and no power rule is broken
    with pristine_summarizer():
        tracked = quiet(
            summarizer._compute_strong_score_standalone,
            "bert",
            LENOVO_SYSTEM,
            True,
            str(folder),
            "training",
            RULESET,
            return_full_scores=True,
        )[1]
    by_name = {Path(k).name: v for k, v in tracked.items()}
    for source, energy in zip(layout.result_files(folder), runs["energy_j"], strict=True):
        assert energy == pytest.approx(by_name[source.name], rel=1e-12)
    assert not runs["power_problems"].fillna("").any()
    assert not runs["log_problems"].fillna("").any()


def test_run_json_records_each_power_files_facts_and_sha256(tmp_path: Path) -> None:
    source = lenovo_bert() / "result_0.txt"
    spec = {
        "benchmark": "bert",
        "system": "s",
        "run": 1,
        "scale": "published",
        "mlperf_name": "bert",
        "config_fingerprint": "cfp",
        "comparability": {},
    }
    meta = import_run(source, spec, tmp_path / "mlperf.log", tmp_path / "run.json")
    block = json.loads((tmp_path / "run.json").read_text())["power"]
    assert block == meta.power
    (node,) = block["files"]
    path = source.parent / "power" / "result_0" / "node_0.txt"
    assert node["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (node["kind"], node["index"], node["conversion_eff"]) == ("node", 0, 0.94)
    assert node["stop_found"] and node["readings"] > 60 and block["scorable"]
    assert block["problems"] == []


def test_a_changed_power_file_changes_the_import_batchs_sources_digest(tmp_path: Path) -> None:
    folder = tmp_path / "bert"
    shutil.copytree(lenovo_bert(), folder)
    for p in [folder, *folder.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    paths = folder_files(folder)
    node = folder / "power" / "result_3" / "node_0.txt"
    assert node in paths and folder / "power" / "result_3" in paths
    before = import_jobs._sources_digest(paths)
    with node.open("a") as fh:
        fh.write(line(T0 + 10**6, "power_reading", 1.0))
    assert import_jobs._sources_digest(folder_files(folder)) != before
    assert power.folder_paths(tmp_path) == []  # no power/: nothing more to watch


# ---------------------------------------------------------------------------------------------
# synthetic power files against the summarizer's functions


def benchmark_folder(tmp: Path, runs: dict[str, dict[str, str]]) -> Path:
    """A benchmark folder: per result name, an empty result file and its power files."""
    folder = tmp / "bert"
    folder.mkdir(parents=True, exist_ok=True)
    for name, files in runs.items():
        (folder / f"{name}.txt").write_text("")
        (folder / "power" / name).mkdir(parents=True, exist_ok=True)
        for file_name, text in files.items():
            (folder / "power" / name / file_name).write_text(text)
    return folder


@st.composite
def node_files(draw: Any) -> str:
    """A node file: readings (some at equal times, some before the start or after the stop),
    conversion_eff lines, a start, maybe a stop, the lines in any order, times integer or
    fractional milliseconds."""
    fractional = draw(st.booleans())
    step = st.floats(0.001, 5000.0) if fractional else st.integers(0, 5000)
    watts = st.one_of(st.integers(0, 20000), st.floats(0.0, 20000.0, allow_nan=False))
    n = draw(st.integers(1, 40))
    gaps = draw(st.lists(step, min_size=n, max_size=n))
    values = draw(st.lists(watts, min_size=n, max_size=n))
    start = T0 + draw(st.integers(0, 10**6))
    times, t = [], float(start) if fractional else start
    for gap in gaps:
        t += gap
        times.append(t)
    lines = [line(start, "power_measurement_start", None)]
    lines += [
        line(t, "power_reading", v, host="node_0") for t, v in zip(times, values, strict=True)
    ]
    lines += [
        line(start - draw(st.integers(0, 5000)), "power_reading", draw(watts))
        for _ in range(draw(st.integers(0, 3)))
    ]  # before the start (or at it, written before it): not counted
    if draw(st.booleans()):
        stop = times[draw(st.integers(0, n - 1))]
        lines.append(line(stop, "power_measurement_stop", None))
        lines += [line(stop + draw(st.integers(0, 3000)), "power_reading", draw(watts))]
    for _ in range(draw(st.integers(0, 3))):
        when = start + draw(st.integers(-2000, 10**5))
        lines.append(line(when, "conversion_eff", draw(st.floats(0.5, 1.0)), measurement_type="AC"))
    return "".join(draw(st.permutations(lines)))


@st.composite
def switch_files(draw: Any) -> str:
    """A switch file: conversion_eff and interconnect_power_est lines in any order (or none)."""
    items = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["conversion_eff", "interconnect_power_est"]),
                st.floats(0.1, 5000.0),
            ),
            max_size=5,
        )
    )
    return "".join(line(T0 + i, key, v) for i, (key, v) in enumerate(items))


def official_node(path: Path, time_to_train: float) -> float:
    loglines, _ = official_parse(str(path), RULESET)
    return quiet(summarizer._compute_power_node, loglines, time_to_train)


def official_sw(path: Path, time_to_train: float) -> float:
    loglines, _ = official_parse(str(path), RULESET)
    return summarizer._compute_power_sw(loglines, time_to_train)


def one_file(facts: dict[str, Any], kind: str) -> dict[str, Any]:
    return {"scorable": True, "files": [{**facts, "kind": kind}]}


@HYPOTHESIS
@given(text=node_files(), time_to_train=st.integers(1, 10**7))
def test_a_node_file_scores_as_compute_power_node(
    tmp_path_factory: pytest.TempPathFactory, text: str, time_to_train: int
) -> None:
    path = tmp_path_factory.mktemp("node") / "node_0.txt"
    path.write_text(text)
    facts = power.read_power_file(path, "node")
    if facts["problems"]:  # only an empty window (stop = start) stops the summarizer
        assert facts["problems"] == [f"{path}: the measurement window is empty (stop = start)"]
        with pytest.raises(ZeroDivisionError):
            official_node(path, float(time_to_train))
        return
    got = power.energy_j(one_file(facts, "node"), float(time_to_train))
    assert got == pytest.approx(official_node(path, float(time_to_train)), rel=1e-12, abs=0.0)


@HYPOTHESIS
@given(text=switch_files(), time_to_train=st.integers(1, 10**7))
def test_a_switch_file_scores_as_compute_power_sw(
    tmp_path_factory: pytest.TempPathFactory, text: str, time_to_train: int
) -> None:
    path = tmp_path_factory.mktemp("sw") / "sw_0.txt"
    path.write_text(text)
    facts = power.read_power_file(path, "sw")
    assert facts["problems"] == []
    got = power.energy_j(one_file(facts, "sw"), float(time_to_train))
    assert got == pytest.approx(official_sw(path, float(time_to_train)), rel=1e-12, abs=0.0)


@HYPOTHESIS
@given(
    nodes=st.lists(node_files(), min_size=1, max_size=3),
    switches=st.lists(switch_files(), max_size=2),
    time_to_train=st.integers(1, 10**7),
)
def test_a_result_folder_scores_as_compute_total_power(
    tmp_path_factory: pytest.TempPathFactory,
    nodes: list[str],
    switches: list[str],
    time_to_train: int,
) -> None:
    files = {f"node_{i}.txt": t for i, t in enumerate(nodes)}
    files |= {f"sw_{i}.txt": t for i, t in enumerate(switches)}
    folder = benchmark_folder(tmp_path_factory.mktemp("total"), {"result_0": files})
    block = power.result_power(folder / "result_0.txt")
    assert block is not None
    if not block["scorable"]:
        assert all("window is empty" in p for p in block["problems"]), block["problems"]
        return
    with pristine_summarizer():
        want = quiet(
            summarizer._compute_total_power,
            str(folder),
            str(folder / "result_0.txt"),
            float(time_to_train),
            RULESET,
        )
    # glob order may differ from ours: the same sum, maybe in another order
    assert power.energy_j(block, float(time_to_train)) == pytest.approx(want, rel=1e-12)


def test_readings_count_only_inside_the_window_and_a_missing_stop_is_the_last_reading(
    tmp_path: Path,
) -> None:
    text = "".join(
        [
            line(T0 + 500, "power_reading", 9999.0),  # before the start: not counted
            line(T0 + 1000, "power_reading", 7777.0),  # at the start, written first: not counted
            line(T0 + 1000, "power_measurement_start", None),
            line(T0 + 1000, "conversion_eff", 0.5),
            line(T0 + 2000, "power_reading", 100.0),
            line(T0 + 2000, "power_reading", 300.0),  # an equal time: weighs 0
            line(T0 + 4000, "power_reading", 200.0),
            line(T0 + 3000, "conversion_eff", 0.9),  # sorted before the reading at 4000: wins
        ]
    )
    path = tmp_path / "node_0.txt"
    path.write_text(text)
    facts = power.read_power_file(path, "node")
    assert facts["integral_w_ms"] == 100.0 * 1000 + 300.0 * 0 + 200.0 * 2000
    assert (facts["start_ms"], facts["stop_ms"], facts["stop_found"]) == (
        T0 + 1000,
        T0 + 4000,
        False,
    )
    assert facts["conversion_eff"] == 0.9
    got = power.energy_j(one_file(facts, "node"), 6000.0)
    assert got == official_node(path, 6000.0)
    assert got == 0.9 * 500000.0 * 6000.0 / 3000.0 / 1000


def test_a_switch_takes_its_first_estimate_and_the_efficiency_before_it(tmp_path: Path) -> None:
    path = tmp_path / "sw_0.txt"
    path.write_text(
        line(T0 + 9, "conversion_eff", 0.8)
        + line(T0 + 5, "interconnect_power_est", 400.0)
        + line(T0 + 1, "conversion_eff", 0.1)  # after it in the file: ignored
        + line(T0, "interconnect_power_est", 999.0)
    )
    facts = power.read_power_file(path, "sw")
    assert (facts["conversion_eff"], facts["interconnect_power_est"]) == (0.8, 400.0)
    assert power.energy_j(one_file(facts, "sw"), 1000.0) == official_sw(path, 1000.0) == 320.0


def test_lines_the_summarizers_parser_skips_are_skipped_and_others_named(tmp_path: Path) -> None:
    path = tmp_path / "node_0.txt"
    path.write_text(
        "0: "
        + line(T0, "power_measurement_start", None)  # a prefix before the marker
        + ":::MLLOG {not json\n"
        + line("1.2.3", "power_reading", 5.0)  # float() fails: skipped as mlp_parser skips it
        + line(T0 + 1000, "power_reading", 10.0).replace("\n", "\r")  # a lone CR ends a line
        + line(T0 + 2000, "power_measurement_stop", None)
    )
    facts = power.read_power_file(path, "node")
    assert facts["problems"] == [] and facts["readings"] == 1
    assert power.energy_j(one_file(facts, "node"), 2000.0) == official_node(path, 2000.0)
    path.write_text(':::MLLOG {"time_ms": 1, "key": "power_reading", "value": 1}\n')
    (problem,) = power.read_power_file(path, "node")["problems"][:1]
    assert "line 1: not a power event the summarizer can read" in problem


# ---------------------------------------------------------------------------------------------
# the folder's energy: _index_olympic_average over the runs the time score averages


@HYPOTHESIS
@given(
    data=st.data(),
    drop=st.sampled_from([1, 4]),
    factor=st.sampled_from([1.0, 1.0082028337061892]),
)
def test_the_folders_energy_is_index_olympic_average(data: Any, drop: int, factor: float) -> None:
    n = data.draw(st.integers(2 * drop + 1, 2 * drop + 8))
    times = data.draw(st.lists(st.integers(100_000, 900_000), min_size=n, max_size=n, unique=True))
    energies = data.draw(st.lists(st.floats(1e5, 1e8), min_size=n, max_size=n))
    missed = set(data.draw(st.lists(st.integers(0, n - 1), max_size=drop, unique=True)))
    rows = [
        {
            "benchmark": "b",
            "system": "s",
            "run": i + 1,
            "time_to_train_s": t / 1000,
            "converged": i not in missed,
            "log_problems": "",
            "fingerprint": "fp",
            "rcp_scaling_factor": factor,
            "olympic_drop": drop,
            "energy_j": e,
        }
        for i, (t, e) in enumerate(zip(times, energies, strict=True))
    ]
    summary = summary_table.summarize(pd.DataFrame(rows, columns=run_columns.RUN_COLUMNS))
    # the summarizer: the runs that pass, in file order; the energies sorted by their times
    passing = [i for i in range(n) if i not in missed]
    scores = [times[i] / 60 / 1000 for i in passing]
    index = [i for i, _ in sorted(enumerate(scores), key=lambda x: x[1])]
    want = summarizer._index_olympic_average(
        [energies[i] for i in passing], index, len(missed), drop
    )
    assert bool(summary["valid"].iloc[0])
    assert float(summary["energy_j"].iloc[0]) == pytest.approx(want * factor, rel=1e-12)


def test_a_counted_run_without_energy_leaves_the_folders_energy_empty() -> None:
    counted = [(1.0, 0, 5.0), (2.0, 1, None), (3.0, 2, 6.0)]
    assert power.olympic_energy_j(counted) is None
    assert power.olympic_energy_j([(2.0, 1, 4.0), (1.0, 0, 2.0)], 2.0) == 6.0
    assert power.olympic_energy_j([]) is None
    assert power.energy_j(None, 1000.0) is None
    assert power.time_to_train_ms(214.276) == 214276.0 and power.time_to_train_ms(None) is None


# ---------------------------------------------------------------------------------------------
# the package checker's power rules, as named problems


def node_text(watts: float = 1000.0) -> str:
    return (
        line(T0, "power_measurement_start", None)
        + line(T0 + 1000, "power_reading", watts)
        + line(T0 + 2000, "power_measurement_stop", None)
    )


def problems_of(folder: Path, name: str) -> list[str]:
    block = power.result_power(folder / f"{name}.txt")
    assert block is not None
    assert all(p.startswith("power: ") for p in block["problems"])
    return block["problems"]


def official_errors(folder: Path) -> set[str]:
    files = [str(p) for p in layout.result_files(folder)]
    return PowerChecker(RULESET).check_power(str(folder / "power"), files)[1]


def test_a_result_without_its_power_folder_is_named(tmp_path: Path) -> None:
    folder = benchmark_folder(tmp_path, {"result_0": {"node_0.txt": node_text()}})
    (folder / "result_1.txt").write_text("")
    (problem,) = problems_of(folder, "result_1")
    assert "power/result_1/ is missing" in problem and "package checker" in problem
    assert problems_of(folder, "result_0") == []
    assert power.result_power(folder / "result_1.txt")["scorable"] is False
    assert "result_1" in official_errors(folder)


def test_node_and_switch_indices_must_be_0_to_n_minus_1_each_once(tmp_path: Path) -> None:
    folder = benchmark_folder(
        tmp_path,
        {
            "result_0": {"node_0.txt": node_text(), "node_2.txt": node_text()},
            "result_1": {"node_0.txt": node_text(), "node_00.txt": node_text()},
            "result_2": {"node_0.txt": node_text(), "node_1.txt": node_text(), "sw_1.txt": ""},
        },
    )
    (gap,) = problems_of(folder, "result_0")
    assert "node files are not node_0 to node_1, each once" in gap
    (duplicate,) = problems_of(folder, "result_1")
    assert "node files are not node_0 to node_1" in duplicate and "node_00.txt" in duplicate
    (switch,) = [p for p in problems_of(folder, "result_2") if "sw files are not" in p]
    assert "sw_0 to sw_0" in switch
    assert {"result_0", "result_2"} <= official_errors(folder)  # (it misses the duplicate)


def test_runs_with_other_node_or_switch_counts_are_named(tmp_path: Path) -> None:
    two = {"node_0.txt": node_text(), "node_1.txt": node_text()}
    folder = benchmark_folder(
        tmp_path,
        {
            "result_0": two,
            "result_1": two,
            "result_2": {"node_0.txt": node_text()},
            "result_3": {**two, "sw_0.txt": line(T0, "interconnect_power_est", 50.0)},
        },
    )
    assert problems_of(folder, "result_0") == []
    (nodes,) = problems_of(folder, "result_2")
    assert "has 1 node files, the folder's runs mostly 2" in nodes
    (switches,) = problems_of(folder, "result_3")
    assert "has 1 sw files, the folder's runs mostly 0" in switches
    # a counted problem is named but does not stop the energy (the summarizer scores it)
    assert power.result_power(folder / "result_2.txt")["scorable"] is True
    assert {"result_2", "result_3"} <= official_errors(folder)


def test_a_node_file_without_power_measurement_start_is_named_and_not_scored(
    tmp_path: Path,
) -> None:
    text = line(T0 + 1000, "power_reading", 5.0) + line(T0 + 2000, "power_measurement_stop", None)
    folder = benchmark_folder(tmp_path, {"result_0": {"node_0.txt": text}})
    (problem,) = problems_of(folder, "result_0")
    assert "node_0.txt has no power_measurement_start" in problem
    block = power.result_power(folder / "result_0.txt")
    assert not block["scorable"] and power.energy_j(block, 1000.0) is None
    loglines, _ = official_parse(str(folder / "power" / "result_0" / "node_0.txt"), RULESET)
    with pytest.raises(ValueError, match="Power start timestamp not found"):
        summarizer._compute_power_node(loglines, 1000.0)


def test_a_result_without_a_node_file_is_named_and_not_scored(tmp_path: Path) -> None:
    folder = benchmark_folder(
        tmp_path, {"result_0": {"sw_0.txt": line(T0, "interconnect_power_est", 50.0)}}
    )
    (problem,) = problems_of(folder, "result_0")
    assert "power/result_0/ has no node_*.txt file" in problem
    assert power.result_power(folder / "result_0.txt")["scorable"] is False
    (folder / "power" / "result_0" / "sw_0.txt").unlink()
    (problem,) = problems_of(folder, "result_0")  # an empty folder too
    assert "has no node_*.txt file" in problem


def test_a_folder_without_power_has_no_power_block(tmp_path: Path) -> None:
    (tmp_path / "result_0.txt").write_text("")
    assert power.result_power(tmp_path / "result_0.txt") is None
    assert power.result_fields(None, 12.5) == {"energy_j": None, "power_problems": []}


def test_power_problems_are_named_in_runs_csv_without_changing_convergence(tmp_path: Path) -> None:
    folder = tmp_path / "bert"
    folder.mkdir()
    for i in range(3):
        shutil.copy(lenovo_bert() / f"result_{i}.txt", folder / f"result_{i}.txt")
    shutil.copytree(lenovo_bert() / "power" / "result_0", folder / "power" / "result_0")
    shutil.copytree(lenovo_bert() / "power" / "result_1", folder / "power" / "result_1")
    runs = import_folder(folder, tmp_path / "out", ruleset=None)
    assert runs["converged"].tolist() == [True, True, True]
    assert runs["power_problems"].fillna("").tolist()[:2] == ["", ""]
    assert "power/result_2/ is missing" in runs["power_problems"].iloc[2]
    assert not runs["log_problems"].fillna("").any()
    assert runs["energy_j"].notna().tolist() == [True, True, False]
    summary = summary_table.summarize(runs)
    assert bool(summary["valid"].iloc[0]) and pd.isna(summary["energy_j"].iloc[0])


# ---------------------------------------------------------------------------------------------
# files are data: only regular files, never followed or opened when they are not


def finishes(fn: Any, timeout: float = 10.0) -> Any:
    """``fn()``'s value; fails (instead of hanging the suite) when it takes over ``timeout``."""
    out: list[Any] = []

    def call() -> None:
        try:
            out.append(("value", fn()))
        except Exception as exc:  # raised again in the test's thread
            out.append(("error", exc))

    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    worker.join(timeout)
    assert not worker.is_alive(), f"still running after {timeout} s"
    kind, value = out[0]
    if kind == "error":
        raise value
    return value


def test_a_symlink_or_fifo_in_a_power_folder_is_refused_without_hanging(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text(node_text())
    folder = benchmark_folder(tmp_path, {"result_0": {"node_0.txt": node_text()}})
    run = folder / "power" / "result_0"
    (run / "node_1.txt").symlink_to(outside)
    os.mkfifo(run / "node_2.txt")
    os.mkfifo(run / "sw_0.txt")
    block = finishes(lambda: power.result_power(folder / "result_0.txt"))
    text = "\n".join(block["problems"])
    assert "node_1.txt is a symbolic link, not a regular file: not read" in text
    assert "node_2.txt is a FIFO, not a regular file: not read" in text
    assert "sw_0.txt is a FIFO" in text
    assert not block["scorable"] and power.energy_j(block, 1000.0) is None
    with pytest.raises(power.PowerError, match="FIFO"):
        finishes(lambda: power.read_power_file(run / "node_2.txt", "node"))
    assert finishes(lambda: power.folder_paths(folder))  # listed (a stat each), never opened


def test_a_linked_power_folder_and_an_oversized_file_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = benchmark_folder(tmp_path / "real", {"result_0": {"node_0.txt": node_text()}})
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "result_0.txt").write_text("")
    (linked / "power").symlink_to(real / "power")
    (problem,) = problems_of(linked, "result_0")
    assert "power is a symbolic link, not a folder: not read" in problem
    monkeypatch.setattr(power, "MAX_FILE_BYTES", 100)
    (problem,) = problems_of(real, "result_0")
    assert "more than 100 a power file may have: not read" in problem


# ---------------------------------------------------------------------------------------------
# one workflow run: a folder with power results and one without


def power_checkout(tmp_path: Path) -> Path:
    """A training_results_v5.0 checkout: Lenovo's BERT with power results, and NVIDIA's tyche
    BERT without."""
    root = tmp_path / "training_results_v5.0"
    lenovo = root / "Lenovo"
    # copies: the import follows no link of a published tree (scripts/core/published_files.py)
    shutil.copytree(lenovo_bert(), lenovo / "results" / LENOVO_SYSTEM / "bert")
    shutil.copytree(lenovo_bert().parents[2] / "systems", lenovo / "systems")
    nvidia = root / "NVIDIA"
    v50 = need_fixtures() / "mlperf-v5.0-nvidia"
    tyche = "tyche_ngpu64_ngc25.04_pytorch"
    shutil.copytree(v50 / "results" / tyche, nvidia / "results" / tyche)
    shutil.copytree(v50 / "systems", nvidia / "systems")
    return root


@pytest.mark.workflow
def test_summary_csv_has_the_energy_of_a_power_folder_and_empty_cells_without(
    tmp_path: Path,
) -> None:
    wf = copy_workflow(tmp_path / "wf")
    overlay = wf / "overlay.yaml"
    assert (
        cli.main(["overlay", str(power_checkout(tmp_path)), "--output", str(overlay)]) == 0
    )
    assert yaml.safe_load(overlay.read_text())["campaign"]["benchmarks"] == ["bert-v5.0"]
    proc = snakemake(wf, "--cores", "2", "--configfile", str(overlay))
    assert proc.returncode == 0, proc.stderr[-4000:]
    res = wf / "results" / "bert-v5.0"
    summary = pd.read_csv(res / "summary.csv").set_index("system")
    lenovo = summary.loc[system_name("Lenovo", LENOVO_SYSTEM)]
    # summary.csv holds 10 significant digits (columns.FLOAT_FORMAT)
    assert lenovo["energy_j"] == pytest.approx(LENOVO_ENERGY_J, rel=1e-9)
    assert lenovo["energy_kwh"] == pytest.approx(LENOVO_ENERGY_J / 3.6e6, rel=1e-9)
    tyche = summary.loc[system_name("NVIDIA", "tyche_ngpu64_ngc25.04_pytorch")]
    assert bool(tyche["valid"]) and pd.isna(tyche["energy_j"]) and pd.isna(tyche["energy_kwh"])
    board = pd.read_csv(res / "leaderboard.csv").set_index("system")
    assert board["energy_kwh"].notna().sum() == 1
    assert (res / "plots" / "energy.png").stat().st_size > 5000
    assert "Time against energy" in (res / "report.html").read_text()


def test_the_leaderboard_carries_energy_and_plots_it_only_for_systems_with_one(
    tmp_path: Path,
) -> None:
    summary = pd.DataFrame(
        [
            {"system": "a", "valid": True, "score_s": 100.0, "energy_j": 3.6e6, "energy_kwh": 1.0},
            {"system": "b", "valid": True, "score_s": 90.0, "energy_j": None, "energy_kwh": None},
        ]
    )
    runs = pd.DataFrame(columns=run_columns.RUN_COLUMNS)
    board = leaderboard.leaderboard(summary, runs, resamples=50)
    energy = board.set_index("system")["energy_kwh"]
    assert energy["a"] == 1.0 and pd.isna(energy["b"])
    assert "1 kWh" in leaderboard.describe_row(board.iloc[1])
    plots.plot_energy(board, tmp_path / "energy.png")
    no_energy = board.assign(energy_j=None, energy_kwh=None)
    plots.plot_energy(no_energy, tmp_path / "none.png")  # a note instead of points
    assert (tmp_path / "energy.png").stat().st_size > 5000
    assert (tmp_path / "none.png").stat().st_size > 2000
