"""Check the workflow's scores of a published round against mlperf-logging's result summarizer.

    python -m scripts verify ROOT [--round R] [--results results]

For every ``<submitter>/results/<system>/<benchmark>/`` folder of ROOT (a
``training_results_vX.Y`` checkout, or one submitter's folder), the official summarizer's own
scoring function (``result_summarizer._compute_strong_score_standalone``: the round's
compliance checker on every log, olympic mean, scaling.json, and the Energy score of a folder
with ``power/``) is run in this process, and its time (and energy) is printed beside the
workflow's ``score_s`` (and ``energy_j``) from ``<results>/<benchmark>/summary.csv``, with
``equal`` (relative 1e-9; no score on both sides is equal too), ``DIFFERENT`` or ``not
imported``. The exit status is 0 only when every folder is equal.

The workflow's side is what ``snakemake`` wrote for the overlay of ``python -m
scripts.run.published.cli overlay ROOT``: run that campaign first. Folders are matched by the
overlay's
naming rule (:func:`scripts.run.published.tree.system_name`) and the round's benchmark definitions
(``mlperf_name`` or ``folder_aliases``).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import logging
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from scripts.core.config import WORKFLOW_DIR
from scripts.mlperf import rounds
from scripts.run.published.tree import (
    OverlayError,
    detect_round,
    round_benchmarks,
    submitter_folders,
    system_name,
)

REL = 1e-9  # how close two scores must be to be equal


@dataclass(frozen=True)
class FolderScore:
    """One published benchmark folder's score, as one side computed it (None: no score)."""

    submitter: str
    system_folder: str
    benchmark_folder: str
    score_s: float | None
    energy_j: float | None = None
    error: str | None = None  # the summarizer stopped on this folder


def _alias(name: str) -> str:
    """The summarizer's ``_benchmark_alias``: Google's v0.6 ``mask`` folders are maskrcnn."""
    return "maskrcnn" if name == "mask" else name


def benchmark_folders(root: Path) -> list[tuple[str, Path, Path]]:
    """(submitter, system folder, benchmark folder) of every benchmark folder under ROOT, in
    the summarizer's order (sorted names)."""
    out: list[tuple[str, Path, Path]] = []
    for submitter, sub_dir in submitter_folders(root):
        for system in sorted(p for p in (sub_dir / "results").iterdir() if p.is_dir()):
            out += [(submitter, system, b) for b in sorted(system.iterdir()) if b.is_dir()]
    return out


def official_scores(
    root: Path, ruleset: str, progress: Callable[[str], None] | None = None
) -> list[FolderScore]:
    """Every benchmark folder's time and Energy score by the summarizer's own function, as its
    command line calls it (``_compute_strong_scaling_scores``), in seconds and joules."""
    from mlperf_logging.result_summarizer import result_summarizer as rs  # noqa: PLC0415

    logging.disable(logging.WARNING)  # its checker warns on the root logger
    out: list[FolderScore] = []
    try:
        for submitter, system, folder in benchmark_folders(root):
            bench = _alias(folder.name)
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    has_power = rs._has_power(str(folder))
                    score, power, _ = rs._compute_strong_score_standalone(
                        bench, system.name, has_power, str(folder), "training", ruleset
                    )
            except Exception as exc:  # noqa: BLE001 (the official code raises anything)
                out.append(FolderScore(submitter, system.name, folder.name, None, None, repr(exc)))
                continue
            minutes = None if score is None else float(score) * 60
            out.append(FolderScore(submitter, system.name, folder.name, minutes, power))
            if progress:
                progress(f"{submitter}/{system.name}/{folder.name}")
    finally:
        logging.disable(logging.NOTSET)
    return out


def _benchmark_names(round_: str, workflow_dir: Path) -> dict[str, str]:
    """A result folder's name (mlperf_name or alias) -> the round's benchmark definition."""
    names: dict[str, str] = {}
    for name, bench in (round_benchmarks(round_, workflow_dir) or {}).items():
        for folder in (bench.get("mlperf_name"), *(bench.get("folder_aliases") or [])):
            if folder:
                names.setdefault(str(folder), name)
    return names


def _float(text: str | None) -> float | None:
    try:
        x = float(text) if text not in (None, "") else None
    except ValueError:
        return None
    return x if x is not None and math.isfinite(x) else None


def our_scores(
    results: Path, folders: Sequence[tuple[str, Path, Path]], round_: str, workflow_dir: Path
) -> dict[tuple[str, str, str], FolderScore | None]:
    """The workflow's score of each folder from ``<results>/<benchmark>/summary.csv`` (None:
    the folder has no row there: not imported)."""
    names = _benchmark_names(round_, workflow_dir)
    tables: dict[str, dict[str, dict[str, str]]] = {}
    out: dict[tuple[str, str, str], FolderScore | None] = {}
    for submitter, system, folder in folders:
        bench = names.get(folder.name) or f"{folder.name}-v{round_}"
        if bench not in tables:
            path = results / bench / "summary.csv"
            rows: list[dict[str, str]] = []
            if path.is_file():
                with path.open(newline="") as fh:
                    rows = list(csv.DictReader(fh))
            tables[bench] = {r["system"]: r for r in rows}
        row = tables[bench].get(system_name(submitter, system.name))
        key = (submitter, system.name, folder.name)
        if row is None:
            out[key] = None
            continue
        valid = str(row.get("valid")).lower() == "true"
        score = _float(row.get("score_s")) if valid else None
        energy = _float(row.get("energy_j")) if valid else None
        out[key] = FolderScore(submitter, system.name, folder.name, score, energy)
    return out


def same(a: float | None, b: float | None) -> bool:
    """Equal to REL, or both missing."""
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= REL * max(abs(a), abs(b))


def _fmt(x: float | None, unit: str) -> str:
    return "-" if x is None else f"{x:.6f} {unit}"


def compare(
    official: Sequence[FolderScore], ours: Mapping[tuple[str, str, str], FolderScore | None]
) -> tuple[list[str], int]:
    """One line per folder (ours, theirs, the verdict) and the number not equal."""
    lines: list[str] = []
    bad = 0
    for theirs in official:
        key = (theirs.submitter, theirs.system_folder, theirs.benchmark_folder)
        mine = ours.get(key)
        where = "/".join(key)
        if mine is None:
            verdict, got = "not imported", "-"
        else:
            equal = same(mine.score_s, theirs.score_s) and same(mine.energy_j, theirs.energy_j)
            verdict = "equal" if equal else "DIFFERENT"
            got = _fmt(mine.score_s, "s")
            if mine.energy_j is not None or theirs.energy_j is not None:
                got += f", {_fmt(mine.energy_j, 'J')}"
        want = _fmt(theirs.score_s, "s")
        if theirs.energy_j is not None or (mine and mine.energy_j is not None):
            want += f", {_fmt(theirs.energy_j, 'J')}"
        if theirs.error:
            want = f"the summarizer failed: {theirs.error}"
        bad += verdict != "equal"
        lines.append(f"{where}: ours {got}; summarizer {want}: {verdict}")
    return lines, bad


def verify_main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(
        prog="python -m scripts verify",
        description=__doc__.split("\n\n")[2].replace("\n", " "),
    )
    p.add_argument("root", type=Path, help="a training_results_vX.Y checkout or one submitter")
    p.add_argument("--round", dest="round_", help="the round, e.g. 5.0 (default: from ROOT)")
    p.add_argument(
        "--results",
        type=Path,
        default=Path("results"),
        help="the workflow's results folder of the round's campaign (default: results)",
    )
    args = p.parse_args(argv)
    try:
        if args.round_ is not None:
            round_ = rounds.known_round(args.round_)
        else:
            round_ = rounds.known_round(detect_round(args.root), f"{args.root}: round")
        ruleset = rounds.ruleset_of(round_)
        folders = benchmark_folders(args.root)
    except (OverlayError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    wf = WORKFLOW_DIR
    ours = our_scores(args.results, folders, round_, wf)
    t = time.perf_counter()
    official = official_scores(args.root, ruleset)
    elapsed = time.perf_counter() - t
    lines, bad = compare(official, ours)
    print("\n".join(lines))
    n = len(official)
    print(
        f"{n - bad} of {n} folders equal to mlperf-logging's result summarizer (ruleset "
        f"{ruleset}, relative {REL:g}); its scoring function took {elapsed:.2f} s"
    )
    return 1 if bad else 0


def main(argv: Sequence[str] | None = None) -> int:
    return verify_main(list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    raise SystemExit(main())
