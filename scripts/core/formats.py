"""Format versions of the JSON files the workflow writes, and the one reader of them.

``run.json``, ``result.json``, ``image.json`` (an image's stamp), a dataset's ``manifest.json``
and ``dataset.manifest.json`` carry ``format_version``. :func:`read_json` refuses a file of a
newer version than this workflow reads (:class:`NewerFormat`, one line naming the file), reads
a file without ``format_version`` as version 1 (every file written before versions existed),
and names a file that is not JSON (:class:`CorruptFile`). ``run.json`` and ``result.json`` are
read and written as records, with their versions and the versions' history:
:mod:`scripts.core.run_records`. Imports nothing from the package.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FORMAT_KEY = "format_version"

# The highest version of each file that this workflow reads (and the one it writes); run.json's
# and result.json's are their records' (scripts/core/run_records.py: RunRecord.VERSION).
VERSIONS: dict[str, int] = {
    "image.json": 1,
    "manifest.json": 1,
    "dataset.manifest.json": 1,
    "verdict.json": 1,  # submission/verdict.json (scripts/submission/cli.py)
}


class CorruptFile(ValueError):
    """A JSON file of a run that cannot be read (half-written, or not JSON at all)."""


class NewerFormat(RuntimeError):
    """A file written by a newer workflow, in a format this one does not read.

    Not a ValueError: readers that skip an unreadable file must not skip this one."""


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def version(kind: str) -> int:
    """The format version this workflow writes (and the highest it reads) of ``kind``."""
    return VERSIONS[kind]


def stamped(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with the ``format_version`` of ``kind`` first."""
    return {FORMAT_KEY: VERSIONS[kind], **data}


def check_version(data: Any, path: Path | str, kind: str, highest: int | None = None) -> int:
    """The format version of ``data`` read from ``path`` (1 where it has none); raises
    NewerFormat for one newer than ``highest`` (default: ``VERSIONS[kind]``) and CorruptFile
    for one that is not a whole number."""
    if not isinstance(data, dict) or FORMAT_KEY not in data:
        return 1
    found = data[FORMAT_KEY]
    if isinstance(found, bool) or not isinstance(found, int) or found < 1:
        raise CorruptFile(f"{path} has {FORMAT_KEY} {found!r}, not a version number (1, 2, ...)")
    highest = VERSIONS[kind] if highest is None else highest
    if found > highest:
        raise NewerFormat(
            f"{path} has {FORMAT_KEY} {found}, but this workflow reads {kind} up to version "
            f"{highest} (made by a newer workflow?): update the workflow, or move the file away"
        )
    return found


def read_json(path: Path | str, kind: str | None = None) -> Any:
    """A JSON file; with ``kind`` (a key of VERSIONS), checked by :func:`check_version`. A file
    that is not valid JSON raises CorruptFile naming it (OSError as it is)."""
    path = Path(path)
    try:
        data = json.loads(path.read_bytes())
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and bad UTF-8 are ValueErrors
        size = path.stat().st_size
        raise CorruptFile(
            f"{path} is not valid JSON ({size} bytes; half-written?): {_short(exc)}"
        ) from None
    if kind is not None:
        check_version(data, path, kind)
    return data
