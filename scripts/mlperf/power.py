"""Energy of a published MLPerf Training power result, scored as mlperf-logging's result
summarizer scores it (MLPerf Training power, since v4.0; docs DESIGN.md section 10).

A benchmark folder ``<submitter>/results/<system>/<benchmark>/`` whose ``power/`` folder exists
holds, per result file ``result_N.txt``, a folder ``power/<result name>/`` (the result name is
the file's name up to its first ``.``) of ``node_K.txt`` files (one per node) and ``sw_K.txt``
files (one per switch), each a file of ``:::MLLOG`` lines: ``power_measurement_start``,
``power_measurement_stop``, ``conversion_eff``, ``power_reading`` (watts) and
``interconnect_power_est`` (a switch's watts).

The import records per run the *facts* of each file (:func:`read_power_file`): what the
summarizer's ``_compute_power_node`` or ``_compute_power_sw`` computes before it multiplies by
the time to train (the integral of the readings over the window and the window, or the
switch's estimate, and the conversion efficiency). :func:`energy_j` then gives the run's
energy for any time to train with the summarizer's own operations in its order, and
:func:`olympic_energy_j` the folder's energy score (``_index_olympic_average``). The package
checker's power rules (``package_checker/power_checker.py``) and what keeps the summarizer from
scoring a file are named problems (strings starting with ``power:``); they never change
whether a run converged (the summarizer scores time regardless).

The files are data: only regular files inside the folder are read (a symbolic link, FIFO,
device or folder where a file should be is refused, never opened, so nothing blocks), each at
most :data:`MAX_FILE_BYTES`, and a folder of at most :data:`MAX_ENTRIES` entries is listed.

The reference is mlperf-logging 4.1.68 (``result_summarizer.py``: ``_has_power``,
``_compute_total_power``, ``_compute_power_node``, ``_compute_power_sw``,
``_compute_strong_score_standalone``, ``_index_olympic_average``). Its power files are read by
its own parser (``compliance_checker/mlp_parser``): a line holding ``:::MLLOG `` is cut to what
follows the line's last marker and read with ``json.loads``; ``float(time_ms)`` is the time in
milliseconds, kept here as that float (the project's log parser keeps seconds, which cannot give
the milliseconds back exactly), so every sum is the summarizer's, bit for bit.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import math
import os
import re
import stat
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from scripts.core import published_files
from scripts.core.layout import result_files

__all__ = [
    "MAX_ENTRIES",
    "MAX_FILE_BYTES",
    "POWER_DIR",
    "PowerError",
    "energy_j",
    "folder_paths",
    "has_power",
    "olympic_energy_j",
    "read_power_file",
    "result_name",
    "result_power",
    "result_fields",
    "time_to_train_ms",
]

POWER_DIR = "power"
# A node file holds one line of about 270 bytes per reading: at 1 Hz, 64 MiB is 69 hours of
# training (the longest published runs take a few hours); a larger file is refused, not read.
MAX_FILE_BYTES = 64 << 20
# Entries listed in one power folder (nodes plus switches of one run, or the runs of a
# benchmark folder); the largest published systems have a few hundred nodes.
MAX_ENTRIES = 16384
TOKEN = ":::MLLOG "  # mlp_parser's TOKEN
KINDS = ("node", "sw")
# the summarizer's globs (power/<result>/node_*.txt and sw_*.txt)
GLOBS = {"node": "node_*.txt", "sw": "sw_*.txt"}
KEYS = (
    "power_measurement_start",
    "power_measurement_stop",
    "conversion_eff",
    "power_reading",
    "interconnect_power_est",
)
_NEWLINE = re.compile(r"\r\n|\r|\n")  # Python's universal newlines, as open() reads text


class PowerError(ValueError):
    """A power file that is not read: not a regular file, too large, or unreadable."""


def result_name(result_file: str | os.PathLike[str]) -> str:
    """A result file's name up to its first ``.`` (``result_0.txt`` -> ``result_0``), as
    ``_compute_total_power`` names its power folder."""
    return Path(result_file).name.split(".")[0]


def has_power(benchmark_folder: Path) -> bool:
    """Whether the folder has a ``power`` sub-folder (``_has_power``: a folder, symbolic links
    followed as ``os.path.isdir`` follows them; a link is refused later, by name)."""
    return (Path(benchmark_folder) / POWER_DIR).is_dir()


def _list_dir(folder: Path, rel: str) -> list[os.DirEntry[str]]:
    """The entries of a real folder (not a link to one), sorted by name; PowerError when it is
    not one or holds more than MAX_ENTRIES."""
    st = os.lstat(folder)
    if not stat.S_ISDIR(st.st_mode):
        raise PowerError(f"{rel} is {published_files.kind_of(st.st_mode)}, not a folder: not read")
    entries: list[os.DirEntry[str]] = []
    with os.scandir(folder) as it:
        for entry in it:
            entries.append(entry)
            if len(entries) > MAX_ENTRIES:
                raise PowerError(f"{rel} holds more than {MAX_ENTRIES} entries: not read")
    return sorted(entries, key=lambda e: e.name)


def _read_bytes(path: Path, rel: str) -> bytes:
    """The bytes of a regular file of at most MAX_FILE_BYTES, read as every published file is
    (:func:`scripts.core.published_files.read_regular`: no link, FIFO or device, never blocking)."""
    try:
        return published_files.read_regular(path, MAX_FILE_BYTES, name=rel, what="a power file")
    except published_files.RefusedFile as exc:
        raise PowerError(str(exc)) from None


Line = tuple[float, str, Any, int]  # (time_ms, key, value, 1-based line number)


def _lines(text: str, rel: str) -> tuple[list[Line], list[str]]:
    """The power events of a file's text as mlp_parser reads them (``parse_generator``), and
    what the summarizer could not read: a line it stops at (a field missing, a time that is
    not a number, a payload that is not an object) or a time that is not finite. Lines it
    skips (``json.loads`` or ``float`` raising ValueError) are skipped here too."""
    events: list[Line] = []
    problems: list[str] = []
    for n, line in enumerate(_NEWLINE.split(text), start=1):
        at = line.rfind(TOKEN)
        if at < 0:
            continue
        try:
            rec = json.loads(line[at + len(TOKEN) :].strip())
        except ValueError:
            continue  # mlp_parser's "failed" lines: skipped
        except RecursionError:  # the summarizer stops here
            problems.append(f"{rel} line {n}: a payload nested too deep to read")
            continue
        try:
            t_ms = float(rec["time_ms"])
            key, value = rec["key"], rec["value"]
            rec["metadata"]  # noqa: B018 (mlp_parser reads it: a line without it stops it)
        except ValueError:
            continue  # float("1.2.3"): a "failed" line
        except (KeyError, TypeError, IndexError, OverflowError):
            problems.append(f"{rel} line {n}: not a power event the summarizer can read")
            continue
        if not math.isfinite(t_ms):
            problems.append(f"{rel} line {n}: time_ms {rec['time_ms']!r} is not finite")
            continue
        if key in KEYS:
            events.append((t_ms, key, value, n))
    return events, problems


def _number(value: Any) -> float | int | None:
    """A finite JSON number (the summarizer multiplies it as it is: an int stays an int), or
    None for anything else (a string, null, an int too large for a float)."""
    if not isinstance(value, int | float):
        return None
    try:
        return value if math.isfinite(value) else None
    except OverflowError:
        return None


def _node(events: list[Line], rel: str) -> tuple[dict[str, Any], list[str]]:
    """The facts of a node file: ``_compute_power_node`` up to its last line. Its lines are
    stably sorted by time; a reading counts after a ``power_measurement_start`` and before a
    ``power_measurement_stop`` (weighted by the time since the previous start or reading);
    the last ``conversion_eff`` wins (1.0 without one); without a stop the window ends at the
    last counted reading."""
    # long: the summarizer's loop, kept whole and in its order so that it reads the same
    prev_timestamp = 0.0
    last_timestamp = 0.0
    power_start = 0.0
    power_stop = 0.0
    agg_power: float | int = 0
    conversion_eff: Any = 1.0
    stop_found = start_found = False
    readings = 0
    problems: list[str] = []
    for timestamp, key, value, n in sorted(events, key=lambda e: e[0]):
        if key == "power_measurement_start":
            power_start = timestamp
            prev_timestamp = timestamp
            start_found = True
        if key == "power_reading" and not stop_found and start_found:
            watts = _number(value)
            if watts is None:
                problems.append(f"{rel} line {n}: power_reading {value!r} is not a number")
                continue
            agg_power += watts * (timestamp - prev_timestamp)
            prev_timestamp = timestamp
            last_timestamp = max(last_timestamp, timestamp)
            readings += 1
        if key == "power_measurement_stop":
            power_stop = timestamp
            stop_found = True
        if key == "conversion_eff":
            conversion_eff = value
    if not start_found:
        problems.append(f"{rel} has no power_measurement_start: the summarizer cannot score it")
    if not stop_found:
        power_stop = last_timestamp  # the summarizer's "taking last_timestamp" warning
    if _number(conversion_eff) is None:
        problems.append(f"{rel}: conversion_eff {conversion_eff!r} is not a number")
    if start_found and power_stop - power_start == 0:
        problems.append(f"{rel}: the measurement window is empty (stop = start)")
    if not math.isfinite(agg_power):
        problems.append(f"{rel}: the sum of the readings is not finite")
    facts = {
        "conversion_eff": conversion_eff,
        "integral_w_ms": agg_power,  # sum of reading (W) x time since the previous one (ms)
        "start_ms": power_start,
        "stop_ms": power_stop,
        "stop_found": stop_found,
        "readings": readings,
    }
    return facts, problems


def _switch(events: list[Line], rel: str) -> tuple[dict[str, Any], list[str]]:
    """The facts of a switch file: ``_compute_power_sw``. In file order (not sorted), the
    first ``interconnect_power_est`` (0 without one) and the ``conversion_eff`` last seen
    before it (1.0 without one)."""
    agg_power: Any = 0
    conversion_eff: Any = 1.0
    for _, key, value, _ in events:
        if key == "conversion_eff":
            conversion_eff = value
        if key == "interconnect_power_est":
            agg_power = value
            break
    named = (("conversion_eff", conversion_eff), ("interconnect_power_est", agg_power))
    problems = [f"{rel}: {k} {v!r} is not a number" for k, v in named if _number(v) is None]
    return {"conversion_eff": conversion_eff, "interconnect_power_est": agg_power}, problems


def read_power_file(path: Path, kind: str, rel: str | None = None) -> dict[str, Any]:
    """The facts of one power file (``kind`` node or sw): its size and sha256, what
    :func:`energy_j` needs (see :func:`_node`, :func:`_switch`) and its ``problems`` (a file
    with any is not scored). PowerError when the file is not read (see :func:`_read_bytes`).
    Decoded as latin-1, as mlp_parser opens it."""
    rel = rel or str(path)
    data = _read_bytes(Path(path), rel)
    events, problems = _lines(data.decode("latin-1"), rel)
    facts, more = (_node if kind == "node" else _switch)(events, rel)
    return {
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        **facts,
        "problems": problems + more,
    }


def _index(name: str) -> int | None:
    """A power file's index as the package checker reads it: the decimal number after the
    stem's last ``_`` (``node_12.txt`` -> 12); None when that is not a number."""
    try:
        return int(os.path.splitext(name)[0].split("_")[-1])
    except ValueError:
        return None


def _names(entries: Sequence[os.DirEntry[str]], kind: str) -> list[str]:
    """The names the package checker counts as ``kind`` files (they start with it)."""
    return [e.name for e in entries if e.name.startswith(kind)]


def _index_problems(names: Sequence[str], kind: str, rel: str) -> list[str]:
    """The package checker's naming rule (``check_power``/``check_range``): the ``kind`` files
    of a run are ``<kind>_0`` to ``<kind>_<n-1>``, each once. (The checker means to refuse a
    repeated index too; its ``seen`` set is never filled, so this is stricter.)"""
    indices = [_index(n) for n in names]
    if sorted(i for i in indices if i is not None) == list(range(len(names))):
        return []
    found = ", ".join(sorted(names))
    return [
        f"{rel}: the {kind} files are not {kind}_0 to {kind}_{len(names) - 1}, each once "
        f"(found {found}; package checker)"
    ]


def _counts(folder: Path, names: Sequence[str]) -> dict[str, dict[str, int]]:
    """Per result name with a real power folder: its number of node and sw files."""
    counts = {}
    for name in names:
        try:
            entries = _list_dir(folder / POWER_DIR / name, name)
        except (OSError, PowerError):
            continue
        counts[name] = {kind: len(_names(entries, kind)) for kind in KINDS}
    return counts


def _mode(values: Sequence[int]) -> int:
    """The package checker's ``check_equals`` reference: the most frequent value, the first
    seen among equally frequent ones."""
    counter = Counter(values)
    return max(counter, key=lambda v: counter[v])


def _count_problems(name: str, folder: Path, rel: str) -> list[str]:
    """The package checker's rule that every run of the folder has as many node files, and as
    many sw files, as the others (the most frequent number)."""
    names = [result_name(f) for f in result_files(folder)]
    counts = _counts(folder, names)
    if name not in counts:
        return []
    problems = []
    for kind in KINDS:
        usual = _mode([c[kind] for c in counts.values()])
        mine = counts[name][kind]
        if mine != usual:
            problems.append(
                f"{rel} has {mine} {kind} files, the folder's runs mostly {usual}: every run "
                "needs the same nodes and switches (package checker)"
            )
    return problems


def result_power(result_file: Path) -> dict[str, Any] | None:
    """The power block of one result file's run.json: None when its benchmark folder has no
    ``power/`` (:func:`has_power`); else ``result_name``, ``files`` (per node_*.txt, then
    sw_*.txt, by index then name: ``name``, ``kind``, ``index`` and :func:`read_power_file`'s
    facts), ``problems`` (strings starting with ``power:``) and ``scorable`` (whether
    :func:`energy_j` can compute the energy as the summarizer does: a node file at least, and
    every file read without problems)."""
    folder = Path(result_file).parent
    if not has_power(folder):
        return None
    name = result_name(result_file)
    rel = f"{POWER_DIR}/{name}"
    files: list[dict[str, Any]] = []
    problems: list[str] = []
    listed = False
    try:
        _list_dir(folder / POWER_DIR, POWER_DIR)
        entries = _list_dir(folder / rel, rel)
    except FileNotFoundError:
        problems.append(
            f"{rel}/ is missing: the benchmark folder has power results, so every result "
            "needs its folder (package checker)"
        )
        entries = []
    except (OSError, PowerError) as exc:
        problems.append(str(exc) if isinstance(exc, PowerError) else f"{rel}: {exc.strerror}")
        entries = []
    else:
        listed = True
        for kind in KINDS:
            problems += _index_problems(_names(entries, kind), kind, rel)
        problems += _count_problems(name, folder, rel)
    for kind in KINDS:
        chosen = [e for e in entries if fnmatch.fnmatchcase(e.name, GLOBS[kind])]
        for entry in sorted(chosen, key=lambda e: (_index(e.name) is None, _index(e.name) or 0)):
            path_rel = f"{rel}/{entry.name}"
            record: dict[str, Any] = {"name": entry.name, "kind": kind, "index": _index(entry.name)}
            try:
                record.update(read_power_file(Path(entry.path), kind, path_rel))
            except PowerError as exc:
                record["problems"] = [str(exc)]
            problems += record["problems"]
            files.append(record)
    if listed and not any(f["kind"] == "node" for f in files):
        problems.append(f"{rel}/ has no node_*.txt file: the summarizer needs one")
    return {
        "result_name": name,
        "files": files,
        "problems": [f"power: {p}" for p in problems],
        "scorable": bool(files)
        and any(f["kind"] == "node" for f in files)
        and not any(f["problems"] for f in files),
    }


def folder_paths(benchmark_folder: Path) -> list[Path]:
    """What an import of the folder reads of its power results, for the import batch's
    sources digest (a stat each): the ``power`` folder, each run's folder and each entry in
    it (an added or removed file changes its folder's mtime too). Empty without ``power/``;
    a folder that cannot be listed is named alone."""
    top = Path(benchmark_folder) / POWER_DIR
    if not has_power(Path(benchmark_folder)):
        return []
    paths = [top]
    try:
        for run in _list_dir(top, POWER_DIR):
            paths.append(Path(run.path))
            if run.is_dir(follow_symlinks=False):
                paths += [Path(e.path) for e in _list_dir(Path(run.path), run.name)]
    except (OSError, PowerError):
        pass
    return paths


def time_to_train_ms(time_to_train_s: Any) -> float | None:
    """A run's time to train in milliseconds as the summarizer has it (``run_stop`` minus
    ``run_start``, of ``float(time_ms)``): result.json's seconds hold 3 decimals, so this is
    their whole milliseconds, exact for mllog's integer ``time_ms``. None without a time."""
    if isinstance(time_to_train_s, bool) or not isinstance(time_to_train_s, int | float):
        return None
    if not math.isfinite(time_to_train_s) or time_to_train_s <= 0:
        return None
    return float(round(time_to_train_s * 1000))


def energy_j(power: Mapping[str, Any] | None, time_to_train: float | None) -> float | None:
    """A run's energy in joules for ``time_to_train`` milliseconds, as ``_compute_total_power``
    sums it from 0: each node file's ``conversion_eff * integral * time_to_train / (stop -
    start) / 1000`` (``_compute_power_node``), then each switch's ``conversion_eff *
    interconnect_power_est * time_to_train / 1000`` (``_compute_power_sw``), in the order of
    ``files``. None without a power block, a time, or when it is not ``scorable``."""
    if not power or not power.get("scorable") or time_to_train is None:
        return None
    total: float = 0
    for f in power["files"]:
        eff = f["conversion_eff"]
        if f["kind"] == "node":
            window = f["stop_ms"] - f["start_ms"]
            total += eff * f["integral_w_ms"] * time_to_train / window / 1000
        else:
            total += eff * f["interconnect_power_est"] * time_to_train / 1000
    return total


def result_fields(block: Mapping[str, Any] | None, time_to_train_s: Any) -> dict[str, Any]:
    """result.json's ``energy_j`` (:func:`energy_j` of run.json's ``power`` block and the
    run's time to train) and ``power_problems`` (the block's problems; [] without one)."""
    return {
        "energy_j": energy_j(block, time_to_train_ms(time_to_train_s)),
        "power_problems": list((block or {}).get("problems") or []),
    }


def olympic_energy_j(
    counted: Sequence[tuple[float, int, float | None]], scaling_factor: float = 1.0
) -> float | None:
    """The folder's energy score: ``_index_olympic_average`` of the runs the time score
    averages, ``counted`` as (time to train, position, energy J) each. The summarizer sorts
    the energies by the runs' times (stably: here the lower position first), keeps the runs
    between the dropped ones, sums them in that order from 0, divides by their number and
    multiplies by the scaling factor (``_compute_strong_score_standalone``). None when no
    run is counted or one has no energy."""
    ordered = sorted(counted, key=lambda c: (c[0], c[1]))
    energies = [c[2] for c in ordered]
    if not energies or any(e is None or not math.isfinite(e) for e in energies):
        return None
    sum_of_scores = sum(e for e in energies if e is not None)
    return sum_of_scores * 1.0 / len(energies) * scaling_factor
