"""The tree of a published round (a training_results_vX.Y checkout): which round it is, its
submitters' folders, the import system name of each system folder, and the round's benchmark
definitions (config/benchmarks/mlperf-v<round>.yaml). What :mod:`scripts.run.published.overlay`
builds an overlay from, and :mod:`scripts.analysis.verify` compares scores by.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import yaml

from scripts.core.config import WORKFLOW_DIR
from scripts.mlperf import rounds
from scripts.run.published.folder import read_system_json

ROUND_RE = re.compile(r"^(?:training_results|mlperf)[_-]v(\d+\.\d+)(?:$|[_-])", re.I)


SYSTEM_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")  # the schema's name, lower case


MAX_NAME = 64  # the schema's maxLength of a name


class OverlayError(ValueError):
    """The folder or options cannot make an overlay; the message says why, in one line."""


def system_name(submitter: str, folder: str) -> str:
    """An import system's name, from any submitter and folder name: ``<submitter>-<folder>``
    in lower case, each run of characters other than ``a-z`` and ``0-9`` (``_``, ``.``,
    ``+``, spaces, anything else) made one ``-``, with none at either end (``NVIDIA``,
    ``nyx_n1_ngc25.04_pytorch`` -> ``nvidia-nyx-n1-ngc25-04-pytorch``; nettrix's v1.0
    ``X640 G40_A100_PCIe_NVBridge_mxnet`` -> ``nettrix-x640-g40-a100-pcie-nvbridge-mxnet``).
    A name longer than MAX_NAME keeps its first characters and ends with 8 hex digits of the
    sha256 of ``<submitter>/<folder>``, so it stays unique. Different folders can give the
    same name (``nyx_n1`` and ``nyx.n1``): :func:`scripts.run.published.overlay.build_overlay`
    refuses both."""
    name = re.sub(r"[^a-z0-9]+", "-", f"{submitter}-{folder}".lower()).strip("-")
    if not name or len(name) > MAX_NAME:
        digest = hashlib.sha256(f"{submitter}/{folder}".encode()).hexdigest()[:8]
        name = f"{name[: MAX_NAME - 9].strip('-')}-{digest}".strip("-")
    if not SYSTEM_NAME_RE.match(name):  # cannot happen: a guard for the rule above
        raise OverlayError(f"system folder {folder!r} of {submitter!r} gives no system name")
    return name


def detect_round(root: Path) -> str:
    """The MLPerf round of a results folder from its path: a component named
    ``training_results_v<X.Y>`` (or ``mlperf-v<X.Y>...``) gives ``X.Y``."""
    for part in reversed(Path(root).resolve().parts):
        if m := ROUND_RE.match(part):
            return m.group(1)
    raise OverlayError(
        f"cannot tell the MLPerf round of {root}: no training_results_v<X.Y> in its path; "
        "give it with --round (e.g. --round 5.0)"
    )


def overlay_round(root: Path, round_: str | None) -> str:
    """The round of an overlay: ``round_`` when given, which must be a known round
    (:func:`scripts.mlperf.rounds.known_round`: it names files), else the round of ROOT's path."""
    if round_ is None:
        return detect_round(root)
    try:
        return rounds.known_round(round_)
    except ValueError as exc:
        raise OverlayError(str(exc)) from None


def submitter_folders(root: Path, submitter: str | None = None) -> list[tuple[str, Path]]:
    """(submitter, folder) of each submitter under ``root``: a training_results_vX.Y checkout
    (``<root>/<submitter>/results/``) or one submitter's folder (``<root>/results/``
    directly; its name is the ``submitter`` of its systems/*.json, else the folder's)."""
    root = Path(root)
    if (root / "results").is_dir():
        found = [(_submitter_of(root), root)]
    else:
        found = sorted(  # a link is not followed: a published tree is data
            (d.name, d)
            for d in root.iterdir()
            if not d.is_symlink() and d.is_dir() and _real_dir(d / "results")
        )
    if submitter is not None:
        found = [(s, d) for s, d in found if s.lower() == submitter.lower()]
    if not found:
        what = f"submitter {submitter!r}" if submitter else "a submitter"
        raise OverlayError(
            f"{root} holds no results of {what}: expected <submitter>/results/<system>/ "
            "(a training_results_vX.Y checkout) or results/<system>/"
        )
    return found


def _real_dir(path: Path) -> bool:
    return not path.is_symlink() and path.is_dir()


def _submitter_of(folder: Path) -> str:
    for path in sorted((folder / "systems").glob("*.json")):
        try:
            desc = read_system_json(path)
        except (OSError, ValueError):
            continue  # build_overlay warns about it where a system folder uses it
        if desc and desc.get("submitter"):
            return str(desc["submitter"])
    return folder.name


def round_benchmarks(round_: str, workflow_dir: Path = WORKFLOW_DIR) -> dict[str, Any] | None:
    """The benchmark definitions of config/benchmarks/mlperf-v<round>.yaml (read now), or None
    when the workflow has no such file."""
    path = Path(workflow_dir) / "config" / "benchmarks" / f"mlperf-v{round_}.yaml"
    if not path.is_file():
        return None
    return dict((yaml.safe_load(path.read_text()) or {}).get("benchmarks") or {})
