"""The node's power, sampled beside the trainer and written as MLPerf's power log, so that the
code that scores published power results scores a run made here (:mod:`scripts.mlperf.power`).

A system's ``power`` setting (``source: none | command | nvml``, ``interval_s``,
``conversion_eff``, ``command``, ``timeout_s``) picks the source:

- ``command``: the user's command (a shell string, run by ``bash -c``, or an argv list, run as
  it is), e.g. ``ipmitool dcmi power reading``, a Redfish query or a PDU's CLI, run once per
  interval with ``MLPERF_BENCHMARK``, ``MLPERF_SYSTEM`` and ``MLPERF_RUN`` in its environment.
  The first number it prints is the node's watts (:func:`first_number`). Each call has its
  own time limit (``timeout_s``; its process group is killed then) and at most
  :data:`OUTPUT_LIMIT` bytes of output are read.
- ``nvml``: the run's GPUs' power (:mod:`scripts.run.nvml_power`): the GPUs only, not the node
  at the wall, with their clock event reasons, temperatures, clocks and errors
  (``gpu_telemetry.json``).

The runner (:mod:`scripts.run.runner`) starts the sampler just before the trainer and stops it
as soon as the trainer has exited (also when the launch failed: :class:`RunPower` is a context);
the stop takes one more sample, after ``run_stop``. The power log's window is then the log's
``run_start`` to the first reading at or after its ``run_stop``
(:mod:`scripts.run.power_log`): the result summarizer integrates each reading over the time
since the one before it (``_compute_power_node``), a reading standing for the interval that
ends with it, and averages over the window, so the trainer's start-up and teardown, kept in the
file before and after the window, are not scored.

``power/node_0.txt`` in the run's folder holds, as mlperf-logging's ``power_measurement.py``
writes them, ``power_measurement_start``, ``conversion_eff``, one ``power_reading`` per sample
(watts, integer milliseconds since the epoch, as mllog stamps events) and
``power_measurement_stop``.

A source never fails the run, loses its time or hangs it: a call that fails, times out or
prints no number is a failed sample, and every stretch of failed samples is a *gap*, named in
run.json's ``power_sampling`` (from, to, samples, the first error), with the rate achieved
(median and longest spacing); a source that cannot start at all is named there too, and the
run has no power log. The stop waits at most ``timeout_s`` + ``interval_s`` +
:data:`STOP_SLACK_S` for the source (an NVML call has no limit of its own) and
:data:`CLOSE_LIMIT_S` for its close, then abandons it (``abandoned``, a gap to the stop).
Whether the energy is still scored is :func:`scripts.mlperf.own_power.own_power`'s decision.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from scripts.core import hashing
from scripts.mlperf.own_power import own_power, run_window
from scripts.run import hostload
from scripts.run.power_log import (
    Attempt,
    gap_record,
    inside,
    power_log_text,
    scored_window,
    spacing_record,
)

SOURCES = ("none", "command", "nvml")
POWER_FILE = "power/node_0.txt"  # in the run's folder, as power/result_N/node_0.txt published
OUTPUT_LIMIT = 64 << 10  # bytes of a command's output read per call
STOP_SLACK_S = 5.0  # beyond one call's limit and one interval, waited for the sampler's stop
CLOSE_LIMIT_S = 30.0  # waited for a source's close (NVML's counters and shutdown)
REAP_LIMIT_S = 5.0  # waited for a killed command to be reaped (a process in D state is left)
ERROR_CHARS = 300  # of an error message kept
# a number standing alone (not the digits of a word such as "E000" or "PSU1"), a comma between
# groups of three digits read as a thousands separator ("1,234 W"), and its unit when it is
# kW or mW (watts otherwise)
_NUMBER = re.compile(
    rb"(?<![\w.,])(?P<number>[-+]?(?:\d{1,3}(?:,\d{3})+(?:\.\d*)?|\d+\.?\d*|\.\d+)"
    rb"(?:[eE][-+]?\d+)?)(?![\d,])(?:\s*(?P<unit>[kK][wW]|mW)(?![A-Za-z]))?"
)
_UNITS = {b"kw": 1000.0, b"mw": 0.001}
MEASURES = {
    "command": "the node's power as the command reports it (wall-plug power when the command "
    "reads a BMC, PDU or meter at the plug)",
    "nvml": "the GPUs only, through NVML: not MLPerf's wall-plug node power (CPUs, memory, "
    "fans, network and power supplies are not measured)",
}


class SourceFailed(Exception):
    """A sample the source could not take (the message says why, in one line)."""


class Source(Protocol):
    """Where the watts come from. ``open`` may raise (the source cannot start); ``read``
    raises SourceFailed for one failed sample; ``close`` returns what the run's record adds."""

    name: str

    def open(self) -> None: ...

    def read(self) -> float: ...

    def close(self, run_dir: Path, start_s: float, stop_s: float) -> dict[str, Any]: ...


@dataclass(frozen=True)
class PowerSettings:
    """A system's ``power`` setting, as the config's schema fills it in."""

    source: str = "none"
    interval_s: float = 1.0
    conversion_eff: float = 1.0
    command: str | tuple[str, ...] | None = None
    timeout_s: float = 10.0

    @classmethod
    def of(cls, setting: Mapping[str, Any] | None) -> PowerSettings:
        """The settings of a run spec's ``power`` (empty or None: no power measured)."""
        s = dict(setting or {})
        command = s.get("command")
        return cls(
            source=str(s.get("source") or "none"),
            interval_s=float(s.get("interval_s", 1.0)),
            conversion_eff=float(s.get("conversion_eff", 1.0)),
            command=tuple(map(str, command)) if isinstance(command, list) else command,
            timeout_s=float(s.get("timeout_s", 10.0)),
        )

    def argv(self) -> list[str]:
        """The command's argv: a list as it is, a string through ``bash -c``."""
        if isinstance(self.command, tuple):
            return list(self.command)
        return ["bash", "-c", str(self.command)]


def first_number(output: bytes) -> float:
    """The first number in a command's output, as watts (``kW`` and ``mW`` after it converted;
    ``1,234`` is 1234); SourceFailed without one, or for one that is not finite, negative or
    zero (a BMC whose power reading is deactivated prints 0: no reading, not 0 W)."""
    match = _NUMBER.search(output)
    if match is None:
        shown = output.decode("utf-8", "replace").strip()[:ERROR_CHARS]
        raise SourceFailed(f"no number in its output ({shown!r})")
    text = match.group().decode()
    watts = float(match.group("number").replace(b",", b""))
    if unit := match.group("unit"):
        watts *= _UNITS[unit.lower()]
    if not math.isfinite(watts) or watts < 0:
        raise SourceFailed(f"{text} is not a power in watts")
    if watts == 0:
        raise SourceFailed(f"{text}: no power reading (a deactivated sensor reports 0)")
    return watts


def run_bounded(argv: Sequence[str], env: Mapping[str, str], timeout_s: float) -> bytes:
    """The stdout of ``argv`` (at most OUTPUT_LIMIT bytes), run in a session of its own with
    stdin /dev/null; SourceFailed when it cannot start, prints more, runs past ``timeout_s``
    (its process group is killed) or exits non-zero (with its stderr's last line)."""
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env),
            start_new_session=True,
        )
    except OSError as exc:
        raise SourceFailed(f"cannot start {argv[0]}: {exc.strerror or exc}") from None
    try:
        out, err, why = _read_until(proc, time.monotonic() + timeout_s, timeout_s)
    finally:
        if proc.poll() is None:
            _kill_group(proc)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(REAP_LIMIT_S)  # never unbounded: the sampler's stop waits for this
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    if why:
        raise SourceFailed(why)
    if proc.returncode != 0:
        last = err.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
        raise SourceFailed(f"exited with {proc.returncode}: {last[0][:ERROR_CHARS]}".rstrip(": "))
    return out


def _read_until(
    proc: subprocess.Popen[bytes], deadline: float, timeout_s: float
) -> tuple[bytes, bytes, str]:
    """Read the process's stdout and stderr until both close: (stdout, stderr, why it was cut
    short, or "")."""
    assert proc.stdout is not None and proc.stderr is not None
    chunks: dict[int, list[bytes]] = {proc.stdout.fileno(): [], proc.stderr.fileno(): []}
    sizes = dict.fromkeys(chunks, 0)
    with selectors.DefaultSelector() as sel:
        for pipe in (proc.stdout, proc.stderr):
            sel.register(pipe, selectors.EVENT_READ)
        while sel.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                return b"", b"", f"no answer within {timeout_s:g} s (timeout_s): killed"
            for key, _ in sel.select(left):
                fd = key.fd
                data = os.read(fd, 8192)
                if not data:
                    sel.unregister(key.fileobj)
                    continue
                chunks[fd].append(data)
                sizes[fd] += len(data)
                if sizes[fd] > OUTPUT_LIMIT:
                    return b"", b"", f"printed more than {OUTPUT_LIMIT} bytes: killed"
    out, err = (b"".join(chunks[p.fileno()]) for p in (proc.stdout, proc.stderr))
    return out, err, ""


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


@dataclass
class CommandSource:
    """The watts a user's command prints (see the module's docstring)."""

    settings: PowerSettings
    env: Mapping[str, str]
    name: str = "command"

    def open(self) -> None:
        if not self.settings.command:
            raise SourceFailed("power.source is command but power.command is not set")

    def read(self) -> float:
        return first_number(run_bounded(self.settings.argv(), self.env, self.settings.timeout_s))

    def close(self, run_dir: Path, start_s: float, stop_s: float) -> dict[str, Any]:
        return {}


@dataclass
class Sampler:
    """Samples ``source`` every ``interval_s`` in a thread of the runner, from :meth:`start`
    to :meth:`stop`; :meth:`stop` writes the power log and returns run.json's record."""

    source: Source
    settings: PowerSettings
    run_dir: Path
    clock: Callable[[], float] = time.time
    attempts: list[Attempt] = field(default_factory=list)
    start_ms: int = 0
    problem: str = ""  # why the source could not start (then nothing is sampled)
    _stop: threading.Event = field(default_factory=threading.Event)
    _stop_ms: int = 0
    _thread: threading.Thread | None = None
    others: Callable[[], list[str]] | None = None  # the runs beside it on this host now
    concurrent: set[str] = field(default_factory=set)

    def start(self) -> None:
        """Open the source and start sampling (a source that cannot open is recorded)."""
        self.start_ms = int(self.clock() * 1000)
        try:
            self.source.open()
        except Exception as exc:  # noqa: BLE001 (any failure of the source is its record's)
            self.problem = f"the {self.source.name} source could not start: {_one_line(exc)}"
            return
        self._thread = threading.Thread(target=self._loop, name="power-sampler", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        """One sample per interval, on a fixed grid from the start (a late one skips the grid
        points it missed, never takes two at once); at the stop, the sample that closes the
        window, unless the one in flight when the stop came ended after it."""
        t0, step, k = time.monotonic(), self.settings.interval_s, 1
        while not self._stop.wait(max(0.0, t0 + k * step - time.monotonic())):
            self._sample()
            with contextlib.suppress(Exception):  # a run's record, never the sampler's end
                self.concurrent.update(self.others() if self.others else ())
            k = max(k + 1, math.floor((time.monotonic() - t0) / step) + 1)
        if not self.attempts or self.attempts[-1].time_ms <= self._stop_ms:
            self._sample()  # after the trainer's run_stop: it closes the window

    def _sample(self) -> None:
        try:
            watts: float | None = self.source.read()
            error = ""
        except SourceFailed as exc:
            watts, error = None, str(exc)
        except Exception as exc:  # noqa: BLE001 (a source's bug is a failed sample, not a crash)
            watts, error = None, _one_line(exc)
        self.attempts.append(Attempt(int(self.clock() * 1000), watts, error[:ERROR_CHARS]))

    def stop_limit_s(self) -> float:
        """How long :meth:`stop` waits for the source: one call's limit, one interval and
        :data:`STOP_SLACK_S` (an NVML call has no limit of its own)."""
        return self.settings.timeout_s + self.settings.interval_s + STOP_SLACK_S

    def stop(self, run: tuple[float, float] | None = None) -> dict[str, Any]:
        """Stop sampling (the closing sample taken), write the power log over the window of
        the log's ``run`` (run_start, run_stop in ms; :func:`scored_window`) and return
        run.json's ``power_sampling`` record. Never raises and never waits longer than
        :meth:`stop_limit_s` for the source (then it is abandoned, named in the record)."""
        record = self._base_record()
        if self._thread is None:
            record["problem"] = self.problem
            return record
        self._stop_ms = int(self.clock() * 1000)
        self._stop.set()
        limit = self.stop_limit_s()
        self._thread.join(limit)
        attempts = list(self.attempts)  # a hung thread may still append: not to this run
        if self._thread.is_alive():
            why = f"no answer within {limit:g} s of the stop: abandoned"
            attempts.append(Attempt(self._stop_ms, None, why))
            record["abandoned"] = True
        end_ms = max(attempts[-1].time_ms, self.start_ms)
        start_ms, stop_ms = scored_window(attempts, self.start_ms, end_ms, run)
        closed = _bounded(
            lambda: self.source.close(self.run_dir, start_ms / 1000, stop_ms / 1000), CLOSE_LIMIT_S
        )
        extra = closed if isinstance(closed, dict) else {"close_problem": closed}
        scored = inside(attempts, start_ms, stop_ms)
        record.update(gap_record(scored, start_ms, stop_ms), **spacing_record(scored, start_ms))
        record.update(
            window=_window_name(run, start_ms), outside_window=len(attempts) - len(scored)
        )
        record["sampled_s"] = round((end_ms - self.start_ms) / 1000, 3)  # the whole sampling
        record.update(extra, concurrent_runs=sorted(self.concurrent))
        text = power_log_text(
            start_ms, stop_ms, attempts, self.settings.conversion_eff, self.source.name
        )
        try:
            hashing.write_atomic(self.run_dir / POWER_FILE, text)
        except OSError as exc:
            record["problem"] = f"{POWER_FILE} could not be written: {exc.strerror or exc}"
        else:
            record["file"] = POWER_FILE
        return record

    def _base_record(self) -> dict[str, Any]:
        return {
            "source": self.source.name,
            "measures": MEASURES.get(self.source.name, ""),
            "interval_s": self.settings.interval_s,
            "conversion_eff": self.settings.conversion_eff,
            "file": None,
            "problem": "",
        }


def _window_name(run: tuple[float, float] | None, start_ms: float) -> str:
    """What the window is, in run.json's words."""
    if run is not None and start_ms == run[0]:
        return "run_start to the first reading at or after run_stop"
    return "the whole sampling (the log has no run_start and run_stop inside it)"


def _bounded(call: Callable[[], Any], limit_s: float) -> Any:
    """``call()``'s value, run in a thread of its own and waited for at most ``limit_s``;
    else (or when it raises) why not, in one line (a hung driver never hangs the run)."""
    box: list[Any] = []

    def run() -> None:
        try:
            box.append(call())
        except Exception as exc:  # noqa: BLE001 (any failure is the record's)
            box.append(_one_line(exc))

    thread = threading.Thread(target=run, name="power-close", daemon=True)
    thread.start()
    thread.join(limit_s)
    return box[0] if box else f"no answer within {limit_s:g} s: abandoned"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:ERROR_CHARS]


def make_source(
    settings: PowerSettings, env: Mapping[str, str], gpu_devices: Sequence[str]
) -> Source | None:
    """The source of ``settings`` (None for ``none``)."""
    if settings.source == "command":
        return CommandSource(settings, env)
    if settings.source == "nvml":
        # lazy: NVML's binding is imported only by a run that samples it
        from scripts.run.nvml_power import NvmlSource

        return NvmlSource(list(gpu_devices))
    return None


def start(
    setting: Mapping[str, Any] | None,
    run_dir: Path,
    env: Mapping[str, str],
    gpu_devices: Sequence[str] = (),
) -> Sampler | None:
    """A started sampler for a run spec's ``power`` setting, or None without a source.
    ``env``: the command's environment; ``gpu_devices``: the run's GPUs (NVML: all GPUs of
    the host when empty)."""
    settings = PowerSettings.of(setting)
    source = make_source(settings, env, gpu_devices)
    if source is None:
        return None
    sampler = Sampler(source, settings, run_dir)
    sampler.start()
    return sampler


def command_env(
    environ: Mapping[str, str], benchmark: str, system: str, run: int
) -> dict[str, str]:
    """The environment of a ``command`` source: the runner's, with the run named in
    ``MLPERF_BENCHMARK``, ``MLPERF_SYSTEM`` and ``MLPERF_RUN``."""
    return {
        **environ,
        "MLPERF_BENCHMARK": benchmark,
        "MLPERF_SYSTEM": system,
        "MLPERF_RUN": str(run),
    }


def finish(
    sampler: Sampler | None,
    run_dir: Path,
    nodes: int = 1,
    run: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """Stop ``sampler``: run.json's ``power_sampling`` (the sampler's record, over the window of
    the log's ``run``: run_start, run_stop in ms) and ``power`` (the power log's facts, scored
    as a published one: :func:`scripts.mlperf.own_power.own_power`); nothing without a
    sampler. Never raises."""
    if sampler is None:
        return {}
    record = sampler.stop(run)
    try:
        block = own_power(run_dir, record, nodes)
    except Exception as exc:  # noqa: BLE001 (the run keeps its time whatever the power log is)
        problem = f"power: the power log could not be read: {_one_line(exc)}"
        block = {"result_name": None, "files": [], "problems": [problem], "scorable": False}
    return {"power_sampling": record, "power": block}


@dataclass
class RunPower:
    """A run's attempt as the runner sees its power, a context around the trainer: :meth:`of`
    starts sampling before the trainer starts, :meth:`trainer_ended` stops it as soon as the
    trainer has exited (also when the launch failed: on leaving the context); then ``facts``
    holds run.json's ``power_sampling`` and ``power`` (empty without a source) and
    ``stop_s`` the seconds the stop took, which the run's wall time leaves out."""

    sampler: Sampler | None
    log_path: Path
    nodes: int = 1
    stop_s: float = 0.0
    facts: dict[str, Any] = field(default_factory=dict)
    _ended: bool = False

    @classmethod
    def of(
        cls, spec: Any, log_path: Path, gpu_devices: Sequence[str] = (), marker: Path | None = None
    ) -> RunPower:
        """Start sampling a run spec's ``power`` source (a RunSpec: benchmark, system, run,
        nodes, power) for the run whose log is ``log_path``; ``marker``: its running marker,
        beside which the runs on this host at the same time are seen."""
        env = command_env(os.environ, spec.benchmark, spec.system, spec.run)
        sampler = start(spec.power, log_path.parent, env, gpu_devices)
        if sampler is not None and marker is not None:
            sampler.others = lambda: hostload.other_runs(marker)
        return cls(sampler, log_path, spec.nodes)

    def __enter__(self) -> RunPower:
        return self

    def __exit__(self, *exc: object) -> None:
        self.trainer_ended()

    def trainer_ended(self) -> None:
        """Stop sampling, once; the window is the log's run_start to run_stop."""
        if self._ended or self.sampler is None:
            self._ended = True
            return
        self._ended = True
        t0 = time.monotonic()
        self.facts = finish(
            self.sampler, self.log_path.parent, self.nodes, run_window(self.log_path)
        )
        self.stop_s = time.monotonic() - t0
