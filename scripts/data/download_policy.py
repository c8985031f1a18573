"""How hard a download tries, and what it shows while it runs.

:class:`Policy` is the config key ``download``: retries with exponential backoff (at most
:data:`MAX_WAIT_S` per wait), the network timeout, the slowest speed an attempt may keep
(``min_bytes_per_s``) and the longest one file's download may take (``deadline_s``).
:func:`progress_bar` is the bar of a file of :data:`PROGRESS_MIN_BYTES` or more: on a terminal,
or one line per update in a log.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, TextIO

# files at least this big get a progress bar
PROGRESS_MIN_BYTES = 16 << 20

# the longest wait before one retry, whatever backoff_s or a server's Retry-After says
MAX_WAIT_S = 60.0
# download defaults (config download: deadline_s, min_bytes_per_s): a day per file (ImageNet's
# 138 GB train tar at 1.6 MB/s), and 1 KiB/s over each timeout_s
DEADLINE_S = 86400.0
MIN_BYTES_PER_S = 1024.0


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


def progress_bar(name: str, total: int | None, initial: int, policy: Policy) -> Any:
    from tqdm import tqdm  # lazy, as requests (http_download.py): only a download needs it

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
