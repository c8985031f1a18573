"""What one training run achieved, derived from its parsed MLPerf log (:class:`RunOutcome`).

:func:`run_outcome` turns a parsed log into the quantities the benchmark reports:
time to train (``run_stop - run_start``, the MLPerf score of one run; for v0.6 MiniGo, the
``timestamp`` of the ``eval_result`` event), status, convergence against a quality target,
epochs, and a list of human-readable problems; among them the *log problems*
(:func:`scripts.mlperf.log_validity.log_problems`), which make the log not a valid MLPerf log
of a finished run. :func:`eval_events` gives a log's evaluations (Stable Diffusion's metrics of
one ``samples_count`` merged into one).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from scripts.mlperf.log_events import Event, ParsedLog
from scripts.mlperf.log_validity import TIME_SOURCES, log_problems

__all__ = ["RunOutcome", "eval_events", "run_outcome"]


@dataclass(slots=True)
class RunOutcome:
    """What one training run achieved, derived from its MLPerf log."""

    run_start_s: float | None  # FIRST run_start event time
    run_stop_s: float | None  # LAST run_stop event time (eval_result: run_start + timestamp)
    time_to_train_s: float | None  # run_stop - run_start, rounded to 3 decimals
    status: str | None  # run_stop metadata["status"], never submission_status
    converged: bool  # status == "success" and the final quality meets the target(s)
    final_quality: float | None  # value of the LAST eval_accuracy event (its value_key part)
    quality_target: float
    quality_direction: str  # "higher" (value >= target) or "lower" (value <= target)
    epochs: int | None  # highest epoch_num in epoch_stop (else eval_accuracy) metadata
    epochs_to_converge: int | None  # epoch_num of the first eval meeting the target
    time_per_epoch_s: float | None  # mean epoch_stop - epoch_start, matched by epoch_num
    seed: int | None  # value of the "seed" event, else the seed field of the RESULT line
    benchmark: str | None  # value of submission_benchmark
    result_line_wall_s: float | None  # v0.6 RESULT line wall time (the slowest process's)
    # (epoch_num, value, seconds since run_start); the last item is None without run_start
    eval_history: list[tuple[int | None, float, float | None]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # every problem, log problems first
    # the final value of each component named in also_targets (e.g. Mask R-CNN's SEGM)
    final_components: dict[str, float | None] = field(default_factory=dict)
    # why the log is not a valid MLPerf log of a finished run (log_problems()); when any, the
    # run has no result: not converged and no time to train
    log_problems: list[str] = field(default_factory=list)

    @property
    def valid_log(self) -> bool:
        """The log is a valid MLPerf log of a finished run (no log problems)."""
        return not self.log_problems

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (eval_history as a list of lists)."""
        return {
            "run_start_s": self.run_start_s,
            "run_stop_s": self.run_stop_s,
            "time_to_train_s": self.time_to_train_s,
            "status": self.status,
            "converged": self.converged,
            "final_quality": self.final_quality,
            "quality_target": self.quality_target,
            "quality_direction": self.quality_direction,
            "epochs": self.epochs,
            "epochs_to_converge": self.epochs_to_converge,
            "time_per_epoch_s": self.time_per_epoch_s,
            "seed": self.seed,
            "benchmark": self.benchmark,
            "result_line_wall_s": self.result_line_wall_s,
            "eval_history": [list(item) for item in self.eval_history],
            "problems": list(self.problems),
            "final_components": dict(self.final_components),
            "log_problems": list(self.log_problems),
            "valid_log": self.valid_log,
        }


def _as_int(x: Any) -> int | None:
    """An integral number (or numeric string) as int; anything else as None."""
    if isinstance(x, bool):
        return None
    if isinstance(x, int):
        return x
    if isinstance(x, float):
        return int(x) if x.is_integer() else None
    if isinstance(x, str):
        try:
            return int(x.strip())
        except ValueError:
            return None
    return None


def _as_float(x: Any) -> float | None:
    """A finite real number, or a string holding one (v0.6 Transformer logs BLEU as
    ``"25.33"``), as float; anything else (bool, dict, "nan", junk) as None."""
    if isinstance(x, str):
        try:
            x = float(x.strip())
        except ValueError:
            return None
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    try:
        f = float(x)
    except OverflowError:  # an integer beyond a float's range (e.g. 10**400)
        return None
    return f if math.isfinite(f) else None


def _component(value: Any, key: str | None) -> float | None:
    """The quality in an eval_accuracy value: the value itself (``key`` None), or the entry
    ``key`` of a mapping, searched at any depth (v0.6 Mask R-CNN logs
    ``{"accuracy": {"BBOX": 0.377, "SEGM": 0.343}}``)."""
    if key is None:
        return _as_float(value)
    if isinstance(value, dict):
        if key in value:
            return _as_float(value[key])
        for sub in value.values():
            found = _component(sub, key)
            if found is not None:
                return found
    return None


def _short(value: Any, width: int = 80) -> str:
    """repr(value), cut to ``width`` characters (a log may hold anything)."""
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _meets(value: float, target: float, higher: bool) -> bool:
    return value >= target if higher else value <= target


def run_outcome(
    parsed: ParsedLog,
    target: float,
    direction: str = "higher",
    *,
    value_key: str | None = None,
    also_targets: Mapping[str, float] | None = None,
    time_source: str = "run_stop",
    also_directions: Mapping[str, str] | None = None,
) -> RunOutcome:
    """Summarise one parsed log against a quality target.

    ``direction`` is "higher" (quality meets the target when value >= target, e.g. BLEU,
    accuracy) or "lower" (value <= target, e.g. perplexity); anything else raises
    ValueError.  ``value_key`` names the part of a mapping-valued eval_accuracy that is the
    quality; every entry of ``also_targets`` (component -> target, in ``direction`` unless
    ``also_directions`` names another) must be met too.  The run converged when the run ended
    with status "success" and the last evaluation (:func:`eval_events`) meets the target(s).

    ``time_source`` "run_stop" (every benchmark but v0.6 MiniGo): time to train is
    ``run_stop - run_start`` and the status is run_stop's.  "eval_result" (v0.6 MiniGo, as
    the v0.6 compliance checker scores it): time to train is the ``timestamp`` metadata of the
    ``eval_result`` event (seconds from run_start to the saving of the first model that beat
    the target); status "success" when that timestamp is > 0.
    """
    _check_choices(direction, time_source)
    target = float(target)
    higher = direction == "higher"
    also = _also(also_targets, also_directions, direction)
    invalid = log_problems(parsed, time_source)
    timing = _timing(parsed, time_source, valid_log=not invalid)
    evals = _evaluations(parsed, target, higher, value_key, also, timing.run_start_s)
    quality_problems, quality_met = _quality_problems(evals, target, higher, value_key, also)
    converged = not invalid and _finished(timing) and quality_met
    epochs, time_per_epoch_s = _epochs(parsed, evals.history)
    seed, benchmark, result_line_wall_s = _identity(parsed)
    malformed = [m] if (m := _malformed_problem(parsed)) else []
    return RunOutcome(
        run_start_s=timing.run_start_s,
        run_stop_s=timing.run_stop_s,
        time_to_train_s=timing.time_to_train_s,
        status=timing.status,
        converged=converged,
        final_quality=evals.final_quality,
        quality_target=target,
        quality_direction=direction,
        epochs=epochs,
        epochs_to_converge=evals.epochs_to_converge if converged else None,
        time_per_epoch_s=time_per_epoch_s,
        seed=seed,
        benchmark=benchmark,
        result_line_wall_s=result_line_wall_s,
        eval_history=evals.history,
        problems=[*invalid, *timing.problems, *quality_problems, *malformed],
        final_components=evals.final_components,
        log_problems=invalid,
    )


def _also(
    also_targets: Mapping[str, float] | None,
    also_directions: Mapping[str, str] | None,
    direction: str,
) -> dict[str, tuple[float, bool]]:
    """Each also_targets component's (target, higher is better)."""
    directions = dict(also_directions or {})
    for d in directions.values():
        _check_choices(d, "run_stop")
    return {
        k: (float(v), directions.get(k, direction) == "higher")
        for k, v in (also_targets or {}).items()
    }


def _check_choices(direction: str, time_source: str) -> None:
    if direction not in ("higher", "lower"):
        raise ValueError(f"direction must be 'higher' or 'lower', got {direction!r}")
    if time_source not in TIME_SOURCES:
        raise ValueError(f"time_source must be one of {TIME_SOURCES}, got {time_source!r}")


def _finished(timing: _Timing) -> bool:
    """The run has a positive time to train and ended with status success."""
    return (
        timing.time_to_train_s is not None
        and timing.time_to_train_s > 0
        and timing.status is not None
        and timing.status.lower() == "success"
    )


@dataclass
class _Timing:
    """When the run started and stopped, its time to train and status, and what is wrong
    with them."""

    run_start_s: float | None = None
    run_stop_s: float | None = None
    time_to_train_s: float | None = None
    status: str | None = None
    problems: list[str] = field(default_factory=list)


def _timing(parsed: ParsedLog, time_source: str, *, valid_log: bool) -> _Timing:
    """The run's times and status by ``time_source`` (see :func:`run_outcome`); a log that is
    not valid has no time to train."""
    start_ev = parsed.first("run_start")
    t = _Timing(run_start_s=start_ev.time_s if start_ev is not None else None)
    if time_source == "run_stop":
        stop_ev = parsed.last("run_stop")
        t.run_stop_s = stop_ev.time_s if stop_ev is not None else None
        if t.run_start_s is not None and t.run_stop_s is not None and valid_log:
            t.time_to_train_s = round(t.run_stop_s - t.run_start_s, 3)
        if stop_ev is not None:
            raw_status = stop_ev.metadata.get("status")
            if raw_status is None:
                t.problems.append("run_stop has no status")
            else:
                t.status = str(raw_status)
                if t.status.lower() != "success":
                    t.problems.append(f"run_stop status is {_short(t.status)}")
        return t
    result_ev = parsed.last("eval_result")
    stamp = _as_float(result_ev.metadata.get("timestamp")) if result_ev is not None else None
    if result_ev is None:
        t.problems.append("no eval_result event (no model beat the target)")
    elif stamp is None or stamp <= 0:
        t.problems.append(f"eval_result timestamp {_short(result_ev.metadata.get('timestamp'))}")
    else:
        t.status = "success"
        if valid_log:
            t.time_to_train_s = round(stamp, 3)
        if t.run_start_s is not None:
            t.run_stop_s = t.run_start_s + stamp
    return t


@dataclass
class _Evaluations:
    """The eval_accuracy events of a log, in file order."""

    history: list[tuple[int | None, float, float | None]]  # (epoch, quality, s since start)
    final_quality: float | None  # of the last eval_accuracy (None: not a number)
    final_components: dict[str, float | None]  # the also_targets' parts of the last one
    epochs_to_converge: int | None  # epoch of the first evaluation that met every target
    n_eval: int
    last_eval: Event | None  # the last eval_accuracy event


def _evaluations(
    parsed: ParsedLog,
    target: float,
    higher: bool,
    value_key: str | None,
    also: Mapping[str, tuple[float, bool]],
    run_start_s: float | None,
) -> _Evaluations:
    history: list[tuple[int | None, float, float | None]] = []
    final_quality: float | None = None
    final_components: dict[str, float | None] = {k: None for k in also}
    epochs_to_converge: int | None = None
    n_eval = 0
    for ev in eval_events(parsed):
        n_eval += 1
        val = _component(ev.value, value_key)
        parts = {k: _component(ev.value, k) for k in also}
        final_components = parts
        if val is None:
            final_quality = None  # the last eval_accuracy is what counts
            continue
        final_quality = val
        ep = _as_int(ev.metadata.get("epoch_num"))
        since = round(ev.time_s - run_start_s, 3) if run_start_s is not None else None
        history.append((ep, val, since))
        parts_met = all(p is not None and _meets(p, *also[k]) for k, p in parts.items())
        if epochs_to_converge is None and _meets(val, target, higher) and parts_met:
            epochs_to_converge = ep
    return _Evaluations(
        history=history,
        final_quality=final_quality,
        final_components=final_components,
        epochs_to_converge=epochs_to_converge,
        n_eval=n_eval,
        last_eval=(eval_events(parsed) or [None])[-1],
    )


def eval_events(parsed: ParsedLog) -> list[Event]:
    """The log's eval_accuracy events in file order; those whose metadata names a ``metric``
    are merged per ``samples_count`` into one event (at the first one's place) whose value
    maps each metric to its value and whose time is the latest of them, as the v5.0
    compliance checker builds ``aggregated_eval_accuracy`` for Stable Diffusion."""
    out: list[Event] = []
    merged: dict[Any, Event] = {}
    for ev in parsed.events:
        if ev.key != "eval_accuracy":
            continue
        metric = ev.metadata.get("metric")
        if not isinstance(metric, str):
            out.append(ev)
            continue
        count = ev.metadata.get("samples_count")
        key = count if isinstance(count, int | float | str) else None
        agg = merged.get(key)
        if agg is None:
            agg = Event(ev.key, {}, ev.time_s, {**ev.metadata}, ev.line_no)
            agg.metadata.pop("metric", None)
            merged[key] = agg
            out.append(agg)
        agg.value[metric] = ev.value
        agg.time_s = max(agg.time_s, ev.time_s)
    return out


def _quality_problems(
    evals: _Evaluations,
    target: float,
    higher: bool,
    value_key: str | None,
    also: Mapping[str, tuple[float, bool]],
) -> tuple[list[str], bool]:
    """What is wrong with the final quality, and whether it meets the target and every
    also_targets part meets its own."""
    problems: list[str] = []
    what = "final eval_accuracy" + (f" {value_key}" if value_key else "")
    final = evals.final_quality
    if evals.n_eval == 0:
        problems.append("no eval_accuracy event")
    elif final is None and evals.last_eval is not None:
        problems.append(f"{what} {_short(evals.last_eval.value)} is not a number")
    elif final is not None and not _meets(final, target, higher):
        problems.append(
            f"{what} {final!r} does not meet target {target!r}"
            + ("" if higher else " (lower is better)")
        )
    components_met = True
    if evals.n_eval:
        for k, (t, part_higher) in also.items():
            got = evals.final_components.get(k)
            if got is None or not _meets(got, t, part_higher):
                components_met = False
                problems.append(f"final eval_accuracy {k} {got!r} does not meet target {t!r}")
    met = final is not None and _meets(final, target, higher) and components_met
    return problems, met


def _epochs(
    parsed: ParsedLog, history: Sequence[tuple[int | None, float, float | None]]
) -> tuple[int | None, float | None]:
    """The number of epochs (the last epoch_stop's epoch_num, else the last evaluated epoch)
    and the mean time per epoch (epoch_start and epoch_stop matched by epoch_num)."""
    starts: dict[int, float] = {}
    stops: dict[int, float] = {}
    for ev in parsed.events:
        k = ev.key
        if k == "epoch_start":
            ep = _as_int(ev.metadata.get("epoch_num"))
            if ep is not None and ep not in starts:
                starts[ep] = ev.time_s  # first start of the epoch
        elif k == "epoch_stop":
            ep = _as_int(ev.metadata.get("epoch_num"))
            if ep is not None:
                stops[ep] = ev.time_s  # last stop of the epoch
    epochs: int | None
    if stops:
        epochs = max(stops)
    else:
        eval_epochs = [ep for ep, _, _ in history if ep is not None]
        epochs = max(eval_epochs) if eval_epochs else None
    durations = [stops[ep] - starts[ep] for ep in stops if ep in starts]
    time_per_epoch_s = math.fsum(durations) / len(durations) if durations else None
    return epochs, time_per_epoch_s


def _identity(parsed: ParsedLog) -> tuple[int | None, str | None, float | None]:
    """The run's seed (the seed event, else the RESULT line's), its benchmark
    (submission_benchmark) and the latest RESULT line's wall time."""
    seed_ev = parsed.first("seed")
    seed = _as_int(seed_ev.value) if seed_ev is not None else None
    if seed is None and parsed.result_line is not None:
        seed = _as_int(parsed.result_line.seed)
    bench_ev = parsed.first("submission_benchmark")
    benchmark = str(bench_ev.value) if bench_ev is not None and bench_ev.value is not None else None
    result_line_wall_s = (
        max(r.wall_time_s for r in parsed.result_lines) if parsed.result_lines else None
    )
    return seed, benchmark, result_line_wall_s


def _malformed_problem(parsed: ParsedLog) -> str | None:
    if not parsed.malformed_lines:
        return None
    n = parsed.malformed_lines
    first_at = parsed.malformed_line_nos[0] if parsed.malformed_line_nos else "?"
    return f"{n} malformed MLPerf line{'s' if n != 1 else ''} (first at line {first_at})"
