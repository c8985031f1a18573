"""A whole published round as a config overlay: one import system per system folder
(``python -m scripts import overlay ROOT --output OVERLAY``, :func:`build_overlay`).
"""

from __future__ import annotations

import argparse
import fnmatch
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from scripts.core import hashing
from scripts.core.config import WORKFLOW_DIR
from scripts.core.layout import benchmark_folder, result_files
from scripts.run.published.folder import read_system_json, system_columns, system_json
from scripts.run.published.tree import (
    OverlayError,
    overlay_round,
    round_benchmarks,
    submitter_folders,
    system_name,
)


def describe_system(
    submitter: str, folder: str, desc: Mapping[str, Any] | None, round_: str
) -> str:
    """The one-line description of an imported system, from its systems/<system>.json."""
    where = f"published MLPerf Training v{round_} results"
    if not desc:
        return f"{submitter} {folder}; {where}"
    cols = system_columns(desc)
    parts = [f"{submitter} {desc.get('system_name') or folder}"]
    if cols["n_accelerators"] is not None and cols["accelerator"]:
        parts.append(f"{cols['n_accelerators']}x {cols['accelerator']}")
    if cols["framework"]:
        parts.append(str(cols["framework"]))
    division = f" ({cols['division']})" if cols["division"] else ""
    return f"{', '.join(parts)}; {where}{division}"


def build_overlay(
    root: Path,
    *,
    submitter: str | None = None,
    system_glob: str = "*",
    round_: str | None = None,
    workflow_dir: Path = WORKFLOW_DIR,
) -> tuple[dict[str, Any], list[str]]:
    """A config overlay that imports every result folder of a published round, and notes.

    One import system per ``<submitter>/results/<system>`` folder whose name matches
    ``system_glob`` (named by :func:`system_name`); ``campaign.benchmarks`` is the round's
    benchmarks (config/benchmarks/mlperf-v<round>.yaml) that have a folder
    (:func:`benchmark_folder`) in one of them, and ``benchmarks`` holds their definitions, so
    the overlay works alone. Without the round's file the overlay names the benchmarks
    ``<folder>-v<round>`` and the notes say the definitions are missing."""
    round_ = overlay_round(root, round_)
    definitions = round_benchmarks(round_, workflow_dir)
    notes: list[str] = []
    if definitions is None:
        notes.append(
            f"config/benchmarks/mlperf-v{round_}.yaml does not exist: the overlay names the "
            f"benchmarks <folder>-v{round_} but cannot define them"
        )
    found = _named_folders(
        submitter_folders(root, submitter), system_glob, definitions, round_, notes
    )
    systems: dict[str, Any] = {}
    used: set[str] = set()
    for name, folders in sorted(found.items()):
        if len(folders) > 1:
            both = " and ".join(repr(str(f)) for _, f, _ in folders)
            notes.append(
                f"{both} both give the system name {name!r} "
                "(scripts/run/published/tree.py system_name): none of them is imported; "
                "import each with --system"
            )
            continue
        sub, folder, benchmarks = folders[0]
        desc = _system_description(folder, notes)
        systems[name] = {
            "description": describe_system(sub, folder.name, desc, round_),
            "backend": "import",
            "import_dir": str(folder.resolve()),
        }
        used |= benchmarks
    if not systems:
        raise OverlayError(f"{root}: no system folder matching {system_glob!r} has results")
    benchmarks = sorted(used)
    overlay: dict[str, Any] = {
        "campaign": {
            "benchmarks": benchmarks,
            "systems": sorted(systems),
            "reference_system": sorted(systems)[0],
        },
        "systems": systems,
    }
    if definitions is not None:
        overlay["benchmarks"] = {b: definitions[b] for b in benchmarks}
    return overlay, notes


def _named_folders(
    submitters: Sequence[tuple[str, Path]],
    system_glob: str,
    definitions: Mapping[str, Any] | None,
    round_: str,
    notes: list[str],
) -> dict[str, list[tuple[str, Path, set[str]]]]:
    """System name -> the (submitter, folder, benchmarks) that give it, for every system
    folder with results of the round; a folder that cannot be read or has none is a note."""
    found: dict[str, list[tuple[str, Path, set[str]]]] = {}
    for sub, sub_dir in submitters:
        for folder in _system_folders(sub_dir, system_glob, notes):
            try:
                benchmarks = _folder_benchmarks(folder, definitions, round_)
            except OSError as exc:
                notes.append(f"{folder}: cannot be read ({exc.strerror or exc}); skipped")
                continue
            if not benchmarks:
                notes.append(f"{folder}: no result folder of a benchmark of v{round_}; skipped")
                continue
            found.setdefault(system_name(sub, folder.name), []).append((sub, folder, benchmarks))
    return found


def _system_folders(sub_dir: Path, system_glob: str, notes: list[str]) -> list[Path]:
    """The system folders of a submitter's results/ matching ``system_glob`` (a folder that
    cannot be listed is a note)."""
    try:
        entries = sorted((sub_dir / "results").iterdir())
    except OSError as exc:
        notes.append(f"{sub_dir / 'results'}: cannot be listed ({exc.strerror or exc}); skipped")
        return []
    found = []
    for f in entries:
        if not fnmatch.fnmatch(f.name, system_glob):
            continue
        if f.is_symlink():
            notes.append(f"{f}: a symbolic link (a published tree is data: not followed); skipped")
        elif f.is_dir():
            found.append(f)
    return found


def _system_description(folder: Path, notes: list[str]) -> dict[str, Any] | None:
    """A system folder's systems/<system>.json, or None; one that cannot be read is a
    warning in ``notes`` (the logs are imported without it, as the summarizer reads them)."""
    try:
        return read_system_json(system_json(folder))
    except (OSError, ValueError) as exc:
        notes.append(f"warning: {exc}; {folder.name} is imported without its description")
        return None


def _folder_benchmarks(
    folder: Path, definitions: Mapping[str, Any] | None, round_: str
) -> set[str]:
    """The benchmarks with results in a system folder: by the round's definitions, or without
    them every sub-folder with result files as ``<folder>-v<round>``."""
    if definitions is None:
        return {f"{d.name}-v{round_}" for d in folder.iterdir() if result_files(d)}
    return {b for b, d in definitions.items() if benchmark_folder(folder, d) is not None}


def overlay_main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(
        prog="python -m scripts import overlay",
        description="Write a config overlay with one import system per published system folder "
        "of an MLPerf round (training_results_vX.Y).",
    )
    p.add_argument("root", type=Path, help="a training_results_vX.Y checkout or one submitter")
    p.add_argument("--submitter", help="only this submitter's folder (e.g. NVIDIA)")
    p.add_argument("--system", default="*", help="only system folders matching this glob")
    p.add_argument("--round", dest="round_", help="the round, e.g. 5.0 (default: from ROOT)")
    p.add_argument("--output", type=Path, required=True, help="the overlay YAML to write")
    args = p.parse_args(argv)
    try:
        overlay, notes = build_overlay(
            args.root, submitter=args.submitter, system_glob=args.system, round_=args.round_
        )
    except (OverlayError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    header = f"# made by: python -m scripts import overlay {' '.join(map(str, argv))}\n"
    hashing.write_atomic(args.output, header + yaml.safe_dump(overlay, sort_keys=False))
    n_sys, n_bench = len(overlay["systems"]), len(overlay["campaign"]["benchmarks"])
    print(f"{args.output}: {n_sys} import systems, {n_bench} benchmarks")
    return 0
