"""Property-based tests (hypothesis) of the parser and the scoring: random bytes, random event
orders and mutations of NVIDIA's published logs (tests/data/published).

- nothing crashes, and nothing non-finite reaches result.json;
- a valid score never comes from a negative, zero or non-finite time;
- a log is valid exactly when an independent reading of its events says so;
- every finite, valid log still scores as it did (tests/data/v06_dgx1_times.json, 1233.20325 s).

Bounded: each test has its max_examples and no deadline (the machine may be loaded).
"""

from __future__ import annotations

import json
import math
import random
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from scripts.analysis.scoring import olympic_score, usable_time
from scripts.mlperf import log_parser
from scripts.mlperf.log_parser import parse_bytes, parse_file, parse_text
from scripts.mlperf.outcome import RunOutcome, run_outcome
from tests.conftest import need_fixtures

DATA = Path(__file__).resolve().parent / "data"
TIMES = json.loads((DATA / "v06_dgx1_times.json").read_text())
DGX1 = Path("mlperf-v0.6-nvidia") / "dgx1_ngc19.05_pytorch" / "gnmt"
DGX1_SCORE_S = 1233.20325
# derandomize: the same examples on every run, so CI fails on a change, never on a new draw
# (a falsifying example found once is kept below as an @example)
SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
FEW = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="props-") as name:
        yield Path(name)


@pytest.fixture(scope="module")
def published() -> list[bytes]:
    fixtures = need_fixtures()
    return [(fixtures / DGX1 / f"result_{i}.txt").read_bytes() for i in range(10)]


def check_outcome(out: RunOutcome) -> None:
    """What must hold for any log."""
    json.dumps(out.to_dict(), allow_nan=False)  # result.json is strict JSON
    if out.converged:
        assert out.valid_log
        assert out.time_to_train_s is not None and usable_time(out.time_to_train_s)
    if not out.valid_log:
        assert not out.converged and out.time_to_train_s is None
        assert out.problems[: len(out.log_problems)] == out.log_problems
    if out.time_to_train_s is not None:
        assert math.isfinite(out.time_to_train_s)


# ---------------------------------------------------------------------------------------------
# random bytes


MARKERS = [b":::MLL ", b":::MLLOG ", b"RESULT,", b"\n", b"{", b"[", b'"', b"run_start", b"Infinity"]
junk = st.lists(st.one_of(st.binary(max_size=40), st.sampled_from(MARKERS)), max_size=40).map(
    b"".join
)


@SETTINGS
@given(data=junk)
def test_random_bytes_never_crash_and_never_score(data: bytes) -> None:
    for parsed in (parse_bytes(data), parse_text(data.decode("utf-8", "replace"))):
        out = run_outcome(parsed, 24.0)
        check_outcome(out)


@FEW
@given(data=junk, chunk=st.integers(1, 64), cap=st.integers(4, 80))
def test_the_streamed_file_parses_like_the_bytes(
    scratch: Path, data: bytes, chunk: int, cap: int
) -> None:
    """Blocks and the line cap as small as a few bytes: the same events, lines and counts."""
    path = scratch / "stream.log"
    path.write_bytes(data)
    saved = log_parser.CHUNK_BYTES, log_parser.MAX_LINE_BYTES
    try:
        log_parser.CHUNK_BYTES, log_parser.MAX_LINE_BYTES = chunk, cap
        a, b = parse_file(path), parse_bytes(data)
    finally:
        log_parser.CHUNK_BYTES, log_parser.MAX_LINE_BYTES = saved
    assert a.events == b.events
    assert (a.malformed_lines, a.malformed_line_nos) == (b.malformed_lines, b.malformed_line_nos)
    assert a.result_lines == b.result_lines


# ---------------------------------------------------------------------------------------------
# random event orders


KEYS = ["run_start", "run_stop", "epoch_start", "epoch_stop", "eval_accuracy", "init_start", "x"]
times = st.one_of(
    st.floats(-1e4, 1e4, allow_nan=False),
    st.sampled_from([0.0, 100.0, 200.0, float("inf"), float("-inf"), float("nan"), 1e305]),
)
event = st.tuples(st.sampled_from(KEYS), times, st.sampled_from(["mllog", "v06"]))


def render(key: str, t: float, fmt: str) -> str:
    meta = {"status": "success", "epoch_num": 1}
    value = 25.0 if key == "eval_accuracy" else None
    if fmt == "v06" and math.isfinite(t) and t >= 0:
        return f":::MLL {t:.3f} {key}: " + json.dumps({"value": value, "metadata": meta})
    t_ms = "NaN" if math.isnan(t) else ("Infinity" if t == math.inf else repr(t * 1000))
    if t == -math.inf:
        t_ms = "-Infinity"
    rec = f'"time_ms": {t_ms}, "key": "{key}", "value": {json.dumps(value)}'
    return ":::MLLOG {" + rec + f', "metadata": {json.dumps(meta)}}}'


def expected_valid(events: list[tuple[str, float, str]]) -> bool:
    """An independent reading of the rule (scripts/mlperf/log_validity.py log_problems)."""
    if any(not abs(t) < 1e300 for _, t, _ in events):
        return False
    # a v0.6 line carries seconds to 3 decimals; render() writes a negative or non-finite time
    # as an :::MLLOG line whatever the format asked for, and that keeps every digit
    rounded = [(k, round(t, 3) if f == "v06" and 0 <= t < math.inf else t) for k, t, f in events]
    starts = {round(t, 3) for k, t in rounded if k == "run_start"}
    stops = {round(t, 3) for k, t in rounded if k == "run_stop"}
    if len(starts) != 1 or len(stops) != 1:
        return False
    start = next(t for k, t in rounded if k == "run_start")  # the first
    stop = [t for k, t in rounded if k == "run_stop"][-1]  # the last
    if not stop > start:
        return False
    window = ("epoch_start", "epoch_stop", "eval_accuracy")
    return all(t >= start for k, t in rounded if k in window)


@SETTINGS
@given(events=st.lists(event, max_size=12))
@example(events=[("run_start", -1.3125, "mllog"), ("run_stop", -1.3125, "v06")])  # found once
@example(events=[("run_start", 1.3125, "mllog"), ("run_stop", 1.3125, "v06")])
def test_random_event_orders_are_valid_exactly_when_the_rule_says(
    events: list[tuple[str, float, str]],
) -> None:
    text = "\n".join(render(*e) for e in events)
    out = run_outcome(parse_text(text), 24.0)
    check_outcome(out)
    assert out.valid_log == expected_valid(events), out.log_problems
    if out.converged:
        start = next(t for k, t, _ in events if k == "run_start")
        stop = [t for k, t, _ in events if k == "run_stop"][-1]
        assert out.time_to_train_s == pytest.approx(stop - start, abs=2e-3)


# ---------------------------------------------------------------------------------------------
# mutations of the published logs


def mutate(data: bytes, rng: random.Random, kind: str) -> bytes:
    lines = data.split(b"\n")
    i = rng.randrange(len(lines))
    if kind == "delete":
        del lines[i]
    elif kind == "duplicate":
        lines.insert(i, lines[i])
    elif kind == "swap":
        j = rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
    elif kind == "junk":
        lines.insert(i, bytes(rng.randrange(256) for _ in range(rng.randrange(200))))
    elif kind == "flip":
        out = bytearray(data)
        for _ in range(rng.randrange(1, 20)):
            out[rng.randrange(len(out))] = rng.randrange(256)
        return bytes(out)
    elif kind == "truncate":
        return data[: rng.randrange(len(data))]
    elif kind == "stamp":  # one event's time replaced by something else
        marked = [n for n, line in enumerate(lines) if line.startswith(b":::MLL ")]
        n = rng.choice(marked)
        stamp = rng.choice([b"0.000", b"9" * 400, b"1560822000.000", b"1560825000.000"])
        head, _, rest = lines[n][7:].partition(b" ")
        lines[n] = b":::MLL " + stamp + b" " + rest
    return b"\n".join(lines)


KINDS = ["delete", "duplicate", "swap", "junk", "flip", "truncate", "stamp"]


@SETTINGS
@given(run=st.integers(0, 9), kind=st.sampled_from(KINDS), seed=st.integers(0, 2**32))
def test_mutated_published_logs_never_crash_and_score_only_as_their_events_say(
    published: list[bytes], run: int, kind: str, seed: int
) -> None:
    data = mutate(published[run], random.Random(seed), kind)
    parsed = parse_bytes(data)
    out = run_outcome(parsed, TIMES["quality_target"])
    check_outcome(out)
    if out.converged:
        # the time is what the events say, never anything else
        start = parsed.first("run_start")
        stop = parsed.last("run_stop")
        assert start is not None and stop is not None
        assert out.time_to_train_s == round(stop.time_s - start.time_s, 3) > 0
    markers_intact = all(
        line in data.split(b"\n") for line in published[run].split(b"\n") if b":::MLL" in line
    )
    if kind in ("delete", "duplicate", "junk") and markers_intact and out.valid_log:
        # untouched events: the run scores exactly as it does today
        want = TIMES["runs"][run]
        assert out.time_to_train_s == round(want["run_stop"] - want["run_start"], 3)
        assert out.converged


@FEW
@given(order=st.permutations(list(range(10))))
def test_the_published_logs_still_score_as_published(
    published: list[bytes], order: list[int]
) -> None:
    outs = [run_outcome(parse_bytes(published[i]), TIMES["quality_target"]) for i in order]
    for i, out in zip(order, outs, strict=True):
        want = TIMES["runs"][i]
        assert out.valid_log and out.converged
        assert out.time_to_train_s == round(want["run_stop"] - want["run_start"], 3)
    score = olympic_score([o.time_to_train_s for o in outs], [o.converged for o in outs])
    assert score.valid and score.score_s == pytest.approx(DGX1_SCORE_S, abs=1e-6)


# ---------------------------------------------------------------------------------------------
# scoring


any_time = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(0.001, 1e6),
    st.sampled_from([0.0, -0.0, -43169.7, -59.0]),
)


@SETTINGS
@given(runs=st.lists(st.tuples(any_time, st.booleans()), min_size=3, max_size=12))
def test_a_valid_score_never_comes_from_an_unusable_time(
    runs: list[tuple[float | None, bool]],
) -> None:
    times = [t for t, _ in runs]
    flags = [c for _, c in runs]
    score = olympic_score(times, flags)
    usable = sorted(float(t) for t, c in runs if c and usable_time(t))  # type: ignore[arg-type]
    n_bad = len(runs) - len(usable)
    assert score.n_converged == len(usable)
    assert score.valid == (n_bad <= 1)
    if score.valid:
        # independent: drop the fastest usable one, and the slowest unless a bad run is dropped
        kept = usable[1:] if n_bad else usable[1:-1]
        assert score.score_s is not None and usable_time(score.score_s)
        assert score.score_s == pytest.approx(sum(kept) / len(kept), rel=1e-12)
        assert usable[0] <= score.score_s <= usable[-1]
    else:
        assert score.score_s is None
