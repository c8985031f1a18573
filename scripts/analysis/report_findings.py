"""What report.html says about the numbers: the verdict at the top, the warnings, and a note per
run of what the MLPerf score did with it. Each is plain text, read from the tables and the
runs' result.json; :mod:`scripts.analysis.report` puts it on the page.

A warning says what was found, the threshold, and what to do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from scripts.analysis import stats
from scripts.analysis.report_cells import fmt_s, is_missing
from scripts.analysis.run_columns import names_log_problems
from scripts.core.run_records import ResultRecord
from scripts.mlperf import compliance
from scripts.run import gpu_telemetry, hostload


def said(x: Any) -> str:
    """A value in a sentence: its text, or ``n/a`` when it is missing (never nan or None)."""
    return "n/a" if is_missing(x) else str(x)


def run_number(x: Any) -> str:
    """A run number in a sentence (runs.csv and summary.csv may read it back as a float)."""
    return "n/a" if is_missing(x) else str(int(float(x)))


def verdicts(
    summary: pd.DataFrame, comparison: pd.DataFrame, reference_note: str
) -> tuple[list[str], bool]:
    """The sentences at the top of the page, and whether any comparison was made."""
    if len(comparison):
        return [str(v) for v in comparison["verdict"] if not is_missing(v)], True
    lines = []
    for row in summary.to_dict("records"):
        if row["valid"] and not is_missing(row["score_s"]):
            lo, hi = row.get("ci95_low_s"), row.get("ci95_high_s")
            lines.append(
                f"{row['system']}: MLPerf score {fmt_s(row['score_s'])} s (olympic mean of "
                f"{said(row['n_runs'])} runs); mean {fmt_s(row['mean_s'])} s, 95% CI "
                f"{fmt_s(lo)}-{fmt_s(hi)} s. Add a second system to compare."
            )
        else:
            lines.append(f"{row['system']}: no MLPerf score: {said(row['reason'])}")
    if reference_note:
        lines.append(reference_note)
    return lines, False


def warnings(
    summary: pd.DataFrame,
    comparison: pd.DataFrame,
    benchmark: Mapping[str, Any],
    results: Sequence[ResultRecord],
    reference_note: str = "",
) -> list[str]:
    """Every warning of the page: what was found, the threshold, and what to do."""
    out: list[str] = []
    if reference_note:
        out.append(reference_note + ".")
    required = int(benchmark.get("runs") or 0)
    for row in summary.to_dict("records"):
        out.extend(system_warnings(row, required))
    for row in comparison.to_dict("records"):
        if not row["significant"] and not is_missing(row["mdd_rel"]):
            out.append(
                f"{row['system']} vs {row['reference']}: not significant. With these runs "
                f"only differences of {float(row['mdd_rel']):.1%} or more "
                f"({fmt_s(row['mdd_s'])} s) are detected at 80% power; smaller ones may exist. "
                "More runs of both systems narrow this."
            )
    out.extend(log_problem_warnings(results))
    out.extend(shared_core_warnings(results))
    out.extend(throttle_warnings(results))
    out.extend(seed_warnings(results))
    for r in results:
        expected = r.converged is False
        named = set(r.log_problems or [])
        for problem in r.problems or []:
            if problem in named:
                continue  # in its log-problem warning
            if expected and ("does not meet target" in problem or "status is" in problem):
                continue
            where = f" (in {r.log})" if r.log else ""
            out.append(f"{r.system} run {r.run}: {problem}{where}.")
    return out


def system_warnings(row: Mapping[str, Any], required: int) -> list[str]:
    """The warnings of one system's summary row: no score, too few runs, unstable, outliers,
    a non-converged run dropped."""
    out: list[str] = []
    s = row["system"]
    if not row["valid"]:
        out.append(
            f"{s}: no MLPerf score: {said(row['reason'])}. Do not rerun only the failed runs "
            "(that would be cherry-picking); find out why they did not converge, then run "
            "the whole set again."
        )
    if required and row["n_runs"] < required:
        out.append(
            f"{s}: {row['n_runs']} runs, but MLPerf scores this benchmark on {required}: "
            f"its score is not comparable with published ones; make {required} runs."
        )
    if row.get("unstable") is True or row.get("unstable") == "True":
        need = row.get("runs_for_5pct_ci")
        more = (
            f"about {int(need)} runs would give a +/-5% confidence interval of the mean"
            if not is_missing(need)
            else "more runs are needed for a +/-5% interval"
        )
        out.append(
            f"{s}: the standard deviation ({fmt_s(row['std_s'])} s) is "
            f"{float(row['cv']):.0%} of the mean ({fmt_s(row['mean_s'])} s), at or above "
            f"the {stats.UNSTABLE_CV:.0%} threshold: results are unstable. Use more runs "
            f"({more}) and check what else runs on the machine."
        )
    if not is_missing(row.get("outlier_runs")) and str(row.get("outlier_runs")).strip():
        out.append(
            f"{s}: run(s) {row['outlier_runs']} lie outside {stats.IQR_K} IQR of the "
            f"quartiles or have a modified z-score above {stats.MODIFIED_Z_THRESHOLD}: "
            "flagged, not dropped. Look at their epochs to converge and time per epoch "
            "to tell a slow machine from an unlucky seed."
        )
    nonconv = row["n_runs"] - row["n_converged"]
    if row["valid"] and nonconv == 1:
        out.append(
            f"{s}: run {run_number(row['dropped_slowest_run'])} did not reach the target; the "
            "MLPerf rule counts it as the slowest run and drops it."
        )
    return out


def shared_core_warnings(results: Sequence[ResultRecord]) -> list[str]:
    """One warning per system whose runs shared their cores with other work: others used at
    least hostload.BUSY_CORES cores on average during the run (result.json ``host_busy``)."""
    busy: dict[str, list[tuple[int, float, Any]]] = {}
    for r in results:
        x = r.host_busy
        if x is not None and not is_missing(x) and float(x) >= hostload.BUSY_CORES:
            busy.setdefault(r.system, []).append((int(r.run), float(x), r.load_1m))
    out = []
    for system, runs in sorted(busy.items()):
        runs.sort()
        named = ", ".join(f"{n} ({x:.2f} cores)" for n, x, _ in runs)
        worst = max(x for _, x, _ in runs)
        out.append(
            f"{system}: run(s) {named} shared the machine: other processes used up to "
            f"{worst:.2f} cores on average while they trained (threshold "
            f"{hostload.BUSY_CORES} cores). Their times measure the other work as well; run "
            "them again on a quiet machine (snakemake ... --forcerun, or rerun) before "
            "comparing."
        )
    return out


def _throttled_share(r: ResultRecord) -> float | None:
    """The share of a run's wall time with a GPU throttled (result.json ``gpu_throttled_s``,
    power.source nvml only), or None where unknown."""
    wall = r.runner_wall_s or r.time_to_train_s
    if r.gpu_throttled_s is None or is_missing(r.gpu_throttled_s) or not wall:
        return None
    return float(r.gpu_throttled_s) / float(wall)


def throttle_warnings(results: Sequence[ResultRecord]) -> list[str]:
    """Per system: the runs whose GPUs were throttled (NVML's clock event reasons for at least
    gpu_telemetry.THROTTLED_SHARE of the run), named as busy hosts are, and a warning when its
    runs differ in throttling by gpu_telemetry.THROTTLE_SPREAD or more."""
    shares: dict[str, list[tuple[int, float]]] = {}
    for r in results:
        if (share := _throttled_share(r)) is not None:
            shares.setdefault(r.system, []).append((int(r.run), share))
    out = []
    for system, runs in sorted(shares.items()):
        runs.sort()
        hot = [(n, x) for n, x in runs if x >= gpu_telemetry.THROTTLED_SHARE]
        if hot:
            named = ", ".join(f"{n} ({x:.0%} of the run)" for n, x in hot)
            out.append(
                f"{system}: run(s) {named} ran with a GPU throttled (NVML's clock event "
                "reasons: HW slowdown, SW or HW thermal, power brake; a GPU at its SW power cap "
                "is recorded but not counted; threshold "
                f"{gpu_telemetry.THROTTLED_SHARE:.0%} of the run; gpu_telemetry.json in the "
                "run's folder says which reason, on which GPU). Their times measure the "
                "throttling as well; check the cooling and power delivery before comparing."
            )
        low, high = min(x for _, x in runs), max(x for _, x in runs)
        if len(runs) > 1 and high - low >= gpu_telemetry.THROTTLE_SPREAD:
            out.append(
                f"{system}: its runs differ in GPU throttling (from {low:.0%} to {high:.0%} "
                f"of the run; threshold {gpu_telemetry.THROTTLE_SPREAD:.0%}): they did not run "
                "under the same conditions, so their spread is partly the machine's. Find "
                "why (heat, the board's power brake, a neighbour's load) and run them again."
            )
    return out


POWER_SOURCES = {
    "published": "its published power logs (MLPerf's node power at the wall)",
    "command": "the system's power command (power/node_0.txt in each run's folder)",
    "nvml": "NVML: the GPUs only, not MLPerf's wall-plug node power",
}


def energy_lines(summary: pd.DataFrame, runs: pd.DataFrame) -> list[str]:
    """One sentence per system with an energy score (summary.csv ``energy_kwh``), beside its
    time: the energy to train and what measured it (runs.csv ``power_source``)."""
    out = []
    for row in summary.to_dict("records"):
        kwh = row.get("energy_kwh")
        if is_missing(kwh):
            continue
        mine = runs[runs["system"] == row["system"]] if "power_source" in runs else runs.iloc[0:0]
        sources = sorted({str(s) for s in mine.get("power_source", []) if not is_missing(s)})
        how = "; ".join(POWER_SOURCES.get(s, s) for s in sources) or "its power logs"
        out.append(
            f"{row['system']}: energy to train {float(kwh):.4g} kWh "
            f"({float(kwh) * 3600:.4g} kJ), the MLPerf energy score of the runs its time "
            f"score averages; measured by {how}."
        )
    return out


def seed_warnings(results: Sequence[ResultRecord]) -> list[str]:
    """The MLPerf package checker's seed rule: every run of a system its own seed."""
    seeds: dict[str, dict[str, int | None]] = {}
    for r in results:
        seed = r.seed
        seeds.setdefault(r.system, {})[str(r.run)] = (
            None if seed is None or is_missing(seed) else int(seed)
        )
    return [
        f"{system}: {line}"
        for system, runs in sorted(seeds.items())
        for line in compliance.check_seeds(runs)
    ]


def log_problem_warnings(results: Sequence[ResultRecord]) -> list[str]:
    """One warning per run whose log is not a valid MLPerf log of a finished run, naming the
    file and every problem (scripts.mlperf.log_validity.log_problems)."""
    out = []
    for r in results:
        problems = r.log_problems or []
        if problems:
            out.append(
                f"{r.system} run {r.run}: {r.log or 'its log'} is not a valid "
                f"MLPerf log of a finished run: {'; '.join(problems)}. It counts as a run "
                "without a result (not converged, dropped as the slowest), as mlperf-logging's "
                "result summarizer counts a log that fails the compliance check."
            )
    return out


def run_notes(runs: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """runs.csv with a note of what the MLPerf score did with each run."""
    rows = {r["system"]: r for r in summary.to_dict("records")}
    notes = []
    for r in runs.to_dict("records"):
        s = rows.get(r["system"], {})
        outliers = "" if is_missing(s.get("outlier_runs")) else str(s["outlier_runs"])
        note = []
        if names_log_problems(r.get("log_problems")):
            note.append("invalid log (no result)")
        if (
            not is_missing(s.get("dropped_fastest_run"))
            and int(s["dropped_fastest_run"]) == r["run"]
        ):
            note.append("dropped (fastest)")
        if (
            not is_missing(s.get("dropped_slowest_run"))
            and int(s["dropped_slowest_run"]) == r["run"]
        ):
            note.append("dropped (slowest)")
        if str(r["run"]) in outliers.split():
            note.append("outlier (flagged)")
        notes.append(", ".join(note) or ("counted" if s.get("valid") else ""))
    return runs.assign(note=notes)
