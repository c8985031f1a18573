"""The import jobs (rules/import.smk): per benchmark, the runs of its import systems in batches
of whole systems (:func:`import_batches`), each one job (:class:`ImportBatch`) whose input is its
plan, a file named by its content (:func:`import_plan_file`), so that a changed log or
configuration redoes the job. The rules ask them through
:class:`scripts.workflow.rule_inputs.RuleInputs`.

**Reads the disk**: the import systems' folders (their logs, and the size and mtime of every
file a run.json records), and writes each plan once under ``.snakemake/import-plans/``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scripts.campaign.comparability import comparability
from scripts.campaign.run_specs import compliance_ruleset
from scripts.campaign.topology import benchmark_systems, import_folder
from scripts.core import hashing, layout

# runs per import job (whole systems; scripts/run/published/batch.py imports a batch): Snakemake
# matches a requested file against every output of the rule that lists it, so one job of a
# benchmark's 400 runs made the no-op of a 1,360-log round 5.3 s; batches of 100 make it 4.0 s
# and cost a few more job starts (docs/PERFORMANCE.md section 14)
IMPORT_BATCH_RUNS = 100


@dataclass(frozen=True)
class ImportBatch:
    """One job that imports every run of a benchmark's import systems (rules/import.smk)."""

    benchmark: str
    rule: str  # the rule's name: import_<benchmark> with every other character made _
    folders: tuple[str, ...]  # each system's folder of the benchmark's logs
    outputs: tuple[str, ...]  # result.json of every run, then run.json, then mlperf.log
    plan: dict[str, Any]  # scripts.run.published.batch.batch_plan, with "sources"
    sources: str  # the digest of what the runs are read from (:func:`_sources_digest`)


def _rule_name(prefix: str, name: str, taken: set[str]) -> str:
    """``prefix + name`` as a Python identifier (a rule's name), distinct from ``taken``."""
    base = prefix + re.sub(r"\W", "_", name)
    out, i = base, 2
    while out in taken:
        out, i = f"{base}_{i}", i + 1
    taken.add(out)
    return out


def _sources_digest(paths: Iterable[Path]) -> str:
    """sha256 over each path with its size and mtime (an lstat each, no read, no link
    followed: a published tree's links are refused by name, and a link loop or a link to a
    FIFO must not stop the workflow's load; "-" for a path that cannot be stat'ed): what a
    batch's runs are read from."""
    sha = hashlib.sha256()
    for path in paths:
        try:
            st = os.lstat(path)
            stamp = f"{st.st_size}\0{st.st_mtime_ns}"
        except OSError:
            stamp = "-"
        sha.update(f"{path}\0{stamp}\n".encode())
    return sha.hexdigest()


def import_batches(
    config: Mapping[str, Any], max_runs: int = IMPORT_BATCH_RUNS
) -> list[ImportBatch]:
    """The import jobs: per benchmark that campaign import systems have logs of, their
    runs in batches of whole systems, at most ``max_runs`` runs each unless one system has
    more (rules/import.smk; scripts/run/published/batch.py)."""
    batches: list[ImportBatch] = []
    names: set[str] = set()
    for benchmark, bench in config["benchmarks"].items():
        chunks: list[tuple[list[str], list[tuple[Path, str, dict[str, Any]]]]] = []
        for system in benchmark_systems(config, benchmark):
            folder = import_folder(config, benchmark, system)
            if folder is None:
                continue  # a system that trains
            spec = _import_spec(config, benchmark, system)
            files = layout.result_files(folder)
            runs = [
                (src, _run_dir(benchmark, system, run), {**spec, "run": int(run)})
                for run, src in zip(layout.run_ids(len(files)), files, strict=True)
            ]
            if not chunks or len(chunks[-1][1]) + len(runs) > max_runs:
                chunks.append(([], []))
            chunks[-1][0].append(folder)
            chunks[-1][1].extend(runs)
        ruleset = compliance_ruleset(bench)
        for folders, runs in chunks:
            if not runs:
                continue
            from scripts.run.published import batch as published_batch  # lazy: the importer
            from scripts.run.published import folder as published_folder  # only for import logs

            # the logs, and what else a run.json records of their folders
            sources = _sources_digest(
                [src for src, _, _ in runs]
                + [p for f in folders for p in published_folder.folder_files(f)]
            )
            batch_plan = published_batch.batch_plan(
                benchmark,
                bench,
                runs,
                compliance_ruleset=ruleset,
                compliance_cache=str(layout.COMPLIANCE_CACHE) if ruleset else None,
                sources=sources,
            )
            # result.json first: Snakemake looks a requested file (collect_runs asks for
            # result.json) up in the rule's outputs in order, compiling each one's regex
            outputs = tuple(
                f"{d}/{f}" for f in reversed(published_batch.RUN_FILES) for _, d, _ in runs
            )
            batches.append(
                ImportBatch(
                    benchmark=benchmark,
                    rule=_rule_name("import_", benchmark, names),
                    folders=tuple(str(f) for f in folders),
                    outputs=outputs,
                    plan=batch_plan,
                    sources=sources,
                )
            )
    return batches


def import_plan_file(batch: ImportBatch, root: Path = Path(".")) -> str:
    """The batch's plan as a file named by its content (written once), the rule's input.
    Another plan (a log changed: its sources digest; the configuration changed: a run's
    specification) is another file, so the job's input changed and the profile's
    ``rerun-triggers: [mtime, input]`` redo it. A path, not the plan itself, because
    Snakemake keeps a rule's params and command for each of its outputs (a plan of 100
    runs would be stored 300 times)."""
    # compact: json.dumps with indent is the pure-Python encoder (every invocation does this)
    text = json.dumps(batch.plan, sort_keys=True) + "\n"
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    path = root / layout.IMPORT_PLANS / f"{batch.benchmark}.{digest}.json"
    if not path.is_file():
        hashing.write_atomic(path, text)
    return str(path)


def _import_spec(config: Mapping[str, Any], benchmark: str, system: str) -> dict[str, Any]:
    """An import run's specification, as scripts.run.published.run.import_run takes it (its
    run number aside)."""
    record = comparability(config, benchmark, system)
    bench = config["benchmarks"][benchmark]
    return {
        "benchmark": benchmark,
        "system": system,
        "scale": bench["scale"],
        "mlperf_name": bench.get("mlperf_name"),
        "expected_runs": bench.get("runs"),  # the package checker's count (a note)
        "config_fingerprint": hashing.canonical_sha256(record),
        "comparability": record,
        # only where there are some: a key more would redo every batch's plan
        **({"folder_aliases": list(a)} if (a := bench.get("folder_aliases")) else {}),
    }


def _run_dir(benchmark: str, system: str, run: str) -> str:
    # as RuleInputs._run_dir: layout.run_dir's path as text, without a Path per run
    return f"results/{benchmark}/{system}/{layout.run_name(run)}"
