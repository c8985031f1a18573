"""The power sampler's window, stop and rate (scripts/run/power_sampler.py, power_log.py): the
energy is the power of run_start to run_stop, not of the trainer's start-up and teardown; a
source that hangs never hangs the run; a launch that fails stops the sampler; the run's wall
time is what it was without power; a source slower than the interval is named. Each case is
checked against mlperf-logging's own result summarizer where it scores energy."""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from mlperf_logging.result_summarizer import result_summarizer as rs

from scripts.mlperf import own_power, power
from scripts.run import containment, power_log, power_sampler
from scripts.run.power_sampler import Attempt, PowerSettings

INIT_W, TRAIN_W = 100.0, 500.0


def summarizer_energy(node_text: str, tmp_path: Path, time_to_train_ms: float) -> float:
    """mlperf-logging's _compute_total_power of a node file laid out as a submission's."""
    folder = tmp_path / "submission" / "bench"
    (folder / "power" / "result_0").mkdir(parents=True, exist_ok=True)
    (folder / "power" / "result_0" / "node_0.txt").write_text(node_text)
    return rs._compute_total_power(
        str(folder), str(folder / "result_0.txt"), time_to_train_ms, "5.0.0"
    )


def test_the_window_is_run_start_to_the_first_reading_after_run_stop(tmp_path: Path) -> None:
    # the review's case: 100 s of start-up at 100 W, 100 s of training at 500 W, 20 s of
    # teardown at 100 W; readings every second; run_start at 100 s, run_stop at 199.5 s
    watts = [INIT_W] * 100 + [TRAIN_W] * 100 + [INIT_W] * 20
    attempts = [Attempt(1000 * (i + 1), w) for i, w in enumerate(watts)]
    run = (100_000.0, 199_500.0)
    start, stop = power_log.scored_window(attempts, 0, 220_000, run)
    assert (start, stop) == (100_000.0, 200_000)
    text = power_log.power_log_text(start, stop, attempts, 1.0, "command")
    ttt = run[1] - run[0]
    theirs = summarizer_energy(text, tmp_path, ttt)
    assert theirs == pytest.approx(TRAIN_W * ttt / 1000, rel=1e-12)  # 49,750 J, not diluted
    path = tmp_path / "node_0.txt"
    path.write_text(text)
    block = {"scorable": True, "files": [{**power.read_power_file(path, "node"), "kind": "node"}]}
    mine = power.energy_j(block, ttt)
    assert mine is not None and abs(mine - theirs) <= 1e-9 * theirs
    # 100 s to 200 s (the one at the start weighs nothing); start-up and teardown are in the
    # file, not scored
    assert block["files"][0]["readings"] == 101
    assert text.count('"power_reading"') == 220
    # without the run's times (a crash) the window is the whole sampling
    assert power_log.scored_window(attempts, 0, 220_000, None) == (0, 220_000)


# a command printing TRAIN_W while the file $HIGH exists, else INIT_W; counting its calls
STEP_SH = """n=$(( $(cat "$COUNTER" 2>/dev/null || echo 0) + 1 )); echo $n > "$COUNTER"
if [ -e "$HIGH" ]; then echo "500 W"; else echo "100 W"; fi
"""

# a trainer with 20 samples of start-up, 65 of training and 20 of teardown (conditions on the
# command's calls, however loaded the machine): high power only between run_start and run_stop
STEP_TRAINER = """import json, os, pathlib, sys, time
counter, high = pathlib.Path(os.environ["COUNTER"]), pathlib.Path(os.environ["HIGH"])
def calls():
    try:
        return int(counter.read_text() or 0)
    except (OSError, ValueError):
        return 0
def wait(n):
    while calls() < n:
        time.sleep(0.01)
def event(key, kind):
    print(":::MLLOG " + json.dumps({"namespace": "", "time_ms": int(time.time() * 1000),
          "event_type": kind, "key": key, "value": None, "metadata": {}}), flush=True)
wait(20)
event("run_start", "INTERVAL_START")
high.touch()
wait(calls() + 65)
event("run_stop", "INTERVAL_END")
high.unlink()
wait(calls() + 20)
"""


def test_the_runner_scores_only_the_timed_region(
    tmp_path: Path, paths: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from scripts.run.result_json import write_result
    from scripts.run.runner import execute
    from tests.test_run_training import spec

    (tmp_path / "step.sh").write_text(STEP_SH)
    (tmp_path / "trainer.py").write_text(STEP_TRAINER)
    monkeypatch.setenv("COUNTER", str(tmp_path / "count"))
    monkeypatch.setenv("HIGH", str(tmp_path / "high"))
    setting = {"source": "command", "command": ["bash", str(tmp_path / "step.sh")],
               "interval_s": 0.02, "timeout_s": 5}  # fmt: skip
    command = f"{sys.executable} {tmp_path / 'trainer.py'}"
    meta = execute(dataclasses.replace(spec(command), power=setting), **paths)
    sampling = meta.power_sampling or {}
    assert sampling["window"] == "run_start to the first reading at or after run_stop"
    assert sampling["readings"] >= 65 and sampling["outside_window"] >= 35
    result = write_result(
        paths["log_path"], paths["meta_path"], {"metric": "acc", "target": 0.9}, "run_stop",
        paths["log_path"].parent / "result.json",
    )  # fmt: skip
    assert result.energy_j is not None and result.time_to_train_s, result.power_problems
    loglines, _ = rs.parse_file(str(paths["log_path"]), "5.0.0")
    start, stop = rs._query_run_start_stop(loglines)
    node = (paths["log_path"].parent / "power" / "node_0.txt").read_text()
    theirs = summarizer_energy(node, tmp_path, stop - start)
    assert abs(result.energy_j - theirs) <= 1e-9 * theirs
    # the training's power: a reading or two of the switch may be low, never the start-up's 20
    mean_w = result.energy_j / result.time_to_train_s
    assert 0.9 * TRAIN_W <= mean_w <= TRAIN_W, mean_w


class HungSource:
    """A source whose reads answer ``answers`` times, then never return (a hung NVML call)."""

    name = "nvml"

    def __init__(self, answers: int, close_hangs: bool = False) -> None:
        self.answers, self.close_hangs = answers, close_hangs
        self.release = threading.Event()

    def open(self) -> None: ...

    def read(self) -> float:
        if self.answers <= 0:
            self.release.wait()
            raise power_sampler.SourceFailed("released")
        self.answers -= 1
        return 300.0

    def close(self, run_dir: Path, start_s: float, stop_s: float) -> dict[str, Any]:
        if self.close_hangs:
            self.release.wait()
        return {}


def test_a_hung_source_is_abandoned_at_the_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(power_sampler, "STOP_SLACK_S", 0.5)
    monkeypatch.setattr(power_sampler, "CLOSE_LIMIT_S", 0.5)
    source = HungSource(3, close_hangs=True)
    settings = PowerSettings(source="nvml", interval_s=0.02, timeout_s=0.2)
    sampler = power_sampler.Sampler(source, settings, tmp_path)
    sampler.start()
    try:
        deadline = time.monotonic() + 60
        while len(sampler.attempts) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        t0 = time.monotonic()
        record = sampler.stop()
        took = time.monotonic() - t0
    finally:
        source.release.set()
    # the stop waits one call's limit, one interval and the slack, then the close's limit
    assert took < sampler.stop_limit_s() + 0.5 + 5, took
    assert record.get("abandoned") and record["readings"] == 3 and record["file"], record
    (gap,) = record["gaps"]
    assert gap["until_stop"] and gap["error"].endswith("of the stop: abandoned")
    assert record["close_problem"] == "no answer within 0.5 s: abandoned"


def test_a_killed_command_is_reaped_within_a_bound() -> None:
    assert power_sampler.REAP_LIMIT_S <= 10  # proc.wait after SIGKILL is never unbounded
    t0 = time.monotonic()
    with pytest.raises(power_sampler.SourceFailed, match="no answer within 0.2 s"):
        power_sampler.run_bounded(["bash", "-c", "sleep 30"], dict(os.environ), 0.2)
    assert time.monotonic() - t0 < 10


def test_a_failed_launch_stops_the_sampler(tmp_path: Path) -> None:
    from tests.test_run_training import spec

    setting = {"source": "command", "command": "echo 250", "interval_s": 0.02}
    run_spec = dataclasses.replace(spec("true"), power=setting)
    log_path = tmp_path / "run_01" / "mlperf.log"
    with pytest.raises(OSError), power_sampler.RunPower.of(run_spec, log_path) as power:
        assert power.sampler is not None
        raise OSError("the trainer could not start")  # as held.popen or log_path.open raise
    thread = power.sampler._thread
    assert thread is not None and not thread.is_alive()
    assert power.facts["power_sampling"]["window"].startswith("the whole sampling")


def test_the_wall_time_is_what_it_was_without_power(
    tmp_path: Path, paths: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # the sweep after the trainer's exit has always been part of the run's wall time
    from scripts.run.runner import execute
    from tests.test_run_training import good_log_command, spec

    sweep = containment.Held.kill_all

    def slow_sweep(self: containment.Held) -> int:
        time.sleep(2.0)
        return sweep(self)

    monkeypatch.setattr(containment.Held, "kill_all", slow_sweep)
    started = time.monotonic()
    meta = execute(spec(good_log_command(tmp_path)), **paths)
    assert meta.wall_s is not None and 2.0 <= meta.wall_s <= time.monotonic() - started


def test_a_source_slower_than_the_interval_is_named() -> None:
    base = {"source": "command", "interval_s": 1.0, "file": None, "gaps": []}
    assert own_power._rate_problem({**base, "median_spacing_s": 1.02}) is None
    slow = own_power._rate_problem({**base, "median_spacing_s": 2.0, "max_spacing_s": 3.5})
    assert slow == (
        "the command source gave a sample every 2 s (median; the longest wait 3.5 s), slower "
        "than the 1 s asked for (power.interval_s, the power rules' 1 Hz): each call takes "
        "longer than the interval"
    )
    block = own_power.own_power(Path("."), {**base, "median_spacing_s": 2.0, "max_spacing_s": 3.5})
    assert block is not None and block["problems"] == [f"power: {slow}"]
    # the sampler records the rate it achieved: a read of 0.15 s at an interval of 0.05 s
    gaps = power_log.spacing_record([Attempt(150 * (i + 1), 1.0) for i in range(5)], 0)
    assert gaps == {"median_spacing_s": 0.15, "max_spacing_s": 0.15}


def test_the_sampler_records_its_rate(tmp_path: Path) -> None:
    setting = {"source": "command", "command": ["bash", "-c", "sleep 0.15; echo 100"],
               "interval_s": 0.05, "timeout_s": 5}  # fmt: skip
    sampler = power_sampler.start(setting, tmp_path, dict(os.environ))
    assert sampler is not None
    deadline = time.monotonic() + 60
    while len(sampler.attempts) < 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    out = power_sampler.finish(sampler, tmp_path)
    record, (few,) = out["power_sampling"], out["power"]["problems"]
    assert record["median_spacing_s"] >= 0.15 and record["max_spacing_s"] >= 0.15
    # too few readings because the command is slow, not because of interval_s
    assert "not every 0.05 s: the source is slower than power.interval_s" in few


def test_a_node_command_beside_other_runs_gives_no_energy(tmp_path: Path) -> None:
    import json
    import socket

    from scripts.run import hostload

    running = tmp_path / "logs" / "running"
    mine = running / "b" / "s" / "run_01.json"
    host = socket.gethostname()
    for path, on in ((mine, host), (running / "b" / "s" / "run_02.json", host),
                     (running / "c" / "t" / "run_01.json", host),
                     (running / "b" / "s" / "run_03.json", "another-node")):  # fmt: skip
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"pid": 1, "host": on}))
    assert hostload.other_runs(mine) == ["b/s/run_02", "c/t/run_01"]
    # the sampler notes them at each sample, through the run's marker
    setting = {"source": "command", "command": ["bash", "-c", "echo 250"], "interval_s": 0.02}
    sampler = power_sampler.start(setting, tmp_path / "run", dict(os.environ))
    assert sampler is not None
    sampler.others = lambda: hostload.other_runs(mine)
    deadline = time.monotonic() + 60
    while len(sampler.attempts) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    out = power_sampler.finish(sampler, tmp_path / "run")
    assert out["power_sampling"]["concurrent_runs"] == ["b/s/run_02", "c/t/run_01"]
    assert not out["power"]["scorable"]
    assert (
        "power: the command source reads the whole node, and 2 other run(s) trained on this "
        "host at the same time (b/s/run_02, c/t/run_01): their power is in this run's "
        "readings: no energy"
    ) in out["power"]["problems"]
    # NVML reads the run's own GPUs: named nowhere
    nvml = own_power.own_power(tmp_path, {"source": "nvml", "concurrent_runs": ["b/s/run_02"]})
    assert nvml is not None and not any("whole node" in p for p in nvml["problems"])
