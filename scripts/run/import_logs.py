"""The ``import`` backend: runs of a system are existing MLPerf result logs.

A published MLPerf submission keeps each benchmark's runs as ``result_<N>.txt`` in one folder
per system and benchmark (``training_results_v0.6/NVIDIA/results/dgx1_ngc19.05_pytorch/gnmt/``).
An import system points ``import_dir`` at the system folder; run NN of a benchmark is the NN-th
``result_*.txt`` of ``<import_dir>/<mlperf_name>/`` in the order of N (``result_0.txt`` is run
01). Importing a run copies the log to the run's ``mlperf.log`` (so the results folder stays
complete when the source moves) and writes its ``run.json`` with where it came from: the source
path and sha256, and the submission's own description of the system (``submission_org``,
``submission_platform``, ``submission_entry``...). From there a run is parsed, collected and
scored exactly like a run made here.

A log that is not a valid MLPerf log of a finished run
(:func:`scripts.mlperf.log_validity.log_problems`:
random bytes, no run_start, run_stop before run_start ...) is still imported: it becomes a run
without a result (not converged, no time), named in runs.csv's ``log_problems``, as
mlperf-logging's result summarizer counts a log that fails the compliance check (dropped as the
slowest run; more than one makes the score invalid). The source is read in blocks, never whole.

The workflow imports every run of a benchmark's import systems in one job
(``python -m scripts import batch --plan PLAN --workers N``, :func:`import_batch`): a
process per log cost about 0.17 s of start-up against 25 ms of work (copy, parse, the
compliance checker, result.json), so a round of 1,500 logs was mostly Python starting. The
plan (:func:`batch_plan`, written by ``rules/import.smk``) lists each run's source, folder and
specification; the logs are shared out over ``--workers`` processes.
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import datetime as dt
import fnmatch
import hashlib
import json
import math
import multiprocessing
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from scripts.core import formats, hashing, published_files
from scripts.core.config import WORKFLOW_DIR
from scripts.core.layout import RESULT_FILE_RE, benchmark_folder, result_files  # noqa: F401 (names of the import backend)
from scripts.mlperf import power, rounds
from scripts.mlperf.compliance import one_line as compliance_one_line
from scripts.mlperf.log_events import ParsedLog
from scripts.mlperf.log_parser import parse_file
from scripts.mlperf.log_validity import other_benchmark_problem
from scripts.mlperf.outcome import _as_int
from scripts.run import seals
from scripts.run.result_json import add_result_arguments, write_result, write_result_if_asked

Parsed = ParsedLog | None  # a log parsed already, or None
SCALING_FILE = "scaling.json"  # the RCP scaling factor of a result folder (v1.0 on)
# summary.csv's columns from the submission's systems/<system>.json (system_columns)
SYSTEM_COLUMNS = ("submitter", "division", "accelerator", "n_accelerators", "n_nodes", "framework")
# NVIDIA's run scripts print the node they ran on
_HOST_RE = re.compile(rb"^(?:Gathering sys log on|Clearing cache on|Launching on node) (\S+)", re.M)
BLOCK_BYTES = 4 << 20
LITERAL_MAX_CHARS = 64 << 10  # a longer submission_entry stays text
SUBMISSION_KEYS = ("org", "platform", "division", "status", "benchmark", "poc_name")


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


def source_of(folder: Path, run: int) -> Path:
    """The log of run ``run`` (1-based) in ``folder``."""
    files = result_files(folder)
    if not 1 <= run <= len(files):
        raise FileNotFoundError(
            f"{folder} has {len(files)} result_*.txt files, so no run {run}; was a file removed?"
        )
    return files[run - 1]


def _literal(value: Any) -> Any:
    """v0.6 logs write submission_entry as the repr of a Python dict, nested dicts as repr
    strings again: decode what decodes, keep the rest as text."""
    if isinstance(value, str) and value[:1] in "{[" and len(value) <= LITERAL_MAX_CHARS:
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError, RecursionError, MemoryError, TypeError):
            return value
    if isinstance(value, dict):
        return {str(k): _literal(v) for k, v in value.items()}
    return value


def submission(parsed: ParsedLog) -> dict[str, Any]:
    """What the log says about the submission and its system (v0.6 ``submission_*`` events)."""
    info: dict[str, Any] = {}
    for key in SUBMISSION_KEYS:
        ev = parsed.first(f"submission_{key}")
        if ev is not None and ev.value is not None:
            info[key] = ev.value
    entry = parsed.first("submission_entry")
    if entry is not None and entry.value is not None:
        info["entry"] = _literal(entry.value)
    return info


def import_run(
    source: Path, spec: dict[str, Any], log_path: Path, meta_path: Path, *, parsed: Parsed = None
) -> dict:
    """Copy one published log to ``log_path`` and write its ``run.json`` to ``meta_path``.

    ``spec`` holds benchmark, system, run, scale, mlperf_name, config_fingerprint and
    comparability (scripts/workflow/rule_inputs.py), and optionally the benchmark's ``mlperf``
    section
    (round, ruleset, olympic_drop). A log whose ``submission_benchmark`` is neither the
    benchmark's ``mlperf_name`` nor one of its ``folder_aliases`` (Google's v0.6 ``mask``
    logs of maskrcnn) is imported with that in run.json's ``import_problems``: the log of
    another benchmark is a run without a result (:mod:`scripts.run.result_json`), and the
    folder's other runs still count.

    run.json also records what scores the run as the result summarizer does: the folder's
    ``rcp_scaling_factor`` (scaling.json, 1.0 without), the benchmark's ``olympic_drop``, and
    the published system description (``system_json``: its path, sha256 and the summary
    columns of :func:`system_columns`; None without a systems/<system>.json). ``parsed``:
    the copy's :class:`ParsedLog`, when the caller parsed it already.

    The source is read as data (:mod:`scripts.core.published_files`): a link, FIFO, device or a
    log over MAX_LOG_BYTES raises :class:`scripts.core.published_files.RefusedFile` before anything
    is written; the copy is what is parsed and hashed. A scaling.json that cannot be a factor
    is an ``import_problems`` entry (the run has no result); a folder whose number of logs is
    not the benchmark's run count (``spec["expected_runs"]``) an ``import_notes`` entry."""
    return import_copy(source, spec, log_path, meta_path, parsed=parsed)[0]


def import_copy(
    source: Path, spec: dict[str, Any], log_path: Path, meta_path: Path, *, parsed: Parsed = None
) -> tuple[dict[str, Any], ParsedLog]:
    """:func:`import_run`, and the copied log parsed (the batch parses each log once)."""
    digest = published_files.copy_regular(source, log_path)
    parsed = parse_file(log_path) if parsed is None else parsed
    info = submission(parsed)
    problems = _benchmark_problems(info, spec)
    try:
        factor = scaling_factor(source.parent)
    except ValueError as exc:
        factor = 1.0
        problems.append(f"{exc}: no run of this folder has a result")
    start = parsed.first("run_start")
    seed = parsed.first("seed")
    host = _host_of(log_path)  # the copy's sha256 is copy_regular's
    meta = {
        "format_version": formats.version("run.json"),
        "benchmark": spec["benchmark"],
        "system": spec["system"],
        "run": spec["run"],
        "backend": "import",
        "seed": _as_int(seed.value) if seed is not None else _seed_of_result_line(parsed),
        "scale": spec["scale"],
        "command": None,
        "host": host,
        "started_utc": _utc(start.time_s) if start else None,
        "wall_s": None,
        "source": str(source.resolve()),
        "source_sha256": digest,
        "submission": info,
        "rcp_scaling_factor": factor,
        "olympic_drop": int((spec.get("mlperf") or {}).get("olympic_drop", 1)),
        "mlperf": dict(spec.get("mlperf") or {}),
        "system_json": published_system(source.parent.parent),
        "power": power.result_power(source),  # None without power/ (scripts/mlperf/power.py)
        "config_fingerprint": spec["config_fingerprint"],
        "comparability": spec["comparability"],
        "import_problems": problems,
        "import_notes": _count_notes(source.parent, spec),
    }
    fingerprinted = {"config_fingerprint": spec["config_fingerprint"]}
    meta["fingerprint"] = hashing.canonical_sha256(fingerprinted)
    seals.add_seal(meta, log_path)  # the imported copy is sealed like a run made here
    hashing.write_json(meta_path, meta, sort_keys=True)
    return meta, parsed


def _count_notes(folder: Path, spec: Mapping[str, Any]) -> list[str]:
    """A note when the folder holds another number of logs than the benchmark's run count:
    the package checker requires exactly that many (``package_checker``: "Incorrect number of
    files in dir"); the summarizer scores them all, and so does the workflow."""
    expected = spec.get("expected_runs")
    found = len(result_files(folder))
    if not isinstance(expected, int) or found == expected:
        return []
    return [
        f"{folder} holds {found} result_*.txt files; mlperf-logging's package checker requires "
        f'exactly {expected} for this benchmark ("Incorrect number of files in dir"); all '
        f"{found} are scored, as the result summarizer scores them"
    ]


def _benchmark_problems(info: Mapping[str, Any], spec: Mapping[str, Any]) -> list[str]:
    """Why a log is not one of the benchmark it is imported as: its submission_benchmark is
    neither the mlperf_name nor a folder alias (:func:`scripts.mlperf.log_validity.other_benchmark`,
    the one comparison, for runs made here too)."""
    names = [spec.get("mlperf_name"), *(spec.get("folder_aliases") or [])]
    problem = other_benchmark_problem(info.get("benchmark"), str(spec["benchmark"]), names)
    return [f"{problem} (check import_dir)"] if problem else []


def unreadable_run(
    source: Path, spec: Mapping[str, Any], log_path: Path, meta_path: Path, why: str
) -> dict[str, Any]:
    """The run of a published log that cannot be read (gone since the plan was made, no
    permission, not a regular file): an empty ``mlperf.log`` and a run.json whose
    ``import_problems`` say why, so the run is one without a result and the folder's other
    runs are imported and scored."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    hashing.write_atomic(log_path, "")
    meta: dict[str, Any] = {
        "format_version": formats.version("run.json"),
        **{k: spec[k] for k in ("benchmark", "system", "run", "scale")},
        "backend": "import",
        "seed": None,
        "command": None,
        "host": None,
        "started_utc": None,
        "wall_s": None,
        "source": str(source),
        "source_sha256": None,
        "submission": {},
        "rcp_scaling_factor": 1.0,
        "olympic_drop": int((spec.get("mlperf") or {}).get("olympic_drop", 1)),
        "mlperf": dict(spec.get("mlperf") or {}),
        "system_json": None,
        "config_fingerprint": spec["config_fingerprint"],
        "comparability": spec["comparability"],
        "import_problems": [f"the published log is not read: {why}"],
        "fingerprint": hashing.canonical_sha256({"config_fingerprint": spec["config_fingerprint"]}),
    }
    seals.add_seal(meta, log_path)
    hashing.write_json(meta_path, meta, sort_keys=True)
    return meta


def folder_files(folder: Path) -> list[Path]:
    """What an imported run.json records of a benchmark folder besides its log: the folder's
    scaling.json, the system's systems/<system>.json (they may not exist) and its power files."""
    folder = Path(folder)
    return [folder / SCALING_FILE, system_json(folder.parent), *power.folder_paths(folder)]


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


def _host_of(log: Path) -> str | None:
    """The node NVIDIA's run script names (first match) in ``log``, read in blocks of
    BLOCK_BYTES until it is found (a line cut by a block boundary is searched whole)."""
    host: str | None = None
    carry = b""
    in_long_line = False  # a line longer than 4 KiB is not the host line: skip it
    with log.open("rb") as fh:
        while host is None and (block := fh.read(BLOCK_BYTES)):
            if in_long_line:
                nl = block.find(b"\n")
                if nl < 0:
                    continue
                block, in_long_line = block[nl + 1 :], False
            buf = carry + block
            last = buf.rfind(b"\n")
            whole, carry = (buf[: last + 1], buf[last + 1 :]) if last >= 0 else (b"", buf)
            if len(carry) > 4096:
                carry, in_long_line = b"", True
            found = _HOST_RE.search(whole)
            if found:
                host = found.group(1).decode("utf-8", "replace")
    if host is None and carry:
        found = _HOST_RE.search(carry)
        host = found.group(1).decode("utf-8", "replace") if found else None
    return host


def _utc(seconds: float) -> str | None:
    """ISO time of an epoch time from a log, or None when it is not a date (year 1 to 9999)."""
    try:
        return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat()
    except (OverflowError, ValueError, OSError):
        return None


def _seed_of_result_line(parsed: ParsedLog) -> int | None:
    return _as_int(parsed.result_line.seed) if parsed.result_line is not None else None


# ---------------------------------------------------------------------------------------------
# A whole published round as a config overlay: one import system per system folder


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
    same name (``nyx_n1`` and ``nyx.n1``): :func:`build_overlay` refuses both."""
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
                f"{both} both give the system name {name!r} (scripts/run/import_logs.py "
                "system_name): none of them is imported; import each with --system"
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


# ---------------------------------------------------------------------------------------------
# Every run of a benchmark's import systems in one job

PLAN_FORMAT = 1  # the batch plan's own version (rules/import.smk writes it, this reads it)
RUN_FILES = ("mlperf.log", "run.json", "result.json")  # what importing a run writes


def batch_plan(
    benchmark: str,
    bench: Mapping[str, Any],
    runs: Sequence[tuple[Path, str, dict[str, Any]]],
    *,
    compliance_ruleset: str | None,
    compliance_cache: str | None,
    sources: str = "",
) -> dict[str, Any]:
    """The plan of one batch job: the benchmark's quality, time-to-train event, MLPerf section
    and compliance ruleset, and per run (source, run folder, specification as
    :func:`import_run` takes it, without the mlperf section). ``sources``: a digest of what
    the runs are read from (the rules' plan file is named by its content, so a changed log
    gives another file)."""
    return {
        "format": PLAN_FORMAT,
        "benchmark": benchmark,
        "sources": sources,
        "quality": dict(bench["quality"]),
        "time_to_train": bench["log"]["time_to_train"],
        "mlperf": dict(bench.get("mlperf") or {}),
        "compliance_ruleset": compliance_ruleset,
        "compliance_cache": compliance_cache,
        "runs": [{"source": str(src), "dir": run_dir, "spec": spec} for src, run_dir, spec in runs],
    }


def read_plan(path: Path) -> dict[str, Any]:
    """A batch plan; ValueError names the file when it is not one this code reads."""
    try:
        plan = json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not a batch plan (not JSON: {exc})") from None
    if not isinstance(plan, dict) or plan.get("format") != PLAN_FORMAT:
        raise ValueError(f"{path}: not a batch plan of format {PLAN_FORMAT}")
    return plan


def _import_one(task: tuple[Mapping[str, Any], Mapping[str, Any]]) -> dict[str, Any]:
    """Import one run of a plan and write its result.json: a summary line's facts, or
    ``error`` (the log cannot be read, or is another benchmark's) instead."""
    plan, run = task
    source, run_dir = Path(run["source"]), Path(run["dir"])
    spec = {**run["spec"], "mlperf": plan["mlperf"]}
    log, meta = run_dir / RUN_FILES[0], run_dir / RUN_FILES[1]
    try:
        try:
            parsed: Parsed = import_copy(source, spec, log, meta)[1]  # parsed once: the copy
        except published_files.RefusedFile as exc:  # a run without a result; the batch goes on
            parsed = None
            unreadable_run(source, spec, log, meta, str(exc))
        except OSError as exc:
            parsed = None
            unreadable_run(source, spec, log, meta, f"{source}: {exc.strerror or exc}")
        result = write_result(
            log,
            meta,
            plan["quality"],
            plan["time_to_train"],
            run_dir / RUN_FILES[2],
            compliance_ruleset=plan["compliance_ruleset"],
            compliance_cache=Path(plan["compliance_cache"]) if plan["compliance_cache"] else None,
            parsed=parsed,
        )
    except (OSError, ValueError) as exc:
        return {"dir": str(run_dir), "error": f"{source}: {exc}"}
    return {
        "dir": str(run_dir),
        "converged": result["converged"],
        "time_to_train_s": result["time_to_train_s"],
        "compliance": result["compliance"],
        "compliance_detail": result["compliance_detail"],
        "log_problems": result["log_problems"],
    }


def import_batch(
    plan: Mapping[str, Any], *, workers: int = 1, progress: Callable[[str], None] = print
) -> list[dict[str, Any]]:
    """Import every run of ``plan`` (:func:`batch_plan`), over ``workers`` processes (forked,
    so each starts with this one's imports); one progress line per run, in plan order. Returns
    each run's facts (see :func:`_import_one`); a run that failed has ``error`` and the others
    are still imported."""
    tasks = [(plan, run) for run in plan["runs"]]
    n = len(tasks)
    if workers > 1 and n > 1:
        context = multiprocessing.get_context("fork")
        with concurrent.futures.ProcessPoolExecutor(min(workers, n), mp_context=context) as pool:
            chunk = max(1, n // (4 * workers))
            outcomes = pool.map(_import_one, tasks, chunksize=chunk)
            return [_progress(i, n, o, progress) for i, o in enumerate(outcomes, start=1)]
    return [_progress(i, n, _import_one(t), progress) for i, t in enumerate(tasks, start=1)]


def _progress(
    i: int, n: int, outcome: dict[str, Any], progress: Callable[[str], None]
) -> dict[str, Any]:
    if "error" in outcome:
        line = f"error: {outcome['error']}"
    else:
        state = "converged" if outcome["converged"] else "did NOT converge"
        line = f"{state}, time to train {outcome['time_to_train_s']} s"
        if outcome.get("log_problems"):
            line += f"; no result: {outcome['log_problems'][0]}"
        elif outcome["compliance"] == "fail":
            line += f"; fails the compliance check: {outcome['compliance_detail']}"
    progress(f"[{i}/{n}] {outcome['dir']}: {line}")
    return outcome


def batch_main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(
        prog="python -m scripts import batch",
        description="Import every run of a batch plan (rules/import.smk writes one per "
        "benchmark): copy each log, write its run.json and result.json.",
    )
    p.add_argument("--plan", type=Path, required=True, help="the batch plan (JSON)")
    p.add_argument("--workers", type=int, default=1, help="processes to share the logs over")
    args = p.parse_args(argv)
    if args.workers < 1:
        p.error("--workers must be at least 1")
    try:
        plan = read_plan(args.plan)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    outcomes = import_batch(plan, workers=args.workers, progress=lambda s: print(s, flush=True))
    failed = [o for o in outcomes if "error" in o]
    for o in failed:
        print(f"error: {o['error']}", file=sys.stderr)
    print(f"{plan['benchmark']}: {len(outcomes) - len(failed)} of {len(outcomes)} runs imported")
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["overlay"]:
        return overlay_main(argv[1:])
    if argv[:1] == ["batch"]:
        return batch_main(argv[1:])
    p = argparse.ArgumentParser(
        prog="python -m scripts import",
        description="Import one published MLPerf result log as a run of an import system "
        "(or: python -m scripts import overlay --help, batch --help).",
    )
    p.add_argument("--source", type=Path, required=True, help="the published result_N.txt")
    p.add_argument("--spec", required=True, help="the run's specification as JSON")
    p.add_argument("--mlperf-json", default="{}", help="the benchmark's mlperf section as JSON")
    p.add_argument("--log", type=Path, required=True, help="the run's mlperf.log to write")
    p.add_argument("--meta", type=Path, required=True, help="the run's run.json to write")
    add_result_arguments(p)
    args = p.parse_args(argv)
    spec = {**json.loads(args.spec), "mlperf": json.loads(args.mlperf_json)}
    try:
        meta = import_run(args.source, spec, args.log, args.meta)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    platform = meta["submission"].get("platform", "?")
    print(f"run {spec['run']}: imported {args.source} ({platform})")
    write_result_if_asked(args, args.log, args.meta)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
