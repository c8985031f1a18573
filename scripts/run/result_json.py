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

from scripts.core.run_records import ResultRecord, RunRecord
from scripts.mlperf import checker_outcome, compliance, own_power
from scripts.mlperf.log_events import ParsedLog
from scripts.mlperf.log_parser import parse_file
from scripts.mlperf.outcome import run_outcome
from scripts.run import backends, seals
from scripts.run.backends.errors import BackendError

NO_COMPLIANCE_RULESET = "no --compliance-ruleset given"


def compliance_of(result: ResultRecord) -> tuple[str, str]:
    """(compliance, compliance_detail) of a result.json; one written before the fields
    existed, or without a ruleset, is ("not applicable", "")."""
    status = result.compliance
    if status not in compliance.STATUSES:
        return compliance.NOT_APPLICABLE, ""
    return str(status), str(result.compliance_detail or "")


def run_place(meta: RunRecord) -> dict[str, Any]:
    """When and where the run ran (run.json): its start, the runner's wall time, its host and
    nodes, its GPUs (and who assigned them), its Slurm job."""
    return {
        "started_utc": meta.started_utc,
        "runner_wall_s": meta.wall_s,
        "host": meta.host,
        "hosts": meta.hosts or [meta.host],
        "nodes": meta.nodes,
        "gpu_devices": meta.gpu_devices,
        "gpu_assignment": meta.gpu_assignment,
        "slurm_job_id": meta.slurm_job_id,
        "slurm_job_nodelist": meta.slurm_job_nodelist,
    }


def run_conditions(meta: RunRecord) -> dict[str, Any]:
    """result.json's ``cache`` (cold | warm), ``dataset_resident`` (the fraction of the dataset
    in the page cache just before the start), ``host_busy`` (the others' CPU per second of the
    run, in cores; None where unknown: a container's, an imported run) and ``load_1m``."""
    host = meta.host_load or {}
    residency = meta.dataset_residency or {}
    loads = [x for x in (host.get("load_1m_start"), host.get("load_1m_end")) if x is not None]
    return {
        "cache": meta.cache,
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
    meta: RunRecord,
    verdict: compliance.Verdict,
) -> None:
    """An imported run's outcome: a log that run.json's ``import_problems`` reject (the log
    of another benchmark, an unreadable one) has no result; otherwise, one that passed a
    v0.7-or-later checker counts as the result summarizer counts it
    (:mod:`scripts.mlperf.checker_outcome`)."""
    rejected = [str(p) for p in meta.import_problems or []]
    problems += [f"note: {n}" for n in meta.import_notes or []]
    if rejected:
        out["log_problems"] = [*rejected, *out["log_problems"]]
        out["valid_log"] = False
        out["converged"] = False
        out["time_to_train_s"] = None
        out["epochs_to_converge"] = None
        problems[:0] = rejected
    elif checker_outcome.checker_decides(_imported(meta), verdict.status, verdict.ruleset):
        checker = f"compliance checker of {verdict.checker or 'mlperf-logging'} "
        checker += f"(ruleset {verdict.ruleset})"
        checker_outcome.as_checker_decides(out, problems, parsed, checker)


def _imported(meta: RunRecord) -> bool:
    """Whether the run was made by a backend that imports published logs (asked of the backend,
    never by its name); a run.json of an unknown backend was not imported."""
    try:
        return bool(meta.backend) and backends.get(str(meta.backend)).imports
    except BackendError:
        return False


def parse_run(
    log: Path,
    meta: RunRecord,
    quality: Mapping[str, Any],
    time_to_train: str = "run_stop",
    verdict: compliance.Verdict | None = None,
    *,
    parsed: ParsedLog | None = None,
) -> ResultRecord:  # long: one line per key of result.json
    """The result of one run (without ``log_sha256``): its log's outcome plus the runner's
    record ``meta`` (``parsed``: the log already parsed, else it is parsed here).

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
    if outcome.seed is not None and outcome.seed != meta.seed:
        problems.append(f"log seed {outcome.seed} differs from the configured {meta.seed}")
    verdict = _judged(out, problems, verdict)
    _published_outcome(out, problems, parsed, meta, verdict)
    # energy never changes convergence
    times = (out["time_to_train_s"], out["run_start_s"], out["run_stop_s"])
    energy = own_power.result_fields(meta.power, meta.power_sampling, *times)
    problems += energy["power_problems"]
    fields = {  # in result.json's order (out's seed, the log's, replaces the first one's value)
        "benchmark": meta.benchmark,
        "system": meta.system,
        "run": meta.run,
        "seed": outcome.seed if outcome.seed is not None else meta.seed,
        "scale": meta.scale,
        "quality_metric": quality.get("metric"),
        **out,
        **run_place(meta),
        # the page cache of its dataset and what else used the machine (scripts/run/runner.py)
        **run_conditions(meta),
        "log": str(log),
        "malformed_lines": parsed.malformed_lines,
        "problems": problems,
        # energy_j and power_problems of a published power result (scripts/mlperf/power.py) or
        # of one measured here (scripts/mlperf/own_power.py), and what measured it
        **energy,
        **power_source(meta),
        "compliance": verdict.status,
        "compliance_detail": verdict.detail,
        "compliance_ruleset": verdict.ruleset,
        "compliance_checker": verdict.checker or None,
        "fingerprint": meta.fingerprint,
        "config_fingerprint": meta.config_fingerprint,
        "synthetic": synthetic(meta),
    }
    return ResultRecord.of(**fields)


def power_source(meta: RunRecord) -> dict[str, Any]:
    """result.json's ``power_source`` (published, command, nvml; None without a power result)
    and ``gpu_throttled_s`` (an nvml source's: seconds with a GPU throttled)."""
    sampling = meta.power_sampling or {}
    source = sampling.get("source") or ("published" if meta.power is not None else None)
    return {"power_source": source, "gpu_throttled_s": sampling.get("gpu_throttled_s")}


def synthetic(meta: RunRecord) -> bool:
    """Whether the run was a smoke run on generated data (``implementation.synthetic``): its
    comparability record says so (scripts/campaign/comparability.py); an import never is."""
    return bool((meta.comparability or {}).get("synthetic"))


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
) -> ResultRecord:
    """Parse a finished run and write its result.json (atomically), with the sha256 of the log
    it was parsed from (scripts/run/seals.py); with ``compliance_ruleset``, the log's compliance
    verdict (cached in ``compliance_cache``). ``parsed``: the log already parsed."""
    meta = RunRecord.read(meta_path)
    verdict = verdict_of(log, compliance_ruleset, compliance_cache)
    result = parse_run(log, meta, quality, time_to_train, verdict, parsed=parsed)
    result = result.updated(log_sha256=seals.parsed_from(log, meta))
    result.write(output)
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
    state = "converged" if result.converged else "did NOT converge"
    print(f"run {result.run}: {state}, time to train {result.time_to_train_s} s")
    if result.compliance == "fail":
        print(f"run {result.run}: fails the compliance check: {result.compliance_detail}")
