"""What goes into a submission (``snakemake submission/verdict.json``), from the configuration
alone: the eligible systems, benchmarks and runs, what is left out and why, and the plan the
submission job builds ``submission/<submitter>/`` from (:mod:`scripts.submission.cli`).

Eligible, as issue 24 states it:

- a system of the campaign with a ``submission:`` block, that trains (an import system's runs
  are published results: never submitted again);
- a benchmark of the campaign with an ``mlperf:`` section and an ``mlperf_name`` (the embedded
  GNMT toy has neither: never submitted), whose runs are not synthetic smoke runs;
- every run of the campaign's run count: all of them, the ones the olympic mean drops too, and
  all M runs under the M-of-N protocol (``window``).

One submission is of one round: eligible benchmarks of two rounds are refused, naming them. The
plan holds only what the configuration says (paths, the submission blocks, the system's GPUs,
nodes and CPU layout), never what a run or an image records: those are read by the job when
every run is made (a plan made before an image is built stays right after).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from scripts.campaign.topology import benchmark_systems, campaign_systems, system_run_ids
from scripts.core import hashing, layout
from scripts.core.config import ConfigError
from scripts.core.window_setting import window_of
from scripts.mlperf.rounds import RoundsError
from scripts.mlperf.rule_files import allowed_benchmarks
from scripts.run import backends
from scripts.run.backends.image import source_dir_for

__all__ = ["RUN_FILES", "eligible_inputs", "plan_file", "submission_plan"]

# what the job reads of each run (the rule's inputs)
RUN_FILES = ("mlperf.log", "run.json", "result.json")
# the block's own keys: systems/<system>.json has them from the block, never from its fields
# (the checker decides the seed and RCP checks by the json's division, the log check by the
# block's: one value, said once)
BLOCK_KEYS = ("submitter", "division", "status", "system_name")
# the job's own files beside the trees: no submitter's folder may take their names
RESERVED = (layout.SUBMISSION_VERDICT.name, layout.SUBMISSION_CHECK_LOG.name)


def _systems_with_block(config: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """The campaign systems that may be submitted, and one line per system left out."""
    chosen, skipped = [], []
    for system in campaign_systems(config):
        sys_ = config["systems"][system]
        if not sys_.get("submission"):
            skipped.append(f"system {system}: no submission: block, not submitted")
        elif backends.get(sys_["backend"]).imports:
            skipped.append(
                f"system {system}: backend import: its runs are published results, never "
                "submitted again (its submission: block is not used)"
            )
        else:
            chosen.append(system)
    return chosen, skipped


def _benchmark_skip(bench: Mapping[str, Any], name: str) -> str | None:
    """Why a campaign benchmark is never submitted, or None when it may be."""
    if not bench.get("mlperf"):
        return (
            f"benchmark {name}: not an MLPerf benchmark of a round (no mlperf: section; the "
            "embedded GNMT is a toy at its own scale), never submitted"
        )
    if not bench.get("mlperf_name"):
        return f"benchmark {name}: no mlperf_name (its results folder's name), not submitted"
    if (bench.get("implementation") or {}).get("synthetic"):
        return (
            f"benchmark {name}: implementation.synthetic: its runs are smoke runs on generated "
            "data, never submitted"
        )
    return None


def _implementation(config: Mapping[str, Any], benchmark: str, system: str) -> dict[str, Any]:
    """Where the tree's ``benchmarks/<mlperf_name>/implementations/<name>/`` comes from: the
    build context of a published implementation's image (``source``: a container source, as
    ``python -m scripts implementation`` writes it), else a pointer file that says what ran."""
    bench = config["benchmarks"][benchmark]
    cont = (bench.get("implementation") or {}).get("container") or {}
    backend = backends.get(config["systems"][system]["backend"])
    stamp = f"{layout.system_dir(Path('.'), benchmark, system)}/image.json"
    source = cont.get("source")
    if backend.has_image() and source:
        where = source.get("subdir") or source.get("path") or source.get("git") or benchmark
        name = Path(str(where).rstrip("/")).name.removesuffix(".git")
        name = benchmark if name in ("", ".", "..") else name
        return {
            "kind": "source",
            "name": name,
            "context": f"build/{benchmark}/{system}/context",
            "source": str(source_dir_for(benchmark, cont, Path("."))),
            "subdir": source.get("subdir") or "",
            "stamp": stamp,
        }
    return {"kind": "pointer", "name": benchmark, "stamp": stamp if backend.has_image() else None}


def _entry(config: Mapping[str, Any], benchmark: str, system: str) -> dict[str, Any]:
    bench = config["benchmarks"][benchmark]
    folder = layout.system_dir(Path("."), benchmark, system)
    return {
        "benchmark": benchmark,
        "mlperf_name": bench["mlperf_name"],
        "system": system,
        "round": bench["mlperf"]["round"],
        "ruleset": bench["mlperf"]["ruleset"],
        "runs": [
            str(folder / layout.run_name(r)) for r in system_run_ids(config, benchmark, system)
        ],
        "environment": str(folder / "environment.json"),
        "window": window_of(config, benchmark),
        "implementation": _implementation(config, benchmark, system),
    }


def _system_facts(sys_: Mapping[str, Any]) -> dict[str, Any]:
    """What the system's yaml says of its hardware (systems/<system>.json's sources besides
    environment.json), and its submission block."""
    return {
        "submission": dict(sys_["submission"]),
        "backend": sys_["backend"],
        "gpus": sys_.get("gpus", 0),
        "nodes": (sys_.get("slurm") or {}).get("nodes", 1),
        "topology": sys_.get("topology"),
    }


def _one_round(entries: list[dict[str, Any]]) -> tuple[str, str]:
    """The round and ruleset every eligible benchmark shares; ConfigError naming them if not."""
    rounds: dict[tuple[str, str], list[str]] = {}
    for e in entries:
        rounds.setdefault((e["round"], e["ruleset"]), []).append(e["benchmark"])
    if len(rounds) > 1:
        named = "; ".join(
            f"round {r} ({', '.join(sorted(set(b)))})" for (r, _), b in sorted(rounds.items())
        )
        raise ConfigError(
            f"submission: the eligible benchmarks are of more than one MLPerf round: {named}; "
            "a submission is of one round: keep one round's benchmarks in campaign.benchmarks"
        )
    return next(iter(rounds))


def _check_round_names(entries: list[dict[str, Any]], round_: str) -> None:
    """ConfigError when a benchmark's mlperf_name is not one of the round's (benchmark_meta's
    list): the package checker would only warn "Skipping benchmark", check nothing and pass."""
    try:
        allowed = allowed_benchmarks(round_)
    except RoundsError as exc:
        raise ConfigError(f"submission: {exc}") from None
    for e in entries:
        if e["mlperf_name"] not in allowed:
            raise ConfigError(
                f"submission: benchmarks.{e['benchmark']}.mlperf_name "
                f"{e['mlperf_name']!r} is not a Training benchmark of round {round_} "
                f"(mlperf-logging's benchmark_meta lists {', '.join(allowed)}): the package "
                "checker would skip its results unchecked"
            )


def _check_block(system: str, block: Mapping[str, Any]) -> None:
    """ConfigError for a submission block the tree cannot hold: a submitter named as the
    job's own files, fields that give the block's own keys."""
    if block["submitter"].lower() in RESERVED:
        raise ConfigError(
            f"submission: systems.{system}.submission.submitter {block['submitter']!r} is the "
            f"name of the job's own file submission/{block['submitter']}; choose another name"
        )
    given = sorted(set(block.get("fields") or {}) & set(BLOCK_KEYS))
    if given:
        raise ConfigError(
            f"submission: systems.{system}.submission.fields gives {', '.join(given)}: "
            f"{', '.join(BLOCK_KEYS)} are given once, as keys of the submission: block itself"
        )


def _check_system_names(trees: Mapping[str, Mapping[str, Any]]) -> None:
    """ConfigError when two systems of one submitter publish one system_name (the checker
    names a system by it; one would hide the other)."""
    for submitter, tree in trees.items():
        seen: dict[str, str] = {}
        for system, facts in tree["systems"].items():
            name = str(facts["submission"]["system_name"])
            if name in seen:
                raise ConfigError(
                    f"submission: systems {seen[name]} and {system} of submitter {submitter} "
                    f"both have system_name {name!r}; give each system its own published name"
                )
            seen[name] = system


def submission_plan(config: Mapping[str, Any]) -> dict[str, Any]:
    """The submission job's plan: per submitter its systems and (benchmark, system) entries,
    the round, and what was left out and why. ConfigError when nothing is eligible."""
    systems, skipped = _systems_with_block(config)
    entries = []
    for benchmark in config["campaign"]["benchmarks"]:
        bench = config["benchmarks"][benchmark]
        why = _benchmark_skip(bench, benchmark)
        if why:
            skipped.append(why)
            continue
        entries += [_entry(config, benchmark, s) for s in benchmark_systems(config, benchmark)]
    entries = [e for e in entries if e["system"] in systems]
    if not entries:
        raise ConfigError(
            "submission: nothing to submit: no system of the campaign with a submission: "
            "block has runs of an MLPerf benchmark of the campaign"
            + (f" ({'; '.join(skipped)})" if skipped else "")
            + " (docs/submission.md)"
        )
    round_, ruleset = _one_round(entries)
    _check_round_names(entries, round_)
    for system in sorted({e["system"] for e in entries}):
        _check_block(system, config["systems"][system]["submission"])
    trees: dict[str, dict[str, Any]] = {}
    folders: dict[tuple[str, str, str], str] = {}
    for e in entries:
        sys_ = config["systems"][e["system"]]
        submitter = sys_["submission"]["submitter"]
        key = (submitter, e["system"], e["mlperf_name"])
        if key in folders:
            raise ConfigError(
                f"submission: benchmarks {folders[key]} and {e['benchmark']} are both "
                f"{e['mlperf_name']} on system {e['system']}: one results/{e['system']}/"
                f"{e['mlperf_name']}/ folder holds one benchmark's runs; keep one in "
                "campaign.benchmarks"
            )
        folders[key] = e["benchmark"]
        tree = trees.setdefault(submitter, {"systems": {}, "entries": []})
        tree["systems"].setdefault(e["system"], _system_facts(sys_))
        tree["entries"].append(e)
    _check_system_names(trees)
    return {"round": round_, "ruleset": ruleset, "trees": trees, "skipped": skipped}


def eligible_inputs(plan: Mapping[str, Any]) -> list[str]:
    """The files the submission job reads: each eligible run's mlperf.log, run.json and
    result.json, and each (benchmark, system)'s environment.json."""
    files = []
    for tree in plan["trees"].values():
        for e in tree["entries"]:
            files.append(e["environment"])
            files += [f"{run}/{name}" for run in e["runs"] for name in RUN_FILES]
    return files


def plan_file(plan: Mapping[str, Any], root: Path = Path(".")) -> str:
    """The plan as a file named by its content (written once), the rule's input: a changed
    configuration is another file, so the job is redone (as an import batch's plan)."""
    text = json.dumps(plan, sort_keys=True) + "\n"
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    path = root / layout.SUBMISSION_PLANS / f"plan.{digest}.json"
    if not path.is_file():
        hashing.write_atomic(path, text)
    return str(path)


def read_json_object(path: Path) -> dict[str, Any]:
    """A run's or system's JSON file (result.json, environment.json, image.json...) as a
    mapping; {} when it is missing, unreadable or not an object: the submission says what is
    missing from what it finds, it does not stop on one file."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
