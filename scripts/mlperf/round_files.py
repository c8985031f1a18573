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

What the package does not state is in the small tables of :mod:`scripts.mlperf.rounds`:
descriptions and metric names (``BENCHMARK_INFO``), and the v0.6 targets (``V06``), because the
training_0.6.0 rule files check no quality at all (the v0.6 logs print their targets;
tests/test_mlperf_v06.py checks them against NVIDIA's logs). How the package is read is in
:mod:`scripts.mlperf.rule_files`; this module makes the definitions from both, and writes and
checks the files.

Rounds left out, and why:

- v0.5: mlperf-logging has no training_0.5.0 ruleset, no v0.5 log parser (v0.5 logs are
  ``:::MLPv0.5.0`` lines) and no v0.5 entry in benchmark_meta, so neither the targets nor the
  run counts can come from the package; typing them in would be the hand-copied table this
  module exists to avoid.
- v0.6 NCF: benchmark_meta allows it but training_0.6.0 has no rule file for it (the checker
  cannot check an NCF log) and v0.6 published no NCF result (see ``NOT_DEFINED`` in
  :mod:`scripts.mlperf.rounds`).

Usage: ``python -m scripts rounds write [--dir config/benchmarks]`` writes the files;
``python -m scripts rounds check [--dir ...]`` exits 1, naming benchmark and key, when a file
differs from what the installed package gives (e.g. after an mlperf-logging upgrade).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from scripts.mlperf.rounds import (
    NOT_DEFINED,
    ROUND_NOTES,
    ROUNDS,
    V06,
    V06_TITLES,
    RoundsError,
    benchmark_name,
    info_of,
    round_key,
    ruleset_of,
)
from scripts.mlperf.rule_files import (
    PACKAGE,
    Target,
    allowed_benchmarks,
    checker_dir,
    folder_aliases,
    load_rules,
    olympic_drop,
    package_rounds,
    package_version,
    result_count,
    rule_file,
    rule_keys,
    rule_targets,
)

WORKFLOW_DIR = Path(__file__).resolve().parents[2]
DEFAULT_DIR = WORKFLOW_DIR / "config" / "benchmarks"


# ---------------------------------------------------------------------------------------------
# Definitions


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
