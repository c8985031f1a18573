"""Dataset files: fetch with the checksum computed in the same pass, verify, unpack safely.

Sources, in the order they are tried for one file: the benchmark's ``dataset.mirror`` (a folder or a
URL holding the files by name, the normal case on air-gapped clusters), then the file's own ``url``.
``http(s)://`` downloads use ``requests`` with one retry policy (:class:`Policy`, config key
``download``): one loop of attempts with exponential backoff after connection errors, timeouts,
cut-off bodies, HTTP 429 and 5xx (urllib3's own retries are off, so nothing retries inside it),
each retry announced by one line (file, reason, next try in N s). An attempt slower than
``min_bytes_per_s`` over a window of ``timeout_s`` fails too (a server that trickles a byte
every few seconds never times out), and ``deadline_s`` bounds one file's download, attempts
and waits included. Redirects are followed by hand: to http(s) only, at most
:data:`MAX_REDIRECTS`, a loop named. A body cut off mid-way is
resumed with an HTTP ``Range`` request (``If-Range`` guards against splicing two versions of a
file; a server that ignores ``Range`` is restarted from byte 0). Every byte is hashed as it
arrives, so a download reads its bytes once.

Bytes go to ``<file>.part`` next to the destination; only a file whose checksums match is renamed
into place. A mismatch keeps the bad bytes as ``<file>.corrupt`` for inspection and raises
:class:`DatasetError` naming the file, URL, expected and actual hash and size. A download that
fails after its retries keeps its ``.part``: the next attempt resumes from there.

A dataset can also be made by a script (``dataset.script``, e.g. an MLPerf implementation's
``download_dataset.sh``); its output folder is verified the same way.

The commands (``fetch``, ``verify``, ``unpack``, ``script``) hold the dataset's lock
(``--lock``, :mod:`scripts.data.datalock`), or go on under their campaign's hold of it, so that
campaigns sharing a data_dir never make one dataset at once. Archives are unpacked by
:mod:`scripts.data.archives`.

The unpacked tree that the trainer reads gets a manifest of its every file, checked before each
run and repaired before each plan: see "The unpacked tree" below.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import json
import os
import shlex
import shutil
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, BinaryIO, TextIO
from urllib.parse import quote, unquote, urljoin, urlparse

from scripts.core import formats
from scripts.core.hashing import canonical_sha256, write_json
from scripts.data import archives, datalock

CHUNK = 1 << 20
HASHES = ("sha256", "md5")
SCHEMES = ("http", "https", "file")
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".zip")
# files at least this big get a progress bar
PROGRESS_MIN_BYTES = 16 << 20


class DatasetError(RuntimeError):
    """A dataset file could not be fetched, verified or unpacked; the message says why."""


class SourceMissing(DatasetError):
    """A source does not have the file (HTTP 404/410, no such file): the next source is tried."""


# the longest wait before one retry, whatever backoff_s or a server's Retry-After says
MAX_WAIT_S = 60.0
# answers that are retried (with Retry-After honoured); any other 4xx/5xx fails at once
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# download defaults (config download: deadline_s, min_bytes_per_s): a day per file (ImageNet's
# 138 GB train tar at 1.6 MB/s), and 1 KiB/s over each timeout_s
DEADLINE_S = 86400.0
MIN_BYTES_PER_S = 1024.0
# redirects one download follows (each to http:// or https:// only)
MAX_REDIRECTS = 10


@dataclass(frozen=True)
class Policy:
    """How hard a download tries (config key ``download``): ``1 + retries`` attempts per source,
    retry ``k`` after a wait of :meth:`wait` (k) seconds."""

    retries: int = 5  # retries per source, after the first attempt
    backoff_s: float = 1.0  # waits backoff_s, 2*backoff_s, 4*backoff_s, ... (at most 60 s)
    timeout_s: float = 60.0  # connect timeout, and the longest wait for the next bytes
    progress: bool = True  # a progress bar (on stderr) for files of PROGRESS_MIN_BYTES or more
    # the longest one file's download may take, every attempt and wait included (None: no
    # limit); past it the download stops at once, its bytes kept for the next invocation
    deadline_s: float | None = DEADLINE_S
    # an attempt that brings fewer bytes per second than this over timeout_s fails (and is
    # retried, resuming): a server that trickles a byte every few seconds never times out
    min_bytes_per_s: float = MIN_BYTES_PER_S

    def wait(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds before retry number ``retry`` (1, 2, ...): ``backoff_s * 2**(retry - 1)``, or
        the server's Retry-After when that is longer; at most MAX_WAIT_S."""
        wait = self.backoff_s * 2 ** (retry - 1)
        return min(MAX_WAIT_S, max(wait, retry_after or 0.0))

    def budget_s(self) -> float:
        """The longest a download that receives no byte takes to fail (without Retry-After):
        every wait, plus for each of the ``1 + retries`` attempts ``timeout_s`` to connect and
        ``timeout_s`` for the answer. (A host name with several addresses gets ``timeout_s`` to
        connect to each; name resolution itself is not timed.) A refused connection fails at
        once, so it takes about the sum of the waits. ``deadline_s`` bounds it, and every
        download, whatever it receives."""
        waits = sum(self.wait(k) for k in range(1, self.retries + 1))
        budget = waits + (self.retries + 1) * 2 * self.timeout_s
        return budget if self.deadline_s is None else min(budget, self.deadline_s)


def expand_url(url: str, workflow_dir: str | Path) -> str:
    return url.replace("{workflow_dir}", str(Path(workflow_dir).resolve()))


def _scheme(url: str) -> str:
    return urlparse(url).scheme.lower() if "://" in url else ""


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be fetched (unsupported scheme, no host or path), or None."""
    scheme = _scheme(url)
    if scheme not in SCHEMES:
        return (
            f"unsupported URL scheme {scheme!r} in {url!r}; use http://, https:// or file://"
            if scheme
            else f"{url!r} is not a URL; use http://, https:// or file://"
        )
    parsed = urlparse(url)
    if scheme != "file" and not parsed.netloc:
        return f"{url!r} has no host"
    if not parsed.path or parsed.path.endswith("/"):
        return f"{url!r} names no file"
    return None


def mirror_url(mirror: str, name: str, workflow_dir: str | Path = ".") -> str:
    """The URL of file ``name`` in a mirror: a folder path or an http(s)/file URL base."""
    mirror = expand_url(mirror, workflow_dir)
    if "://" in mirror:
        return f"{mirror.rstrip('/')}/{quote(name)}"
    return (Path(mirror).resolve() / name).as_uri()


def sources(
    entry: Mapping[str, Any], mirror: str | None, workflow_dir: str | Path = "."
) -> list[str]:
    """The URLs to try for one dataset file, in order: the mirror, then its own url."""
    urls = [mirror_url(mirror, entry["name"], workflow_dir)] if mirror else []
    if entry.get("url"):
        urls.append(expand_url(entry["url"], workflow_dir))
    return urls


def check_dataset(dataset: Mapping[str, Any]) -> list[str]:
    """Problems of a benchmark's ``dataset`` section that its schema cannot express."""
    problems: list[str] = []
    mirror, script = dataset.get("mirror"), dataset.get("script")
    if mirror and "://" in mirror:
        why = url_problem(f"{mirror.rstrip('/')}/x")
        if why:
            problems.append(f"dataset.mirror: {why.replace('/x', '')}")
    seen: set[str] = set()
    no_source: list[str] = []
    for i, f in enumerate(dataset["files"]):
        where = f"dataset.files[{i}] ({f['name']})"
        if f["name"] in seen:
            problems.append(f"{where}: the name appears twice")
        seen.add(f["name"])
        if f.get("url"):
            why = url_problem(f["url"])
            if why:
                problems.append(f"{where}.url: {why}")
        elif not mirror and not script:
            no_source.append(f["name"])
        if f.get("unpack") and not f["name"].endswith(ARCHIVE_SUFFIXES):
            problems.append(
                f"{where}: unpack is true but the name does not end in "
                + ", ".join(ARCHIVE_SUFFIXES)
            )
    if no_source:
        problems.append(
            f"dataset: {', '.join(no_source)} {'has' if len(no_source) == 1 else 'have'} no url, "
            "and the dataset has neither a mirror nor a script; set dataset.mirror (a folder or "
            "URL holding the files by name) or dataset.script.cwd (see the benchmark's yaml)"
        )
    return problems


class Hashing:
    """Running checksums and size of the bytes seen so far."""

    def __init__(self, algorithms: Sequence[str]) -> None:
        self.algorithms = list(algorithms)
        self.reset()

    def reset(self) -> None:
        self.hashers = {a: hashlib.new(a) for a in self.algorithms}
        self.size = 0

    def update(self, chunk: bytes | memoryview) -> None:
        for h in self.hashers.values():
            h.update(chunk)
        self.size += len(chunk)

    def digests(self) -> dict[str, str]:
        return {a: h.hexdigest() for a, h in self.hashers.items()}


def hash_stream(
    src: BinaryIO, dst: BinaryIO | None, algorithms: Sequence[str]
) -> tuple[dict[str, str], int]:
    """Copy ``src`` to ``dst`` (if given) while hashing; return (hex digests, size)."""
    hashing = Hashing(algorithms)
    _copy(src, dst, hashing, lambda n: None)
    return hashing.digests(), hashing.size


def _copy(
    src: BinaryIO, dst: BinaryIO | None, hashing: Hashing, advance: Callable[[int], Any]
) -> None:
    # one reusable buffer: no allocation per chunk (verify's speed is compared with md5sum)
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    while n := src.readinto(view):  # type: ignore[attr-defined]
        chunk = view[:n]
        hashing.update(chunk)
        if dst is not None:
            dst.write(chunk)
        advance(n)


def hash_file(path: Path, algorithms: Sequence[str] = HASHES) -> tuple[dict[str, str], int]:
    with path.open("rb", buffering=0) as fh:
        return hash_stream(fh, None, algorithms)  # type: ignore[arg-type]


def _mismatch(expected: Mapping[str, str], actual: Mapping[str, str]) -> list[str]:
    return [a for a in HASHES if a in expected and expected[a] != actual.get(a)]


class _LineStream:
    """A progress bar written to a log file: one line per update instead of carriage returns."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        text = text.replace("\r", "\n").replace("\x1b[A", "")
        lines = [line for line in text.split("\n") if line.strip()]
        if lines:
            self.stream.write("\n".join(lines) + "\n")

    def flush(self) -> None:
        self.stream.flush()


def _progress(name: str, total: int | None, initial: int, policy: Policy) -> Any:
    from tqdm import tqdm  # lazy, as requests below: only a download needs it

    tty = sys.stderr.isatty()
    big = total is None or total >= PROGRESS_MIN_BYTES
    return tqdm(
        total=total,
        initial=initial,
        desc=name,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        file=sys.stderr if tty else _LineStream(sys.stderr),
        mininterval=0.5 if tty else 10.0,
        disable=not (policy.progress and big),
        dynamic_ncols=tty,
        ncols=None if tty else 90,
    )


def _note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _fetch_file(url: str, part: Path, hashing: Hashing, policy: Policy) -> None:
    path = Path(unquote(urlparse(url).path))
    try:
        src = path.open("rb", buffering=0)
    except FileNotFoundError:
        raise SourceMissing(f"{url}: no such file ({path})") from None
    except OSError as exc:
        raise DatasetError(f"cannot read {url}: {exc.strerror} ({path})") from None
    hashing.reset()
    with src, part.open("wb") as out, _progress(part.stem, path.stat().st_size, 0, policy) as bar:
        _copy(src, out, hashing, bar.update)  # type: ignore[arg-type]


def _session() -> Any:
    # lazy: requests and urllib3 take 0.2 s to import, and every workflow load imports this
    # module (rules/common.smk); only a download needs them
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    session = requests.Session()
    # no retries inside urllib3: _fetch_http's loop is the one retry policy (and announces each)
    adapter = HTTPAdapter(max_retries=Retry(total=0, read=False, redirect=False))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = "mlperf-workflow dataset fetch"
    return session


def _strong_validator(headers: Mapping[str, str]) -> str | None:
    """What If-Range may carry: a strong ETag, else Last-Modified."""
    etag = headers.get("ETag")
    if etag and not etag.startswith("W/"):
        return etag
    return headers.get("Last-Modified")


def _resume_state(part: Path, url: str, hashing: Hashing) -> str | None:
    """Pick up a ``.part`` left by an earlier process: hash its bytes again (the hashers' state
    died with that process) and return the validator it was fetched under; or start afresh."""
    meta = part.with_name(part.name + ".json")
    try:
        state = json.loads(meta.read_text())
    except (OSError, ValueError):
        state = {}
    hashing.reset()
    if part.exists() and state.get("url") == url:
        with part.open("rb", buffering=0) as fh:
            _copy(fh, None, hashing, lambda n: None)  # type: ignore[arg-type]
        _note(f"resuming {part.name} at byte {hashing.size} (left by an earlier attempt)")
        return state.get("validator")
    part.unlink(missing_ok=True)
    return None


class _TryAgain(Exception):
    """One attempt failed in a way worth retrying (``why`` in words)."""

    def __init__(self, why: str, retry_after: float | None = None) -> None:
        super().__init__(why)
        self.why = why
        self.retry_after = retry_after


class _DeadlinePassed(Exception):
    """The file's deadline (``Policy.deadline_s``) passed during an attempt."""


def _time_left(policy: Policy, deadline: float | None) -> float:
    """The socket timeout for the next wait: ``timeout_s``, or less near the deadline."""
    if deadline is None:
        return policy.timeout_s
    left = deadline - time.monotonic()
    if left <= 0:
        raise _DeadlinePassed
    return min(policy.timeout_s, left)


def _fetch_http(
    url: str,
    part: Path,
    hashing: Hashing,
    policy: Policy,
    say: Callable[[str], None],
    deadline: float | None = None,
) -> None:
    """Fetch ``url`` into ``part``: ``1 + policy.retries`` attempts, the wait before each retry
    from :meth:`Policy.wait`, each retry announced with ``say`` (one line); all of it before
    ``deadline`` (``time.monotonic()``; None: none)."""
    network_errors, request_errors = _network_errors(), _request_errors()
    session = _session()
    name = part.name.removesuffix(".part")
    # the validator (ETag, Last-Modified) the bytes so far were fetched under
    resume = {"validator": _resume_state(part, url, hashing)}
    t0 = time.monotonic()
    failures = 0
    while True:
        try:
            if _attempt(session, url, part, hashing, policy, resume, deadline):
                return
            continue  # the file changed on the server: from byte 0, no retry spent
        except _TryAgain as exc:
            why, retry_after = exc.why, exc.retry_after
        except _DeadlinePassed:
            why, retry_after = f"the deadline passed at byte {hashing.size}", None
        except network_errors as exc:
            why, retry_after = _why(exc, policy.timeout_s, hashing.size), None
            if deadline is not None and time.monotonic() >= deadline:  # a wait cut to it
                why = f"the deadline passed at byte {hashing.size}"
        except request_errors as exc:  # a bad redirect target, an invalid URL: no retry
            raise DatasetError(f"{url}: {_why(exc, policy.timeout_s, hashing.size)}") from None
        failures += 1
        elapsed = time.monotonic() - t0
        wait = policy.wait(failures, retry_after)
        if deadline is not None and (
            time.monotonic() >= deadline
            or (failures <= policy.retries and time.monotonic() + wait >= deadline)
        ):
            since = time.monotonic() - deadline + (policy.deadline_s or 0)  # the file began
            raise _gave_up(
                url, why, failures, since, part, hashing, policy, at_deadline=True
            ) from None
        if failures > policy.retries:
            raise _gave_up(url, why, failures, elapsed, part, hashing, policy) from None
        say(
            f"download {name}: {why} ({url}); "
            f"retry {failures} of {policy.retries} in {round(wait, 2):g} s"
        )
        time.sleep(wait)


def _attempt(
    session: Any,
    url: str,
    part: Path,
    hashing: Hashing,
    policy: Policy,
    resume: dict[str, str | None],
    deadline: float | None,
) -> bool:
    """One request: whether the file is complete (``resume['validator']`` is what its bytes
    were fetched under). A response that cannot bring the file raises."""
    offset = hashing.size
    meta = part.with_name(part.name + ".json")
    headers = _request_headers(offset, resume["validator"])
    with _get(session, url, headers, _time_left(policy, deadline)) as r:
        if r.status_code == 416 and offset:  # our offset is past the end: file changed
            _note(f"{url}: range {offset}- not satisfiable; restarting from byte 0")
            hashing.reset()
            resume["validator"] = None
            return False
        _check_status(r, url)
        resumed = r.status_code == 206 and _range_start(r.headers) == offset
        if offset and not resumed:
            _note(
                f"{url}: the server sent the whole file instead of bytes {offset}- "
                "(no Range support, or the file changed); restarting from byte 0"
            )
            hashing.reset()
            offset = 0
        resume["validator"] = _strong_validator(r.headers)
        write_json(meta, {"url": url, "validator": resume["validator"]}, indent=None)
        length = r.headers.get("Content-Length")
        total = offset + int(length) if length and length.isdigit() else None
        _write_body(r, part, offset, total, hashing, policy, deadline)
        if total is not None and hashing.size != total:
            raise _TryAgain(f"the body was cut off at byte {hashing.size} of {total}")
    meta.unlink(missing_ok=True)
    return True


def _get(session: Any, url: str, headers: Mapping[str, str], timeout: float) -> Any:
    """The response to GET ``url`` (streamed), after at most MAX_REDIRECTS redirects, each to
    an http:// or https:// URL (requests would follow one to file:// or ftp:// into an
    exception, and a loop 30 times)."""
    chain = [url]
    while True:
        r = session.get(
            chain[-1], headers=headers, stream=True, timeout=timeout, allow_redirects=False
        )
        if not (r.is_redirect and r.headers.get("Location")):
            return r
        r.close()
        target = urljoin(chain[-1], r.headers["Location"])
        if _scheme(target) not in ("http", "https") or not urlparse(target).netloc:
            raise DatasetError(
                f"{url}: redirected to {target}: a download follows redirects to http:// and "
                "https:// URLs only"
            )
        if target in chain:
            loop = " -> ".join(chain[chain.index(target) :] + [target])
            raise DatasetError(f"{url}: a redirect loop: {loop}")
        if len(chain) > MAX_REDIRECTS:
            raise DatasetError(f"{url}: more than {MAX_REDIRECTS} redirects (the last to {target})")
        chain.append(target)


def _request_errors() -> tuple[type[BaseException], ...]:
    """What requests raises for a request that no retry can cure (an invalid URL)."""
    import requests  # lazy: see _session

    return (requests.exceptions.RequestException,)


def _network_errors() -> tuple[type[BaseException], ...]:
    """The exceptions of a failed attempt that a retry may cure."""
    import requests  # lazy: see _session
    import urllib3

    return (
        requests.exceptions.ConnectionError,
        requests.exceptions.Timeout,
        requests.exceptions.ChunkedEncodingError,
        urllib3.exceptions.HTTPError,  # from r.raw: a cut-off body, a read timeout
    )


def _request_headers(offset: int, validator: str | None) -> dict[str, str]:
    """The request of bytes ``offset``- (all of the file from 0), only if the file is still
    the one ``validator`` names."""
    headers = {"Accept-Encoding": "identity"}
    if offset:
        # without a validator the final checksum still catches bytes of two versions
        headers["Range"] = f"bytes={offset}-"
        if validator:
            headers["If-Range"] = validator
    return headers


def _check_status(r: Any, url: str) -> None:
    """SourceMissing (404, 410), _TryAgain (a status worth retrying, after its Retry-After) or
    DatasetError (any other error status) for a response that brings no file."""
    if r.status_code in (404, 410):
        raise SourceMissing(f"{url}: HTTP {r.status_code} {r.reason}")
    if r.status_code in RETRY_STATUSES:
        raise _TryAgain(
            f"HTTP {r.status_code} {r.reason}",
            _retry_after(r.headers.get("Retry-After")),
        )
    if r.status_code >= 400:
        raise DatasetError(f"{url}: HTTP {r.status_code} {r.reason}")


def _write_body(
    r: Any,
    part: Path,
    offset: int,
    total: int | None,
    hashing: Hashing,
    policy: Policy,
    deadline: float | None = None,
) -> None:
    """Append the response's body to ``part`` (from byte ``offset``), hashed as it comes;
    raise :class:`_DeadlinePassed` at the deadline, and :class:`_TryAgain` when a window of
    ``timeout_s`` brought fewer than ``min_bytes_per_s``."""
    window_start, window_bytes = time.monotonic(), 0
    read_timeout = policy.timeout_s
    with (
        part.open("ab" if offset else "wb") as out,
        _progress(part.stem, total, offset, policy) as bar,
    ):
        while True:
            left = _time_left(policy, deadline)
            if left != read_timeout:  # near the deadline: wait no longer than to it
                _set_read_timeout(r, left)
                read_timeout = left
            # read1: whatever has arrived, so a cut-off body loses no byte it delivered
            chunk = r.raw.read1(CHUNK)
            if not chunk:
                return
            hashing.update(chunk)
            out.write(chunk)
            bar.update(len(chunk))
            window_bytes += len(chunk)
            span = time.monotonic() - window_start
            if span >= policy.timeout_s:
                if window_bytes < policy.min_bytes_per_s * span:
                    raise _TryAgain(
                        f"only {window_bytes} bytes in {span:.0f} s, under "
                        f"download.min_bytes_per_s = {policy.min_bytes_per_s:g}"
                    )
                window_start, window_bytes = time.monotonic(), 0


def _set_read_timeout(r: Any, seconds: float) -> None:
    """The socket timeout of a streamed response's connection (urllib3's)."""
    sock = getattr(getattr(r.raw, "connection", None), "sock", None)
    if sock is not None:
        sock.settimeout(max(seconds, 0.001))


def _gave_up(
    url: str,
    why: str,
    failures: int,
    elapsed_s: float,
    part: Path,
    hashing: Hashing,
    policy: Policy,
    *,
    at_deadline: bool = False,
) -> DatasetError:
    """The error of a download that failed its last retry, or was stopped by its deadline (no
    time for a next attempt): why, after how many attempts in how long, where its bytes are
    kept."""
    attempts = f"{failures} attempt{'' if failures == 1 else 's'}"
    if at_deadline:
        ended = f"gave up at the deadline of {policy.deadline_s:g} s per file"
        keys = "deadline_s"
    else:
        ended = f"gave up after {policy.retries} {'retry' if policy.retries == 1 else 'retries'}"
        keys = "retries, backoff_s, timeout_s"
    return DatasetError(
        f"{url}: {why}; {ended} ({attempts} in {elapsed_s:.1f} s; config download: {keys})"
        f"{_kept(part, hashing)}"
    )


def _kept(part: Path, hashing: Hashing) -> str:
    return (
        f"; {hashing.size} bytes are kept in {part} and the next run resumes there"
        if hashing.size
        else ""
    )


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (a number of seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it wraps (requests and urllib3 nest the socket error 3 deep)."""
    seen: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo and len(seen) < 20:
        e = todo.pop(0)
        if any(e is s for s in seen):
            continue
        seen.append(e)
        nested = [getattr(e, "reason", None), e.__cause__, e.__context__, *e.args]
        todo.extend(n for n in nested if isinstance(n, BaseException))
    return seen


def _why(exc: BaseException, timeout_s: float, at_byte: int) -> str:
    """A failed attempt in a few words: 'connection refused', 'no answer for 60 s', ..."""
    import requests  # lazy: see _session
    import urllib3

    chain = _causes(exc)
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return f"no connection within {timeout_s:g} s"
    if any(
        isinstance(e, (requests.exceptions.ReadTimeout, urllib3.exceptions.ReadTimeoutError))
        for e in chain
    ):
        return f"no bytes for {timeout_s:g} s" + (f" at byte {at_byte}" if at_byte else "")
    if any(
        isinstance(e, (http.client.IncompleteRead, urllib3.exceptions.ProtocolError)) for e in chain
    ):
        return f"the connection broke at byte {at_byte}"
    for e in chain:
        if isinstance(e, OSError) and e.strerror and not isinstance(e, requests.RequestException):
            words = e.strerror[0].lower() + e.strerror[1:]
            if isinstance(e, socket.gaierror):
                return f"cannot resolve the host name ({words})"
            return words + (f" at byte {at_byte}" if at_byte else "")
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:200]}" + ("..." if len(text) > 200 else "")


def _range_start(headers: Mapping[str, str]) -> int | None:
    """The first byte of a 206 response ('Content-Range: bytes 100-199/200' gives 100)."""
    value = headers.get("Content-Range", "")
    try:
        unit, rest = value.split(" ", 1)
        return int(rest.split("-", 1)[0]) if unit == "bytes" else None
    except ValueError:
        return None


def fetch(
    urls: str | Sequence[str],
    dest: Path,
    expected: Mapping[str, str],
    policy: Policy = Policy(),
    say: Callable[[str], None] = _note,
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
            if _scheme(url) == "file":
                _fetch_file(url, part, hashing, policy)
            else:
                _fetch_http(url, part, hashing, policy, say, deadline)
        except SourceMissing as exc:
            missing.append(str(exc))
            continue
        return _finish(url, part, dest, expected, hashing)
    raise DatasetError(f"{dest.name} was found nowhere:\n  " + "\n  ".join(missing))


def _finish(
    url: str, part: Path, dest: Path, expected: Mapping[str, str], hashing: Hashing
) -> dict[str, Any]:
    digests, size = hashing.digests(), hashing.size
    bad = _mismatch(expected, digests)
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


def verify(files: Sequence[Mapping[str, Any]], directory: Path) -> list[dict[str, Any]]:
    """Check every configured file in ``directory``; return manifest entries or raise."""
    entries, problems = [], []
    for f in files:
        path = directory / f["name"]
        expected = {a: f[a] for a in HASHES if a in f}
        if not path.is_file():
            problems.append(f"{path}: missing")
            continue
        digests, size = hash_file(path, list(expected))
        bad = _mismatch(expected, digests)
        if bad:
            problems.extend(
                f"{path}: {a} expected {expected[a]}, got {digests[a]} ({size} bytes)" for a in bad
            )
        entries.append({"name": f["name"], "size": size, **digests})
    if problems:
        raise DatasetError("dataset verification failed:\n  " + "\n  ".join(problems))
    return entries


def write_verified_manifest(path: Path, entries: Sequence[Mapping[str, Any]]) -> None:
    """data/<benchmark>/manifest.json: the verified files (name, size, checksums), versioned."""
    write_json(path, formats.stamped("manifest.json", {"files": list(entries)}))


def verified_manifest_sha256(path: Path) -> str:
    """The digest of a verified manifest that runs record (``dataset_manifest_sha256``): the
    sha256 of the file as it was written before manifests had a ``format_version``. A file
    without one is hashed as it is (every manifest of an existing campaign); a versioned one as
    the same files were written then, so that verifying the same files again after an update of
    the workflow gives the digest its finished runs recorded."""
    raw = path.read_bytes()
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if isinstance(data, dict) and formats.FORMAT_KEY in data:
        formats.check_version(data, path, "manifest.json")
        rest = {k: v for k, v in data.items() if k != formats.FORMAT_KEY}
        raw = (json.dumps(rest, indent=2) + "\n").encode()
    return hashlib.sha256(raw).hexdigest()


def safe_unpack(archive: Path, dest: Path, max_unpacked_bytes: int | None = None) -> list[str]:
    """Unpack a .tar, .tar.gz or .zip into ``dest``: every member checked before anything is
    written, every byte counted while writing (:mod:`scripts.data.archives`)."""
    try:
        return archives.unpack([archive], dest, max_unpacked_bytes)
    except archives.ArchiveError as exc:
        raise DatasetError(str(exc)) from None


def prepare(
    files: Sequence[Mapping[str, Any]],
    download_dir: Path,
    dest: Path,
    manifest: Path | None = None,
    keep_replaced: Path | None = None,
    max_unpacked_bytes: int | None = None,
) -> None:
    """Make ``dest``: archives unpacked (all their members checked first, as one tree, and at
    most ``max_unpacked_bytes`` or the default limit of :func:`scripts.data.archives.unpack_limit`
    written), other files hard-linked (copied across devices), every file made read-only, and,
    with ``manifest``, the tree's manifest written beside it (see :func:`tree_manifest`). The
    old ``dest`` is removed, or moved to ``keep_replaced``; a refused archive leaves it as it
    was and keeps nothing of what was unpacked."""
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        unpack = [download_dir / f["name"] for f in files if f.get("unpack")]
        archives.unpack(unpack, tmp, max_unpacked_bytes, shown=dest)
    except archives.ArchiveError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DatasetError(str(exc)) from None
    sources: dict[str, str] = {}
    for f in files:
        src = download_dir / f["name"]
        if not f.get("unpack"):
            try:
                os.link(src, tmp / f["name"])
            except OSError:
                shutil.copy2(src, tmp / f["name"])
            sources[f["name"]] = os.path.relpath(src, dest.parent)
    make_read_only(tmp)
    record = tree_manifest(tmp, sources) if manifest is not None else None
    if manifest is not None:
        manifest.unlink(missing_ok=True)  # never an old manifest beside a new tree
    if keep_replaced is not None and dest.exists():
        os.replace(dest, keep_replaced)
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)
    if manifest is not None and record is not None:
        write_json(manifest, record)


# ---------------------------------------------------------------------------------------------
# The unpacked tree (data/<benchmark>/dataset/), the folder the trainer reads. The unpack job
# records every file of it (path, size, sha256, mtime_ns) in data/<benchmark>/dataset.manifest.json,
# beside the tree, never inside it. The runner checks the tree against it before each attempt
# (tree_problem), and every invocation before it builds its plan (restore_tree): size and mtime
# first, the sha256 only of a file whose size or mtime differs. An edit that keeps a file's size
# and mtime (e.g. `touch -d` after the edit) passes that cheap check; check-tree --full hashes
# every file. Files are made read-only (directories are not, so `rm -rf` and re-unpacking work).

TREE_FORMAT_VERSION = formats.version("dataset.manifest.json")
# what Snakemake itself writes into a directory() output once its job is done: not the dataset's
SNAKEMAKE_MARKER = ".snakemake_timestamp"
TREE_REDO = (
    "the trainer reads the dataset only as it was unpacked: run the same snakemake command "
    "again, and before any job it unpacks the dataset again from the verified downloads "
    "(finished runs are kept)"
)


def tree_manifest_path(tree: Path) -> Path:
    """The manifest of an unpacked tree: data/<b>/dataset -> data/<b>/dataset.manifest.json."""
    return tree.with_name(f"{tree.name}.manifest.json")


def unpacked_tree(verified_manifest: Path) -> Path:
    """The tree unpacked from the files that ``verified_manifest`` (data/<b>/manifest.json)
    verified: data/<b>/dataset (rules/dataset.smk)."""
    return verified_manifest.with_name("dataset")


def make_read_only(tree: Path) -> None:
    """chmod a-w every regular file under ``tree`` (not the folders, nor what links point to)."""
    for root, _dirs, names in os.walk(tree):
        for name in names:
            path = Path(root) / name
            st = path.lstat()
            if stat.S_ISREG(st.st_mode):
                path.chmod(stat.S_IMODE(st.st_mode) & ~0o222)


def _scan(tree: Path) -> dict[str, os.stat_result]:
    """lstat of everything under ``tree`` but its folders, by path relative to it ('/'); links
    are listed, never followed. Plain strings and scandir: this runs before every run."""
    found: dict[str, os.stat_result] = {}
    stack = [(str(tree), "")]
    while stack:
        folder, prefix = stack.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                rel = prefix + entry.name
                if entry.is_dir(follow_symlinks=False):
                    stack.append((entry.path, rel + "/"))
                else:
                    found[rel] = entry.stat(follow_symlinks=False)
    found.pop(SNAKEMAKE_MARKER, None)
    return dict(sorted(found.items()))


def _entry(tree: Path, rel: str, st: os.stat_result) -> dict[str, Any]:
    path = tree / rel
    if stat.S_ISLNK(st.st_mode):
        return {"path": rel, "symlink": os.readlink(path)}
    if not stat.S_ISREG(st.st_mode):
        raise DatasetError(f"{path}: not a regular file, folder or link; a dataset holds none")
    digests, size = hash_file(path, ["sha256"])
    return {"path": rel, "size": size, "sha256": digests["sha256"], "mtime_ns": st.st_mtime_ns}


def tree_digest(entries: Sequence[Mapping[str, Any]]) -> str:
    """sha256 of what the tree holds: each path with its size and sha256 (or link target), as
    canonical JSON. Not mtimes: the same bytes unpacked again give the same digest."""
    content = [
        {k: e[k] for k in ("path", "size", "sha256", "symlink") if k in e}
        for e in sorted(entries, key=lambda e: e["path"])
    ]
    return canonical_sha256(content)


def tree_manifest(tree: Path, sources: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The manifest of ``tree``: every file's path, size, sha256 and mtime_ns, every link's
    target; ``sources`` names, for a file linked (or copied) from a download, that download
    (relative to the tree's parent folder)."""
    entries = [_entry(tree, rel, st) for rel, st in _scan(tree).items()]
    for e in entries:
        if sources and e["path"] in sources:
            e["source"] = sources[e["path"]]
    return {
        "format_version": TREE_FORMAT_VERSION,
        "digest": tree_digest(entries),
        "files": entries,
    }


def write_tree_manifest(tree: Path, manifest: Path | None = None) -> dict[str, Any]:
    """Record ``tree`` as it is now in ``manifest`` (default: beside it), atomically."""
    record = tree_manifest(tree)
    write_json(manifest or tree_manifest_path(tree), record)
    return record


def read_tree_manifest(path: Path) -> dict[str, Any]:
    """A tree manifest, checked: its format version, and its digest against its files."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise DatasetError(f"{path} is missing") from None
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path} cannot be read ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("files"), list):
        raise DatasetError(f"{path} is not a dataset manifest (no files list)")
    version = data.get("format_version")
    if not isinstance(version, int) or version > TREE_FORMAT_VERSION:
        raise DatasetError(
            f"{path} has format_version {version!r}; this workflow reads up to "
            f"{TREE_FORMAT_VERSION} (made by a newer workflow?)"
        )
    if data.get("digest") != tree_digest(data["files"]):
        raise DatasetError(f"{path} was edited: its digest does not match its files")
    return data


def tree_digest_of(manifest: Path) -> str | None:
    """The recorded digest of an unpacked tree, or None where there is no readable manifest."""
    try:
        return read_tree_manifest(manifest)["digest"]
    except DatasetError:
        return None


def tree_changes(
    tree: Path, manifest: Mapping[str, Any], *, full: bool = False
) -> list[tuple[str, str]]:
    """(path under ``tree``, what changed) for each file that differs from ``manifest``. Size
    and mtime first; the sha256 only of a file whose mtime differs (of every file: ``full``)."""
    on_disk = _scan(tree)
    changes: list[tuple[str, str]] = []
    for e in manifest["files"]:
        rel = e["path"]
        st = on_disk.pop(rel, None)
        if st is None:
            changes.append((rel, "removed after unpacking"))
        elif "symlink" in e:
            if not stat.S_ISLNK(st.st_mode) or os.readlink(tree / rel) != e["symlink"]:
                changes.append((rel, "no longer the link that was unpacked"))
        elif not stat.S_ISREG(st.st_mode):
            changes.append((rel, "no longer a regular file"))
        elif st.st_size != e["size"]:
            changes.append(
                (
                    rel,
                    f"size {st.st_size} bytes differs from the dataset manifest's {e['size']} "
                    "(edited after unpacking?)",
                )
            )
        elif full or st.st_mtime_ns != e["mtime_ns"]:
            if hash_file(tree / rel, ["sha256"])[0]["sha256"] != e["sha256"]:
                changes.append(
                    (rel, "sha256 differs from the dataset manifest (edited after unpacking?)")
                )
    changes += [(rel, "not in the dataset manifest (added after unpacking?)") for rel in on_disk]
    return sorted(changes)


def describe_changes(tree: Path, changes: Sequence[tuple[str, str]], limit: int = 5) -> str:
    """'data/b/dataset/x: what; data/b/dataset/y: what; and N more'."""
    text = "; ".join(f"{tree / rel}: {what}" for rel, what in changes[:limit])
    return text + (f"; and {len(changes) - limit} more" if len(changes) > limit else "")


def tree_problem(tree: Path, *, full: bool = False) -> str | None:
    """Why the trainer must not read ``tree`` (a changed, added or removed file, or no manifest
    to check it against), with what to do; None when it is as unpacked."""
    try:
        manifest = read_tree_manifest(tree_manifest_path(tree))
    except DatasetError as exc:
        return f"{exc}, so {tree} cannot be checked; {TREE_REDO}"
    if not tree.is_dir():
        return f"{tree} is missing; {TREE_REDO}"
    changes = tree_changes(tree, manifest, full=full)
    return f"{describe_changes(tree, changes)}; {TREE_REDO}" if changes else None


def _changed_sources(
    tree: Path, manifest: Mapping[str, Any], changes: Sequence[tuple[str, str]]
) -> list[Path]:
    """The downloads (or script's files) that are the same file as a changed file of the tree:
    a hard link edited in place changes both."""
    sources = {e["path"]: tree.parent / e["source"] for e in manifest["files"] if "source" in e}
    return [
        sources[rel]
        for rel, _ in changes
        if rel in sources
        and (tree / rel).exists()
        and sources[rel].exists()
        and os.path.samefile(tree / rel, sources[rel])
    ]


def _tree_damage(
    tree: Path, verified: Path, manifest_path: Path, runs_used_it: bool
) -> tuple[str, Path | None, list[Path]] | None:
    """What is wrong with an unpacked ``tree`` (see :func:`restore_tree`): why it must be
    unpacked again, where a changed tree is kept aside (None: it is not kept), and the source
    files that changed with it; None when nothing is wrong or the tree was never made."""
    keep: Path | None = None
    changed: list[Path] = []
    if not verified.exists():
        if not runs_used_it:
            return None  # never verified: the workflow's own jobs make it
        # finished runs used it: left to Snakemake, the downloads, the verification and the
        # tree would be made again in the plan, and every finished run trained again after them
        why = f"{verified} is missing while finished runs used it"
    elif not tree.is_dir():
        if not manifest_path.exists() and not runs_used_it:
            return None  # never unpacked: the workflow's own jobs make it when a run needs it
        why = f"{tree} is missing"
    elif not manifest_path.exists():
        why = f"{tree} has no manifest ({manifest_path}; unpacked by an older workflow?)"
    else:
        try:
            manifest = read_tree_manifest(manifest_path)
        except DatasetError as exc:
            why = str(exc)
        else:
            changes = tree_changes(tree, manifest)
            if not changes:
                return None
            why = describe_changes(tree, changes)
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            keep = tree.with_name(f"{tree.name}.edited-{stamp}")
            changed = _changed_sources(tree, manifest, changes)
    return why, keep, changed


def restore_tree(
    tree: Path,
    files: Sequence[Mapping[str, Any]],
    source_dir: Path,
    remake: Callable[[Sequence[str]], None],
    *,
    dry_run: bool = False,
    runs_used_it: bool = False,
    max_unpacked_bytes: int | None = None,
) -> str | None:
    """Before a plan is built: unpack ``tree`` again from its verified files when it is gone
    but was unpacked (its manifest is left, or ``runs_used_it``: finished runs exist), has no
    readable manifest, or differs from its manifest. Returns what was found and done (a
    warning for the user), or None when the tree is as unpacked or was never made.

    Snakemake cannot be left to do this: it redoes no upstream job of finished runs, and it
    trains every finished run again when the (ancient) tree is missing as its plan is built. A
    file of ``source_dir`` that is the same file as a changed one of the tree (a hard link edited
    in place) changed with it: it is removed, and ``remake(names)`` makes the missing files again
    (a download, or the dataset script). Then every file is verified and the tree unpacked; a
    changed tree is kept aside as ``<tree>.edited-<time>``, never deleted."""
    verified = tree.with_name("manifest.json")  # rules/dataset.smk: verify_dataset
    manifest_path = tree_manifest_path(tree)
    damage = _tree_damage(tree, verified, manifest_path, runs_used_it)
    if damage is None:
        return None
    why, keep, changed = damage
    remade = "a real run makes it again" if dry_run else "made again"
    found = "; ".join(
        [why]
        + [f"{src} is the same file (a hard link) and changed with it: {remade}" for src in changed]
    )
    if dry_run:
        return f"{found}; a real run unpacks {tree} again before any job"
    for src in changed:
        src.unlink()
    missing = [f["name"] for f in files if not (source_dir / f["name"]).exists()]
    if missing:
        remake(missing)  # fetched again, or the script runs again
    write_verified_manifest(verified, verify(files, source_dir))
    prepare(files, source_dir, tree, manifest_path, keep, max_unpacked_bytes)
    kept = f"; the changed tree is kept as {keep}" if keep else ""
    return f"{found}; unpacked {tree} again from the verified files{kept}"


def run_script(command: str, cwd: Path, output: Path) -> None:
    """Make a dataset with a script (e.g. ``bash download_dataset.sh {output_dir}``, run from
    ``cwd``). It writes into ``<output>.partial``, kept if the script fails (so a script that skips
    files it already has resumes); the folder becomes ``output`` only when the script succeeds."""
    if not cwd.is_dir():
        raise DatasetError(
            f"dataset.script.cwd {cwd} is not a folder; point it at the folder the script must "
            "run from (for NVIDIA's v0.6 GNMT: .../NVIDIA/benchmarks/gnmt/implementations)"
        )
    partial = output.with_name(output.name + ".partial")
    partial.mkdir(parents=True, exist_ok=True)
    argv = ["bash", "-c", command.replace("{output_dir}", shlex.quote(str(partial.resolve())))]
    _note(f"running in {cwd}: {argv[2]}")
    rc = subprocess.run(argv, cwd=cwd, check=False).returncode
    if rc != 0:
        raise DatasetError(
            f"the dataset script failed with exit status {rc}: {argv[2]} (in {cwd}); "
            f"what it wrote is kept in {partial} and reused by the next run"
        )
    shutil.rmtree(output, ignore_errors=True)
    os.replace(partial, output)


def _console_say(fd: int | None) -> Callable[[str], None]:
    """Write a line to stderr and, when ``fd`` is an open descriptor, to it as well."""
    console: TextIO | None = None
    if fd is not None:
        try:
            console = os.fdopen(fd, "w", closefd=False)
        except OSError:
            console = None

    def say(message: str) -> None:
        _note(message)
        if console is not None:
            try:
                console.write(message + "\n")
                console.flush()
            except OSError:
                pass

    return say


def _fetch(args: argparse.Namespace) -> None:
    expected = {a: getattr(args, a) for a in HASHES if getattr(args, a)}
    policy = Policy(
        args.retries,
        args.backoff_s,
        args.timeout_s,
        not args.no_progress,
        args.deadline_s or None,
        args.min_bytes_per_s,
    )
    if _fetched_already(args.dest, expected):
        # made meanwhile by another campaign that shares the data_dir (we waited for its lock)
        print(f"{args.dest} is here already and its checksums match: not fetched again")
        return
    entry = fetch(args.url, args.dest, expected, policy, _console_say(args.console_fd))
    print(f"fetched {entry['name']}: {entry['size']} bytes, checksums match")


def _fetched_already(dest: Path, expected: Mapping[str, str]) -> bool:
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


def _verify(args: argparse.Namespace) -> None:
    try:
        entries = verify(json.loads(args.files_json), args.dir)
    except DatasetError as exc:
        if not args.made_by_script:
            raise
        raise DatasetError(
            f"{exc}\n{args.dir} was made by the dataset script, which exited 0; to run "
            f"the script again, move the folder away (mv {args.dir} {args.dir}.old)"
        ) from None
    write_verified_manifest(args.manifest, entries)
    print(f"verified {len(entries)} files -> {args.manifest}")


def _unpack(args: argparse.Namespace) -> None:
    files = json.loads(args.files_json)
    prepare(files, args.dir, args.dest, args.manifest, None, args.max_unpacked_bytes)
    print(f"prepared {args.dest}" + (f" and {args.manifest}" if args.manifest else ""))


def _check_tree(args: argparse.Namespace) -> None:
    problem = tree_problem(args.tree, full=args.full)
    if problem:
        raise DatasetError(problem)
    print(f"{args.tree} is as unpacked ({tree_manifest_path(args.tree)})")


def _script(args: argparse.Namespace) -> None:
    run_script(args.command, args.cwd, args.output)
    print(f"made {args.output}")


COMMANDS = {
    "fetch": _fetch,
    "verify": _verify,
    "unpack": _unpack,
    "check-tree": _check_tree,
    "script": _script,
}


def _add_fetch_parser(sub: Any) -> None:
    f = sub.add_parser(
        "fetch",
        help="fetch one file to a path from the first URL that has it, checking its checksums",
    )
    f.add_argument(
        "--url", action="append", required=True, help="a source URL (repeatable, tried in order)"
    )
    f.add_argument("--dest", type=Path, required=True, help="the file to write")
    f.add_argument("--sha256", help="expected sha256 (64 hex digits)")
    f.add_argument("--md5", help="expected md5 (32 hex digits)")
    f.add_argument("--retries", type=int, default=Policy.retries, help="retries per source")
    f.add_argument(
        "--backoff-s", type=float, default=Policy.backoff_s, help="first retry wait, seconds"
    )
    f.add_argument(
        "--timeout-s", type=float, default=Policy.timeout_s, help="network timeout, seconds"
    )
    f.add_argument(
        "--deadline-s",
        type=float,
        default=Policy.deadline_s,
        help="the longest the file's download may take, every attempt and wait included "
        "(0: no limit)",
    )
    f.add_argument(
        "--min-bytes-per-s",
        type=float,
        default=Policy.min_bytes_per_s,
        help="an attempt slower than this over --timeout-s fails (and is retried)",
    )
    f.add_argument("--no-progress", action="store_true", help="no progress bar")
    f.add_argument(
        "--console-fd",
        type=int,
        default=None,
        help="also write each retry's line to this open file descriptor (the download rule "
        "gives snakemake's stderr as 3, so retries reach the console while the rest goes to the "
        "job's log)",
    )


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m scripts dataset",
        description="Fetch, verify and unpack dataset files, or make them with a script.",
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    _add_fetch_parser(sub)
    v = sub.add_parser("verify", help="verify every file of a dataset, write its manifest")
    v.add_argument("--files-json", required=True, help="the benchmark's dataset.files as JSON")
    v.add_argument("--dir", type=Path, required=True, help="folder holding the files")
    v.add_argument("--manifest", type=Path, required=True, help="manifest JSON to write")
    v.add_argument(
        "--made-by-script", action="store_true", help="the folder was made by dataset.script"
    )
    u = sub.add_parser("unpack", help="unpack archives and link plain files into a folder")
    u.add_argument("--files-json", required=True)
    u.add_argument("--dir", type=Path, required=True)
    u.add_argument("--dest", type=Path, required=True)
    u.add_argument(
        "--manifest", type=Path, help="the tree's manifest to write (every file's size, sha256)"
    )
    u.add_argument(
        "--max-unpacked-bytes",
        type=int,
        default=None,
        help="the most bytes the archives may unpack to (default: 100 x their size, at least "
        "1 GiB; config dataset.max_unpacked_bytes)",
    )
    c = sub.add_parser(
        "check-tree", help="check an unpacked tree against its manifest (size, mtime, sha256)"
    )
    c.add_argument("tree", type=Path, help="e.g. data/gnmt/dataset")
    c.add_argument(
        "--full", action="store_true", help="hash every file, not only those whose mtime changed"
    )
    s = sub.add_parser("script", help="make a dataset folder with a script")
    s.add_argument("--command", required=True, help="shell command; {output_dir} is replaced")
    s.add_argument("--cwd", type=Path, required=True, help="folder to run it from")
    s.add_argument("--output", type=Path, required=True, help="the folder to make")
    for command in (v, u, s, sub.choices["fetch"]):
        _add_lock_args(command)
    return p


def _add_lock_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--lock",
        type=Path,
        default=None,
        help="the dataset's lock file (<data_dir>/<benchmark>.lock), held while the command "
        "runs unless its campaign holds it (scripts/data/datalock.py)",
    )
    p.add_argument(
        "--lock-wait-s",
        type=float,
        default=datalock.DEFAULT_WAIT_S,
        help="the longest to wait for another holder of the lock (0: no limit; config "
        "data_lock_wait_s)",
    )


# what a command holding the dataset's lock is doing (the lock file records it for others)
LOCK_WHAT = {
    "fetch": lambda a: f"fetching {a.dest.name}",
    "verify": lambda a: "verifying its files",
    "unpack": lambda a: "unpacking it",
    "script": lambda a: "running its dataset script",
}


@contextlib.contextmanager
def _dataset_lock(args: argparse.Namespace) -> Iterator[None]:
    """The dataset's lock (``--lock``) around a command, as :mod:`scripts.data.datalock` says."""
    lock = getattr(args, "lock", None)
    say = _console_say(getattr(args, "console_fd", None))
    try:
        wait = args.lock_wait_s or None  # 0: no limit
        with datalock.held_for_command(lock, LOCK_WHAT[args.cmd](args), wait, say):
            yield
    except datalock.DataLocked as exc:
        raise DatasetError(str(exc)) from None


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.cmd in LOCK_WHAT:
            with _dataset_lock(args):
                COMMANDS[args.cmd](args)
        else:
            COMMANDS[args.cmd](args)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
