"""Fetch one dataset file from the first source that has it, with its checksums checked.

The sources are tried in order (:func:`scripts.data.sources.sources`: the mirror, then the file's
own url); a source that lacks the file (:class:`SourceMissing`) passes to the next. ``file://``
is copied here, ``http(s)://`` downloaded by :mod:`scripts.data.http_download`; either way every
byte is hashed as it arrives (:mod:`scripts.data.checksums`).

Bytes go to ``<file>.part`` next to the destination; only a file whose checksums match is renamed
into place, and its checksums are recorded beside it (:func:`checksums_path`). A mismatch keeps
the bad bytes as ``<file>.corrupt`` for inspection and raises :class:`DatasetError` naming the
file, URL, expected and actual hash and size. A download that fails after its retries keeps its
``.part``: the next attempt resumes from there.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from scripts.core.hashing import write_json
from scripts.data.checksums import HASHES, Hashing, copy_hashed, mismatched
from scripts.data.download_policy import Policy, progress_bar
from scripts.data.errors import DatasetError, SourceMissing, note
from scripts.data.sources import url_problem, url_scheme


def fetch(
    urls: str | Sequence[str],
    dest: Path,
    expected: Mapping[str, str],
    policy: Policy = Policy(),  # noqa: B008 (a frozen dataclass: immutable)
    say: Callable[[str], None] = note,
) -> dict[str, Any]:
    """Fetch ``dest`` from the first of ``urls`` that has it, atomically, checking the expected
    checksums on the way; record them beside it (see :func:`checksums_path`). ``say`` gets the
    one-line message of each retry (default: stderr)."""
    urls = [urls] if isinstance(urls, str) else list(urls)
    if not urls:
        raise DatasetError(f"{dest.name}: no URL and no mirror to fetch it from")
    algorithms = [a for a in HASHES if a in expected] or ["sha256"]
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    missing: list[str] = []
    deadline = None if policy.deadline_s is None else time.monotonic() + policy.deadline_s
    for url in urls:
        why = url_problem(url)
        if why:
            raise DatasetError(why)
        hashing = Hashing(algorithms)
        try:
            if url_scheme(url) == "file":
                _fetch_file(url, part, hashing, policy)
            else:
                # lazy: the HTTP client loads only for a download (the load-time checks import
                # this module for outdated_download at every start)
                from scripts.data.http_download import fetch_http

                fetch_http(url, part, hashing, policy, say, deadline)
        except SourceMissing as exc:
            missing.append(str(exc))
            continue
        return _finish(url, part, dest, expected, hashing)
    raise DatasetError(f"{dest.name} was found nowhere:\n  " + "\n  ".join(missing))


def _fetch_file(url: str, part: Path, hashing: Hashing, policy: Policy) -> None:
    path = Path(unquote(urlparse(url).path))
    try:
        src = path.open("rb", buffering=0)
    except FileNotFoundError:
        raise SourceMissing(f"{url}: no such file ({path})") from None
    except OSError as exc:
        raise DatasetError(f"cannot read {url}: {exc.strerror} ({path})") from None
    hashing.reset()
    with (
        src,
        part.open("wb") as out,
        progress_bar(part.stem, path.stat().st_size, 0, policy) as bar,
    ):
        copy_hashed(src, out, hashing, bar.update)  # type: ignore[arg-type]


def _finish(
    url: str, part: Path, dest: Path, expected: Mapping[str, str], hashing: Hashing
) -> dict[str, Any]:
    digests, size = hashing.digests(), hashing.size
    bad = mismatched(expected, digests)
    if bad:
        corrupt = dest.with_name(dest.name + ".corrupt")
        os.replace(part, corrupt)
        details = "; ".join(f"{a} expected {expected[a]}, got {digests[a]}" for a in bad)
        raise DatasetError(
            f"checksum mismatch for {dest.name} from {url}: {details}; size {size} bytes. "
            f"The bytes are kept as {corrupt} for inspection. Check the URL, or the "
            "checksum in the benchmark config, then run again."
        )
    os.replace(part, dest)
    entry = {"name": dest.name, "size": size, **digests}
    write_json(checksums_path(dest), entry, indent=None)
    return entry


def checksums_path(dest: Path) -> Path:
    """Where fetch() records the checksums of a downloaded file (read without re-hashing)."""
    return dest.with_name(f".{dest.name}.checksums.json")


def outdated_download(dest: Path, expected: Mapping[str, str]) -> str | None:
    """Why a downloaded file no longer matches the configured checksums, or None."""
    try:
        recorded = json.loads(checksums_path(dest).read_text())
    except (OSError, ValueError):
        return None
    changed = [a for a in HASHES if a in expected and recorded.get(a) not in (None, expected[a])]
    return f"the configured {' and '.join(changed)} changed" if changed else None


def fetched_already(dest: Path, expected: Mapping[str, str]) -> bool:
    """Whether ``dest`` is a finished fetch of these checksums (its record says so)."""
    try:
        recorded = json.loads(checksums_path(dest).read_text())
        size = dest.stat().st_size
    except (OSError, ValueError):
        return False
    return (
        isinstance(recorded, dict)
        and recorded.get("size") == size
        and bool(expected)
        and all(recorded.get(a) == v for a, v in expected.items())
    )
