"""What the installed mlperf-logging states of each round: its tables and its rule files.

Read from the package, never run: the rounds it has a ruleset for (:func:`package_rounds`),
the benchmarks of a round (``benchmark_meta``), their result counts, the runs the result
summarizer drops at each end (read from its source), the folder aliases it accepts, and the
compliance checker's rule files (``compliance_checker/training_<ruleset>/closed_<name>.yaml``),
whose quality check (an ``ATLEAST_ONE_CHECK`` expression) is parsed into its targets
(:class:`Target`) by :func:`parse_check` and :func:`rule_targets`.
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from scripts.mlperf.rounds import FOLDER_ALIAS_CANDIDATES, RoundsError, round_key, ruleset_of

PACKAGE = "mlperf-logging"
# the quality events whose ATLEAST_ONE_CHECK holds the target (Stable Diffusion: a key the
# checker makes itself from the FID and CLIP eval_accuracy lines of one samples_count)
QUALITY_KEYS = ("eval_accuracy", "aggregated_eval_accuracy")
# bounds that only say the value is a fraction or positive, never a target
SANITY_LOWER, SANITY_UPPER = 0.0, 1.0


@dataclass(frozen=True)
class Target:
    """One quality target of a rule file: the part of the value (None: the value itself),
    the target and the direction ('higher': value >= target meets it)."""

    key: str | None
    target: float
    direction: str


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


def package_rounds(checker: Path | None = None) -> tuple[str, ...]:
    """The Training rounds the package has a ruleset for, oldest first ('0.7.0_warn' is a
    variant of 0.7.0, not a round)."""
    folders = (checker or checker_dir()).glob("training_*")
    rulesets = [p.name[len("training_") :] for p in folders if p.is_dir()]
    found = [r for r in rulesets if r.count(".") == 2 and r.replace(".", "").isdigit()]
    return tuple(sorted({r.rsplit(".", 1)[0] for r in found}, key=round_key))


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
