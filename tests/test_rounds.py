"""The benchmark definitions of every MLPerf Training round (scripts/mlperf/round_files.py,
from rounds.py and rule_files.py) agree with mlperf-logging's own data: its rule files' quality
checks, benchmark_meta's run counts, the result summarizer's olympic drop and folder aliases;
the generated config/benchmarks files are what ``write`` makes, load through
scripts.core.config, and match NVIDIA's published v5.0 logs."""

from __future__ import annotations

import json
import math
import shutil
import statistics
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlperf_logging import benchmark_meta
from mlperf_logging.result_summarizer import result_summarizer

from scripts.core import config as cfg
from scripts.mlperf import round_files, rounds, rule_files
from tests.conftest import REPO, need_fixtures

COUNTS = benchmark_meta._ALL_RESULT_FILE_COUNTS["training"]
ALLOWED = benchmark_meta._ALL_ALLOWED_BENCHMARKS["training"]
BENCH_DIR = REPO / "config" / "benchmarks"
RULE_ROUNDS = [r for r in rounds.ROUNDS if r != "0.6"]


def test_the_rounds_are_the_packages_training_rulesets() -> None:
    assert rule_files.package_rounds() == rounds.ROUNDS
    assert set(rounds.ROUNDS) == set(ALLOWED)
    assert rounds.ROUNDS[0] == "0.6" and rounds.ROUNDS[-1] == "6.1"
    assert [rounds.ruleset_of(r) for r in ("0.6", "5.0")] == ["0.6.0", "5.0.0"]


def test_only_a_known_round_is_taken() -> None:
    assert [rounds.known_round(r) for r in rounds.ROUNDS] == list(rounds.ROUNDS)
    for bad in ("../../../etc/x", "5.0\n", "9.9", "5", "", "5.0/../../x"):
        with pytest.raises(ValueError) as info:
            rounds.known_round(bad)
        assert str(info.value) == (
            f"--round {bad!r} is not an MLPerf Training round this workflow knows "
            f"(known: {', '.join(rounds.ROUNDS)}; scripts/mlperf/rounds.py ROUNDS)"
        )


@pytest.mark.parametrize("value", ["../../../etc/x", "5.0\n", "9.9", ""])
@pytest.mark.parametrize(("command", "status"), [("overlay", 1), ("verify", 2)])
def test_the_round_option_refuses_an_unknown_round_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, status: int, value: str
) -> None:
    """``python -m scripts import overlay --round`` and ``python -m scripts verify
    --round``: the round names files (config/benchmarks/mlperf-v<round>.yaml, the checker's
    rules), so an unknown one is refused before anything is read or written, with the exit
    status of each command's other errors."""
    # lazy: these modules load mlperf-logging's summarizer; only this test needs them
    from scripts.analysis import verify
    from scripts.run.published import cli

    root = tmp_path / "training_results_v5.0"
    (root / "NVIDIA" / "results").mkdir(parents=True)
    out = tmp_path / "overlay.yaml"
    if command == "overlay":
        code = cli.main(["overlay", str(root), "--round", value, "--output", str(out)])
    else:
        code = verify.main([str(root), "--round", value, "--results", str(tmp_path / "res")])
    assert code == status
    assert capsys.readouterr().err == (
        f"error: --round {value!r} is not an MLPerf Training round this workflow knows "
        f"(known: {', '.join(rounds.ROUNDS)}; scripts/mlperf/rounds.py ROUNDS)\n"
    )
    assert not out.exists()


def test_verify_refuses_a_tree_of_an_unknown_round(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # lazy: it loads mlperf-logging's summarizer
    from scripts.analysis import verify

    root = tmp_path / "training_results_v9.9"
    root.mkdir()
    assert verify.main([str(root)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {root}: round '9.9' is not an MLPerf Training round")
    assert len(err.splitlines()) == 1


def test_names_carry_the_round() -> None:
    assert rounds.benchmark_name("bert", "5.0") == "bert-v5.0"
    assert rounds.benchmark_name("llama2_70b_lora", "5.0") == "llama2_70b_lora-v5.0"
    assert rounds.benchmark_name("gnmt", "0.6") == "gnmt-v0.6"


@pytest.mark.parametrize("round_", rounds.ROUNDS)
def test_every_round_defines_the_packages_benchmarks_with_its_run_counts(round_: str) -> None:
    defs = round_files.definitions(round_)
    wanted = [b for b in dict.fromkeys(ALLOWED[round_]) if (round_, b) not in rounds.NOT_DEFINED]
    assert list(defs) == [rounds.benchmark_name(b, round_) for b in wanted]
    for name, bench in defs.items():
        mlperf_name = bench["mlperf_name"]
        assert name == f"{mlperf_name}-v{round_}"
        assert bench["runs"] == COUNTS[mlperf_name]
        drop = 4 if mlperf_name == "unet3d" else 1  # result_summarizer's max_dropped_scores
        assert bench["max_nonconverged"] == bench["mlperf"]["olympic_drop"] == drop
        assert bench["mlperf"]["round"] == round_
        assert bench["mlperf"]["ruleset"] == f"{round_}.0"
        assert (bench.get("log") == {"time_to_train": "eval_result"}) == (name == "minigo-v0.6")


def _meets(expr: str, state: dict[str, Any], value: Any) -> bool:
    """The package's own check on a value, evaluated as its compliance checker does."""
    return bool(eval(expr, {"math": math}, {"v": {"value": value, "metadata": {}}, "s": state}))


def _nudged(target: float, direction: str, better: bool) -> float:
    step = 1e-9 * max(1.0, abs(target))
    return target + (step if (direction == "higher") == better else -step)


@pytest.mark.parametrize("round_", RULE_ROUNDS)
def test_every_target_is_where_the_rule_files_check_passes_and_fails(round_: str) -> None:
    """A value just on the good side of each target passes the rule file's own check, just on
    the bad side fails it, each part of a two-part value on its own (Mask R-CNN, SD)."""
    for bench in round_files.definitions(round_).values():
        path = rule_files.rule_file(round_, bench["mlperf_name"])
        rules = rule_files.load_rules(path)
        keys = rule_files.rule_keys(rules)
        check = next(keys[k]["ATLEAST_ONE_CHECK"] for k in rule_files.QUALITY_KEYS if k in keys)
        assert bench["mlperf"]["check"] == " ".join(check.split())
        # v0.7 BERT's check depends on the batch size: its target is for batches below 8192
        state = {"global_batch_size": 1, **rule_files.begin_state(rules)}
        q = bench["quality"]
        parts = {q.get("value_key"): (q["target"], q["direction"])}
        for key, target in q.get("also_targets", {}).items():
            parts[key] = (target, q.get("also_directions", {}).get(key, q["direction"]))

        def value(bad: str | None, parts: dict[Any, tuple[float, str]] = parts) -> Any:
            good = {k: _nudged(t, d, better=k != bad) for k, (t, d) in parts.items()}
            return good[None] if None in good else good

        assert _meets(check, state, value(bad="none of them")), (path, q)
        for key in parts:
            assert not _meets(check, state, value(bad=key)), (path, key, q)


def test_v07_bert_keeps_the_small_batch_target_and_says_the_rule() -> None:
    bench = round_files.definitions("0.7")["bert-v0.7"]
    assert bench["quality"]["target"] == 0.712
    assert "0.712 if s['global_batch_size'] < 8192 else" in bench["mlperf"]["check"]


def test_two_part_targets() -> None:
    mask = round_files.definitions("3.1")["maskrcnn-v3.1"]["quality"]
    assert mask == {
        "metric": "bbox_map",
        "target": 0.377,
        "direction": "higher",
        "value_key": "BBOX",
        "also_targets": {"SEGM": 0.339},
    }
    sd = round_files.definitions("5.0")["stable_diffusion-v5.0"]["quality"]
    assert (sd["value_key"], sd["target"], sd["direction"]) == ("FID", 90.0, "lower")
    assert sd["also_targets"] == {"CLIP": 0.15} and sd["also_directions"] == {"CLIP": "higher"}


def test_parse_check_reads_every_form_the_package_uses() -> None:
    T = rule_files.Target
    assert rule_files.parse_check("v['value'] >= 0.720 and v['value'] < 1.0") == [
        T(None, 0.72, "higher")
    ]
    assert rule_files.parse_check("v['value'] <= 0.058 and v['value'] > 0.0") == [
        T(None, 0.058, "lower")
    ]
    # GPT-3: both bounds are real numbers; the inclusive one is the target
    assert rule_files.parse_check("(v['value'] <= 2.69) and v['value'] > 2.6") == [
        T(None, 2.69, "lower")
    ]
    chained = "(0.0 <= v['value']['FID'] <= 90.0) and (0.15 <= v['value']['CLIP'] <= 1.0)"
    assert rule_files.parse_check(chained) == [T("FID", 90.0, "lower"), T("CLIP", 0.15, "higher")]
    assert rule_files.parse_check("0.5 <= v['value']") == [T(None, 0.5, "higher")]
    state = {"target_accuracy": 0.69}
    assert rule_files.parse_check("v['value'] > s['target_accuracy']", state) == [
        T(None, 0.69, "higher")
    ]


@pytest.mark.parametrize(
    ("expr", "why"),
    [
        ("v['value'] in [1, 50]", "cannot read the comparison"),
        ("len(v['value']) == 2", "cannot read the comparison"),
        ("v['value'] > s['target_accuracy']", "not a constant of the rule file's BEGIN block"),
        ("v['value'] >= 0.5 and v['value'] >= 0.6", "cannot tell which bound"),
        ("v['value'] >= 0.5 or v['value'] <= 0.1", "cannot read"),
        ("s['x'] > 1", "a comparison without v['value']"),
        ("v['value'] >= 0.5 and v['value']['BBOX'] >= 0.3", "both the value and parts of it"),
    ],
)
def test_a_check_that_cannot_be_read_is_refused_with_the_expression(expr: str, why: str) -> None:
    with pytest.raises(rounds.RoundsError, match="cannot|not a constant|without|both") as info:
        rule_files.parse_check(expr)
    assert why in str(info.value) and expr in str(info.value)


def test_state_constants_come_from_the_begin_block() -> None:
    rules = rule_files.load_rules(rule_files.rule_file("6.1", "dlrmv4"))
    assert rule_files.begin_state(rules)["target_accuracy"] == 0.75
    assert round_files.definitions("6.1")["dlrmv4-v6.1"]["quality"]["target"] == 0.75


def test_a_rule_file_without_one_quality_check_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "closed_x.yaml"
    path.write_text("- KEY:\n    NAME: eval_accuracy\n    REQ: AT_LEAST_ONE\n")
    with pytest.raises(rounds.RoundsError, match="expected one ATLEAST_ONE_CHECK.*found 0"):
        rule_files.rule_targets(path)
    with pytest.raises(rounds.RoundsError, match="no such rule file"):
        rule_files.rule_targets(tmp_path / "closed_missing.yaml")


def test_v06_ncf_is_left_out_because_the_package_has_no_rule_for_it() -> None:
    assert "ncf" in ALLOWED["0.6"]
    assert not rule_files.rule_file("0.6", "ncf").exists()
    assert ("0.6", "ncf") in rounds.NOT_DEFINED
    assert "ncf-v0.6" not in round_files.definitions("0.6")
    assert "0.5" not in ALLOWED and "0.5" not in rounds.ROUNDS  # no v0.5 ruleset at all
    with pytest.raises(rounds.RoundsError, match="not one of"):
        round_files.definitions("0.5")


def test_v06_keeps_its_names_and_what_they_mean() -> None:
    defs = round_files.definitions("0.6")
    assert set(defs) == {f"{b}-v0.6" for b in ("gnmt", "transformer", "ssd", "resnet")} | {
        "maskrcnn-v0.6",
        "minigo-v0.6",
    }
    # the rule files have every benchmark of the table (and check no quality)
    for bench in defs.values():
        assert rule_files.rule_file("0.6", bench["mlperf_name"]).is_file()
    assert defs["maskrcnn-v0.6"]["quality"]["also_targets"] == {"SEGM": 0.339}


def test_v06_gnmt_target_is_what_the_v06_logs_print() -> None:
    fixtures = need_fixtures()
    logs = sorted((fixtures / "mlperf-v0.6-nvidia").glob("*/gnmt/result_*.txt"))
    assert logs
    target = round_files.definitions("0.6")["gnmt-v0.6"]["quality"]["target"]
    for log in logs:
        assert f"--target-bleu {target}" in log.read_text(errors="replace")


def test_olympic_drop_is_the_summarizers(tmp_path: Path) -> None:
    """Ten bert logs, two of them without run_stop: the summarizer scores none as bert (it
    drops 1 at each end) and, as unet3d (4), the mean of the sorted times [4:6]."""
    fixtures = need_fixtures()
    folder = tmp_path / "bert"
    folder.mkdir()
    source = fixtures / "mlperf-v5.0-nvidia/results/nyx_n1_ngc25.04_pytorch/bert"
    times_min = []
    for i in range(10):
        lines = (source / f"result_{i}.txt").read_text().splitlines(keepends=True)
        if i < 2:
            lines = [line for line in lines if '"key": "run_stop"' not in line]
        else:
            events = [json.loads(x.split(":::MLLOG ", 1)[1]) for x in lines if ":::MLLOG " in x]
            ms = {e["key"]: e["time_ms"] for e in events if e["key"] in ("run_start", "run_stop")}
            times_min.append((ms["run_stop"] - ms["run_start"]) / 60_000)
        (folder / f"result_{i}.txt").write_text("".join(lines))
    assert rule_files.olympic_drop("bert") == 1 and rule_files.olympic_drop("unet3d") == 4

    def score(benchmark: str) -> float | None:
        return result_summarizer._compute_strong_score_standalone(
            benchmark, "sys", False, str(folder), "training", "5.0.0"
        )[0]

    assert score("bert") is None
    assert score("unet3d") == pytest.approx(statistics.mean(sorted(times_min)[4:6]))


def test_folder_aliases_are_the_summarizers() -> None:
    for round_ in rounds.ROUNDS:
        for name, bench in round_files.definitions(round_).items():
            aliases = bench.get("folder_aliases", [])
            assert aliases == (["mask"] if bench["mlperf_name"] == "maskrcnn" else []), name
            for alias in aliases:
                assert result_summarizer._benchmark_alias(alias) == bench["mlperf_name"]


def test_the_generated_files_are_what_write_makes(tmp_path: Path) -> None:
    written = round_files.write(tmp_path)
    assert [p.name for p in written] == [f"mlperf-v{r}.yaml" for r in rounds.ROUNDS]
    for path in written:
        assert (BENCH_DIR / path.name).read_text() == path.read_text(), path.name
        assert (
            "GENERATED by `python -m scripts rounds write` from mlperf-logging" in path.read_text()
        )
    assert round_files.check(BENCH_DIR) == []
    assert round_files.main(["check"]) == 0


@pytest.mark.parametrize("round_", rounds.ROUNDS)
def test_every_generated_file_validates_with_the_default_config(round_: str) -> None:
    path = f"config/benchmarks/mlperf-v{round_}.yaml"
    sources = [(f, yaml.safe_load((REPO / f).read_text())) for f in cfg.DEFAULT_CONFIGFILES]
    sources.append((path, yaml.safe_load((REPO / path).read_text())))
    merged: dict[str, Any] = {}
    for _, data in sources:
        cfg.merge(merged, data)
    full = cfg.load_and_validate(merged, sources)
    for name, bench in round_files.definitions(round_).items():
        assert full["benchmarks"][name]["mlperf"] == bench["mlperf"]
        assert full["benchmarks"][name]["quality"]["target"] == bench["quality"]["target"]


def test_the_schema_refuses_what_no_round_means() -> None:
    sources = [(f, yaml.safe_load((REPO / f).read_text())) for f in cfg.DEFAULT_CONFIGFILES]
    base: dict[str, Any] = {}
    for _, data in sources:
        cfg.merge(base, data)
    bad = {
        "benchmarks": {
            "gnmt": {"max_nonconverged": 2},  # no mlperf section: 0 or 1
            "gnmt-v0.6": {
                "max_nonconverged": 3,
                "mlperf": {"olympic_drop": 1},
                "quality": {"also_directions": {"SEGM": "lower"}},
                "folder_aliases": ["a/b"],
            },
        }
    }
    cfg.merge(base, bad)
    with pytest.raises(cfg.ConfigError) as info:
        cfg.validate(base, [*sources, ("bad.yaml", bad)])
    msg = str(info.value)
    assert "bad.yaml: benchmarks.gnmt.max_nonconverged: 2 is greater than the maximum of 1" in msg
    assert "bad.yaml: benchmarks.gnmt-v0.6.max_nonconverged: 3 non-converged runs" in msg
    assert "drops 1 at each end (mlperf.olympic_drop)" in msg
    # gnmt-v0.6 has no also_targets, so a direction of SEGM means nothing
    assert "bad.yaml: benchmarks.gnmt-v0.6.quality.also_directions: SEGM not in also_targets" in msg
    assert "bad.yaml: benchmarks.gnmt-v0.6.folder_aliases.0" in msg


def _checker_copy(tmp_path: Path, round_: str) -> Path:
    """A copy of the installed compliance checker's rule folder of one round."""
    folder = f"training_{rounds.ruleset_of(round_)}"
    shutil.copytree(rule_files.checker_dir() / folder, tmp_path / folder)
    return tmp_path


def test_check_names_the_benchmark_and_key_of_a_changed_target(tmp_path: Path) -> None:
    checker = _checker_copy(tmp_path, "5.0")
    rule = checker / "training_5.0.0" / "closed_bert.yaml"
    rule.write_text(rule.read_text().replace("v['value'] >= 0.720", "v['value'] >= 0.730"))
    problems = round_files.check(BENCH_DIR, ["5.0"], checker)
    assert any(
        "mlperf-v5.0.yaml: benchmarks.bert-v5.0.quality.target: the file has 0.72, "
        "the package gives 0.73" in p
        for p in problems
    ), problems
    assert all("bert-v5.0" in p for p in problems)  # nothing else changed


def test_check_fails_when_the_package_changes_a_run_count(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(COUNTS, "rgat", 7)
    assert round_files.main(["check"]) == 1
    err = capsys.readouterr().err
    assert (
        "mlperf-v5.0.yaml: benchmarks.rgat-v5.0.runs: the file has 10, the package gives 7" in err
    )
    assert "benchmarks.rgat-v5.1.runs" in err and "bert-v5.0" not in err


def test_check_names_a_round_the_package_has_and_rounds_py_lacks(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(round_files, "ROUNDS", rounds.ROUNDS[:-1])
    assert round_files.main(["check"]) == 1
    assert (
        "has Training round(s) 6.1 that scripts/mlperf/rounds.py ROUNDS lacks"
        in capsys.readouterr().err
    )


def test_check_names_missing_files_benchmarks_and_edited_comments(tmp_path: Path) -> None:
    round_files.write(tmp_path, ["5.0", "5.1"])
    (tmp_path / "mlperf-v5.1.yaml").unlink()
    path = tmp_path / "mlperf-v5.0.yaml"
    data = yaml.safe_load(path.read_text())
    del data["benchmarks"]["rgat-v5.0"]
    data["benchmarks"]["bert-v5.0"]["extra"] = 1
    path.write_text(yaml.safe_dump(data))
    problems = round_files.check(tmp_path, ["5.0", "5.1"])
    assert any("benchmarks.rgat-v5.0: missing from the file" in p for p in problems)
    extra = "benchmarks.bert-v5.0.extra: in the file (1) but not from the package"
    assert any(extra in p for p in problems)
    assert any(p.startswith(f"{tmp_path / 'mlperf-v5.1.yaml'}: missing") for p in problems)
    round_files.write(tmp_path, ["5.0"])
    path.write_text(path.read_text().replace("# GENERATED", "# edited by hand; GENERATED"))
    assert round_files.check(tmp_path, ["5.0"]) == [
        f"{path}: the text differs from `python -m scripts rounds write` (comments or layout)"
    ]


def _events(path: Path) -> list[dict[str, Any]]:
    lines = path.read_text(errors="replace").splitlines()
    return [json.loads(x.split(":::MLLOG ", 1)[1]) for x in lines if ":::MLLOG " in x]


def _final_values(events: list[dict[str, Any]]) -> dict[str | None, float]:
    """The last eval_accuracy value, per metric where the log names one (SD: FID, CLIP)."""
    final: dict[str | None, float] = {}
    for e in events:
        if e["key"] == "eval_accuracy":
            final[e["metadata"].get("metric")] = float(e["value"])
    return final


def _met(value: float, target: float, direction: str) -> bool:
    return value >= target if direction == "higher" else value <= target


def test_the_v50_fixtures_agree_with_the_v50_definitions() -> None:
    """Each folder of NVIDIA's v5.0 results is a defined benchmark, with the summarizer's
    run count; every log names it in submission_benchmark, and a run that stopped with
    success met every target at its last evaluation (one that did not, missed one)."""
    root = need_fixtures() / "mlperf-v5.0-nvidia"
    defs = round_files.definitions("5.0")
    expected = [line.split("\t") for line in (root / "expected.tsv").read_text().splitlines()[1:]]
    n_logs = {(row[1], row[2]): int(row[3]) for row in expected}
    folders = sorted(p for p in (root / "results").glob("*/*") if p.is_dir())
    assert len(folders) == len(n_logs) == 8
    for folder in folders:
        name = rounds.benchmark_name(folder.name, "5.0")
        assert name in defs, name
        bench = defs[name]
        logs = sorted(folder.glob("result_*.txt"))
        assert bench["runs"] == len(logs) == n_logs[(folder.parent.name, folder.name)]
        q = bench["quality"]
        targets = {q.get("value_key"): (q["target"], q["direction"])}
        for key, target in q.get("also_targets", {}).items():
            targets[key] = (target, q.get("also_directions", {}).get(key, q["direction"]))
        for log in logs:
            events = _events(log)
            benchmark = [e["value"] for e in events if e["key"] == "submission_benchmark"]
            assert benchmark == [bench["mlperf_name"]], log
            stops = [e for e in events if e["key"] == "run_stop"]
            success = bool(stops) and stops[-1]["metadata"].get("status") == "success"
            final = _final_values(events)
            met = all(_met(final[k], t, d) for k, (t, d) in targets.items() if k in final)
            assert set(final) == set(targets), (log, final)
            assert met == success, (log, final, q)
