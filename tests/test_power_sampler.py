"""Power measured beside a run (scripts/run/power_sampler.py, scripts/mlperf/own_power.py): a real
command sampled in a thread, its power log read by mlperf-logging's own result summarizer, the
gaps of a source that fails, and the NVML source's telemetry arithmetic (scripts/run/
gpu_telemetry.py) on recorded sample values. NVML itself needs an NVIDIA driver, which this
machine lacks: only its absence, and this code's handling of what NVML answers (through a
stand-in module), are tested here; bench/gpu_check.sh --nvml runs it on a real GPU."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from mlperf_logging.result_summarizer import result_summarizer as rs

from scripts.mlperf import own_power, power
from scripts.run import gpu_telemetry, nvml_power, power_log, power_sampler
from scripts.run.gpu_telemetry import GpuSample
from scripts.run.power_sampler import Attempt, PowerSettings, SourceFailed

REPO_DIR = Path(__file__).resolve().parents[1]

# what `ipmitool dcmi power reading` prints (its first number is the instantaneous power)
IPMITOOL = b"""
    Instantaneous power reading:                   412 Watts
    Minimum during sampling period:                 98 Watts
    Maximum during sampling period:                655 Watts
    Average power reading over sample period:      380 Watts
    IPMI timestamp:                           Thu Jan  1 00:00:00 2026
    Sampling period:                          00000001 Seconds.
    Power reading state is:                   activated
"""

# a command printing a known pattern: 200, 210, 220, 230, 240 W, again and again, counted per
# run in $COUNTER.$MLPERF_RUN; from the DIE_AFTER-th call on it prints nothing and exits 1
WATTS_SH = """n_file="$COUNTER.$MLPERF_RUN"
n=$(( $(cat "$n_file" 2>/dev/null || echo 0) + 1 ))
echo $n > "$n_file"
if [ -n "$DIE_AFTER" ] && [ "$n" -ge "$DIE_AFTER" ]; then echo "BMC not answering" >&2; exit 1; fi
echo "Instantaneous power reading: $(( 200 + 10 * (n % 5) )) Watts"
"""


def watts_script(tmp_path: Path) -> Path:
    script = tmp_path / "watts.sh"
    script.write_text(WATTS_SH)
    return script


def sample_for(
    tmp_path: Path, samples: int, *, die_after: int | None = None, interval_s: float = 0.02
) -> tuple[dict[str, Any], Path]:
    """A command source sampled in run folder tmp_path/run until it has taken ``samples``
    samples (a condition, not a time: a loaded machine takes longer): (finish's record, the
    run folder)."""
    run_dir = tmp_path / "run"
    env = power_sampler.command_env(os.environ, "b", "s", 1)
    env["COUNTER"] = str(tmp_path / "count")
    if die_after is not None:
        env["DIE_AFTER"] = str(die_after)
    setting = {
        "source": "command",
        "command": ["bash", str(watts_script(tmp_path))],
        "interval_s": interval_s,
        "timeout_s": 5,
    }
    sampler = power_sampler.start(setting, run_dir, env)
    assert sampler is not None
    deadline = time.monotonic() + 120
    while len(sampler.attempts) < samples and time.monotonic() < deadline:
        time.sleep(0.05)
    return power_sampler.finish(sampler, run_dir), run_dir


def summarizer_energy(run_dir: Path, tmp_path: Path, time_to_train_ms: float) -> float:
    """mlperf-logging's own _compute_total_power of the run's power log, laid out as a
    submission has it (<benchmark folder>/power/result_0/node_0.txt)."""
    folder = tmp_path / "submission" / "bert"
    (folder / "power" / "result_0").mkdir(parents=True)
    (folder / "power" / "result_0" / "node_0.txt").write_bytes(
        (run_dir / "power" / "node_0.txt").read_bytes()
    )
    result = folder / "result_0.txt"
    return rs._compute_total_power(str(folder), str(result), time_to_train_ms, "5.0.0")


def test_the_first_number_is_the_watts() -> None:
    assert power_sampler.first_number(IPMITOOL) == 412.0
    assert power_sampler.first_number(b'{"PowerConsumedWatts": 1234.5}') == 1234.5
    assert power_sampler.first_number(b"1.5e3\n") == 1500.0
    # the review's cases: units, thousands, a status code before the number, a word's digits
    assert power_sampler.first_number(b"Total power: 1.23 kW\n") == 1230.0
    assert power_sampler.first_number(b"3 KW") == 3000.0
    assert power_sampler.first_number(b"500 mW") == 0.5
    assert power_sampler.first_number(b"1,234 W") == 1234.0
    assert power_sampler.first_number(b"E000: Success\nActive power: 1.5 kW\n") == 1500.0
    assert power_sampler.first_number(b"PSU1: 250W") == 250.0
    deactivated = IPMITOOL.replace(b"412 Watts", b"0 Watts").replace(b"activated", b"deactivated")
    for bad, why in (
        (b"no reading\n", "no number"),
        (b"-5 W", "is not a power"),
        (deactivated, "no power reading"),
    ):
        with pytest.raises(SourceFailed, match=why):
            power_sampler.first_number(bad)


def test_a_command_that_fails_hangs_or_floods_is_one_failed_sample(tmp_path: Path) -> None:
    env = dict(os.environ)
    with pytest.raises(SourceFailed, match=r"^exited with 3: bmc busy$"):
        power_sampler.run_bounded(["bash", "-c", "echo bmc busy >&2; exit 3"], env, 5)
    t0 = time.monotonic()
    with pytest.raises(SourceFailed, match=r"no answer within 0.3 s \(timeout_s\): killed"):
        power_sampler.run_bounded(["bash", "-c", "sleep 30 & sleep 30"], env, 0.3)
    assert time.monotonic() - t0 < 10  # the whole group was killed, not waited for
    with pytest.raises(SourceFailed, match="printed more than 65536 bytes"):
        power_sampler.run_bounded(["bash", "-c", "yes 100"], env, 5)
    with pytest.raises(SourceFailed, match="cannot start"):
        power_sampler.run_bounded([str(tmp_path / "missing")], env, 5)
    assert power_sampler.run_bounded(["bash", "-c", "echo 250 W"], env, 5) == b"250 W\n"


def test_a_string_command_runs_in_bash_a_list_as_it_is() -> None:
    assert PowerSettings.of({"command": "ipmitool dcmi power reading"}).argv() == [
        "bash",
        "-c",
        "ipmitool dcmi power reading",
    ]
    assert PowerSettings.of({"command": ["ipmitool", "dcmi"]}).argv() == ["ipmitool", "dcmi"]
    assert power_sampler.start({"source": "none"}, Path("."), {}) is None
    assert power_sampler.start({}, Path("."), {}) is None


def test_a_sampled_command_is_a_power_log_the_summarizer_scores(tmp_path: Path) -> None:
    record, run_dir = sample_for(tmp_path, 65)
    sampling, block = record["power_sampling"], record["power"]
    assert sampling["file"] == "power/node_0.txt" and sampling["failed"] == 0
    assert sampling["readings"] >= own_power.MIN_READINGS, sampling
    assert block["scorable"] and block["problems"] == []
    text = (run_dir / "power" / "node_0.txt").read_text()
    assert text.count('"power_reading"') == sampling["readings"]
    readings = [
        json.loads(line.split(":::MLLOG ", 1)[1])
        for line in text.splitlines()
        if '"power_reading"' in line
    ]
    assert {r["value"] for r in readings} <= {200.0, 210.0, 220.0, 230.0, 240.0}
    # the summarizer's energy for a time to train of 1.234 s, and ours from the same file
    theirs = summarizer_energy(run_dir, tmp_path, 1234.0)
    mine = power.energy_j(block, 1234.0)
    assert mine is not None and abs(mine - theirs) <= 1e-9 * theirs
    # the mean of the pattern's readings (each weighted by its interval) times 1.234 s
    assert 200 * 1.234 <= mine <= 240 * 1.234


def test_a_command_that_dies_halfway_is_a_named_gap_and_no_energy(tmp_path: Path) -> None:
    record, run_dir = sample_for(tmp_path, 40, die_after=20)
    sampling, block = record["power_sampling"], record["power"]
    assert sampling["readings"] == 19 and sampling["failed"] >= 21
    (gap,) = sampling["gaps"]
    assert gap["until_stop"] and gap["error"] == "exited with 1: BMC not answering"
    assert sampling["gap_s"] > 0.3 * sampling["window_s"]
    assert not block["scorable"]
    (problem,) = [p for p in block["problems"] if "gap" in p]
    assert problem.startswith("power: the command source failed ")
    assert "it stopped answering (exited with 1: BMC not answering)" in problem
    assert problem.endswith("more than 5%: no energy")
    # the log still holds every reading that was taken, and the summarizer still reads it
    assert summarizer_energy(run_dir, tmp_path, 1000.0) > 0
    assert power.result_fields(block, 1.0)["energy_j"] is None


def test_a_source_that_cannot_start_is_named_and_writes_no_log(tmp_path: Path) -> None:
    sampler = power_sampler.start({"source": "command", "command": ""}, tmp_path, {})
    record = power_sampler.finish(sampler, tmp_path)
    assert record["power_sampling"]["problem"] == (
        "the command source could not start: power.source is command but power.command is not set"
    )
    assert record["power"]["problems"] == [f"power: {record['power_sampling']['problem']}"]
    assert not record["power"]["scorable"] and not (tmp_path / "power").exists()


def attempts(*pattern: float | None, step_ms: int = 1000) -> list[Attempt]:
    return [
        Attempt(step_ms * (i + 1), w, "" if w is not None else "boom")
        for i, w in enumerate(pattern)
    ]


def test_a_gap_runs_from_the_sample_before_it_to_its_last_failed_one() -> None:
    # each failed sample leaves its own interval without a reading: 2 + 1 of 5 seconds
    got = power_sampler.gap_record(attempts(100, None, None, 100, None), 0, 5000)
    assert got["samples"] == 5 and got["readings"] == 2 and got["failed"] == 3
    assert got["gaps"] == [
        {"from_s": 1.0, "to_s": 3.0, "samples": 2, "until_stop": False, "error": "boom"},
        {"from_s": 4.0, "to_s": 5.0, "samples": 1, "until_stop": True, "error": "boom"},
    ]
    assert got["gap_s"] == 3.0 and got["window_s"] == 5.0
    many = power_sampler.gap_record(attempts(*[100, None] * 30), 0, 60_000)
    assert len(many["gaps"]) == power_log.MAX_GAPS and many["gaps_not_shown"] == 10


def test_isolated_failed_samples_count_one_interval_each() -> None:
    # the review's case: 10 of 300 samples at 1 Hz failed, each alone: 10 s (3.3%), not 20 s
    pattern = [None if i % 30 == 15 else 300.0 for i in range(300)]
    got = power_sampler.gap_record(attempts(*pattern), 0, 300_000)
    got.update(source="command", interval_s=1.0)
    assert got["failed"] == 10 and got["gap_s"] == 10.0
    problems, blocks = own_power._gap_problems(got)
    assert not blocks and "10 s of the 300 s window (3.3%) has no reading" in problems[0]


def test_a_short_gap_is_named_but_the_energy_is_scored() -> None:
    sampling = {
        "source": "command",
        "samples": 100,
        "failed": 1,
        "window_s": 100.0,
        "gap_s": 1.0,
        "gaps": [{"from_s": 10.0, "to_s": 11.0, "samples": 1, "error": "timeout"}],
    }
    problems, blocks = own_power._gap_problems(sampling)
    assert not blocks
    assert problems == [
        "the command source failed 1 of 100 samples: a gap from 10.0 s to 11.0 s (timeout); "
        "1 s of the 100 s window (1.0%) has no reading"
    ]


def test_the_power_log_format_is_what_the_summarizer_reads(tmp_path: Path) -> None:
    text = power_sampler.power_log_text(
        1000, 4000, attempts(100.0, None, 300.0, 400.0), 0.9, "command"
    )
    path = tmp_path / "node_0.txt"
    path.write_text(text)
    facts = power.read_power_file(path, "node")
    assert facts["problems"] == [] and facts["readings"] == 3
    # readings at 1, 3 and 4 s after the start at 1 s: 100 W x 0 + 300 W x 2 s + 400 W x 1 s
    assert facts["integral_w_ms"] == 1_000_000 and facts["conversion_eff"] == 0.9
    assert (facts["start_ms"], facts["stop_ms"]) == (1000.0, 4000.0)


def test_the_window_must_cover_the_logs_run() -> None:
    block = {
        "files": [{"kind": "node", "start_ms": 1000.0, "stop_ms": 9000.0}],
        "problems": [],
        "scorable": True,
    }
    assert own_power.window_problem(block, 1.0, 9.0) is None
    late = own_power.window_problem(block, 0.5, 9.0)
    assert late is not None and "does not cover the log's run_start to run_stop" in late
    fields = own_power.result_fields(block, {"source": "command"}, 8.0, 0.5, 9.0)
    assert fields["energy_j"] is None and fields["power_problems"] == [late]


def test_a_multi_node_run_names_its_unmeasured_nodes(tmp_path: Path) -> None:
    record, run_dir = sample_for(tmp_path, 5, interval_s=0.05)
    block = own_power.own_power(run_dir, record["power_sampling"], nodes=2)
    assert block is not None and not block["scorable"]
    assert any("a run of 2 nodes: only node 0" in p for p in block["problems"])
    assert any("fewer than the 60" in p for p in block["problems"])


# ---------------------------------------------------------------------------------------------
# GPU telemetry: the arithmetic on recorded values

# reasons bitmasks as an H100 under load reports them: 0x4 SW power cap, 0x1 idle, 0x0 none,
# 0x44 SW power cap + HW thermal, 0x88 HW slowdown + power brake
RECORDED: list[tuple[float, list[GpuSample]]] = [
    (101.0, [GpuSample(0x1, 34, 345), GpuSample(0x1, 33, 345)]),
    (102.0, [GpuSample(0x4, 61, 1755), GpuSample(0x0, 58, 1980)]),
    (103.5, [GpuSample(0x44, 84, 1410), GpuSample(0x0, 60, 1980)]),
    (104.0, [GpuSample(0x0, 80, 1980), GpuSample(0x88, 62, 1200)]),
    (105.0, [GpuSample(None, None, None), GpuSample(0x0, 61, 1980)]),
]


def test_reasons_become_seconds_each_sample_standing_for_the_time_before_it() -> None:
    out = gpu_telemetry.summarize(100.0, 105.0, ["0", "1"], RECORDED, {"0": {"ecc_corrected": 2}})
    g0, g1 = out["gpus"]["0"], out["gpus"]["1"]
    assert g0["reasons_s"] == {
        "sw_power_cap": 2.5,  # 101-102 (1 s) and 102-103.5 (1.5 s)
        "hw_slowdown": 0.0,
        "sw_thermal": 0.0,
        "hw_thermal": 1.5,
        "hw_power_brake": 0.0,
    }
    # throttled: HW thermal only, 102-103.5; a GPU at its SW power cap is not throttled
    assert g0["throttled_s"] == 1.5 and g0["max_temperature_c"] == 84 and g0["samples"] == 4
    # SM clock weighted by the same intervals: (345*1 + 1755*1 + 1410*1.5 + 1980*0.5) / 4
    assert g0["mean_sm_clock_mhz"] == pytest.approx((345 + 1755 + 1410 * 1.5 + 990) / 4, abs=0.05)
    assert g0["ecc_corrected"] == 2
    assert g1["reasons_s"]["hw_slowdown"] == 0.5 and g1["reasons_s"]["hw_power_brake"] == 0.5
    assert g1["throttled_s"] == 0.5
    # any GPU throttled: 102-103.5 (GPU 0), 103.5-104 (GPU 1); at its power cap: 101-103.5
    assert out["gpu_throttled_s"] == 2.0 and out["gpu_power_capped_s"] == 2.5
    assert gpu_telemetry.THROTTLE_MASK == 0x8 | 0x20 | 0x40 | 0x80


def test_error_counters_count_what_the_run_added() -> None:
    assert gpu_telemetry.error_counts(3, 5) == 2
    assert gpu_telemetry.error_counts(None, 5) is None
    assert gpu_telemetry.error_counts(7, 2) == 2  # reset by the driver during the run
    assert gpu_telemetry.weights(10.0, [11.0, 10.5, 12.0]) == [1.0, 0.0, 1.0]


# ---------------------------------------------------------------------------------------------
# NVML: absent here; the source's handling of NVML's answers, through a stand-in module


def test_without_a_driver_nvml_is_not_found_in_one_line() -> None:
    problem = nvml_power.nvml_problem()
    if problem is None:
        pytest.skip("this machine has an NVIDIA driver")
    assert problem == nvml_power.NOT_FOUND == "NVML not found: no NVIDIA driver on this host"


class FakeNvml(SimpleNamespace):
    """A stand-in for pynvml that replays recorded answers: two GPUs, 300 W and 350 W."""

    class NVMLError(Exception):
        pass

    NVML_ERROR_LIBRARY_NOT_FOUND = 12
    NVML_ERROR_DRIVER_NOT_LOADED = 9
    NVML_MEMORY_ERROR_TYPE_CORRECTED = 0
    NVML_MEMORY_ERROR_TYPE_UNCORRECTED = 1
    NVML_VOLATILE_ECC = 0
    NVML_TEMPERATURE_GPU = 0
    NVML_CLOCK_SM = 1
    nvmlEventTypeXidCriticalError = 8

    def __init__(self) -> None:
        super().__init__(energy={0: 1_000_000, 1: 2_000_000}, ecc={0: 0, 1: 5}, xids=[(1, 79)])

    def nvmlInit(self) -> None: ...
    def nvmlShutdown(self) -> None: ...
    def nvmlDeviceGetCount(self) -> int:
        return 2

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return i

    def nvmlDeviceGetIndex(self, h: int) -> int:
        return h

    def nvmlDeviceGetPowerUsage(self, h: int) -> int:
        self.energy[h] += 300_000 + 50_000 * h  # mJ over a second at that power
        return 300_000 + 50_000 * h

    def nvmlDeviceGetCurrentClocksEventReasons(self, h: int) -> int:
        return 0x4 if h == 1 else 0x0

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, h: int) -> int:
        return 0x40  # an older driver's name of the same bits

    def nvmlDeviceGetTemperature(self, h: int, sensor: int) -> int:
        return 70 + h

    def nvmlDeviceGetClockInfo(self, h: int, clock: int) -> int:
        return 1980 - 100 * h

    def nvmlDeviceGetTotalEccErrors(self, h: int, kind: int, counter: int) -> int:
        if kind == self.NVML_MEMORY_ERROR_TYPE_UNCORRECTED:
            raise self.NVMLError("Not Supported")
        self.ecc[h] += 1
        return self.ecc[h]

    def nvmlDeviceGetTotalEnergyConsumption(self, h: int) -> int:
        return self.energy[h]

    def nvmlEventSetCreate(self) -> str:
        return "events"

    def nvmlDeviceRegisterEvents(self, h: int, kind: int, events: str) -> None: ...
    def nvmlEventSetFree(self, events: str) -> None: ...
    def nvmlEventSetWait_v2(self, events: str, timeout_ms: int) -> Any:
        if not self.xids:
            raise self.NVMLError("Timeout")
        gpu, xid = self.xids.pop()
        return SimpleNamespace(device=gpu, eventData=xid)  # fmt: skip


def test_the_nvml_source_sums_the_gpus_and_writes_their_telemetry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeNvml()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    source = power_sampler.make_source(PowerSettings(source="nvml"), {}, [])
    assert isinstance(source, nvml_power.NvmlSource)
    source.open()
    watts = [source.read() for _ in range(3)]
    assert watts == [650.0, 650.0, 650.0]
    extra = source.close(tmp_path, source.samples[0][0] - 1.0, source.samples[-1][0])
    assert extra["gpus"] == ["0", "1"] and extra["gpu_telemetry"] == "gpu_telemetry.json"
    assert extra["gpu_energy_counter_j"] == 3 * 650.0  # J: 650 W for 3 "seconds"
    telemetry = json.loads((tmp_path / "gpu_telemetry.json").read_text())
    g0, g1 = telemetry["gpus"]["0"], telemetry["gpus"]["1"]
    assert g0["throttled_s"] == 0 and g1["reasons_s"]["sw_power_cap"] > 0
    # GPU 1 at its power cap: recorded, not throttled
    assert g1["throttled_s"] == telemetry["gpu_throttled_s"] == extra["gpu_throttled_s"] == 0
    assert extra["gpu_power_capped_s"] == telemetry["gpu_power_capped_s"] > 0
    assert g0["max_temperature_c"] == 70 and g1["mean_sm_clock_mhz"] == 1880
    assert g0["ecc_corrected"] == 1 and g0["ecc_uncorrected"] is None  # unsupported: unknown
    assert g1["xid_errors"][0]["xid"] == 79 and g0["xid_errors"] == []


# ---------------------------------------------------------------------------------------------
# The runner: sampled beside the trainer, recorded in run.json, scored in result.json

# a trainer that logs run_start, waits until the power command has been called 65 more times
# (a condition, however loaded the machine), then logs run_stop
TRAINER = """import json, pathlib, sys, time
def event(key, kind):
    print(":::MLLOG " + json.dumps({"namespace": "", "time_ms": int(time.time() * 1000),
          "event_type": kind, "key": key, "value": None, "metadata": {}}), flush=True)
counter = pathlib.Path(sys.argv[1])
def calls():
    try:
        return int(counter.read_text() or 0)
    except (OSError, ValueError):
        return 0
event("run_start", "INTERVAL_START")
first = calls()
while calls() < first + 66:
    time.sleep(0.02)
event("run_stop", "INTERVAL_END")
"""


def test_the_runner_samples_beside_the_trainer_and_scores_the_energy(
    tmp_path: Path, paths: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from scripts.run.result_json import write_result
    from scripts.run.runner import execute
    from tests.test_run_training import spec

    trainer = tmp_path / "trainer.py"
    trainer.write_text(TRAINER)
    monkeypatch.setenv("COUNTER", str(tmp_path / "count"))  # the runner's, so the command's
    setting = {"source": "command", "command": ["bash", str(watts_script(tmp_path))],
               "interval_s": 0.02, "conversion_eff": 0.95, "timeout_s": 5}  # fmt: skip
    command = f"{sys.executable} {trainer} {tmp_path / 'count.1'}"
    meta = execute(dataclasses.replace(spec(command), power=setting), **paths)
    sampling = meta.power_sampling or {}
    assert sampling["source"] == "command" and sampling["readings"] >= 65
    assert sampling["measures"].startswith("the node's power as the command reports it")
    assert meta.power is not None and meta.power["scorable"]
    run_dir = paths["log_path"].parent
    result = write_result(
        paths["log_path"], paths["meta_path"], {"metric": "acc", "target": 0.9}, "run_stop",
        run_dir / "result.json",
    )  # fmt: skip
    assert result.power_source == "command" and result.power_problems == []
    assert result.time_to_train_s is not None and result.energy_j is not None
    loglines, _ = rs.parse_file(str(paths["log_path"]), "5.0.0")
    start, stop = rs._query_run_start_stop(loglines)
    theirs = summarizer_energy(run_dir, tmp_path, stop - start)
    assert abs(result.energy_j - theirs) <= 1e-9 * theirs
    # conversion_eff 0.95 of a 200-240 W pattern over the time to train
    assert 0.95 * 200 * result.time_to_train_s <= result.energy_j
    assert result.energy_j <= 0.95 * 240 * result.time_to_train_s
    assert meta.containment_killed == 0  # the sampler's commands are not the trainer's strays


# ---------------------------------------------------------------------------------------------
# Load time: an nvml source on a host without NVML stops the workflow before any run


def nvml_campaign(tmp_path: Path) -> dict[str, Any]:
    from scripts.campaign.config_checks import load_campaign

    overlay = tmp_path / "nvml.yaml"
    overlay.write_text("systems:\n  local:\n    power: {source: nvml}\n")
    return load_campaign([overlay])


def test_an_nvml_source_without_a_driver_stops_the_workflow_in_one_line(tmp_path: Path) -> None:
    from scripts.campaign import preflight
    from scripts.campaign.invocation import Refused

    if nvml_power.nvml_problem() is None:
        pytest.skip("this machine has an NVIDIA driver")
    config = nvml_campaign(tmp_path)
    said: list[str] = []
    for argv in (["snakemake", "-n"], ["snakemake", "--cores", "1"]):
        with pytest.raises(Refused) as info:
            preflight.run(
                config, tmp_path, argv, job=False, workflow_dir=REPO_DIR, warn=said.append
            )
        message = str(info.value)
        assert message.startswith("NVML not found: no NVIDIA driver on this host (systems local")
        assert "\n" not in message
    assert not (tmp_path / ".snakemake").exists()  # before the lock: nothing was touched
    # a job's own snakemake checks nothing; a cluster executor's nodes are checked by the runs
    preflight.run(
        config, tmp_path, ["snakemake"], job=True, workflow_dir=REPO_DIR, warn=said.append
    )
    argv = ["snakemake", "--profile", str(REPO_DIR / "profiles" / "slurm"), "-n"]
    from scripts.campaign.power_checks import power_problem

    assert power_problem(config, argv, {}, said.append) is None
    assert "through the slurm executor" in said[-1]


def test_the_executor_is_read_from_the_command_line_or_the_profile(tmp_path: Path) -> None:
    from scripts.campaign.power_checks import cluster_executor

    slurm = str(REPO_DIR / "profiles" / "slurm")
    assert cluster_executor(["snakemake", "--executor", "slurm"], {}) == "slurm"
    assert cluster_executor(["snakemake", "-e", "local"], {}) is None
    assert cluster_executor(["snakemake", f"--profile={slurm}"], {}) == "slurm"
    assert cluster_executor(["snakemake"], {"SNAKEMAKE_PROFILE": slurm}) == "slurm"
    assert (
        cluster_executor(["snakemake", "--profile", str(REPO_DIR / "profiles/default")], {}) is None
    )
    assert cluster_executor(["snakemake", "--cores", "2"], {}) is None


def test_an_older_driver_gives_the_reasons_by_their_older_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeNvml()

    def missing(handle: int) -> int:
        raise fake.NVMLError("Function Not Found")

    fake.nvmlDeviceGetCurrentClocksEventReasons = missing  # type: ignore[method-assign]
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    source = nvml_power.NvmlSource(["1"])
    source.open()
    assert source.read() == 350.0  # GPU 1 only: the run's gpu_devices
    assert source.samples[0][1][0].reasons == 0x40


class MigNvml(FakeNvml):
    """The stand-in with two MIG instances of GPU 1 (their handles "MIG-a", "MIG-b")."""

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> Any:
        return uuid

    def nvmlDeviceIsMigDeviceHandle(self, h: Any) -> bool:
        return isinstance(h, str) and h.startswith("MIG-")

    def nvmlDeviceGetDeviceHandleFromMigDeviceHandle(self, h: str) -> int:
        return 1

    def nvmlDeviceGetPowerUsage(self, h: Any) -> int:
        if isinstance(h, str):
            raise self.NVMLError("Not Supported")  # NVML has no power per MIG instance
        return super().nvmlDeviceGetPowerUsage(h)


def test_a_mig_instance_reads_its_whole_gpu_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", MigNvml())
    source = nvml_power.NvmlSource(["MIG-a", "MIG-b"])
    source.open()
    assert source.gpus == ["1"] and source.read() == 350.0  # GPU 1, counted once
    assert source.notes[0] == (
        "MIG-a is a MIG instance: NVML reads the power of its whole GPU 1, shared with the "
        "GPU's other instances"
    )
    source.close(tmp_path, 0.0, time.time() + 1)
    telemetry = json.loads((tmp_path / "gpu_telemetry.json").read_text())
    assert "MIG-b is a MIG instance" in telemetry["notes"][1]
