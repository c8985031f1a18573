"""Benchmark definitions for every MLPerf Training round, read from mlperf-logging's own data.

For each Training ruleset the installed mlperf-logging has (``compliance_checker/training_<X.Y.Z>``)
this module makes the benchmark definitions of this workflow's config schema, named
``<mlperf_name>-v<round>`` (``bert-v5.0``), and writes them to
``config/benchmarks/mlperf-v<round>.yaml``. What is taken from the package, and from where:

- which benchmarks a round has: ``benchmark_meta._ALL_ALLOWED_BENCHMARKS['training'][round]``;
- ``runs``: ``benchmark_meta._ALL_RESULT_FILE_COUNTS['training'][benchmark]`` (the summarizer
  uses one count for every round);
- ``olympic_drop`` and ``max_nonconverged``: the runs the result summarizer drops at each end,
  read from its source (``max_dropped_scores = 4 if benchmark == "unet3d" else 1``);
- the quality targets and their direction: the ``ATLEAST_ONE_CHECK`` expression on
  ``eval_accuracy`` (``aggregated_eval_accuracy`` for Stable Diffusion) in
  ``compliance_checker/training_<ruleset>/closed_<benchmark>.yaml``, parsed (never run), e.g.
  ``v['value'] >= 0.720 and v['value'] < 1.0`` -> target 0.720, higher; constants the check takes
  from the checker's state (``s['target_accuracy']``) are read from the file's BEGIN block;
- ``folder_aliases``: the folder names the summarizer maps to a benchmark (``mask`` -> maskrcnn);
- ``log.time_to_train``: ``eval_result`` where the round's rule file scores that event (v0.6
  MiniGo, whose logs have no run_stop).

What the package does not state is in the small tables below: descriptions and metric names
(:data:`BENCHMARK_INFO`), and the v0.6 targets (:data:`V06`), because the training_0.6.0 rule
files check no quality at all (the v0.6 logs print their targets; tests/test_mlperf_v06.py
checks them against NVIDIA's logs).

Rounds left out, and why:

- v0.5: mlperf-logging has no training_0.5.0 ruleset, no v0.5 log parser (v0.5 logs are
  ``:::MLPv0.5.0`` lines) and no v0.5 entry in benchmark_meta, so neither the targets nor the
  run counts can come from the package; typing them in would be the hand-copied table this
  module exists to avoid.
- v0.6 NCF: benchmark_meta allows it but training_0.6.0 has no rule file for it (the checker
  cannot check an NCF log) and v0.6 published no NCF result (see :data:`NOT_DEFINED`).

Usage: ``python -m scripts rounds write [--dir config/benchmarks]`` writes the files;
``python -m scripts rounds check [--dir ...]`` exits 1, naming benchmark and key, when a file
differs from what the installed package gives (e.g. after an mlperf-logging upgrade).
"""

from __future__ import annotations

import argparse
import ast
import inspect
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

WORKFLOW_DIR = Path(__file__).resolve().parents[2]
DEFAULT_DIR = WORKFLOW_DIR / "config" / "benchmarks"
PACKAGE = "mlperf-logging"
# the quality events whose ATLEAST_ONE_CHECK holds the target (Stable Diffusion: a key the
# checker makes itself from the FID and CLIP eval_accuracy lines of one samples_count)
QUALITY_KEYS = ("eval_accuracy", "aggregated_eval_accuracy")
# bounds that only say the value is a fraction or positive, never a target
SANITY_LOWER, SANITY_UPPER = 0.0, 1.0


class RoundsError(ValueError):
    """A rule file or package table that cannot be read into a definition."""


@dataclass(frozen=True)
class Target:
    """One quality target of a rule file: the part of the value (None: the value itself),
    the target and the direction ('higher': value >= target meets it)."""

    key: str | None
    target: float
    direction: str


# ---------------------------------------------------------------------------------------------
# What the package does not state


@dataclass(frozen=True)
class Info:
    """How a benchmark is described: its title, its task, its metric's name, and from which
    round on this description holds (ssd became RetinaNet on OpenImages in v2.0)."""

    title: str
    task: str
    metric: str
    since: str = "0.6"


BENCHMARK_INFO: dict[str, tuple[Info, ...]] = {
    "bert": (Info("BERT-Large", "Wikipedia masked-LM pre-training", "mlm_accuracy"),),
    "dlrm": (Info("DLRM", "Criteo Terabyte click-through prediction", "auc"),),
    "dlrm_dcnv2": (Info("DLRM-DCNv2", "Criteo multi-hot click-through prediction", "auc"),),
    "dlrmv4": (Info("DLRMv4", "recommendation", "eval_accuracy"),),
    "gnmt": (Info("GNMT", "WMT16 English-German translation", "bleu"),),
    "transformer": (Info("Transformer", "WMT17 English-German translation", "bleu"),),
    "maskrcnn": (Info("Mask R-CNN", "COCO 2017 detection and segmentation", "bbox_map"),),
    "minigo": (Info("MiniGo", "9x9 Go reinforcement learning", "win_rate"),),
    "resnet": (Info("ResNet-50 v1.5", "ImageNet classification", "top1_accuracy"),),
    "ssd": (
        Info("SSD-ResNet34", "COCO 2017 object detection", "map"),
        Info("SSD (RetinaNet)", "OpenImages object detection", "map", since="2.0"),
    ),
    "retinanet": (Info("RetinaNet", "OpenImages object detection", "map"),),
    "rnnt": (Info("RNN-T", "LibriSpeech speech recognition", "wer"),),
    "unet3d": (Info("3D U-Net", "KiTS19 kidney tumor segmentation", "mean_dice"),),
    "gpt3": (Info("GPT-3 175B", "C4 language-model pre-training", "log_perplexity"),),
    "stable_diffusion": (Info("Stable Diffusion", "text-to-image generation", "fid"),),
    "gnn": (Info("R-GAT", "IGBH graph node classification", "accuracy"),),
    "rgat": (Info("R-GAT", "IGBH graph node classification", "accuracy"),),
    "llama2_70b_lora": (Info("Llama 2 70B LoRA", "GovReport fine-tuning", "eval_loss"),),
    "llama31_405b": (Info("Llama 3.1 405B", "C4 language-model pre-training", "log_perplexity"),),
    "llama31_8b": (Info("Llama 3.1 8B", "C4 language-model pre-training", "log_perplexity"),),
    "flux1": (Info("FLUX.1", "text-to-image generation", "eval_loss"),),
    "gpt_oss_20b": (Info("GPT-OSS 20B", "language-model pre-training", "log_perplexity"),),
    "deepseekv3_671b": (Info("DeepSeek-V3 671B", "language-model pre-training", "log_perplexity"),),
    "qwen35_397b_grpo": (Info("Qwen3.5 397B GRPO", "LLM reinforcement learning", "eval_accuracy"),),
}

# v0.6: the rule files check no quality, so the targets are those the v0.6 logs print
# (accuracy_threshold=0.759, --threshold=0.23, MIN_BBOX_MAP/MIN_SEGM_MAP, --target-bleu 24.0,
# BLEU 25.0, win rate 0.5); descriptions and scales as config/benchmarks/mlperf-v0.6.yaml had
# them before it was generated (they are part of every v0.6 result already made).
V06: dict[str, dict[str, Any]] = {
    "gnmt": {
        "description": "WMT16 English-German translation to BLEU 24.0",
        "scale": "full WMT16 En-De, BLEU 24.0",
        "quality": {"metric": "bleu", "target": 24.0, "direction": "higher"},
    },
    "transformer": {
        "description": "WMT17 English-German translation to BLEU 25.0",
        "scale": "full WMT17 En-De, BLEU 25.0",
        "quality": {"metric": "bleu", "target": 25.0, "direction": "higher"},
    },
    "ssd": {
        "description": "COCO 2017 object detection to 0.23 mAP",
        "scale": "full COCO 2017, mAP 0.23",
        "quality": {"metric": "map", "target": 0.23, "direction": "higher"},
    },
    "resnet": {
        "description": "ImageNet classification to 75.9% top-1",
        "scale": "full ImageNet, top-1 0.759",
        "quality": {"metric": "top1_accuracy", "target": 0.759, "direction": "higher"},
    },
    "maskrcnn": {
        "description": "COCO 2017 to 0.377 box mAP and 0.339 mask mAP",
        "scale": "full COCO 2017, box mAP 0.377, mask mAP 0.339",
        "quality": {
            "metric": "bbox_map",
            "target": 0.377,
            "direction": "higher",
            "value_key": "BBOX",
            "also_targets": {"SEGM": 0.339},
        },
    },
    "minigo": {
        "description": "9x9 Go reinforcement learning to a 50% win rate",
        "scale": "win rate 0.50 against the target model",
        "quality": {"metric": "win_rate", "target": 0.5, "direction": "higher"},
    },
}
V06_TITLES = {
    "gnmt": "GNMT",
    "transformer": "Transformer",
    "ssd": "SSD-ResNet34",
    "resnet": "ResNet-50 v1.5",
    "maskrcnn": "Mask R-CNN",
    "minigo": "MiniGo",
}

# benchmarks the package allows in a round that get no definition, and why
NOT_DEFINED: dict[tuple[str, str], str] = {
    ("0.6", "ncf"): (
        "benchmark_meta allows NCF in v0.6 but training_0.6.0 has no rule file for it (no "
        "compliance check, no target) and MLPerf Training v0.6 published no NCF result"
    ),
}

# folder names other than the benchmark's own that published results use, as long as the
# result summarizer maps them to the benchmark (checked in :func:`folder_aliases`)
FOLDER_ALIAS_CANDIDATES = {"maskrcnn": ("mask",)}  # v0.6 Google: results/<system>/mask/

# what the header of a round's file says about its logs, where they differ
ROUND_NOTES = {
    "0.6": """\
An example import system: config/systems/nvidia-dgx1-v0.6.yaml. The v0.6 rule files check no
quality; the targets are those the logs print (accuracy_threshold=0.759, --threshold=0.23,
MIN_BBOX_MAP/MIN_SEGM_MAP, --target-bleu 24.0, BLEU 25.0, win rate 0.5).

What differs between their logs (all v0.6 `:::MLL` lines), and how it is read:
  gnmt, ssd            eval_accuracy is a number; time = run_stop - run_start
  transformer          eval_accuracy is a string ("25.33"): read as a number; the RESULT line
                       also carries the seed
  resnet (MXNet)       one RESULT line per process (8 per run): the slowest is kept as
                       result_line_wall_s; the score never uses RESULT lines
  maskrcnn             eval_accuracy is {"accuracy": {"BBOX": .., "SEGM": ..}}: both targets
  minigo               no run_stop: time = the timestamp of eval_result (seconds from
                       run_start to the first model that beat the target), as the v0.6
                       compliance checker (mlperf_logging training_0.6.0/score.yaml) scores it
""",
}


# ---------------------------------------------------------------------------------------------
# The package


def checker_dir() -> Path:
    """The installed compliance_checker folder (the rule files)."""
    # lazy: only generating or checking definitions needs the package, not loading a config
    from mlperf_logging import compliance_checker

    return Path(compliance_checker.__file__).resolve().parent


def package_version() -> str:
    """The installed mlperf-logging's version."""
    # lazy: importlib.metadata is only needed for the generated files' header
    from importlib import metadata

    return metadata.version(PACKAGE)


def _meta() -> Any:
    # lazy: only generating or checking definitions needs the package
    from mlperf_logging import benchmark_meta

    return benchmark_meta


def ruleset_of(round_: str) -> str:
    """'5.0' -> '5.0.0', the ruleset (compliance_checker/training_<ruleset>) of a round."""
    return f"{round_}.0"


def package_rounds(checker: Path | None = None) -> tuple[str, ...]:
    """The Training rounds the package has a ruleset for, oldest first ('0.7.0_warn' is a
    variant of 0.7.0, not a round)."""
    folders = (checker or checker_dir()).glob("training_*")
    rulesets = [p.name[len("training_") :] for p in folders if p.is_dir()]
    found = [r for r in rulesets if r.count(".") == 2 and r.replace(".", "").isdigit()]
    return tuple(sorted({r.rsplit(".", 1)[0] for r in found}, key=round_key))


# every round of the package this module was written against; tests check it against the
# installed package, so a new ruleset is noticed
ROUNDS: tuple[str, ...] = (
    "0.6", "0.7", "1.0", "1.1", "2.0", "2.1", "3.0", "3.1",
    "4.0", "4.1", "5.0", "5.1", "6.0", "6.1",
)  # fmt: skip


def known_round(round_: str, given_as: str = "--round") -> str:
    """``round_`` when it is one of :data:`ROUNDS`; ValueError in one line otherwise. A round
    becomes a path (config/benchmarks/mlperf-v<round>.yaml, the checker's
    training_<round>.0/), so only a known one is taken: ``--round ../../../etc/x`` is not."""
    if round_ in ROUNDS:
        return round_
    raise ValueError(
        f"{given_as} {round_!r} is not an MLPerf Training round this workflow knows "
        f"(known: {', '.join(ROUNDS)}; scripts/mlperf/rounds.py ROUNDS)"
    )


def benchmark_name(mlperf_name: str, round_: str) -> str:
    """The workflow's name of an MLPerf benchmark of a round: ('bert', '5.0') -> 'bert-v5.0'."""
    return f"{mlperf_name}-v{round_}"


def allowed_benchmarks(round_: str) -> list[str]:
    """The round's benchmarks as benchmark_meta lists them, without repeats, in its order."""
    allowed = _meta()._ALL_ALLOWED_BENCHMARKS["training"]
    if round_ not in allowed:
        raise RoundsError(f"mlperf-logging lists no Training benchmarks for round {round_}")
    return list(dict.fromkeys(allowed[round_]))


def result_count(mlperf_name: str) -> int:
    """How many result files the summarizer expects of a benchmark."""
    counts = _meta()._ALL_RESULT_FILE_COUNTS["training"]
    if mlperf_name not in counts:
        raise RoundsError(f"benchmark_meta has no Training result count for {mlperf_name!r}")
    return int(counts[mlperf_name])


def olympic_drop(mlperf_name: str) -> int:
    """The runs the result summarizer drops at each end of a benchmark's sorted times, read
    from its own code (``max_dropped_scores = ...`` in _compute_strong_score_standalone)."""
    # lazy: the summarizer is only read when definitions are made
    from mlperf_logging.result_summarizer import result_summarizer

    source = inspect.getsource(result_summarizer._compute_strong_score_standalone)
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == [
            "max_dropped_scores"
        ]:
            code = compile(ast.Expression(node.value), "max_dropped_scores", "eval")
            return int(eval(code, {"__builtins__": {}}, {"benchmark": mlperf_name}))
    raise RoundsError("the result summarizer no longer sets max_dropped_scores; read its code")


def folder_aliases(mlperf_name: str) -> list[str]:
    """The other folder names of a benchmark's results that the summarizer accepts."""
    # lazy: the summarizer is only read when definitions are made
    from mlperf_logging.result_summarizer import result_summarizer

    candidates = FOLDER_ALIAS_CANDIDATES.get(mlperf_name, ())
    return [a for a in candidates if result_summarizer._benchmark_alias(a) == mlperf_name]


def rule_file(round_: str, mlperf_name: str, checker: Path | None = None) -> Path:
    """The closed-division rule file of a benchmark (v0.6: ``training_0.6.0/<name>.yaml``)."""
    folder = (checker or checker_dir()) / f"training_{ruleset_of(round_)}"
    name = f"{mlperf_name}.yaml" if round_ == "0.6" else f"closed_{mlperf_name}.yaml"
    return folder / name


def load_rules(path: Path) -> list[dict[str, Any]]:
    """A rule file's entries (a list of {KEY: ...} and {BEGIN: ...} mappings)."""
    if not path.is_file():
        raise RoundsError(f"{path}: no such rule file")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, list):
        raise RoundsError(f"{path}: a rule file is a list of entries")
    return [e for e in data if isinstance(e, dict)]


def rule_keys(rules: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """NAME -> the KEY entry, of a rule file's entries."""
    keys = [e["KEY"] for e in rules if isinstance(e.get("KEY"), dict)]
    return {k["NAME"]: k for k in keys if "NAME" in k}


# ---------------------------------------------------------------------------------------------
# Reading a check expression


def begin_state(rules: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The constants a rule file's BEGIN code puts into the checker's state with
    ``s.update({...})`` (e.g. ``'target_accuracy': 0.75``); other statements are ignored."""
    state: dict[str, Any] = {}
    for entry in rules:
        code = (
            (entry.get("BEGIN") or {}).get("CODE") if isinstance(entry.get("BEGIN"), dict) else None
        )
        if not code:
            continue
        for node in ast.walk(ast.parse(code)):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "update"
                and getattr(node.func.value, "id", None) == "s"
                and len(node.args) == 1
                and isinstance(node.args[0], ast.Dict)
            ):
                for k, v in zip(node.args[0].keys, node.args[0].values, strict=True):
                    if isinstance(k, ast.Constant) and isinstance(v, ast.Constant):
                        state[k.value] = v.value
    return state


def _subscript_key(node: ast.expr) -> Any:
    return (
        node.slice.value
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant)
        else None
    )


def _value_ref(node: ast.expr) -> tuple[bool, str | None]:
    """(True, None) for v['value'], (True, 'FID') for v['value']['FID'], else (False, None)."""
    if (
        isinstance(node, ast.Subscript)
        and getattr(node.value, "id", None) == "v"
        and _subscript_key(node) == "value"
    ):
        return True, None
    if isinstance(node, ast.Subscript) and _value_ref(node.value) == (True, None):
        key = _subscript_key(node)
        if isinstance(key, str):
            return True, key
    return False, None


def _number(node: ast.expr, state: Mapping[str, Any], expr: str) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return float(node.value)
    if isinstance(node, ast.Subscript) and getattr(node.value, "id", None) == "s":
        name = _subscript_key(node)
        if isinstance(state.get(name), (int, float)):
            return float(state[name])
        raise RoundsError(f"{expr!r}: s[{name!r}] is not a constant of the rule file's BEGIN block")
    raise RoundsError(f"{expr!r}: cannot read {ast.unparse(node)!r} as a number")


FLIP = {ast.GtE: ast.LtE, ast.Gt: ast.Lt, ast.LtE: ast.GtE, ast.Lt: ast.Gt}


def _bounds(expr: str, state: Mapping[str, Any]) -> list[tuple[str | None, type, float]]:
    """(key, comparison, number) of every comparison of the value with a number in an
    ``and`` of comparisons, value on the left. A conditional (``A if cond else B``, v0.7
    BERT's batch-size rule) is read as its first branch, A."""
    found: list[tuple[str | None, type, float]] = []

    def walk(node: ast.expr) -> None:
        if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.And):
            for value in node.values:
                walk(value)
        elif isinstance(node, ast.IfExp):
            walk(node.body)
        elif isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            for left, op, right in zip(operands, node.ops, operands[1:], strict=False):
                if type(op) not in FLIP:
                    raise RoundsError(f"{expr!r}: cannot read the comparison {type(op).__name__}")
                is_value, key = _value_ref(left)
                if is_value:
                    found.append((key, type(op), _number(right, state, expr)))
                    continue
                is_value, key = _value_ref(right)
                if not is_value:
                    raise RoundsError(f"{expr!r}: a comparison without v['value']")
                found.append((key, FLIP[type(op)], _number(left, state, expr)))
        else:
            raise RoundsError(f"{expr!r}: cannot read {ast.unparse(node)!r}")

    walk(ast.parse(expr.strip(), mode="eval").body)
    return found


def _target_of(key: str | None, bounds: list[tuple[type, float]], expr: str) -> Target:
    """The bound that is the target: the only one; else the one that is not a sanity bound
    (>= 0 / > 0 below, <= 1 / < 1 above); else the inclusive one (GPT-3: <= 2.69 and > 2.6)."""
    candidates = [
        (op, x)
        for op, x in bounds
        if len(bounds) == 1
        or not (
            (op in (ast.Gt, ast.GtE) and x == SANITY_LOWER)
            or (op in (ast.Lt, ast.LtE) and x == SANITY_UPPER)
        )
    ]
    if len(candidates) > 1:
        candidates = [(op, x) for op, x in candidates if op in (ast.GtE, ast.LtE)]
    if len(candidates) != 1:
        raise RoundsError(
            f"{expr!r}: cannot tell which bound of {key or 'the value'} is the target"
        )
    op, x = candidates[0]
    return Target(key, x, "higher" if op in (ast.Gt, ast.GtE) else "lower")


def parse_check(expr: str, state: Mapping[str, Any] | None = None) -> list[Target]:
    """The quality targets of an ATLEAST_ONE_CHECK expression, in the order the expression
    names them: ``"v['value'] >= 0.720 and v['value'] < 1.0"`` -> [Target(None, 0.72, 'higher')]."""
    per_key: dict[str | None, list[tuple[type, float]]] = {}
    for key, op, x in _bounds(expr, state or {}):
        per_key.setdefault(key, []).append((op, x))
    if not per_key:
        raise RoundsError(f"{expr!r}: no comparison of the value with a number")
    if None in per_key and len(per_key) > 1:
        raise RoundsError(f"{expr!r}: compares both the value and parts of it")
    return [_target_of(key, bounds, expr) for key, bounds in per_key.items()]


def rule_targets(path: Path) -> tuple[list[Target], str]:
    """The targets of a rule file's quality check, and the check expression itself."""
    rules = load_rules(path)
    keys = rule_keys(rules)
    checks = [
        (name, keys[name]["ATLEAST_ONE_CHECK"])
        for name in QUALITY_KEYS
        if name in keys and "ATLEAST_ONE_CHECK" in keys[name]
    ]
    if len(checks) != 1:
        raise RoundsError(
            f"{path}: expected one ATLEAST_ONE_CHECK on {' or '.join(QUALITY_KEYS)}, "
            f"found {len(checks)}"
        )
    expr = " ".join(str(checks[0][1]).split())
    return parse_check(expr, begin_state(rules)), expr


# ---------------------------------------------------------------------------------------------
# Definitions


def info_of(mlperf_name: str, round_: str) -> Info:
    """The description table's entry of a benchmark that holds in a round."""
    if mlperf_name not in BENCHMARK_INFO:
        raise RoundsError(
            f"{mlperf_name!r} (round {round_}) is new to scripts/mlperf/rounds.py: add it to "
            "BENCHMARK_INFO (title, task, metric name)"
        )
    held = [i for i in BENCHMARK_INFO[mlperf_name] if round_key(i.since) <= round_key(round_)]
    return held[-1]


def round_key(round_: str) -> tuple[int, ...]:
    """'4.1' -> (4, 1), to order rounds."""
    return tuple(map(int, round_.split(".")))


def quality_of(targets: Sequence[Target], metric: str) -> dict[str, Any]:
    """The config's quality mapping of a rule file's targets: the first is the quality; the
    others (Mask R-CNN's SEGM, Stable Diffusion's CLIP) are also_targets, with their own
    direction in also_directions where it differs."""
    first, others = targets[0], targets[1:]
    quality: dict[str, Any] = {
        "metric": metric,
        "target": first.target,
        "direction": first.direction,
    }
    if first.key is not None:
        quality["value_key"] = first.key
    if others:
        quality["also_targets"] = {t.key: t.target for t in others}
        directions = {t.key: t.direction for t in others if t.direction != first.direction}
        if directions:
            quality["also_directions"] = directions
    return quality


def goal_text(targets: Sequence[Target], metric: str) -> str:
    """'mlm_accuracy >= 0.72' / 'FID <= 90.0 and CLIP >= 0.15': the targets in words."""
    sign = {"higher": ">=", "lower": "<="}
    return " and ".join(f"{t.key or metric} {sign[t.direction]} {t.target!r}" for t in targets)


def _v06_definition(mlperf_name: str) -> dict[str, Any]:
    row = V06[mlperf_name]
    return {
        "description": f"MLPerf Training v0.6 {V06_TITLES[mlperf_name]}: {row['description']}",
        "scale": f"MLPerf Training v0.6 closed division ({row['scale']})",
        "quality": dict(row["quality"]),
    }


def _rule_definition(round_: str, mlperf_name: str, checker: Path) -> dict[str, Any]:
    targets, expr = rule_targets(rule_file(round_, mlperf_name, checker))
    info = info_of(mlperf_name, round_)
    goal = goal_text(targets, info.metric)
    return {
        "description": f"MLPerf Training v{round_} {info.title}: {info.task} to {goal}",
        "scale": f"MLPerf Training v{round_} closed division ({goal})",
        "quality": quality_of(targets, info.metric),
        "check": expr,
    }


def definition(round_: str, mlperf_name: str, checker: Path | None = None) -> dict[str, Any]:
    """One benchmark's definition in the config schema (see :func:`definitions`)."""
    checker = checker or checker_dir()
    made = (
        _v06_definition(mlperf_name)
        if round_ == "0.6"
        else _rule_definition(round_, mlperf_name, checker)
    )
    drop = olympic_drop(mlperf_name)
    bench: dict[str, Any] = {
        "description": made["description"],
        "scale": made["scale"],
        "mlperf_name": mlperf_name,
        "runs": result_count(mlperf_name),
        "max_nonconverged": drop,
        "quality": made["quality"],
        "mlperf": {"round": round_, "ruleset": ruleset_of(round_), "olympic_drop": drop},
    }
    if "check" in made:
        bench["mlperf"]["check"] = made["check"]
    aliases = folder_aliases(mlperf_name)
    if aliases:
        bench["folder_aliases"] = aliases
    if "eval_result" in rule_keys(load_rules(rule_file(round_, mlperf_name, checker))):
        bench["log"] = {"time_to_train": "eval_result"}
    return bench


def definitions(round_: str, checker: Path | None = None) -> dict[str, dict[str, Any]]:
    """Benchmark name -> definition, for every benchmark of a round that mlperf-logging
    allows (less :data:`NOT_DEFINED`). ``checker`` is a compliance_checker folder (default:
    the installed package's; tests pass a modified copy)."""
    if round_ not in ROUNDS:
        raise RoundsError(f"round {round_!r} is not one of {', '.join(ROUNDS)}")
    return {
        benchmark_name(b, round_): definition(round_, b, checker)
        for b in allowed_benchmarks(round_)
        if (round_, b) not in NOT_DEFINED
    }


# ---------------------------------------------------------------------------------------------
# Files


def file_name(round_: str) -> str:
    return f"mlperf-v{round_}.yaml"


def render(round_: str, checker: Path | None = None) -> str:
    """The text of config/benchmarks/mlperf-v<round>.yaml: a commented header, then one block
    per benchmark."""
    defs = definitions(round_, checker)
    header = [
        f"# The MLPerf Training v{round_} benchmarks (closed division), as far as needed to import",
        f"# and score published results (training_results_v{round_}) with an `import` system.",
        f"# GENERATED by `python -m scripts rounds write` from {PACKAGE} {package_version()}",
        f"# (ruleset training_{ruleset_of(round_)}): do not edit; `python -m scripts rounds check`",
        "# says where a file differs from the installed package. runs: benchmark_meta's result",
        "# counts; max_nonconverged and mlperf.olympic_drop: the runs the result summarizer drops",
        "# at each end; targets: the compliance checker's quality check (mlperf.check), or, for",
        "# v0.6 whose rule files check none, the targets the v0.6 logs print.",
        "#",
        "# None of them has a dataset or an implementation here, so a local system does not run",
        "# them. To run one, add (in an overlay) its dataset and an implementation command under",
        "# the same benchmark name. Names carry the round: the embedded toy benchmark is called",
        "# gnmt, and its target has nothing to do with MLPerf's. `mlperf_name` is the name MLPerf",
        "# uses for the result folder and in submission_benchmark.",
    ]
    notes = ROUND_NOTES.get(round_, "").splitlines()
    header += ["#", *(f"# {line}".rstrip() for line in notes)] if notes else []
    body = "\n".join(_block(name, bench) for name, bench in defs.items())
    return "\n".join(header) + "\n\nbenchmarks:\n" + body


def _yaml_entry(key: str, value: Any) -> str:
    """'key: value' as YAML, leaf mappings and lists in flow style, never wrapped."""
    if isinstance(value, (dict, list)):
        dumped = yaml.safe_dump(
            {key: value}, sort_keys=False, default_flow_style=None, width=10_000
        )
        return dumped.rstrip("\n")
    scalar = yaml.safe_dump(value, width=10_000).removesuffix("\n...\n").rstrip("\n")
    return f"{key}: {scalar}"


def _block(name: str, bench: Mapping[str, Any]) -> str:
    """One benchmark's lines, indented under ``benchmarks:``; the mlperf mapping in block
    style with its check expression in double quotes (it is full of single ones)."""
    lines = [f"{name}:"]
    for key, value in bench.items():
        if key == "mlperf":
            lines.append("  mlperf:")
            for k, v in value.items():
                entry = f"{k}: {json.dumps(v)}" if k == "check" else _yaml_entry(k, v)
                lines.append("    " + entry)
        else:
            lines += ["  " + line for line in _yaml_entry(key, value).splitlines()]
    return "".join(f"  {line}\n" for line in lines)


def write(directory: Path = DEFAULT_DIR, rounds: Sequence[str] = ROUNDS) -> list[Path]:
    """Write every round's file into ``directory``; return the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for round_ in rounds:
        path = directory / file_name(round_)
        path.write_text(render(round_), encoding="utf-8")
        paths.append(path)
    return paths


def _differences(prefix: str, found: Any, wanted: Any) -> list[str]:
    """'<prefix>.<key>: the file has X, the package gives Y', for every key that differs."""
    if isinstance(found, Mapping) and isinstance(wanted, Mapping):
        lines: list[str] = []
        for key in dict.fromkeys([*wanted, *found]):
            if key not in found:
                lines.append(
                    f"{prefix}.{key}: missing from the file (the package gives {wanted[key]!r})"
                )
            elif key not in wanted:
                lines.append(
                    f"{prefix}.{key}: in the file ({found[key]!r}) but not from the package"
                )
            else:
                lines += _differences(f"{prefix}.{key}", found[key], wanted[key])
        return lines
    same = found == wanted and type(found) is type(wanted)
    return [] if same else [f"{prefix}: the file has {found!r}, the package gives {wanted!r}"]


def check(
    directory: Path = DEFAULT_DIR, rounds: Sequence[str] = ROUNDS, checker: Path | None = None
) -> list[str]:
    """One line per difference between the round files in ``directory`` and what the package
    (or the compliance_checker folder ``checker``) gives: '<file>: benchmarks.<name>.<key>:
    ...'; a file whose data agree but whose text does not is named as well. Empty: all agree."""
    problems: list[str] = []
    for round_ in rounds:
        path = directory / file_name(round_)
        if not path.is_file():
            problems.append(f"{path}: missing (run `python -m scripts rounds write`)")
            continue
        text = render(round_, checker)
        try:
            found = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            problems.append(f"{path}: not YAML ({' '.join(str(exc).split())})")
            continue
        lines = _differences(
            "benchmarks", found.get("benchmarks", {}), yaml.safe_load(text)["benchmarks"]
        )
        if not lines and path.read_text(encoding="utf-8") != text:
            lines = ["the text differs from `python -m scripts rounds write` (comments or layout)"]
        problems += [f"{path}: {line}" for line in lines]
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts rounds", description=__doc__.split("\n")[0]
    )
    parser.add_argument("action", choices=["write", "check"])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="the folder of the files")
    args = parser.parse_args(argv)
    if args.action == "write":
        for path in write(args.dir, ROUNDS):
            print(f"wrote {path}")
        return 0
    problems = check(args.dir, ROUNDS)
    new = sorted(set(package_rounds()) - set(ROUNDS), key=round_key)
    if new:
        problems.append(
            f"{PACKAGE} {package_version()} has Training round(s) {', '.join(new)} that "
            "scripts/mlperf/rounds.py ROUNDS lacks: add them, then write"
        )
    for line in problems:
        print(line, file=sys.stderr)
    if not problems:
        print(f"{len(ROUNDS)} round files agree with {PACKAGE} {package_version()}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
