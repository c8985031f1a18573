"""The node's power, sampled beside the trainer and written as MLPerf's power log, so that the
code that scores published power results scores a run made here (:mod:`scripts.mlperf.power`).

A system's ``power`` setting (``source: none | command | nvml``, ``interval_s``,
``conversion_eff``, ``command``, ``timeout_s``) picks the source:

- ``command``: the user's command (a shell string, run by ``bash -c``, or an argv list, run as
  it is), e.g. ``ipmitool dcmi power reading``, a Redfish query or a PDU's CLI, run once per
  interval with ``MLPERF_BENCHMARK``, ``MLPERF_SYSTEM`` and ``MLPERF_RUN`` in its environment.
  The first number it prints is the node's watts. Each call has its own time limit
  (``timeout_s``; its process group is killed then) and at most :data:`OUTPUT_LIMIT` bytes of
  output are read.
- ``nvml``: the run's GPUs' power (:mod:`scripts.run.nvml_power`): the GPUs only, not the node
  at the wall, with their clock event reasons, temperatures, clocks and errors
  (``gpu_telemetry.json``).

The runner (:mod:`scripts.run.runner`) starts the sampler just before the trainer and stops it
as soon as the trainer has exited: ``power_measurement_start`` is written before the trainer
can log ``run_start``, and the last reading (taken at the stop, after ``run_stop``) closes the
window with ``power_measurement_stop``, so the window covers ``run_start`` to ``run_stop``. The
result summarizer integrates each reading over the time since the one before it
(``_compute_power_node``): a reading stands for the interval that ends with it, which is how
the samples are taken (one per interval, the first one interval after the start).

``power/node_0.txt`` in the run's folder holds, as mlperf-logging's ``power_measurement.py``
writes them, ``power_measurement_start``, ``conversion_eff``, one ``power_reading`` per sample
(watts, integer milliseconds since the epoch, as mllog stamps events) and
``power_measurement_stop``.

A source never fails the run or loses its time: a call that fails, times out or prints no
number is a failed sample, and every stretch of failed samples is a *gap*, named in run.json's
``power_sampling`` (from, to, samples, the first error); a source that cannot start at all is
named there too, and the run has no power log. Whether the energy is still scored is
:func:`scripts.mlperf.power.own_power`'s decision.
"""

from __future__ import annotations

import json
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
from scripts.mlperf.own_power import own_power

SOURCES = ("none", "command", "nvml")
POWER_FILE = "power/node_0.txt"  # in the run's folder, as power/result_N/node_0.txt published
OUTPUT_LIMIT = 64 << 10  # bytes of a command's output read per call
MAX_GAPS = 20  # gaps named in run.json (and how many more there were)
ERROR_CHARS = 300  # of an error message kept
_NUMBER = re.compile(rb"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
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
    """The first number in a command's output, as watts; SourceFailed without one, or for a
    number that is not finite or is negative."""
    match = _NUMBER.search(output)
    if match is None:
        shown = output.decode("utf-8", "replace").strip()[:ERROR_CHARS]
        raise SourceFailed(f"no number in its output ({shown!r})")
    watts = float(match.group())
    if not math.isfinite(watts) or watts < 0:
        raise SourceFailed(f"{match.group().decode()} is not a power in watts")
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
        proc.wait()
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
class Attempt:
    """One sample: when it ended, the watts (None: failed) and why it failed."""

    time_ms: int
    watts: float | None
    error: str = ""


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
    _thread: threading.Thread | None = None

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
        points it missed, never takes two at once)."""
        t0, step, k = time.monotonic(), self.settings.interval_s, 1
        while not self._stop.wait(max(0.0, t0 + k * step - time.monotonic())):
            self._sample()
            k = max(k + 1, math.floor((time.monotonic() - t0) / step) + 1)

    def _sample(self) -> None:
        try:
            watts: float | None = self.source.read()
            error = ""
        except SourceFailed as exc:
            watts, error = None, str(exc)
        except Exception as exc:  # noqa: BLE001 (a source's bug is a failed sample, not a crash)
            watts, error = None, _one_line(exc)
        self.attempts.append(Attempt(int(self.clock() * 1000), watts, error[:ERROR_CHARS]))

    def stop(self) -> dict[str, Any]:
        """Stop sampling, take the closing sample, write the power log and return run.json's
        ``power_sampling`` record. Never raises: a failure is in the record."""
        record = self._base_record()
        if self._thread is None:
            record["problem"] = self.problem
            return record
        self._stop.set()
        self._thread.join()
        self._sample()  # the reading that closes the window, after the trainer's run_stop
        stop_ms = max(self.attempts[-1].time_ms, self.start_ms)
        try:
            extra = self.source.close(self.run_dir, self.start_ms / 1000, stop_ms / 1000)
        except Exception as exc:  # noqa: BLE001
            extra = {"close_problem": _one_line(exc)}
        record.update(gap_record(self.attempts, self.start_ms, stop_ms), **extra)
        try:
            write_power_log(self.run_dir / POWER_FILE, self, stop_ms)
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


def gap_record(attempts: Sequence[Attempt], start_ms: int, stop_ms: int) -> dict[str, Any]:
    """run.json's account of the samples: how many, how many failed, and each gap (a stretch of
    failed samples: from the last good reading before it, or the start, to the first one after
    it, or the stop; its first error), the first :data:`MAX_GAPS` of them, and the seconds the
    gaps cover (``gap_s``)."""
    gaps: list[dict[str, Any]] = []
    last_good, open_gap = start_ms, None
    for a in attempts:
        if a.watts is None:
            if open_gap is None:
                open_gap = {"from_ms": last_good, "samples": 0, "error": a.error}
            open_gap["samples"] += 1
            continue
        if open_gap is not None:
            gaps.append({**open_gap, "to_ms": a.time_ms})
            open_gap = None
        last_good = a.time_ms
    if open_gap is not None:  # the source never answered again: the gap runs to the stop
        gaps.append({**open_gap, "to_ms": stop_ms, "until_stop": True})
    gap_ms = sum(g["to_ms"] - g["from_ms"] for g in gaps)
    shown = [
        {
            "from_s": round((g["from_ms"] - start_ms) / 1000, 3),
            "to_s": round((g["to_ms"] - start_ms) / 1000, 3),
            "samples": g["samples"],
            "until_stop": bool(g.get("until_stop")),
            "error": g["error"],
        }
        for g in gaps[:MAX_GAPS]
    ]
    return {
        "window_s": round((stop_ms - start_ms) / 1000, 3),
        "samples": len(attempts),
        "readings": sum(1 for a in attempts if a.watts is not None),
        "failed": sum(1 for a in attempts if a.watts is None),
        "gap_s": round(gap_ms / 1000, 3),
        "gaps": shown,
        "gaps_not_shown": max(0, len(gaps) - MAX_GAPS),
    }


def _event(time_ms: int, event_type: str, key: str, value: Any, metadata: dict[str, Any]) -> str:
    """One ``:::MLLOG`` line, its keys in mllog's order."""
    payload = {
        "namespace": "",
        "time_ms": time_ms,
        "event_type": event_type,
        "key": key,
        "value": value,
        "metadata": metadata,
    }
    return ":::MLLOG " + json.dumps(payload) + "\n"


def power_log_text(
    start_ms: int, stop_ms: int, attempts: Sequence[Attempt], conversion_eff: float, source: str
) -> str:
    """The text of ``power/node_0.txt``: start, conversion efficiency, the readings (failed
    samples have none), stop."""
    meta = {"host": "node_0", "source": source}
    lines = [
        _event(start_ms, "INTERVAL_START", "power_measurement_start", None, meta),
        _event(start_ms, "POINT_IN_TIME", "conversion_eff", conversion_eff, meta),
    ]
    lines += [
        _event(a.time_ms, "POINT_IN_TIME", "power_reading", a.watts, meta)
        for a in attempts
        if a.watts is not None
    ]
    lines.append(_event(stop_ms, "INTERVAL_END", "power_measurement_stop", None, meta))
    return "".join(lines)


def write_power_log(path: Path, sampler: Sampler, stop_ms: int) -> None:
    text = power_log_text(
        sampler.start_ms,
        stop_ms,
        sampler.attempts,
        sampler.settings.conversion_eff,
        sampler.source.name,
    )
    hashing.write_atomic(path, text)


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


def finish(sampler: Sampler | None, run_dir: Path, nodes: int = 1) -> dict[str, Any]:
    """Stop ``sampler``: run.json's ``power_sampling`` (the sampler's record) and ``power`` (the
    power log's facts, scored as a published one: :func:`scripts.mlperf.own_power.own_power`);
    nothing without a sampler. Never raises."""
    if sampler is None:
        return {}
    record = sampler.stop()
    try:
        block = own_power(run_dir, record, nodes)
    except Exception as exc:  # noqa: BLE001 (the run keeps its time whatever the power log is)
        problem = f"power: the power log could not be read: {_one_line(exc)}"
        block = {"result_name": None, "files": [], "problems": [problem], "scorable": False}
    return {"power_sampling": record, "power": block}


@dataclass
class RunPower:
    """A run's attempt as the runner sees its power: :meth:`of` before the trainer starts,
    :meth:`trainer_ended` as soon as it has exited (the time, and the sampler stopped); then
    ``facts`` holds run.json's ``power_sampling`` and ``power`` (empty without a source)."""

    sampler: Sampler | None
    run_dir: Path
    nodes: int = 1
    ended: float | None = None  # time.monotonic() when the trainer had exited
    facts: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, spec: Any, run_dir: Path, gpu_devices: Sequence[str] = ()) -> RunPower:
        """Start sampling a run spec's ``power`` source (a RunSpec: benchmark, system, run,
        nodes, power)."""
        env = command_env(os.environ, spec.benchmark, spec.system, spec.run)
        return cls(start(spec.power, run_dir, env, gpu_devices), run_dir, spec.nodes)

    def trainer_ended(self) -> None:
        self.ended = time.monotonic()
        self.facts = finish(self.sampler, self.run_dir, self.nodes)
