"""One file over HTTP(S): retries, a deadline, redirects by hand, and Range resume.

``http(s)://`` downloads use ``requests`` with one retry policy (:class:`Policy
<scripts.data.download_policy.Policy>`, config key ``download``): one loop of attempts with
exponential backoff after connection errors, timeouts, cut-off bodies, HTTP 429 and 5xx
(urllib3's own retries are off, so nothing retries inside it), each retry announced by one line
(file, reason, next try in N s). An attempt slower than ``min_bytes_per_s`` over a window of
``timeout_s`` fails too (a server that trickles a byte every few seconds never times out), and
``deadline_s`` bounds one file's download, attempts and waits included. Redirects are followed by
hand: to http(s) only, at most :data:`MAX_REDIRECTS`, a loop named. A body cut off mid-way is
resumed with an HTTP ``Range`` request (``If-Range`` guards against splicing two versions of a
file; a server that ignores ``Range`` is restarted from byte 0). Every byte is hashed as it
arrives, so a download reads its bytes once. A download that fails after its retries keeps its
``.part`` (and, beside it, ``.part.json``: the URL and validator it was fetched under): the next
attempt resumes from there.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlparse

from scripts.core.hashing import write_json
from scripts.data.checksums import CHUNK, Hashing, copy_hashed
from scripts.data.download_policy import Policy, progress_bar
from scripts.data.errors import DatasetError, SourceMissing, note
from scripts.data.sources import url_scheme

# answers that are retried (with Retry-After honoured); any other 4xx/5xx fails at once
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# redirects one download follows (each to http:// or https:// only)
MAX_REDIRECTS = 10


def _session() -> Any:
    # lazy: requests and urllib3 take 0.2 s to import, and every workflow load imports this
    # module (rules/common.smk); only a download needs them
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    session = requests.Session()
    # no retries inside urllib3: fetch_http's loop is the one retry policy (and announces each)
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
            copy_hashed(fh, None, hashing, lambda n: None)  # type: ignore[arg-type]
        note(f"resuming {part.name} at byte {hashing.size} (left by an earlier attempt)")
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


def fetch_http(
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
            note(f"{url}: range {offset}- not satisfiable; restarting from byte 0")
            hashing.reset()
            resume["validator"] = None
            return False
        _check_status(r, url)
        resumed = r.status_code == 206 and _range_start(r.headers) == offset
        if offset and not resumed:
            note(
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
        if url_scheme(target) not in ("http", "https") or not urlparse(target).netloc:
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
        progress_bar(part.stem, total, offset, policy) as bar,
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
