"""Finished runs are sealed: a changed log never silently becomes (or stays) a result.

When a run finishes, its ``run.json`` records the seal of its ``mlperf.log`` (key
``log_seal``: size in bytes, sha256, and the file's mtime in ns), and its ``result.json``
records the sha256 of the log it was parsed from (``log_sha256``). Every invocation checks
every finished run before any job (:func:`check_system`):

- the log's size and mtime are compared with the seal's; only when the mtime differs (same
  size) is the log hashed again, so a touched but identical log passes, and a check of
  10,000 untouched runs is a few stat calls each (``bench/seal_check.py``);
- a log of another size, or of the same size with another sha256, is *tampered*: the
  workflow stops, naming the run, what changed, and the command that redoes it
  (``python -m scripts rerun``, which keeps the old files under
  ``results/archive/``);
- a ``result.json`` that is not valid JSON (half-written), or that was parsed from another log
  than the sealed one, is named and re-parsed from the intact log (no training).

A deleted ``mlperf.log`` is not a seal problem: deleting a run's log is how a user asks for
that run again (:mod:`scripts.campaign.archive`), and the run is redone.

Runs from before sealing (a ``run.json`` without ``log_seal``) are *unsealed*: they keep
working and are not checked (nothing records what their log was), and every invocation says
how many there are and how to seal them: ``python -m scripts seal results/B/S``, which
adds the seal of each one's current log to its ``run.json`` (the user's explicit word that
the logs are intact; the workflow never rewrites a finished run's record by itself).

So that a no-op invocation stays cheap, what was already verified is cached per benchmark and
system in ``.snakemake/seals/<benchmark>/<system>.json``: for each run, the stat (size, mtime,
inode) of its ``run.json`` and the seal read from it, the stat of the log that was last found
intact, and of the ``result.json`` that was last found valid. The cache is derived from the
run folders only (``run.json`` stays the record): a cache entry is used only while the
``run.json`` it was read from is unchanged, and a lost or unreadable cache is rebuilt.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scripts.core import hashing, layout
from scripts.core.formats import CorruptFile, NewerFormat
from scripts.core.run_records import NotAnObject, ResultRecord, RunRecord

SEAL_KEY = "log_seal"
RESULT_KEY = "log_sha256"
LOG = "mlperf.log"
CACHE_FORMAT = 1


class SealError(RuntimeError):
    """A log that kept changing while it was sealed (something still writes to it)."""


sha256_file = hashing.file_sha256  # the name tests/test_seals.py uses


def seal(log: Path) -> dict[str, Any]:
    """The seal of a finished run's log: its size, sha256 and mtime (ns)."""
    before = log.stat()
    digest = sha256_file(log)
    after = log.stat()
    if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns):
        raise SealError(
            f"{log} changed while it was being sealed: a process of the run still writes to it"
        )
    return {"size": after.st_size, "sha256": digest, "mtime_ns": after.st_mtime_ns}


def add_seal(meta: RunRecord, log: Path) -> RunRecord:
    """``meta`` with the seal of ``log`` (``log_seal``)."""
    return meta.updated(log_seal=seal(log))


def parsed_from(log: Path, meta: RunRecord) -> str:
    """The sha256 of the log a result is parsed from: the seal's when the log's size and mtime
    still are the sealed ones (no second read of the log in the run's own job)."""
    sealed = meta.log_seal
    if isinstance(sealed, Mapping):
        st = log.stat()
        if (st.st_size, st.st_mtime_ns) == (sealed.get("size"), sealed.get("mtime_ns")):
            return str(sealed["sha256"])
    return sha256_file(log)


def verify_log(
    log: Path, sealed: Mapping[str, Any], verified: Sequence[int] | None = None
) -> tuple[str | None, list[int] | None]:
    """(what changed, or None; the log's [size, mtime_ns] when it was hashed and found intact).

    Cheap first: a log of the sealed size and mtime (or the ``verified`` size and mtime of a
    log that was hashed before) is intact without reading it. A missing log is not checked
    here (a deleted log asks for the run again)."""
    st = log.stat()
    changed = f"{LOG} changed since the run finished"
    if st.st_size != sealed["size"]:
        return f"{changed}: it is {st.st_size} bytes, sealed at {sealed['size']} bytes", None
    stat_now = [st.st_size, st.st_mtime_ns]
    if st.st_mtime_ns == sealed.get("mtime_ns") or (
        verified is not None and list(verified) == stat_now
    ):
        return None, None
    if sha256_file(log) != sealed["sha256"]:
        return f"{changed}: its sha256 is not the sealed one (same size, {st.st_size} bytes)", None
    return None, stat_now


def rerun_command(benchmark: str, system: str, run_id: str) -> str:
    return f"python -m scripts rerun {benchmark} {system} {layout.parse_run_id(run_id)}"


@dataclass
class SystemCheck:
    """What :func:`check_system` found for one benchmark and system."""

    benchmark: str
    system: str
    tampered: dict[str, str] = field(default_factory=dict)  # run id -> what changed
    corrupt_results: dict[str, str] = field(default_factory=dict)  # run id -> why
    unsealed: list[str] = field(default_factory=list)  # run ids from before sealing

    def run_dir(self, root: Path, run: str) -> Path:
        return layout.run_dir(root, self.benchmark, self.system, run)


def _stat_key(path: Path) -> list[int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def cache_path(root: Path, benchmark: str, system: str) -> Path:
    return root / ".snakemake" / "seals" / benchmark / f"{system}.json"


def _is_seal(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("size"), int)
        and isinstance(value.get("mtime_ns"), int)
        and isinstance(value.get("sha256"), str)
    )


def _load_cache(path: Path) -> dict[str, Any]:
    """The cache's entries; anything that is not an entry is dropped (and checked again)."""
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return {}
    if not isinstance(data, dict) or data.get("format_version") != CACHE_FORMAT:
        return {}
    runs = data.get("runs")
    if not isinstance(runs, dict):
        return {}
    return {
        run: entry
        for run, entry in runs.items()
        if isinstance(entry, dict)
        and isinstance(entry.get("meta"), list)
        and all(_is_stamp(entry.get(k)) for k in ("log", "result"))
        and (entry.get("seal") is None or _is_seal(entry["seal"]))
    }


def _is_stamp(value: Any) -> bool:
    """A cached stat of a file (a list of ints), or nothing cached."""
    return value is None or (isinstance(value, list) and all(type(v) is int for v in value))


def _save_cache(path: Path, runs: Mapping[str, Any]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        hashing.write_atomic(path, json.dumps({"format_version": CACHE_FORMAT, "runs": runs}))
    except OSError:
        pass  # a cache: the next invocation checks again


def _check_result(result: Path, sealed: Mapping[str, Any] | None) -> str | None:
    """Why a run's result.json must be parsed again from its log, or None."""
    try:
        recorded = ResultRecord.read(result).log_sha256
    except CorruptFile as exc:  # NotAnObject too: "<path> is not a JSON object"
        return str(exc)
    if sealed is not None and recorded is not None and recorded != sealed["sha256"]:
        return f"{result} was parsed from another log than the sealed {LOG}"
    return None


def check_run(
    run_dir: Path, entry: Mapping[str, Any] | None
) -> tuple[str, str | None, dict[str, Any] | None]:
    """One finished run: (state, detail, new cache entry or None for no finished run).

    state: ``ok``, ``unsealed`` (from before sealing: its log is not checked), ``tampered``
    (detail: what changed) or ``corrupt_result`` (detail: why result.json is parsed again)."""
    meta_key = _stat_key(run_dir / "run.json")
    if meta_key is None:
        return "ok", None, None  # not finished
    entry = dict(entry) if entry and entry.get("meta") == meta_key else None
    if entry is None:
        try:
            sealed = RunRecord.read(run_dir / "run.json").log_seal
        except NotAnObject:
            sealed = None  # nothing records what its log was: unsealed
        except CorruptFile as exc:
            return "tampered", str(exc).replace(f"{run_dir}/", "", 1), None
        if sealed is not None and not _is_seal(sealed):
            return "tampered", f"run.json's {SEAL_KEY} is not a seal: {str(sealed)[:100]}", None
        entry = {"meta": meta_key, "seal": sealed}
    sealed = entry["seal"]
    if sealed is not None:
        try:
            changed, verified = verify_log(run_dir / LOG, sealed, entry.get("log"))
        except FileNotFoundError:
            return "ok", None, entry  # deleted: the run is redone (scripts/campaign/preflight.py)
        if changed:
            return "tampered", changed, {k: v for k, v in entry.items() if k in ("meta", "seal")}
        if verified is not None:
            entry["log"] = verified
    result_key = _stat_key(run_dir / "result.json")
    if result_key is not None and entry.get("result") != result_key:
        why = _check_result(run_dir / "result.json", sealed)
        if why:
            entry.pop("result", None)
            return "corrupt_result", why, entry
        entry["result"] = result_key
    return ("ok" if sealed is not None else "unsealed"), None, entry


def _unchanged(base: str, entry: Mapping[str, Any]) -> str | None:
    """The state (``ok`` or ``unsealed``) of a run that is as the cache ``entry`` last found
    it, or None: a few os.stat calls on strings (pathlib would double the cost of a check of
    10,000 runs)."""
    try:
        meta = os.stat(base + "run.json")
    except FileNotFoundError:
        return None
    if [meta.st_size, meta.st_mtime_ns, meta.st_ino] != entry.get("meta"):
        return None
    sealed = entry.get("seal")
    if sealed is not None:
        try:
            log = os.stat(base + LOG)
        except FileNotFoundError:
            return None
        if log.st_size != sealed["size"]:
            return None
        if log.st_mtime_ns != sealed["mtime_ns"] and [log.st_size, log.st_mtime_ns] != entry.get(
            "log"
        ):
            return None
    try:
        result = os.stat(base + "result.json")
    except FileNotFoundError:
        result = None  # not parsed yet (the workflow parses it)
    if result is not None and [result.st_size, result.st_mtime_ns, result.st_ino] != entry.get(
        "result"
    ):
        return None
    return "ok" if sealed is not None else "unsealed"


def check_system(
    root: Path, benchmark: str, system: str, runs: Iterable[str], *, use_cache: bool = True
) -> SystemCheck:
    """Check the seals of every finished run of one benchmark and system (see the module
    docstring); reads and updates the cache unless ``use_cache`` is false."""
    found = SystemCheck(benchmark, system)
    if not (root / "results" / benchmark / system).is_dir():
        return found  # no run of it yet: nothing sealed (one stat, not one per run)
    path = cache_path(root, benchmark, system)
    cache = _load_cache(path) if use_cache else {}
    new: dict[str, Any] = {}
    prefix = f"{root}/results/{benchmark}/{system}/run_"
    for run in runs:
        entry = cache.get(run)
        state = _unchanged(f"{prefix}{run}/", entry) if entry is not None else None
        if state is not None:
            detail = None
        else:
            state, detail, entry = check_run(found.run_dir(root, run), entry)
        if entry is not None:
            new[run] = entry
        if state == "tampered":
            found.tampered[run] = detail or ""
        elif state == "corrupt_result":
            found.corrupt_results[run] = detail or ""
        elif state == "unsealed":
            found.unsealed.append(run)
    if use_cache and new != cache:
        _save_cache(path, new)
    return found


def tampered_message(checks: Sequence[SystemCheck]) -> str | None:
    """The one message that stops the workflow, or None when no finished run changed."""
    lines = []
    for c in checks:
        for run, what in sorted(c.tampered.items()):
            lines.append(
                f"results/{c.benchmark}/{c.system}/run_{run}: {what}\n"
                f"    restore it, or redo the run (its old files are kept under "
                f"results/archive/): {rerun_command(c.benchmark, c.system, run)}"
            )
    if not lines:
        return None
    return "finished runs were changed after they finished; nothing was run:\n  " + "\n  ".join(
        lines
    )


def unsealed_message(checks: Sequence[SystemCheck]) -> str | None:
    parts = [f"results/{c.benchmark}/{c.system} ({len(c.unsealed)})" for c in checks if c.unsealed]
    if not parts:
        return None
    commands = "; ".join(
        f"python -m scripts seal results/{c.benchmark}/{c.system}" for c in checks if c.unsealed
    )
    return (
        f"finished runs from before sealing are not checked for changes: {', '.join(parts)}. "
        f"If their logs are intact, seal them: {commands}"
    )


def seal_folder(folder: Path) -> list[Path]:
    """Add the seal of its current log to every unsealed finished run under ``folder`` (a
    system's results folder or one run's); returns the run.json files it changed."""
    metas = [folder / "run.json"] if (folder / "run.json").exists() else []
    metas += sorted(folder.glob("run_*/run.json"))
    changed = []
    for meta_path in metas:
        try:
            meta = RunRecord.read(meta_path)
        except NotAnObject:
            continue
        if meta.has(SEAL_KEY) or not (meta_path.parent / LOG).exists():
            continue
        add_seal(meta, meta_path.parent / LOG).write(meta_path)
        changed.append(meta_path)
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m scripts",
        description="Seal finished runs from before sealing (their current logs are taken as "
        "intact).",
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("seal", help="add the log's seal to each unsealed run.json")
    s.add_argument("folders", type=Path, nargs="+", help="e.g. results/gnmt/local")
    args = p.parse_args(argv)
    for folder in args.folders:
        if not folder.is_dir():
            print(f"error: {folder} is not a folder", file=sys.stderr)
            return 1
        try:
            changed = seal_folder(folder)
        except (CorruptFile, NewerFormat, OSError, SealError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"{folder}: sealed {len(changed)} run(s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
