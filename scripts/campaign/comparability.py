"""Comparability: finished runs are never silently redone or mixed after a config change.

- :func:`comparability`: the record that makes two runs of (benchmark, system) comparable, as
  configured; its fingerprint is ``hashing.canonical_sha256`` of it, and what differs between
  two records is :func:`scripts.core.records.differences`;
- :func:`table_settings`: what a benchmark's tables are computed with besides its runs;
- :func:`incomparable_message`: what differs for which finished runs, and what to do.

The finished runs on disk are compared with the current record in
:mod:`scripts.campaign.finished_runs` (which reads their files). A system's backend adds its
part of the record (:mod:`scripts.run.backends`); nothing here names one.

Pure: it reads no file itself (a container backend's part of the record hashes what the image
is built from).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scripts.core.dataset_setting import NO_DATASET, dataset_section, has_no_dataset
from scripts.core.records import hyperparameters
from scripts.run import backends


def table_settings(config: Mapping[str, Any], benchmark: str) -> dict[str, Any]:
    """What a benchmark's tables, plots and report are computed with besides its runs: the
    statistics section, the reference system, the benchmark's max_nonconverged and its M-of-N
    window when it has one (scripts/campaign/preflight.py remakes them when these change)."""
    settings = {
        "statistics": dict(config["statistics"]),
        "reference_system": config["campaign"].get("reference_system"),
        "max_nonconverged": config["benchmarks"][benchmark]["max_nonconverged"],
    }
    window = config["benchmarks"][benchmark].get("window")
    if window is not None:  # only then, so a campaign without one keeps its recorded settings
        settings["window"] = window
    return settings


def comparability(config: Mapping[str, Any], benchmark: str, system: str) -> dict[str, Any]:
    """What makes two runs of (benchmark, system) comparable, as configured."""
    bench, sys_ = config["benchmarks"][benchmark], config["systems"][system]
    implementation = bench.get("implementation", {})
    record = {
        "benchmark": benchmark,
        "quality": bench["quality"],
        # none: the word, so a dataset that becomes none (or back) is a difference
        "dataset": NO_DATASET
        if has_no_dataset(bench)
        else [
            {k: f.get(k) for k in ("name", "sha256", "md5", "unpack")}
            for f in dataset_section(bench).get("files", [])
        ],
        "command": implementation.get("command"),
        "implementation_env": implementation.get("env", {}),
        "hyperparameters": hyperparameters(config, benchmark, system),
        "system": {k: sys_.get(k) for k in ("backend", "threads", "gpus", "env")},
        # e.g. a container system's image and how its containers run
        **backends.get(sys_["backend"]).fingerprint_record(config, benchmark, system),
    }
    record["system"].update(backends.get(sys_["backend"]).system_record(sys_))
    nodes = (sys_.get("slurm") or {}).get("nodes", 1)
    if nodes != 1:  # only then, so single-node runs keep the record they were made with
        record["system"]["nodes"] = nodes
    if sys_.get("cache", "cold") != "cold":  # warm runs are not comparable with cold ones
        record["system"]["cache"] = sys_["cache"]
    if implementation.get("synthetic"):  # only then: other campaigns keep their fingerprint
        record["synthetic"] = True  # a smoke run never sits in one group with real runs
    return record


def incomparable_message(benchmark: str, system: str, bad: dict[str, list[str]]) -> str:
    """What differs for which runs (``bad``: by run id), and what to do about it."""
    changes = sorted({d for diffs in bad.values() for d in diffs})
    if len(changes) > 12:
        changes = changes[:12] + [f"... and {len(changes) - 12} more"]
    return (
        f"results/{benchmark}/{system}: runs {', '.join(sorted(bad))} were made under a "
        "different configuration:\n    "
        + "\n    ".join(changes)
        + "\n  Restore the previous configuration to continue this campaign, or move the old "
        "runs aside (kept, not deleted) and start anew:\n"
        f"    python -m scripts archive results/{benchmark}/{system}"
    )
