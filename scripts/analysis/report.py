"""report.html: one self-contained page per benchmark (images embedded, no script, no network).

    python -m scripts report --benchmark gnmt --results-dir results/gnmt \\
        --context-json '{...}' --output results/gnmt/report.html

Order of the page: the verdict first ("B is 1.72x faster than A, 95% CI 1.66-1.78"), then
warnings (each says the value, the threshold and what to do), the summary and comparison
tables (each followed by its folded column glossary), the leaderboard (when leaderboard.csv is
next to summary.csv: ``scripts.analysis.leaderboard``), the plots with their captions
(``report/<plot>.rst``), every run, the provenance of every system (its environment.json, or
for a system whose runs are imported logs the source logs and what the submission says about
its hardware), and the methods. Everything is read from the campaign's files (summary.csv,
comparison.csv, leaderboard.csv, runs.csv, the runs' result.json and run.json); nothing is
recomputed here.

This module reads the files and decides what goes on the page; the sentences are
:mod:`scripts.analysis.report_findings`', the HTML :mod:`scripts.analysis.report_html`'. A
missing value is a dash in every table (:func:`scripts.analysis.report_cells.cell`).
"""

from __future__ import annotations

import argparse
import json
import shlex
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scripts.analysis import comparison_columns, summary_columns
from scripts.analysis.comparison_table import choose_reference
from scripts.analysis.report_cells import (
    esc,
    fmt_int,
    fmt_kj,
    fmt_minutes,
    fmt_num,
    fmt_s,
    fmt_share,
    fmt_when,
    fmt_yes,
)
from scripts.analysis.report_findings import energy_lines, run_notes, verdicts, warnings
from scripts.analysis.report_html import (
    TableColumn,
    caption_html,
    definition_list,
    figure,
    glossary,
    methods,
    page_head,
    table,
    table_by_system,
    table_columns,
)
from scripts.analysis.report_windows import WINDOWS_PLOT, window_section
from scripts.analysis.run_columns import synthetic_runs
from scripts.core import hashing, layout
from scripts.core.run_records import ResultRecord, RunRecord
from scripts.core.safe_csv import read_csv
from scripts.run import backends

if TYPE_CHECKING:  # types only: pandas comes with read_csv
    import pandas as pd

PLOTS = ("runs", "drift", "ecdf", "mean_ci", "speedup", "quality")
# plots/leaderboard.png, drawn by scripts.analysis.leaderboard --plot
LEADERBOARD_PLOT = "leaderboard"
# beside the name of a system whose runs are synthetic (implementation.synthetic), everywhere
SYNTHETIC_LABEL = "(synthetic data: a smoke run, no score)"
ENERGY_PLOT = "energy"  # plots/energy.png, drawn by scripts.analysis.leaderboard --energy-plot


RUNS_TABLE: list[TableColumn] = [
    ("system", "system", esc),
    ("run", "run", fmt_int),
    ("seed", "seed", fmt_int),
    ("started_utc", "started (UTC)", fmt_when),
    ("time_to_train_s", "time to train (s)", fmt_s),
    ("energy_j", "energy (kJ)", fmt_kj),  # its power result's (runs.csv, empty without one)
    ("converged", "converged", fmt_yes),
    ("epochs_to_converge", "epochs to converge", fmt_int),
    ("time_per_epoch_s", "s per epoch", fmt_s),
    ("final_quality", "final quality", fmt_num),
    ("result_line_wall_s", "RESULT line (s)", fmt_s),
    ("compliance", "compliance", esc),
    ("cache", "cache", esc),
    ("dataset_resident", "dataset in page cache", fmt_share),
    ("host_busy", "others' cores", fmt_num),
    ("gpu_throttled_s", "GPU throttled (s)", fmt_s),  # power.source nvml only
    ("host", "host", esc),
    ("note", "MLPerf score", esc),
]


LEADERBOARD_TABLE: list[TableColumn] = [
    ("rank", "rank", fmt_int),
    ("system", "system", esc),
    ("submitter", "submitter", esc),
    ("accelerator", "accelerator", esc),
    ("n_accelerators", "accelerators", fmt_int),
    ("score_s", "MLPerf score (s)", fmt_s),
    ("score_ci95_low_s", "95% low (s)", fmt_s),
    ("score_ci95_high_s", "95% high (s)", fmt_s),
    ("accelerator_minutes", "accelerator-minutes", fmt_minutes),
    ("energy_kwh", "energy (kWh)", fmt_num),
    ("power_source", "energy measured by", esc),
    ("group", "distinguishable?", esc),
    ("reason", "unranked because", esc),
]


def synthetic_systems(runs: pd.DataFrame) -> set[str]:
    """The systems with a synthetic run (runs.csv's ``synthetic``): smoke runs, never scored."""
    flags = synthetic_runs(runs)
    return {str(s) for s, f in zip(runs["system"], flags, strict=True) if f} if len(runs) else set()


def labelled(frame: pd.DataFrame, synthetic: Collection[str]) -> pd.DataFrame:
    """``frame`` as the page shows it: a synthetic system's name with its label beside it."""
    if not synthetic or "system" not in frame:
        return frame
    shown = frame.copy()
    shown["system"] = [f"{s} {SYNTHETIC_LABEL}" if s in synthetic else s for s in frame["system"]]
    return shown


def leaderboard_section(results_dir: Path, synthetic: Collection[str] = ()) -> list[str]:
    """The leaderboard (leaderboard.csv next to summary.csv) with its caption and plot; nothing
    when the benchmark has no leaderboard.csv."""
    path = results_dir / "leaderboard.csv"
    if not path.exists():
        return []
    board = labelled(read_csv(path), synthetic)
    parts = ["<h2>Leaderboard</h2>", caption_html("leaderboard"), table(board, LEADERBOARD_TABLE)]
    png = results_dir / "plots" / f"{LEADERBOARD_PLOT}.png"
    if png.exists():
        parts.append(figure(LEADERBOARD_PLOT, png, text=""))
    energy_png = results_dir / "plots" / f"{ENERGY_PLOT}.png"
    if energy_png.exists() and "energy_kwh" in board and board["energy_kwh"].notna().any():
        parts.append(figure(ENERGY_PLOT, energy_png))  # only with power results
    return parts


def provenance(
    system: str,
    config: Mapping[str, Any],
    system_dir: Path,
    fingerprint: Any,
) -> str:
    """Where a system's numbers come from: its configuration, its environment.json (runs made
    here) or its source logs and the submission's description (imported runs). Whether its
    runs are imported logs is its backend's answer (``imports``), never its name."""
    items: list[tuple[str, Any]] = [
        ("description", config.get("description")),
        ("backend", config.get("backend")),
        ("fingerprint", fingerprint),
    ]
    metas = [RunRecord.read(p) for p in sorted(system_dir.glob("run_*/run.json"))]
    if backends.get(config["backend"]).imports:
        items += _imported_provenance(config, metas)
    else:
        items += _local_provenance(config, system_dir, metas)
    return f"<h3>{esc(system)}</h3>" + definition_list(items)


def _imported_provenance(
    config: Mapping[str, Any], metas: Sequence[RunRecord]
) -> list[tuple[str, Any]]:
    """An imported system: its folder, what the submission says about its hardware, and the
    source log of every run."""
    items: list[tuple[str, Any]] = []
    items.append(("import_dir", config.get("import_dir")))
    sub = metas[0].submission if metas else {}
    for key in ("org", "platform", "division", "status"):
        items.append((f"submission {key}", sub.get(key)))
    entry = sub.get("entry")
    if isinstance(entry, dict):
        for key in ("hardware", "framework", "os", "interconnect"):
            items.append((key, entry.get(key)))
        nodes = entry.get("nodes")
        if isinstance(nodes, dict):
            for key in ("num_nodes", "cpu", "accelerator", "num_accelerators", "sys_mem_size"):
                items.append((key, nodes.get(key)))
        libs = entry.get("libraries")
        if isinstance(libs, dict):
            items.append(("libraries", ", ".join(f"{k} {v}" for k, v in libs.items())))
    for m in metas:
        run = layout.run_id(m.run, len(metas))
        items.append((f"run {run}", _with(m.source, "sha256 ", m.source_sha256)))
    return items


def _local_provenance(
    config: Mapping[str, Any], system_dir: Path, metas: Sequence[RunRecord]
) -> list[tuple[str, Any]]:
    """A system that ran here: its resources, its environment.json, its image, its command."""
    items: list[tuple[str, Any]] = []
    env_path = system_dir / "environment.json"
    env = json.loads(env_path.read_text()) if env_path.exists() else {}
    git = env.get("workflow_git") or {}
    items += [
        ("threads per run", config.get("threads")),
        ("GPUs per run", config.get("gpus")),
        ("host", env.get("host")),
        ("CPU", _cpu(env.get("cpu_count"), env.get("cpu_model"))),
        ("GPUs", ", ".join(env.get("gpus") or []) or "none"),
        ("OS", env.get("os")),
        ("Python", env.get("python")),
        (
            "packages",
            ", ".join(f"{k} {v}" for k, v in (env.get("packages") or {}).items()),
        ),
        (
            "workflow commit",
            f"{git['commit']}{' (with uncommitted changes)' if git.get('dirty') else ''}"
            if git.get("commit")
            else None,
        ),
        ("environment captured", env.get("captured_utc")),
        ("environment digest", env.get("digest")),
    ]
    image = env.get("image") or {}
    if image:  # a container backend's: the software is the image's
        items.append(("image", _with(image.get("tag"), "", image.get("image_id"))))
    if metas:
        items.append(("command of run 01", metas[0].command))
        # a container backend's command line (run.json: docker_argv, podman_argv)
        argv = metas[0].argv_of(metas[0].backend)
        if argv:
            items.append((f"{argv[0]} run of run 01", shlex.join(argv)))
    return items


def _with(value: Any, label: str, detail: Any) -> Any:
    """``value (label detail)``, ``value`` without a detail, None without a value: a provenance
    line never says None."""
    if value is None:
        return None
    return f"{value} ({label}{detail})" if detail is not None else value


def _cpu(count: Any, model: Any) -> str | None:
    """environment.json's CPU as 'count x model', or what there is of it."""
    if count is None or model is None:
        return None if count is None and model is None else str(model or count)
    return f"{count} x {model}"


def render(
    benchmark: str,
    results_dir: Path,
    context: Mapping[str, Any],
    generated: str | None = None,
) -> str:
    """The whole page as a string."""
    runs = read_csv(results_dir / "runs.csv")
    summary = read_csv(results_dir / "summary.csv")
    comparison = read_csv(results_dir / "comparison.csv")
    bench = context.get("benchmark", {})
    systems_cfg = context.get("systems", {})
    results = [
        ResultRecord.read(p)
        for system in sorted(systems_cfg)
        for p in sorted((results_dir / system).glob("run_*/result.json"))
    ]
    _, note = choose_reference(sorted(set(runs["system"])), context.get("reference_system"))
    lines, compared = verdicts(summary, comparison, note)
    lines += energy_lines(summary, runs)
    warns = warnings(summary, comparison, bench, results, note if compared else "")
    synthetic = synthetic_systems(runs)
    parts = [
        *page_head(benchmark, bench),
        f'<div class="verdict{"" if compared else " none"}" id="verdict">'
        + "<br>".join(esc(v) for v in lines)
        + "</div>",
        "<h2>Warnings</h2>",
        "".join(f'<div class="warn">{esc(w)}</div>' for w in warns) or "<p>None.</p>",
        "<h2>Summary</h2>",
        table_by_system(labelled(summary, synthetic), table_columns(summary_columns.SUMMARY)),
        glossary("summary", summary_columns.SUMMARY),
        *window_section(summary, runs, results_dir / "plots" / f"{WINDOWS_PLOT}.png"),
        "<h2>Comparison</h2>",
        *(
            [
                table(
                    labelled(comparison, synthetic), table_columns(comparison_columns.COMPARISON)
                ),
                glossary("comparison", comparison_columns.COMPARISON),
            ]
            if len(comparison)
            else ["<p>One system: nothing to compare.</p>"]
        ),
        *leaderboard_section(results_dir, synthetic),
        "<h2>Plots</h2>",
    ]
    parts += [figure(name, results_dir / "plots" / f"{name}.png") for name in PLOTS]
    parts += [
        "<h2>Runs</h2>",
        table(labelled(run_notes(runs, summary), synthetic), RUNS_TABLE),
        "<h2>Provenance</h2>",
    ]
    fingerprints = {r["system"]: r.get("fingerprint") for r in summary.to_dict("records")}
    for system in sorted(systems_cfg):
        parts.append(
            provenance(system, systems_cfg[system], results_dir / system, fingerprints.get(system))
        )
    parts += methods(context.get("statistics", {}), results_dir, generated)
    return "\n".join(parts) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m scripts report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--benchmark", required=True)
    p.add_argument("--results-dir", type=Path, required=True)
    p.add_argument("--context-json", required=True, help="benchmark, systems, reference")
    p.add_argument("--output", type=Path, required=True)
    args = p.parse_args(argv)
    page = render(args.benchmark, args.results_dir, json.loads(args.context_json))
    hashing.write_atomic(args.output, page)
    print(f"wrote {args.output} ({len(page) // 1024} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
