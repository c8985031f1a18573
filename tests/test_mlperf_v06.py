"""The v0.6 benchmarks' logs as NVIDIA published them: what differs between them is read right.

The logs are verbatim excerpts (tests/data/v06/README.md); the benchmark definitions are those
of config/benchmarks/mlperf-v0.6.yaml, so the test also checks that config against real logs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from scripts.core.config import load_yaml
from scripts.mlperf.log_parser import parse_file, parse_text
from scripts.mlperf.outcome import run_outcome

REPO = Path(__file__).resolve().parents[1]
V06 = REPO / "tests" / "data" / "v06"
BENCHMARKS = load_yaml(REPO / "config" / "benchmarks" / "mlperf-v0.6.yaml")["benchmarks"]


def outcome(benchmark: str, text: str) -> Any:
    bench = BENCHMARKS[benchmark]
    q = bench["quality"]
    return run_outcome(
        parse_text(text),
        q["target"],
        q.get("direction", "higher"),
        value_key=q.get("value_key"),
        also_targets=q.get("also_targets"),
        time_source=bench.get("log", {}).get("time_to_train", "run_stop"),
    )


def read(name: str) -> str:
    return (V06 / name).read_text()


def test_transformer_bleu_logged_as_a_string_is_a_number_and_the_result_line_has_the_seed() -> None:
    out = outcome("transformer-v0.6", read("dgx1_pytorch_transformer_result_0.txt"))
    assert out.time_to_train_s == round(1561427727.375 - 1561426552.510, 3) == 1174.865
    assert out.converged is True and out.status == "success"
    assert out.final_quality == pytest.approx(25.329875946044922)
    assert [v for _, v, _ in out.eval_history] == pytest.approx([20.299, 24.4839, 25.3299], 1e-4)
    assert out.epochs == 3 and out.epochs_to_converge == 3
    assert out.seed == 16374  # from the RESULT line: no seed event in the log
    # the `set -x` trace of `echo 'RESULT,...'` is not a second RESULT line
    parsed = parse_file(V06 / "dgx1_pytorch_transformer_result_0.txt")
    assert len(parsed.result_lines) == 1 and parsed.result_line is not None
    assert parsed.result_line.start == "2019-06-25 01:35:31 AM"
    assert out.result_line_wall_s == 1201
    assert out.problems == []


def test_mxnet_resnet_prints_one_result_line_per_process_the_slowest_is_kept() -> None:
    parsed = parse_file(V06 / "dgx1_mxnet_resnet_result_0.txt")
    assert [r.wall_time_s for r in parsed.result_lines] == [6952] + [6953] * 6 + [6954]
    assert all(r.org == "" and r.seed == "" for r in parsed.result_lines)
    out = outcome("resnet-v0.6", read("dgx1_mxnet_resnet_result_0.txt"))
    assert out.result_line_wall_s == 6954
    assert out.time_to_train_s == 6920.221  # run_stop - run_start, never the RESULT line
    assert out.converged is True and out.final_quality == 0.762  # target 0.759
    assert out.epochs == 60 and out.epochs_to_converge == 60
    # epochs 58-60 have both events: 114.256, 114.261 and 114.253 s
    assert out.time_per_epoch_s == pytest.approx((114.256 + 114.261 + 114.253) / 3, abs=1e-6)
    assert out.seed is None


def test_ssd_evaluates_inside_an_epoch() -> None:
    out = outcome("ssd-v0.6", read("dgx1_pytorch_ssd_result_0.txt"))
    assert out.time_to_train_s == 1347.521
    assert out.converged is True and out.final_quality == pytest.approx(0.23309154960042147)
    assert out.epochs_to_converge == 50  # the evaluation ran in epoch 50 ...
    assert out.epochs == 49  # ... which never logged epoch_stop
    assert out.problems == []


def test_maskrcnn_needs_both_bbox_and_segm_targets() -> None:
    # the excerpt has no run_start line; this one is the test's own
    run_start = ':::MLL 1558576757.000 run_start: {"value": null, "metadata": {}}\n'
    text = run_start + read("dgx1_pytorch_maskrcnn_result_0.txt")
    out = outcome("maskrcnn-v0.6", text)
    assert out.final_quality == pytest.approx(0.3770440286348618)  # BBOX, target 0.377
    assert out.final_components == {"SEGM": pytest.approx(0.3428186644034211)}  # target 0.339
    assert out.converged is True and out.epochs_to_converge == 13
    assert out.time_to_train_s == round(1558588319.710 - 1558576757.000, 3)
    # a SEGM target the log does not meet makes the run not converged
    q = BENCHMARKS["maskrcnn-v0.6"]["quality"]
    strict = run_outcome(
        parse_text(text), q["target"], value_key="BBOX", also_targets={"SEGM": 0.35}
    )
    assert strict.converged is False and strict.epochs_to_converge is None
    assert "final eval_accuracy SEGM 0.3428186644034211 does not meet target 0.35" in (
        strict.problems
    )
    # without value_key a mapping is not a number
    plain = run_outcome(parse_text(text), q["target"])
    assert plain.final_quality is None and plain.converged is False


def test_minigo_has_no_run_stop_its_time_is_the_eval_result_timestamp() -> None:
    out = outcome("minigo-v0.6", read("dgx1_tensorflow_minigo_result_0.txt"))
    assert out.time_to_train_s == 1725.869 and out.status == "success"
    assert out.run_stop_s == pytest.approx(1560822993.653 + 1725.869)
    assert out.converged is True and out.final_quality == 0.51  # target 0.5
    assert out.epochs_to_converge == 19  # the first evaluation to beat the target
    assert out.problems == []
    parsed = parse_file(V06 / "dgx1_tensorflow_minigo_result_0.txt")
    line = parsed.result_line  # RESULT,REINFORCEMENT,4727,nvidia,...: no seed field
    assert line is not None and line.wall_time_s == 4727 and line.org == "nvidia"
    assert line.seed == "" and line.benchmark == "REINFORCEMENT"
    # read as if it had a run_stop, it has no time: the benchmark must say eval_result
    wrong = run_outcome(parsed, 0.5)
    assert wrong.time_to_train_s is None and "no run_stop event" in wrong.problems


def test_minigo_without_eval_result_did_not_converge() -> None:
    text = "\n".join(
        line for line in read("dgx1_tensorflow_minigo_result_0.txt").splitlines()
        if "eval_result" not in line
    )  # fmt: skip
    out = outcome("minigo-v0.6", text)
    assert out.converged is False and out.time_to_train_s is None
    assert "no eval_result event (no model beat the target)" in out.problems
    with pytest.raises(ValueError, match="time_source"):
        run_outcome(parse_text(text), 0.5, time_source="wall")
