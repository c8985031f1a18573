"""One run's result.json from its mlperf.log and the runner's run.json.

Kept apart from :mod:`scripts.analysis.tables` (pandas, scipy) because every training job imports
it:
the runner writes result.json as soon as a run ends, so a run is one job, not two.

With ``--compliance-ruleset`` (e.g. 5.0.0), the log is also judged by mlperf-logging's own
compliance checker (:func:`scripts.mlperf.compliance.check_log`) and result.json records
``compliance`` (pass, fail, not applicable) and ``compliance_detail`` (the checker's first
failing rule). A log that fails counts as not converged, with the reason in ``problems``, as
the official result summarizer drops it. Without the option, ``compliance`` is "not
applicable"; a result.json written before these fields reads the same (:func:`compliance_of`):
the fields are only added, so result.json stays format version 1.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from scripts.core import formats, hashing
from scripts.mlperf import checker_outcome, compliance, power
from scripts.mlperf.log_events import ParsedLog
from scripts.mlperf.log_parser import parse_file
from scripts.mlperf.outcome import run_outcome
from scripts.run import seals

COMPLIANCE_KEY = "compliance"
COMPLIANCE_DETAIL_KEY = "compliance_detail"
NO_COMPLIANCE_RULESET = "no --compliance-ruleset given"


def compliance_of(result: Mapping[str, Any]) -> tuple[str, str]:
    """(compliance, compliance_detail) of a result.json; one written before the fields
    existed, or without a ruleset, is ("not applicable", "")."""
    status = result.get(COMPLIANCE_KEY)
    if status not in compliance.STATUSES:
        return compliance.NOT_APPLICABLE, ""
    return str(status), str(result.get(COMPLIANCE_DETAIL_KEY) or "")


def run_place(meta: Mapping[str, Any]) -> dict[str, Any]:
    """When and where the run ran (run.json): its start, the runner's wall time, its host and
    nodes, its GPUs (and who assigned them), its Slurm job."""
    return {
        "started_utc": meta.get("started_utc"),
        "runner_wall_s": meta.get("wall_s"),
        "host": meta.get("host"),
        "hosts": meta.get("hosts") or [meta.get("host")],
        "nodes": meta.get("nodes", 1),
        "gpu_devices": meta.get("gpu_devices", []),
        "gpu_assignment": meta.get("gpu_assignment"),
        "slurm_job_id": meta.get("slurm_job_id"),
        "slurm_job_nodelist": meta.get("slurm_job_nodelist"),
    }


def run_conditions(meta: Mapping[str, Any]) -> dict[str, Any]:
    """result.json's ``cache`` (cold | warm), ``dataset_resident`` (the fraction of the dataset
    in the page cache just before the start), ``host_busy`` (the others' CPU per second of the
    run, in cores; None where unknown: a container's, an imported run) and ``load_1m``."""
    host = meta.get("host_load") or {}
    residency = meta.get("dataset_residency") or {}
    loads = [x for x in (host.get("load_1m_start"), host.get("load_1m_end")) if x is not None]
    return {
        "cache": meta.get("cache"),
        "dataset_resident": residency.get("fraction"),
        "host_busy": host.get("host_busy"),
        "load_1m": max(loads) if loads else None,
    }


def verdict_of(
    log: Path, ruleset: str | None, cache_dir: Path | None = None
) -> compliance.Verdict | None:
    """The compliance checker's verdict on ``log`` with ``ruleset`` (cached in ``cache_dir``),
    or None without a ruleset (recorded as "not applicable")."""
    if not ruleset:
        return None
    return compliance.check_log(log, ruleset=ruleset, cache_dir=cache_dir)


def _judged(
    out: dict[str, Any], problems: list[str], verdict: compliance.Verdict | None
) -> compliance.Verdict:
    """The verdict to record (None: "not applicable"); a failing one makes the outcome ``out``
    not converged and names the rule in ``problems``, as the result summarizer drops it."""
    if verdict is None:
        return compliance.Verdict(compliance.NOT_APPLICABLE, NO_COMPLIANCE_RULESET, None, "")
    if verdict.status == "fail":
        out["converged"] = False
        problems.append(
            f"fails the compliance checker of {verdict.checker} (ruleset {verdict.ruleset}): "
            f"{verdict.detail}"
        )
    return verdict


def _published_outcome(
    out: dict[str, Any],
    problems: list[str],
    parsed: ParsedLog,
    meta: Mapping[str, Any],
    verdict: compliance.Verdict,
) -> None:
    """An imported run's outcome: a log that run.json's ``import_problems`` reject (the log
    of another benchmark, an unreadable one) has no result; otherwise, one that passed a
    v0.7-or-later checker counts as the result summarizer counts it
    (:mod:`scripts.mlperf.checker_outcome`)."""
    rejected = [str(p) for p in meta.get("import_problems") or []]
    problems += [f"note: {n}" for n in meta.get("import_notes") or []]
    if rejected:
        out["log_problems"] = [*rejected, *out["log_problems"]]
        out["valid_log"] = False
        out["converged"] = False
        out["time_to_train_s"] = None
        out["epochs_to_converge"] = None
        problems[:0] = rejected
    elif checker_outcome.checker_decides(meta, verdict.status, verdict.ruleset):
        checker = f"compliance checker of {verdict.checker or 'mlperf-logging'} "
        checker += f"(ruleset {verdict.ruleset})"
        checker_outcome.as_checker_decides(out, problems, parsed, checker)


def parse_run(
    log: Path,
    meta: Mapping[str, Any],
    quality: Mapping[str, Any],
    time_to_train: str = "run_stop",
    verdict: compliance.Verdict | None = None,
    *,
    parsed: ParsedLog | None = None,
) -> dict[str, Any]:
    """The result of one run: its log's outcome plus the runner's metadata (``parsed``: the log
    already parsed, else it is parsed here).

    ``quality`` is the benchmark's quality section (target, direction, and optionally
    value_key and also_targets); ``time_to_train`` its ``log.time_to_train``; ``verdict``
    the compliance checker's on the log (None: not checked, "not applicable"). A log that
    fails it is not converged, whatever its quality."""
    parsed = parse_file(log) if parsed is None else parsed
    outcome = run_outcome(
        parsed,
        float(quality["target"]),
        quality.get("direction", "higher"),
        value_key=quality.get("value_key"),
        also_targets=quality.get("also_targets"),
        also_directions=quality.get("also_directions"),
        time_source=time_to_train,
    )
    out = outcome.to_dict()
    # the log's submission_benchmark (e.g. gnmt) never replaces the workflow's benchmark name
    out["submission_benchmark"] = out.pop("benchmark")
    problems = list(out.pop("problems"))
    if outcome.seed is not None and outcome.seed != meta.get("seed"):
        problems.append(f"log seed {outcome.seed} differs from the configured {meta.get('seed')}")
    verdict = _judged(out, problems, verdict)
    _published_outcome(out, problems, parsed, meta, verdict)
    energy = power.result_fields(meta, out["time_to_train_s"])  # never changes convergence
    problems += energy["power_problems"]
    return {
        "benchmark": meta["benchmark"],
        "system": meta["system"],
        "run": meta["run"],
        "seed": outcome.seed if outcome.seed is not None else meta.get("seed"),
        "scale": meta.get("scale"),
        "quality_metric": quality.get("metric"),
        **out,
        **run_place(meta),
        # what the run measured under (scripts/run/runner.py): the page cache of its dataset
        # just before it started, and what else used the machine meanwhile
        **run_conditions(meta),
        "log": str(log),
        "malformed_lines": parsed.malformed_lines,
        "problems": problems,
        # energy_j and power_problems of a published power result (scripts/mlperf/power.py)
        **energy,
        COMPLIANCE_KEY: verdict.status,
        COMPLIANCE_DETAIL_KEY: verdict.detail,
        "compliance_ruleset": verdict.ruleset,
        "compliance_checker": verdict.checker or None,
        "fingerprint": meta.get("fingerprint"),
        "config_fingerprint": meta.get("config_fingerprint"),
    }


def write_result(
    log: Path,
    meta_path: Path,
    quality: Mapping[str, Any],
    time_to_train: str,
    output: Path,
    *,
    compliance_ruleset: str | None = None,
    compliance_cache: Path | None = None,
    parsed: ParsedLog | None = None,
) -> dict[str, Any]:
    """Parse a finished run and write its result.json (atomically), with the sha256 of the log
    it was parsed from (scripts/run/seals.py); with ``compliance_ruleset``, the log's compliance
    verdict (cached in ``compliance_cache``). ``parsed``: the log already parsed."""
    meta = formats.read_json(meta_path, "run.json")
    verdict = verdict_of(log, compliance_ruleset, compliance_cache)
    result = formats.stamped(
        "result.json", parse_run(log, meta, quality, time_to_train, verdict, parsed=parsed)
    )
    result[seals.RESULT_KEY] = seals.parsed_from(log, meta)
    hashing.write_json(output, result)
    return result


def add_result_arguments(parser: argparse.ArgumentParser) -> None:
    """--result, --quality-json and --time-to-train: what a job needs to write result.json;
    --compliance-ruleset and --compliance-cache: the compliance check, when it applies."""
    parser.add_argument("--result", type=Path, help="the run's result.json to write")
    parser.add_argument("--quality-json", help="the benchmark's quality section as JSON")
    parser.add_argument(
        "--time-to-train", default="run_stop", help="the benchmark's log.time_to_train"
    )
    parser.add_argument(
        "--compliance-ruleset",
        metavar="RULESET",
        help="check the log with mlperf-logging's compliance checker of this training ruleset "
        "(e.g. 5.0.0); a log that fails is not converged. Without it: 'not applicable'",
    )
    parser.add_argument(
        "--compliance-cache",
        type=Path,
        metavar="DIR",
        help="folder of cached compliance verdicts (by the log's sha256)",
    )


def write_result_if_asked(args: argparse.Namespace, log: Path, meta: Path) -> None:
    if args.result is None:
        return
    if args.quality_json is None:
        raise SystemExit("--result needs --quality-json")
    result = write_result(
        log,
        meta,
        json.loads(args.quality_json),
        args.time_to_train,
        args.result,
        compliance_ruleset=getattr(args, "compliance_ruleset", None),
        compliance_cache=getattr(args, "compliance_cache", None),
    )
    state = "converged" if result["converged"] else "did NOT converge"
    print(f"run {result['run']}: {state}, time to train {result['time_to_train_s']} s")
    if result[COMPLIANCE_KEY] == "fail":
        print(f"run {result['run']}: fails the compliance check: {result[COMPLIANCE_DETAIL_KEY]}")
