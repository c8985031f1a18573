"""What a published result folder holds besides its logs, as the import backend reads it.

A benchmark's folder (``<submitter>/results/<system>/<benchmark>/``) may hold a
``scaling.json`` (the RCP scaling factor, v1.0 on) and power files; its system is described by
``<submitter>/systems/<system>.json``, from which mlperf-logging's result summarizer derives
summary.csv's system columns. An imported run's run.json records all of them
(:mod:`scripts.run.published.run`); none is required. Each is read as data
(:mod:`scripts.core.published_files`): a link, FIFO or device is refused.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from scripts.core import hashing, published_files
from scripts.mlperf import power
from scripts.mlperf.compliance import one_line as compliance_one_line

SCALING_FILE = "scaling.json"  # the RCP scaling factor of a result folder (v1.0 on)


# summary.csv's columns from the submission's systems/<system>.json (system_columns)
SYSTEM_COLUMNS = ("submitter", "division", "accelerator", "n_accelerators", "n_nodes", "framework")


# what mlperf-logging's RCP checker can write into a scaling.json (rcp_checker
# _eval_submission_record: RCP mean / the submission's mean epochs, only when the submission
# converged faster than the RCP mean and no faster than "Max Speedup", the RCP mean over the
# fastest reference run: at most 2.5 in every round's RCP files of mlperf-logging 4.1.68)
MIN_SCALING, MAX_SCALING = 1.0, 10.0


def scaling_factor(folder: Path) -> float:
    """The RCP scaling factor of a result folder, as mlperf-logging's result summarizer reads
    it (``_get_scaling_factor``): ``scaling_factor`` of its scaling.json, 1.0 without the
    file. ValueError names the file when it is not a regular JSON file
    (:mod:`scripts.core.published_files`) or its factor is not a finite number from MIN_SCALING to
    MAX_SCALING (``1e308`` would score infinity, ``1e-300`` a time of nothing)."""
    path = Path(folder) / SCALING_FILE
    if not os.path.lexists(path):
        return 1.0
    try:
        factor = json.loads(published_files.read_regular(path))["scaling_factor"]
    except published_files.RefusedFile:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f'{path}: expected {{"scaling_factor": <number>}}: {exc}') from None
    if isinstance(factor, bool) or not isinstance(factor, int | float):
        raise ValueError(f"{path}: scaling_factor must be a number, got {factor!r}")
    if not (math.isfinite(factor) and MIN_SCALING <= factor <= MAX_SCALING):
        raise ValueError(
            f"{path}: scaling_factor {factor!r} is not one the RCP checker can give "
            f"(a finite number from {MIN_SCALING:g} to {MAX_SCALING:g})"
        )
    return float(factor)


def system_json(import_dir: Path) -> Path:
    """Where a published system folder's description lies: ``<submitter>/results/<system>``
    is described by ``<submitter>/systems/<system>.json``."""
    folder = Path(import_dir)
    return folder.parent.parent / "systems" / f"{folder.name}.json"


def read_system_json(path: Path) -> dict[str, Any] | None:
    """The system description at ``path``, or None when there is none (v0.6 folders copied
    without their systems/); ValueError names a file that is not a JSON object."""
    path = Path(path)
    if not os.path.lexists(path):
        return None
    if path.parent.is_symlink():
        raise published_files.RefusedFile(f"{path.parent} is a symbolic link: not read")
    try:
        desc = json.loads(published_files.read_regular(path))
    except published_files.RefusedFile:
        raise
    except ValueError as exc:
        raise ValueError(f"{path}: not a JSON system description: {exc}") from None
    if not isinstance(desc, dict):
        raise ValueError(f"{path}: expected a JSON object, found {type(desc).__name__}")
    return desc


def _count(text: Any) -> int | None:
    """A count from a system description: a non-negative integer (or such a number as text),
    else None (``"-1"``, ``2.5``, a list)."""
    if isinstance(text, bool) or not isinstance(text, int | str):
        return None
    try:
        n = int(str(text).strip())
    except ValueError:
        return None
    return n if n >= 0 else None


def _text(value: Any) -> str | None:
    """A text field of a system description: text as it is, a number as text, anything else
    (a mapping, a list) None rather than a Python repr."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def system_columns(desc: Mapping[str, Any] | None) -> dict[str, Any]:
    """summary.csv's system columns as mlperf-logging's result summarizer derives them from a
    systems/<system>.json: submitter, division, accelerator (``_pretty_accelerator_model_name``:
    ``tpu-v3`` is ``TPUv3``), n_accelerators (accelerators_per_node x number_of_nodes), n_nodes
    (number_of_nodes) and framework (``_pretty_framework``: TensorFlow's commit hash left out).
    None for what the description lacks (and for every column without one)."""
    if not desc:
        return dict.fromkeys(SYSTEM_COLUMNS)
    accelerator = _text(desc.get("accelerator_model_name"))
    if accelerator == "tpu-v3":
        accelerator = "TPUv3"
    framework = _text(desc.get("framework"))
    if isinstance(framework, str) and "TensorFlow" in framework:
        framework = re.sub(r" commit hash = .*", "", framework, count=1)
    nodes, per_node = _count(desc.get("number_of_nodes")), _count(desc.get("accelerators_per_node"))
    return {
        "submitter": _text(desc.get("submitter")),
        "division": _text(desc.get("division")),
        "accelerator": accelerator,
        "n_accelerators": nodes * per_node if nodes is not None and per_node is not None else None,
        "n_nodes": nodes,
        "framework": framework,
    }


def published_system(import_dir: Path) -> dict[str, Any] | None:
    """The provenance and summary columns of a system folder's systems/<system>.json, or None
    without one. A file that is not a JSON object is recorded with its ``error`` and empty
    columns: the logs are still imported, as the result summarizer scores them."""
    path = system_json(import_dir)
    try:
        desc = read_system_json(path)
    except (OSError, ValueError) as exc:
        return {
            "path": str(path.resolve()),
            "sha256": _sha256_or_none(path),
            "error": compliance_one_line(str(exc)),
            "system_name": None,
            "status": None,
            **system_columns(None),
        }
    if desc is None:
        return None
    return {
        "path": str(path.resolve()),
        "sha256": hashing.file_sha256(path),
        "system_name": _text(desc.get("system_name")),
        "status": _text(desc.get("status")),
        **system_columns(desc),
    }


def _sha256_or_none(path: Path) -> str | None:
    try:
        return hashing.file_sha256(path)
    except OSError:
        return None


def folder_files(folder: Path) -> list[Path]:
    """What an imported run.json records of a benchmark folder besides its log: the folder's
    scaling.json, the system's systems/<system>.json (they may not exist) and its power files."""
    folder = Path(folder)
    return [folder / SCALING_FILE, system_json(folder.parent), *power.folder_paths(folder)]
