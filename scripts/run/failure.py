"""When an attempt of a run made here failed, and what is kept and shown of it.

The run is a *crash* (exit status non-zero, so Snakemake removes the outputs and the next
invocation redoes it) when the trainer exits non-zero, dies from a signal, exceeds the
timeout, ends without a ``run_stop`` event, or writes a line that matches one of the
benchmark's ``fail_patterns`` (:func:`failure_reason`, a pure function). A copy of the log of
every failed attempt is kept under ``logs/failed/`` with the attempt's timestamp; it is never
overwritten (:func:`keep_failed_log`), and the job's output shows the reason and the log's last
lines (:func:`crash_report`). A run that ends with ``run_stop`` status ``aborted`` (did not
converge) is a result, not a crash.

A log that exits 0 is checked as a log of *this* run (:class:`scripts.mlperf.log_validity.OwnRun`):
it must name the benchmark's ``mlperf_name`` (or a folder alias) when it names one, its time to
train cannot be longer than the runner saw the trainer run (plus 1 s and 1%), and it may be at
most the benchmark's ``max_log_bytes`` (default 1 GiB; a larger log is not read). A log that
fails is a crash, as any invalid log of a run made here.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

from scripts.core import layout
from scripts.mlperf.log_validity import OwnRun, log_problems_of
from scripts.run.spec import RunSpec


class RunFailed(RuntimeError):
    """A run (or one attempt) failed; ``report`` is what the job's output shows about a crash
    (:func:`crash_report`), when there is one."""

    def __init__(self, message: str, report: str | None = None) -> None:
        super().__init__(message)
        self.report = report


def keep_failed_log(
    log: Path, failed_dir: Path, spec: RunSpec, reason: str, node_logs: Sequence[Path] = ()
) -> Path:
    """Copy the log of a failed attempt to ``failed_dir`` under a never-reused name (with the
    output of the other nodes of a multi-node run appended)."""
    failed_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    attempt = 1 + sum(1 for _ in failed_dir.glob(layout.failed_logs_glob(spec.run_id)))
    dest = failed_dir / layout.failed_log_name(spec.run_id, attempt, stamp)
    if log.exists():
        shutil.copyfile(log, dest)
    with dest.open("a") as fh:
        for node_log in node_logs:
            if node_log.exists():
                fh.write(f"\n# workflow: output of {node_log.name}:\n")
                fh.write(node_log.read_text(errors="replace"))
        fh.write(f"\n# workflow: attempt failed: {reason}\n")
    return dest


def log_facts(
    log_path: Path, fail_patterns: Sequence[str], own: OwnRun | None = None
) -> tuple[str, str | None]:
    """What :func:`failure_reason` needs to know of the log of a trainer that exited 0: why
    it is not a valid MLPerf log of this finished run (no run_stop, another benchmark's, ...;
    "" when it is one), and else the first line that matches a failure pattern (None: none
    does)."""
    invalid = invalid_log_reason(log_path, own)
    if invalid or not fail_patterns:
        return invalid, None
    return invalid, matched_fail_pattern(log_path, fail_patterns)


def failure_reason(
    exit_status: int,
    *,
    timed_out: bool = False,
    timeout_s: float | None = None,
    container: bool = False,
    engine: str = "docker",
    start_failures: Sequence[int] = (125,),
    invalid_log: str = "",
    fail_match: str | None = None,
) -> str | None:
    """Why an attempt failed, or None when it succeeded: a pure function of how the trainer
    ended and what its log says, first match wins:

    - it ran past ``timeout_s`` (and was killed: its container stopped and removed, or its
      process group killed);
    - it exited with a nonzero status, or was killed by a signal (a negative status); in a
      container (``container``), one of ``start_failures`` is the ``engine`` (docker: 125;
      podman: 125, 126) failing to start it and above 128 a signal inside it;
    - it exited 0 but its log is not a valid MLPerf log of a finished run (``invalid_log``,
      from :func:`invalid_log_reason`);
    - a line of its log matches a failure pattern (``fail_match``, from
      :func:`matched_fail_pattern`).
    """
    if timed_out:
        what = "container stopped and removed" if container else "process group killed"
        return f"timed out after {timeout_s} s; {what}"
    if exit_status != 0:
        if exit_status < 0:
            return f"trainer killed by signal {-exit_status}"
        reason = f"trainer exited with status {exit_status}"
        if container and exit_status in start_failures:
            return f"{engine} could not start the container (exit {exit_status}; the log says why)"
        if container and exit_status > 128:
            reason += (
                f" (killed by signal {exit_status - 128} in the container; 137: SIGKILL or OOM)"
            )
        return reason
    return invalid_log or fail_match or None


def invalid_log_reason(log_path: Path, own: OwnRun | None = None) -> str:
    """Why the log of a trainer that exited 0 is not a valid MLPerf log of a finished run
    (scripts.mlperf.log_validity.log_problems; with ``own``, of this run: own_run_problems), or ""
    when it is one. A reason makes the run a crash whose log is kept; a failure of the parser
    itself is such a reason too, never a lost log."""
    try:
        problems = log_problems_of(log_path, run=own)
    except Exception as exc:  # noqa: BLE001 (whatever it is, the log must be kept)
        return f"trainer exited 0 but its log could not be parsed ({type(exc).__name__}: {exc})"
    if not problems:
        return ""
    return "trainer exited 0 but its log is not a valid MLPerf log: " + "; ".join(problems)


def matched_fail_pattern(log_path: Path, patterns: Sequence[str]) -> str | None:
    """'the log matches ...' for the first line that matches one of ``patterns``, or None."""
    compiled = [re.compile(p) for p in patterns]
    with log_path.open(encoding="utf-8", errors="replace") as fh:
        for no, line in enumerate(fh, 1):
            for rx in compiled:
                if rx.search(line):
                    return (
                        f"log line {no} matches the failure pattern {rx.pattern!r}: "
                        f"{line.strip()[:200]!r}"
                    )
    return None


TAIL_LINES = 20  # lines of the trainer's log in a crash report


TAIL_BYTES = 64 << 10  # read from the end of the log for them, never more


LINE_CHARS = 200  # longer lines are cut to this many characters and "..."


def crash_report(
    spec: RunSpec, reason: str, kept: Path, lines: int = TAIL_LINES, width: int = LINE_CHARS
) -> str:
    """What the job's output says about a crashed attempt: one line with the run, the reason
    and the kept log's path, then the last ``lines`` lines of that log (each cut at ``width``
    characters, control characters escaped), read from its last TAIL_BYTES: never the whole
    log, whatever its size or line lengths."""
    head = (
        f"run {spec.run} of {spec.benchmark}/{spec.system} failed: {reason}; "
        f"its log is kept at {kept}"
    )
    tail = [t for t in _tail(kept, lines + 1) if not t.startswith("# workflow: attempt failed")]
    tail = [_cut(t, width) for t in tail[-lines:]]
    if not tail:
        return f"{head}\n  (the trainer wrote nothing)"
    return "\n".join([head, f"  its last {len(tail)} lines:", *(f"  | {t}" for t in tail)])


def _tail(path: Path, lines: int) -> list[str]:
    """The last ``lines`` non-empty lines in the last TAIL_BYTES of ``path`` (a line that began
    before them starts with '...')."""
    try:
        with path.open("rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            start = max(0, size - TAIL_BYTES)
            fh.seek(start)
            data = fh.read(TAIL_BYTES)
    except OSError:
        return []
    parts = data.decode("utf-8", errors="replace").split("\n")
    if start > 0:
        parts[0] = "..." + parts[0]
    return [t for t in (t.rstrip("\r") for t in parts) if t.strip()][-lines:]


def _cut(line: str, width: int) -> str:
    line = "".join(c if c.isprintable() else repr(c)[1:-1] for c in line.expandtabs(4))
    return line if len(line) <= width else line[:width] + "..."
