"""The plots of the report, drawn from the campaign's tables (never from recomputed statistics).

    python -m scripts plots --runs runs.csv --summary summary.csv --comparison comparison.csv \\
        --evals evals.csv --quality-json '{"metric": ..., "target": ...}' --outdir plots/

Each plot is one function that writes one PNG (matplotlib's Agg backend, no display needed):

- ``runs``: every run's time to train per system, points over a box; the runs the MLPerf score
  drops (fastest, slowest) and runs that did not converge are marked;
- ``drift``: time to train against run order, per system (a trend means the machine changed);
- ``ecdf``: the empirical distribution of time to train (steps one epoch apart show here);
- ``mean_ci``: mean and its Student-t 95% interval as written in summary.csv, with the MLPerf
  score;
- ``speedup``: each system's speedup over the reference with its bootstrap 95% interval from
  comparison.csv, and a line at 1.0 (no difference);
- ``quality``: quality against time since run_start for every run (convergence curves from the
  eval_accuracy events), with the target;
- ``leaderboard`` (:func:`plot_leaderboard`, from leaderboard.csv, drawn by
  ``python -m scripts leaderboard --plot``): each ranked system's MLPerf score with its 95%
  interval, fastest on top, accelerator-minutes written beside it, overlapping ranks one colour.
- ``energy`` (:func:`plot_energy`, from leaderboard.csv, drawn by
  ``python -m scripts leaderboard --energy-plot``): MLPerf score against MLPerf energy score,
  one point per ranked system with power results (a note instead when none has).

The captions that explain them are ``report/<name>.rst`` (shown by report.html and by
``snakemake --report``).
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from scripts.analysis.run_columns import names_log_problems  # noqa: E402
from scripts.analysis.scoring import usable_time  # noqa: E402
from scripts.core.safe_csv import read_csv  # noqa: E402

DPI = 100
PLOTS = ("runs", "drift", "ecdf", "mean_ci", "speedup", "quality")


def _figure(n_rows: int = 1) -> tuple[plt.Figure, plt.Axes]:
    height = max(3.0, 1.0 + 0.6 * n_rows)
    return plt.subplots(figsize=(8.0, height), dpi=DPI, layout="constrained")


def _save(fig: plt.Figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    plt.close(fig)


def _empty(ax: plt.Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, wrap=True)
    ax.set_axis_off()


def _systems(runs: pd.DataFrame) -> list[str]:
    return sorted(set(runs["system"])) if len(runs) else []


def _converged(runs: pd.DataFrame) -> pd.DataFrame:
    ok = runs[runs["converged"].astype(bool) & runs["time_to_train_s"].notna()]
    return ok.assign(converged=True)


def plot_runs(runs: pd.DataFrame, summary: pd.DataFrame, path: Path) -> None:
    """Points over a box per system; dropped fastest/slowest and non-converged runs marked."""
    systems = _systems(runs)
    fig, ax = _figure(len(systems))
    ok = _converged(runs)
    if ok.empty:
        _empty(ax, "no converged run: nothing to show")
        _save(fig, path)
        return
    sns.boxplot(
        data=ok,
        x="time_to_train_s",
        y="system",
        order=systems,
        color="0.9",
        showfliers=False,
        width=0.5,
        ax=ax,
    )
    sns.stripplot(
        data=ok,
        x="time_to_train_s",
        y="system",
        order=systems,
        color="tab:blue",
        size=6,
        jitter=0.15,
        ax=ax,
        label="converged run",
    )
    _mark_dropped(ax, runs, summary, systems)
    bad = runs[~runs["converged"].astype(bool) & runs["time_to_train_s"].notna()]
    if len(bad):
        ys = [systems.index(s) for s in bad["system"]]
        ax.scatter(
            bad["time_to_train_s"],
            ys,
            marker="x",
            s=90,
            color="black",
            zorder=6,
            label="did not converge",
        )
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    ax.legend(unique.values(), unique.keys(), loc="best", fontsize="small")
    ax.set_xlabel("time to train (s)")
    ax.set_ylabel("")
    ax.set_title("Time to train of every run")
    _save(fig, path)


def _mark_dropped(ax: Any, runs: pd.DataFrame, summary: pd.DataFrame, systems: list[str]) -> None:
    """Triangles on the runs the MLPerf score drops (summary.csv's dropped_*_run)."""
    rows = {r["system"]: r for r in summary.to_dict("records")}
    marks = [("dropped_fastest_run", "v", "tab:green", "dropped as fastest")]
    marks.append(("dropped_slowest_run", "^", "tab:red", "dropped as slowest"))
    for column, marker, color, label in marks:
        xs, ys = [], []
        for y, system in enumerate(systems):
            run = rows.get(system, {}).get(column)
            if run is None or pd.isna(run):
                continue
            hit = runs[(runs["system"] == system) & (runs["run"] == int(run))]
            t = hit["time_to_train_s"].iloc[0] if len(hit) else None
            if t is not None and not pd.isna(t):
                xs.append(float(t))
                ys.append(y)
        if xs:
            ax.scatter(xs, ys, marker=marker, s=110, color=color, zorder=5, label=label)


def start_order(runs: pd.DataFrame) -> pd.Series:
    """1, 2, ... per system in the order the runs started (``started_utc``, then run number;
    Snakemake need not run run 01 first)."""
    key = runs.assign(_start=pd.to_datetime(runs.get("started_utc"), utc=True, errors="coerce"))
    ranked = key.sort_values(["system", "_start", "run"], na_position="last", kind="stable")
    return ranked.groupby("system").cumcount().add(1).reindex(runs.index)


def plot_drift(runs: pd.DataFrame, path: Path) -> None:
    """Time to train against the order the runs started; non-converged runs hollow."""
    fig, ax = _figure()
    timed = runs[runs["time_to_train_s"].notna()]
    if timed.empty:
        _empty(ax, "no run with a time")
        _save(fig, path)
        return
    timed = timed.assign(order=start_order(timed))
    sns.lineplot(
        data=timed.sort_values("order"),
        x="order",
        y="time_to_train_s",
        hue="system",
        hue_order=_systems(timed),
        marker="o",
        ax=ax,
    )
    bad = timed[~timed["converged"].astype(bool)]
    if len(bad):
        ax.scatter(
            bad["order"],
            bad["time_to_train_s"],
            s=120,
            facecolors="none",
            edgecolors="black",
            zorder=5,
            label="did not converge",
        )
        ax.legend(fontsize="small")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("run, in the order the runs started")
    ax.set_ylabel("time to train (s)")
    ax.set_title("Time to train against run order (drift)")
    _save(fig, path)


def plot_ecdf(runs: pd.DataFrame, path: Path) -> None:
    """Empirical CDF of converged runs' times per system."""
    fig, ax = _figure()
    ok = _converged(runs)
    if ok.empty:
        _empty(ax, "no converged run")
        _save(fig, path)
        return
    sns.ecdfplot(data=ok, x="time_to_train_s", hue="system", hue_order=_systems(ok), ax=ax)
    sns.rugplot(
        data=ok, x="time_to_train_s", hue="system", hue_order=_systems(ok), ax=ax, legend=False
    )
    ax.set_xlabel("time to train (s)")
    ax.set_ylabel("fraction of converged runs")
    ax.set_title("Distribution of time to train (ECDF)")
    _save(fig, path)


def plot_mean_ci(summary: pd.DataFrame, path: Path) -> None:
    """Mean with the Student-t 95% interval, both read from summary.csv, and the score."""
    rows = summary[summary["mean_s"].notna()].sort_values("system")
    fig, ax = _figure(len(rows))
    if rows.empty:
        _empty(ax, "no converged run")
        _save(fig, path)
        return
    ys = list(range(len(rows)))
    mean = rows["mean_s"].astype(float)
    lo = (mean - rows["ci95_low_s"].astype(float)).fillna(0.0)
    hi = (rows["ci95_high_s"].astype(float) - mean).fillna(0.0)
    ax.errorbar(
        mean,
        ys,
        xerr=[lo, hi],
        fmt="o",
        capsize=6,
        color="tab:blue",
        label="mean, 95% CI (Student t)",
    )
    scored = rows["score_s"].notna()
    if scored.any():
        ax.scatter(
            rows.loc[scored, "score_s"].astype(float),
            [y for y, s in zip(ys, scored, strict=True) if s],
            marker="D",
            color="tab:orange",
            zorder=5,
            label="MLPerf score (olympic mean)",
        )
    ax.set_yticks(ys, rows["system"])
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_xlabel("time to train (s)")
    ax.set_title("Mean time to train with its 95% confidence interval")
    ax.legend(fontsize="small")
    _save(fig, path)


def plot_speedup(comparison: pd.DataFrame, path: Path) -> None:
    """Speedup over the reference with the bootstrap interval, and a line at 1."""
    rows = comparison[comparison["speedup"].notna()].sort_values("system")
    fig, ax = _figure(len(rows))
    if rows.empty:
        reason = (
            "one system: nothing to compare"
            if comparison.empty
            else "too few converged runs to compare"
        )
        _empty(ax, reason)
        _save(fig, path)
        return
    ys = list(range(len(rows)))
    s = rows["speedup"].astype(float)
    lo = (s - rows["speedup_ci95_low"].astype(float)).fillna(0.0)
    hi = (rows["speedup_ci95_high"].astype(float) - s).fillna(0.0)
    colors = ["tab:green" if sig else "tab:gray" for sig in rows["significant"].astype(bool)]
    for y, x, below, above, c in zip(ys, s, lo, hi, colors, strict=True):
        ax.errorbar([x], [y], xerr=[[below], [above]], fmt="o", capsize=6, color=c)
    ax.axvline(1.0, color="black", linestyle="--", linewidth=1, label="no difference")
    ax.set_yticks(ys, rows["system"])
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_xlabel(f"speedup over {rows['reference'].iloc[0]} (ratio of mean times; > 1 is faster)")
    ax.set_title("Speedup with its 95% bootstrap interval (green: significant)")
    ax.legend(fontsize="small")
    _save(fig, path)


def plot_quality(evals: pd.DataFrame, quality: Mapping[str, Any], path: Path) -> None:
    """Quality against time since run_start, one line per run, with the target."""
    fig, ax = _figure()
    ok = evals[evals["time_s"].notna() & evals["quality"].notna()]
    if ok.empty:
        _empty(ax, "no eval_accuracy events with a time")
        _save(fig, path)
        return
    sns.lineplot(
        data=ok.sort_values(["system", "run", "time_s"]),
        x="time_s",
        y="quality",
        hue="system",
        hue_order=sorted(set(ok["system"])),
        units="run",
        estimator=None,
        marker="o",
        markersize=4,
        linewidth=1,
        alpha=0.8,
        ax=ax,
    )
    target = quality.get("target")
    if target is not None and not math.isnan(float(target)):
        ax.axhline(
            float(target), color="black", linestyle="--", linewidth=1, label=f"target {target}"
        )
        ax.legend(fontsize="small")
    ax.set_xlabel("time since run_start (s)")
    ax.set_ylabel(str(quality.get("metric", "quality")))
    ax.set_title("Quality against time, every run (convergence curves)")
    _save(fig, path)


def plot_leaderboard(board: pd.DataFrame, path: Path) -> None:
    """The ranked rows of leaderboard.csv: score and its interval per system, rank 1 on top,
    accelerator-minutes beside each; the systems of one overlap group share a colour (the
    colours alternate from group to group), and the unranked systems are named below."""
    ranked = board[board["rank"].notna()].sort_values(["rank", "system"], kind="stable")
    fig, ax = _figure(len(ranked))
    if ranked.empty:
        _empty(ax, "no system has an MLPerf score: nothing to rank")
        _save(fig, path)
        return
    ys = list(range(len(ranked)))[::-1]  # rank 1 on top
    score = ranked["score_s"].astype(float)
    lo = (score - ranked["score_ci95_low_s"].astype(float)).fillna(0.0).clip(lower=0.0)
    hi = (ranked["score_ci95_high_s"].astype(float) - score).fillna(0.0).clip(lower=0.0)
    # a new group starts after a row whose interval does not overlap the next one
    links = [str(x) for x in ranked["overlaps_next"]]
    group_ids = [sum(link == "False" for link in links[:i]) for i in range(len(links))]
    colors = ["tab:orange" if g % 2 else "tab:blue" for g in group_ids]
    for y, x, below, above, c in zip(ys, score, lo, hi, colors, strict=True):
        ax.errorbar([x], [y], xerr=[[below], [above]], fmt="o", capsize=6, color=c)
    for y, x, above, minutes in zip(ys, score, hi, ranked["accelerator_minutes"], strict=True):
        if not pd.isna(minutes):
            ax.annotate(
                f"{float(minutes):,.0f} acc-min",
                (x + above, y),
                xytext=(6, 0),
                textcoords="offset points",
                va="center",
                fontsize="small",
            )
    labels = [f"{int(r)}. {s}" for r, s in zip(ranked["rank"], ranked["system"], strict=True)]
    ax.set_yticks(ys, labels)
    ax.set_ylim(-0.7, len(ranked) - 0.3)
    ax.margins(x=0.15)
    unranked = board[board["rank"].isna()]["system"].tolist()
    note = f"; unranked: {', '.join(map(str, unranked))}" if unranked else ""
    ax.set_xlabel(f"MLPerf score (s), bootstrap 95% interval{note}")
    ax.set_title("Leaderboard (one colour: intervals of neighbouring ranks overlap)")
    _save(fig, path)


def plot_energy(board: pd.DataFrame, path: Path) -> None:
    """Time against energy: each ranked system of leaderboard.csv that has an energy score
    (``energy_kwh``), its MLPerf score on x and its energy on y, named beside its point; a
    note instead of points when no system has power results."""
    energy = board["energy_kwh"] if "energy_kwh" in board else pd.Series(index=board.index)
    has = board["rank"].notna() & pd.to_numeric(energy, errors="coerce").notna()
    shown = board[has].sort_values(["rank", "system"], kind="stable")
    fig, ax = _figure()
    if shown.empty:
        _empty(ax, "no ranked system has MLPerf power results: no energy to plot")
        _save(fig, path)
        return
    xs, ys = shown["score_s"].astype(float), shown["energy_kwh"].astype(float)
    ax.scatter(xs, ys, color="tab:green", zorder=3)
    for x, y, system in zip(xs, ys, shown["system"], strict=True):
        ax.annotate(
            str(system), (x, y), xytext=(6, 4), textcoords="offset points", fontsize="small"
        )
    ax.margins(x=0.25, y=0.2)
    ax.set_xlabel("MLPerf score: time to train (s)")
    ax.set_ylabel("MLPerf energy score (kWh)")
    ax.set_title("Time to train against energy (systems with power results)")
    _save(fig, path)


def _usable(t: Any) -> bool:
    try:
        return usable_time(float(t))
    except (TypeError, ValueError):
        return False


def plottable(runs: pd.DataFrame, evals: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What may reach a plot: no run whose log has problems (neither its time nor its
    evaluations), and no time to train that is negative, zero or not finite (such a row keeps
    its place with no time)."""
    if "log_problems" in runs:
        bad = [names_log_problems(x) for x in runs["log_problems"]]
        dropped = {
            (s, int(r)) for s, r, b in zip(runs["system"], runs["run"], bad, strict=True) if b
        }
        runs = runs[[not b for b in bad]]
        if dropped and len(evals):
            keep = [
                (s, int(r)) not in dropped
                for s, r in zip(evals["system"], evals["run"], strict=True)
            ]
            evals = evals[keep]
    if len(runs):
        runs = runs.assign(
            time_to_train_s=[
                float(t) if _usable(t) else float("nan") for t in runs["time_to_train_s"]
            ]
        )
    if len(evals) and "time_s" in evals:
        evals = evals[
            [math.isfinite(float(t)) if not pd.isna(t) else True for t in evals["time_s"]]
        ]
    return runs, evals


def plot_all(
    runs: pd.DataFrame,
    summary: pd.DataFrame,
    comparison: pd.DataFrame,
    evals: pd.DataFrame,
    quality: Mapping[str, Any],
    outdir: Path,
) -> list[Path]:
    """Every plot of :data:`PLOTS` into ``outdir/<name>.png`` (of the plottable runs only:
    :func:`plottable`)."""
    runs, evals = plottable(runs, evals)
    makers: dict[str, Callable[[Path], None]] = {
        "runs": lambda p: plot_runs(runs, summary, p),
        "drift": lambda p: plot_drift(runs, p),
        "ecdf": lambda p: plot_ecdf(runs, p),
        "mean_ci": lambda p: plot_mean_ci(summary, p),
        "speedup": lambda p: plot_speedup(comparison, p),
        "quality": lambda p: plot_quality(evals, quality, p),
    }
    paths = []
    for name in PLOTS:
        path = outdir / f"{name}.png"
        makers[name](path)
        paths.append(path)
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m scripts plots",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--runs", type=Path, required=True)
    p.add_argument("--summary", type=Path, required=True)
    p.add_argument("--comparison", type=Path, required=True)
    p.add_argument("--evals", type=Path, required=True)
    p.add_argument("--quality-json", required=True, help="the benchmark's quality as JSON")
    p.add_argument("--outdir", type=Path, required=True)
    args = p.parse_args(argv)
    paths = plot_all(
        read_csv(args.runs),
        read_csv(args.summary),
        read_csv(args.comparison),
        read_csv(args.evals),
        json.loads(args.quality_json),
        args.outdir,
    )
    print("\n".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
