"""report.html: one self-contained page per benchmark (images embedded, no script, no network).

    python -m scripts report --benchmark gnmt --results-dir results/gnmt \\
        --context-json '{...}' --output results/gnmt/report.html

Order of the page: the verdict first ("B is 1.72x faster than A, 95% CI 1.66-1.78"), then
warnings (each says the value, the threshold and what to do), the summary and comparison
tables, the leaderboard (when leaderboard.csv is next to summary.csv:
``scripts.analysis.leaderboard``),
the plots with their captions (``report/<plot>.rst``), every run, the provenance of every system
(its environment.json, or for an imported system the source logs and what the submission says
about its hardware), and the methods. Everything is read from the campaign's files
(summary.csv, comparison.csv, leaderboard.csv, runs.csv, the runs' result.json and run.json);
nothing is recomputed here.

Every table is inside its own ``<div class="table-wrap">`` (``overflow-x: auto``): a table wider
than the page scrolls within its box instead of being cut off at the page's edge.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import html
import json
import math
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jinja2
import pandas as pd
from docutils.core import publish_parts

from scripts.analysis import columns, stats
from scripts.analysis.tables import choose_reference, names_log_problems
from scripts.core import formats, hashing, layout
from scripts.core.safe_csv import read_csv
from scripts.mlperf import compliance
from scripts.run import hostload

WORKFLOW_DIR = Path(__file__).resolve().parents[2]
CAPTIONS_DIR = WORKFLOW_DIR / "report"
PLOTS = ("runs", "drift", "ecdf", "mean_ci", "speedup", "quality")
PLOT_TITLES = {
    "runs": "Every run",
    "drift": "Drift",
    "ecdf": "Distribution (ECDF)",
    "mean_ci": "Mean and confidence interval",
    "speedup": "Speedup over the reference",
    "quality": "Convergence curves",
    "leaderboard": "Leaderboard",
    "energy": "Time against energy",
}
# plots/leaderboard.png, drawn by scripts.analysis.leaderboard --plot
LEADERBOARD_PLOT = "leaderboard"
ENERGY_PLOT = "energy"  # plots/energy.png, drawn by scripts.analysis.leaderboard --energy-plot

CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.4; }
h1 { margin-bottom: 0.2em; } .scale { color: #555; margin-top: 0; }
.verdict { font-size: 1.25em; background: #eef6ee; border-left: 6px solid #3a3; padding: 0.6em;}
.verdict.none { background: #f4f4f4; border-color: #888; }
.warn { background: #fff6e0; border-left: 6px solid #e90; padding: 0.4em 0.6em; margin: 0.3em 0;}
.table-wrap { overflow-x: auto; max-width: 100%; margin: 0.5em 0 1.5em; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: right; }
th { background: #f0f0f0; } td.text, th.text { text-align: left; }
figure { margin: 1em 0 2em; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { color: #444; font-size: 0.9em; max-width: 800px; }
dl { display: grid; grid-template-columns: max-content auto; gap: 0.1em 1em; font-size: 0.9em; }
dt { font-weight: bold; } dd { margin: 0; word-break: break-all; }
"""


def esc(x: Any) -> str:
    return html.escape("" if x is None else str(x))


def is_missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x)) or x is pd.NA


def fmt_s(x: Any) -> str:
    """Seconds: 1 decimal from 10 s on, else 3 significant digits."""
    if is_missing(x):
        return "n/a"
    x = float(x)
    return f"{x:.1f}" if abs(x) >= 10 else f"{x:.3g}"


def fmt_num(x: Any, spec: str = ".3g") -> str:
    return "n/a" if is_missing(x) else format(float(x), spec)


def caption(name: str) -> str:
    """The caption text of a plot (report/<name>.rst, plain text)."""
    path = CAPTIONS_DIR / f"{name}.rst"
    return path.read_text().strip() if path.exists() else ""


class _CaptionJob:
    """What a caption template reads, as Snakemake's report gives it to the template of a
    rule's output: ``snakemake.params.columns`` (rules/report.smk passes the registry; None
    for a caption that lists no columns)."""

    def __init__(self, registry: columns.Registry | None) -> None:
        self.params = SimpleNamespace(columns=registry)


def render_caption(name: str, registry: columns.Registry | None = None) -> str:
    """report/<name>.rst rendered as Snakemake renders a caption (a Jinja2 template with
    ``trim_blocks`` and ``lstrip_blocks``), with ``registry`` as ``snakemake.params.columns``:
    reStructuredText."""
    template = (CAPTIONS_DIR / f"{name}.rst").read_text()
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    return env.from_string(template).render(snakemake=_CaptionJob(registry))


def caption_html(name: str, registry: columns.Registry | None = None) -> str:
    """The caption of a table as HTML: :func:`render_caption`, turned into HTML by docutils
    (the body part, as Snakemake's report does)."""
    text = render_caption(name, registry)
    settings = {"report_level": 5, "halt_level": 5}  # a caption never prints warnings
    return publish_parts(text, writer="html", settings_overrides=settings)["body"]


def data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


# ---------------------------------------------------------------------------------------------
# What the page says


def verdicts(
    summary: pd.DataFrame, comparison: pd.DataFrame, reference_note: str
) -> tuple[list[str], bool]:
    """The sentences at the top of the page, and whether any comparison was made."""
    if len(comparison):
        return [str(v) for v in comparison["verdict"]], True
    lines = []
    for row in summary.to_dict("records"):
        if row["valid"] and not is_missing(row["score_s"]):
            lo, hi = row.get("ci95_low_s"), row.get("ci95_high_s")
            lines.append(
                f"{row['system']}: MLPerf score {fmt_s(row['score_s'])} s (olympic mean of "
                f"{row['n_runs']} runs); mean {fmt_s(row['mean_s'])} s, 95% CI "
                f"{fmt_s(lo)}-{fmt_s(hi)} s. Add a second system to compare."
            )
        else:
            lines.append(f"{row['system']}: no MLPerf score: {row['reason']}")
    if reference_note:
        lines.append(reference_note)
    return lines, False


def warnings(
    summary: pd.DataFrame,
    comparison: pd.DataFrame,
    benchmark: Mapping[str, Any],
    results: Sequence[Mapping[str, Any]],
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
    out.extend(seed_warnings(results))
    for r in results:
        expected = r.get("converged") is False
        named = set(r.get("log_problems") or [])
        for problem in r.get("problems") or []:
            if problem in named:
                continue  # in its log-problem warning
            if expected and ("does not meet target" in problem or "status is" in problem):
                continue
            out.append(f"{r['system']} run {r['run']}: {problem} (in {r.get('log')}).")
    return out


def system_warnings(row: Mapping[str, Any], required: int) -> list[str]:
    """The warnings of one system's summary row: no score, too few runs, unstable, outliers,
    a non-converged run dropped."""
    out: list[str] = []
    s = row["system"]
    if not row["valid"]:
        out.append(
            f"{s}: no MLPerf score: {row['reason']}. Do not rerun only the failed runs "
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
            f"{s}: run {row['dropped_slowest_run']} did not reach the target; the MLPerf "
            "rule counts it as the slowest run and drops it."
        )
    return out


def shared_core_warnings(results: Sequence[Mapping[str, Any]]) -> list[str]:
    """One warning per system whose runs shared their cores with other work: others used at
    least hostload.BUSY_CORES cores on average during the run (result.json ``host_busy``)."""
    busy: dict[str, list[tuple[int, float, Any]]] = {}
    for r in results:
        x = r.get("host_busy")
        if x is not None and not is_missing(x) and float(x) >= hostload.BUSY_CORES:
            busy.setdefault(r["system"], []).append((int(r["run"]), float(x), r.get("load_1m")))
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


def seed_warnings(results: Sequence[Mapping[str, Any]]) -> list[str]:
    """The MLPerf package checker's seed rule: every run of a system its own seed."""
    seeds: dict[str, dict[str, int | None]] = {}
    for r in results:
        seed = r.get("seed")
        seeds.setdefault(r["system"], {})[str(r["run"])] = (
            None if seed is None or is_missing(seed) else int(seed)
        )
    return [
        f"{system}: {line}"
        for system, runs in sorted(seeds.items())
        for line in compliance.check_seeds(runs)
    ]


def log_problem_warnings(results: Sequence[Mapping[str, Any]]) -> list[str]:
    """One warning per run whose log is not a valid MLPerf log of a finished run, naming the
    file and every problem (scripts.mlperf.log_validity.log_problems)."""
    out = []
    for r in results:
        problems = r.get("log_problems") or []
        if problems:
            out.append(
                f"{r['system']} run {r['run']}: {r.get('log')} is not a valid MLPerf log of a "
                f"finished run: {'; '.join(problems)}. It counts as a run without a result "
                "(not converged, dropped as the slowest), as mlperf-logging's result "
                "summarizer counts a log that fails the compliance check."
            )
    return out


# ---------------------------------------------------------------------------------------------
# HTML pieces


def table(frame: pd.DataFrame, columns: Sequence[tuple[str, str, Any]]) -> str:
    """An HTML table of ``frame`` with (column, header, formatter) triples; every formatter
    returns HTML-safe text (``esc`` for text columns, which are left-aligned)."""

    def cls(f: Any) -> str:
        return ' class="text"' if f in TEXT_FORMATS else ""

    head = "".join(f"<th{cls(f)}>{esc(h)}</th>" for _, h, f in columns)
    body = [
        "<tr>" + "".join(f"<td{cls(f)}>{f(row.get(c))}</td>" for c, _, f in columns) + "</tr>"
        for row in frame.to_dict("records")
    ]
    return wrap_table(f"<table><tr>{head}</tr>{''.join(body)}</table>")


def wrap_table(table_html: str) -> str:
    """A table in its own scrolling box (``.table-wrap``: ``overflow-x: auto``), so that a
    wide one scrolls instead of running past the page. Every table of the page goes here."""
    return f'<div class="table-wrap">{table_html}</div>'


def table_by_system(frame: pd.DataFrame, rows: Sequence[tuple[str, str, Any]]) -> str:
    """``frame`` (one row per system) turned sideways: one row per statistic, one column per
    system, so that many statistics of a few systems fit the page."""
    records = frame.to_dict("records")
    head = "<th></th>" + "".join(f"<th>{esc(r['system'])}</th>" for r in records)
    body = [
        f'<tr><th class="text">{esc(h)}</th>'
        + "".join(f"<td>{f(r.get(c))}</td>" for r in records)
        + "</tr>"
        for c, h, f in rows
        if c != "system"
    ]
    return wrap_table(f"<table><tr>{head}</tr>{''.join(body)}</table>")


def _share(x: Any) -> str:
    return "n/a" if is_missing(x) else f"{float(x):.0%}"


def _yes(x: Any) -> str:
    if is_missing(x):
        return "n/a"
    return "yes" if x is True or str(x) == "True" else "no"


def _int(x: Any) -> str:
    return "n/a" if is_missing(x) or x == "" else str(int(float(x)))


def _pct(x: Any) -> str:
    return "n/a" if is_missing(x) else f"{float(x):.1%}"


def _when(x: Any) -> str:
    """An ISO time as 'YYYY-MM-DD HH:MM:SS' (UTC)."""
    if is_missing(x):
        return "n/a"
    try:
        return dt.datetime.fromisoformat(str(x)).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return esc(x)


def _p(x: Any) -> str:
    return "n/a" if is_missing(x) else f"{float(x):.3g}"


def _ratio3(x: Any) -> str:
    return fmt_num(x, ".3f")


def _prob(x: Any) -> str:
    return fmt_num(x, ".2f")


def _text(x: Any) -> str:
    """Text, or nothing for an empty cell (a local system has no submitter)."""
    return "" if is_missing(x) else esc(x)


def _minutes(x: Any) -> str:
    return "" if is_missing(x) else f"{float(x):,.1f}"


TEXT_FORMATS = (esc, _text)  # left-aligned


# How a column's value is shown, by the name its registry entry gives (Column.fmt)
FORMATS = {
    "text": esc,
    "int": _int,
    "yes": _yes,
    "s": fmt_s,
    "pct": _pct,
    "num": fmt_num,
    "ratio": _ratio3,
    "prob": _prob,
    "p": _p,
}


def table_columns(registry: columns.Registry) -> list[tuple[str, str, Any]]:
    """The (column, header, formatter) triples of report.html's table of a registry's table:
    its columns that have a header, in file order."""
    return [(c.name, c.header, FORMATS[c.fmt]) for c in registry if c.header is not None]


RUNS_TABLE = [
    ("system", "system", esc),
    ("run", "run", _int),
    ("seed", "seed", _int),
    ("started_utc", "started (UTC)", _when),
    ("time_to_train_s", "time to train (s)", fmt_s),
    ("converged", "converged", _yes),
    ("epochs_to_converge", "epochs to converge", _int),
    ("time_per_epoch_s", "s per epoch", fmt_s),
    ("final_quality", "final quality", fmt_num),
    ("result_line_wall_s", "RESULT line (s)", fmt_s),
    ("compliance", "compliance", esc),
    ("cache", "cache", esc),
    ("dataset_resident", "dataset in page cache", _share),
    ("host_busy", "others' cores", fmt_num),
    ("host", "host", esc),
    ("note", "MLPerf score", esc),
]


LEADERBOARD_TABLE = [
    ("rank", "rank", _int),
    ("system", "system", esc),
    ("submitter", "submitter", _text),
    ("accelerator", "accelerator", _text),
    ("n_accelerators", "accelerators", lambda x: "" if is_missing(x) else _int(x)),
    ("score_s", "MLPerf score (s)", fmt_s),
    ("score_ci95_low_s", "95% low (s)", fmt_s),
    ("score_ci95_high_s", "95% high (s)", fmt_s),
    ("accelerator_minutes", "accelerator-minutes", _minutes),
    ("energy_kwh", "energy (kWh)", fmt_num),
    ("group", "distinguishable?", _text),
    ("reason", "unranked because", _text),
]


def leaderboard_section(results_dir: Path) -> list[str]:
    """The leaderboard (leaderboard.csv next to summary.csv) with its caption and plot; nothing
    when the benchmark has no leaderboard.csv."""
    path = results_dir / "leaderboard.csv"
    if not path.exists():
        return []
    board = read_csv(path)
    parts = ["<h2>Leaderboard</h2>", caption_html("leaderboard"), table(board, LEADERBOARD_TABLE)]
    png = results_dir / "plots" / f"{LEADERBOARD_PLOT}.png"
    if png.exists():
        parts.append(_figure(LEADERBOARD_PLOT, png, text=""))
    energy_png = results_dir / "plots" / f"{ENERGY_PLOT}.png"
    if energy_png.exists() and "energy_kwh" in board and board["energy_kwh"].notna().any():
        parts.append(_figure(ENERGY_PLOT, energy_png))  # only with power results
    return parts


def _definition_list(items: Sequence[tuple[str, Any]]) -> str:
    rows = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in items if not is_missing(v))
    return f"<dl>{rows}</dl>"


def provenance(
    system: str,
    config: Mapping[str, Any],
    system_dir: Path,
    fingerprint: Any,
) -> str:
    """Where a system's numbers come from: its configuration, its environment.json (runs made
    here) or its source logs and the submission's description (imported runs)."""
    items: list[tuple[str, Any]] = [
        ("description", config.get("description")),
        ("backend", config.get("backend")),
        ("fingerprint", fingerprint),
    ]
    metas = [formats.read_json(p, "run.json") for p in sorted(system_dir.glob("run_*/run.json"))]
    if config.get("backend") == "import":
        items += _imported_provenance(config, metas)
    else:
        items += _local_provenance(config, system_dir, metas)
    return f"<h3>{esc(system)}</h3>" + _definition_list(items)


def _imported_provenance(
    config: Mapping[str, Any], metas: Sequence[Mapping[str, Any]]
) -> list[tuple[str, Any]]:
    """An imported system: its folder, what the submission says about its hardware, and the
    source log of every run."""
    items: list[tuple[str, Any]] = []
    items.append(("import_dir", config.get("import_dir")))
    sub = metas[0].get("submission", {}) if metas else {}
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
        run = layout.run_id(m["run"], len(metas))
        items.append((f"run {run}", f"{m.get('source')} (sha256 {m.get('source_sha256')})"))
    return items


def _local_provenance(
    config: Mapping[str, Any], system_dir: Path, metas: Sequence[Mapping[str, Any]]
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
        ("CPU", f"{env.get('cpu_count')} x {env.get('cpu_model')}" if env else None),
        ("GPUs", ", ".join(env.get("gpus") or []) or "none"),
        ("OS", env.get("os")),
        ("Python", env.get("python")),
        (
            "packages",
            ", ".join(f"{k} {v}" for k, v in (env.get("packages") or {}).items()),
        ),
        (
            "workflow commit",
            f"{git.get('commit')}{' (with uncommitted changes)' if git.get('dirty') else ''}"
            if git
            else None,
        ),
        ("environment captured", env.get("captured_utc")),
        ("environment digest", env.get("digest")),
    ]
    image = env.get("image") or {}
    if image:  # the docker backend: the software is the image's
        items.append(("image", f"{image.get('tag')} ({image.get('image_id')})"))
    if metas:
        items.append(("command of run 01", metas[0].get("command")))
        # a container backend's command line (run.json: docker_argv, podman_argv)
        argv = metas[0].get(f"{metas[0].get('backend')}_argv")
        if argv:
            items.append((f"{argv[0]} run of run 01", shlex.join(argv)))
    return items


def _run_notes(runs: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """runs.csv with a note of what the MLPerf score did with each run."""
    rows = {r["system"]: r for r in summary.to_dict("records")}
    notes = []
    for r in runs.to_dict("records"):
        s = rows.get(r["system"], {})
        outliers = str(s.get("outlier_runs") or "").split()
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
        if str(r["run"]) in outliers:
            note.append("outlier (flagged)")
        notes.append(", ".join(note) or ("counted" if s.get("valid") else ""))
    return runs.assign(note=notes)


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
        formats.read_json(p, "result.json")
        for system in sorted(systems_cfg)
        for p in sorted((results_dir / system).glob("run_*/result.json"))
    ]
    _, note = choose_reference(sorted(set(runs["system"])), context.get("reference_system"))
    lines, compared = verdicts(summary, comparison, note)
    warns = warnings(summary, comparison, bench, results, note if compared else "")
    parts = [
        *_page_head(benchmark, bench),
        f'<div class="verdict{"" if compared else " none"}" id="verdict">'
        + "<br>".join(esc(v) for v in lines)
        + "</div>",
        "<h2>Warnings</h2>",
        "".join(f'<div class="warn">{esc(w)}</div>' for w in warns) or "<p>None.</p>",
        "<h2>Summary</h2>",
        caption_html("summary", columns.SUMMARY),
        table_by_system(summary, table_columns(columns.SUMMARY)),
        "<h2>Comparison</h2>",
        caption_html("comparison", columns.COMPARISON),
        table(comparison, table_columns(columns.COMPARISON))
        if len(comparison)
        else "<p>One system: nothing to compare.</p>",
        *leaderboard_section(results_dir),
        "<h2>Plots</h2>",
    ]
    parts += [_figure(name, results_dir / "plots" / f"{name}.png") for name in PLOTS]
    parts += [
        "<h2>Runs</h2>",
        table(_run_notes(runs, summary), RUNS_TABLE),
        "<h2>Provenance</h2>",
    ]
    fingerprints = {r["system"]: r.get("fingerprint") for r in summary.to_dict("records")}
    for system in sorted(systems_cfg):
        parts.append(
            provenance(system, systems_cfg[system], results_dir / system, fingerprints.get(system))
        )
    parts += _methods(context.get("statistics", {}), results_dir, generated)
    return "\n".join(parts) + "\n"


def _page_head(benchmark: str, bench: Mapping[str, Any]) -> list[str]:
    """The page up to the verdict: title, the benchmark's description, scale and target."""
    quality = bench.get("quality") or {}
    return [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(benchmark)}: time to train</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>{esc(benchmark)}: time to train</h1>",
        f'<p class="scale">{esc(bench.get("description"))}<br>scale: '
        f"<b>{esc(bench.get('scale'))}</b><br>quality target: {esc(quality.get('metric'))} "
        f"{'>=' if quality.get('direction', 'higher') == 'higher' else '<='} "
        f"{esc(quality.get('target'))}; MLPerf runs: {esc(bench.get('runs'))}</p>",
    ]


def _figure(name: str, png: Path, text: str | None = None) -> str:
    """A plot, embedded, with its title and caption (``text``, else report/<name>.rst)."""
    return (
        f'<figure id="plot-{name}"><img alt="{esc(PLOT_TITLES[name])}" '
        f'src="{data_uri(png)}"><figcaption><b>{esc(PLOT_TITLES[name])}.</b> '
        f"{esc(caption(name) if text is None else text)}</figcaption></figure>"
    )


def _methods(st: Mapping[str, Any], results_dir: Path, generated: str | None) -> list[str]:
    """The end of the page: the methods, the statistics settings, when and from what."""
    return [
        "<h2>Methods</h2>",
        f"<p>{esc(caption('methods'))}</p>",
        f"<p>Bootstrap: {esc(st.get('bootstrap_resamples', stats.BOOTSTRAP_RESAMPLES))} "
        f"resamples, seed {esc(st.get('bootstrap_seed', stats.BOOTSTRAP_SEED))}; minimum "
        f"effect for 'significant': {esc(st.get('min_effect', 0.0))}.</p>",
        f"<p>Generated {esc(generated or dt.datetime.now(dt.UTC).isoformat(timespec='seconds'))}"
        f" from {esc(results_dir)}.</p>",
        "</body></html>",
    ]


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
