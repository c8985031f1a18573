"""The local backend: a crash is a failed job with its log kept; a timeout kills the whole tree."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scripts.core.run_records import RunRecord
from scripts.run import containment, seals
from scripts.run.failure import LINE_CHARS, TAIL_BYTES, TAIL_LINES, RunFailed, crash_report
from scripts.run.runner import execute
from scripts.run.spec import RunSpec
from tests.conftest import REPO

MLLOG = (
    ':::MLLOG {"namespace": "", "time_ms": %d, "event_type": "%s", "key": "%s", '
    '"value": null, "metadata": {%s}}'
)


def spec(command: str, timeout_s: float | None = 30, run: int = 1) -> RunSpec:
    return RunSpec(
        benchmark="b",
        system="s",
        run=run,
        seed=7,
        command=command,
        env={"EXTRA": "1"},
        timeout_s=timeout_s,
        threads=1,
        scale="test",
        config_fingerprint="cfp",
        comparability={"a": 1},
    )


def good_log_command(tmp_path: Path) -> str:
    lines = [
        MLLOG % (1000, "INTERVAL_START", "run_start", ""),
        MLLOG % (1500, "INTERVAL_END", "run_stop", '"status": "success"'),
    ]
    script = tmp_path / "emit.py"
    script.write_text(
        "import os\n"
        f"print({lines!r}[0]); print('EXTRA=' + os.environ['EXTRA']); print({lines!r}[1])\n"
    )
    return f"{sys.executable} {script}"


def test_a_successful_run_writes_its_log_and_metadata(tmp_path: Path, paths) -> None:
    meta = execute(spec(good_log_command(tmp_path)), **paths)
    log = paths["log_path"].read_text()
    assert "run_start" in log and "EXTRA=1" in log  # system env reaches the trainer
    assert meta.exit_code == 0 and meta.seed == 7
    assert json.loads(paths["meta_path"].read_text())["fingerprint"] == meta.fingerprint
    assert meta.environment_digest == "envdigest" and meta.config_fingerprint == "cfp"


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        ("echo started; exit 3", "exited with status 3"),
        ("echo started; kill -9 $$", "killed by signal 9"),
        ("echo no events here", "no MLPerf events: not an MLPerf log"),
    ],
)
def test_a_crash_fails_and_keeps_every_attempts_log(paths, command: str, reason: str) -> None:
    for attempt in (1, 2):
        with pytest.raises(RunFailed, match=reason):
            execute(spec(command), **paths)
        kept = sorted(paths["failed_dir"].glob("run_01.attempt*.log"))
        assert len(kept) == attempt  # never overwritten
        assert "started" in kept[-1].read_text() or "no events" in kept[-1].read_text()
        assert reason in kept[-1].read_text()
    assert not paths["meta_path"].exists()


def test_a_timeout_kills_the_whole_process_tree(tmp_path: Path, paths) -> None:
    pidfile = tmp_path / "child.pid"
    command = f"sleep 300 & echo $! > {pidfile}; wait"
    t0 = time.monotonic()
    with pytest.raises(RunFailed, match="timed out after 0.5 s"):
        execute(spec(command, timeout_s=0.5), **paths)
    assert time.monotonic() - t0 < 10
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"grandchild {child} survived the timeout")


def test_retries_try_a_crashed_run_again_and_keep_each_failed_log(tmp_path: Path, paths) -> None:
    flag = tmp_path / "crashed-once"
    command = f"if [ ! -e {flag} ]; then touch {flag}; echo first; exit 4; fi; " + good_log_command(
        tmp_path
    )
    s = spec(command)
    s = RunSpec(**{**{f: getattr(s, f) for f in s.__dataclass_fields__}, "retries": 1})
    meta = execute(s, **paths)
    assert meta.attempts == 2
    (kept,) = paths["failed_dir"].glob("run_01.attempt1.*.log")
    assert "exited with status 4" in kept.read_text()
    with pytest.raises(RunFailed):
        execute(spec("exit 5"), **paths)  # retries 0: one attempt only


def test_a_log_line_matching_a_fail_pattern_makes_the_run_a_crash(tmp_path: Path, paths) -> None:
    """NVIDIA's run_and_time.sh falls back to DGX-1's settings when the image has no
    config_<SYSTEM>.sh, and says so: such a run must not become a result."""
    command = "echo 'Unknown system, assuming DGX1'; " + good_log_command(tmp_path)
    s = spec(command)
    s = RunSpec(
        **{
            **{f: getattr(s, f) for f in s.__dataclass_fields__},
            "fail_patterns": ["Unknown system, assuming DGX1"],
        }
    )
    with pytest.raises(RunFailed, match=r"log line 1 matches the failure pattern"):
        execute(s, **paths)
    (kept,) = paths["failed_dir"].glob("run_01.attempt1.*.log")
    assert "Unknown system, assuming DGX1" in kept.read_text()
    assert execute(spec(good_log_command(tmp_path)), **paths).exit_code == 0


# -- a crash report: the reason and the kept log first, then a bounded tail with lines cut


def test_the_crash_report_starts_with_the_reason_and_the_kept_log_and_cuts_long_lines(
    tmp_path: Path,
) -> None:
    kept = tmp_path / "run_03.attempt1.T.log"
    body = [f"line {i} " + "x" * (i * 20) for i in range(1, 101)]  # up to 2 kB per line
    kept.write_text("\n".join(body) + "\n\x00\x1b[31mjunk\tend\n\n# workflow: attempt failed: r\n")
    report = crash_report(spec("c", run=3), "trainer exited with status 1", kept).splitlines()
    assert report[0] == (
        f"run 3 of b/s failed: trainer exited with status 1; its log is kept at {kept}"
    )
    assert report[1] == "  its last 20 lines:"
    tail = report[2:]
    assert len(tail) == TAIL_LINES
    assert tail[-1] == r"  | \x00\x1b[31mjunk  end"  # no control character reaches a console
    assert tail[0].startswith("  | line 82 xxx") and tail[-2].startswith("  | line 100 ")
    assert all(len(t) <= len("  | ") + LINE_CHARS + 3 for t in tail)
    assert tail[-2].endswith("x...")
    assert not any("# workflow:" in t for t in tail)  # the reason is on the first line already


def test_the_crash_report_reads_only_the_end_of_a_huge_log(tmp_path: Path) -> None:
    kept = tmp_path / "huge.log"
    with kept.open("w") as fh:  # 64 MiB in one line, then a last line
        for _ in range(64):
            fh.write("y" * (1 << 20))
        fh.write("\nthe end\n")
    before = _rchar()
    report = crash_report(spec("c"), "timed out", kept).splitlines()
    assert _rchar() - before < 2 * TAIL_BYTES  # the last 64 KiB, not 64 MiB
    assert report[2:] == ["  | ..." + "y" * (LINE_CHARS - 3) + "...", "  | the end"]


def test_the_crash_report_of_an_empty_or_missing_log(tmp_path: Path) -> None:
    (tmp_path / "empty.log").write_text("")
    for log in (tmp_path / "empty.log", tmp_path / "missing.log"):
        assert crash_report(spec("c"), "why", log).splitlines()[1:] == [
            "  (the trainer wrote nothing)"
        ]


def test_a_crashed_attempt_carries_its_report(paths) -> None:
    with pytest.raises(RunFailed) as info:
        execute(spec("echo about to fail; exit 3"), **paths)
    (kept,) = paths["failed_dir"].glob("run_01.attempt1.*.log")
    assert info.value.report == (
        f"run 1 of b/s failed: trainer exited with status 3; its log is kept at {kept}\n"
        "  its last 1 lines:\n"
        "  | about to fail"
    )


def runner_main(paths: dict[str, Path], s: RunSpec, job_log: Path) -> int:
    """The runner as the rule runs it: ``> {log} 2>&1``."""
    args = [
        sys.executable, "-m", "scripts.run.runner", "--spec", s.to_json(),
        "--log", str(paths["log_path"]), "--meta", str(paths["meta_path"]),
        "--failed-dir", str(paths["failed_dir"]),
        "--dataset-manifest", str(paths["dataset_manifest"]),
        "--environment", str(paths["environment"]),
    ]  # fmt: skip
    with job_log.open("w") as out:
        return subprocess.run(args, cwd=REPO, stdout=out, stderr=subprocess.STDOUT).returncode


def test_the_job_log_starts_with_the_reason(tmp_path: Path, paths) -> None:
    """The first line of the job's log is the reason, with the kept log's path, then the tail;
    what the runner printed before follows."""
    job_log = tmp_path / "job.log"
    command = "python3 -c \"print('w' * 5000)\"; echo 'Traceback: boom' >&2; exit 1"
    assert runner_main(paths, spec(command), job_log) == 1
    (kept,) = paths["failed_dir"].glob("run_01.attempt1.*.log")
    lines = job_log.read_text().splitlines()
    assert lines == [
        f"error: run 1 of b/s failed: trainer exited with status 1; its log is kept at {kept}",
        "  its last 2 lines:",
        "  | " + "w" * LINE_CHARS + "...",
        "  | Traceback: boom",
        "",
        "runner: its output before that:",
        "runner: b/s run 1 seed 7",
        f"runner: command: {command}",
    ]


def test_with_retries_the_job_log_starts_with_the_last_attempt(tmp_path: Path, paths) -> None:
    job_log = tmp_path / "job.log"
    s = spec("echo attempt; exit 2")
    s = RunSpec(**{**{f: getattr(s, f) for f in s.__dataclass_fields__}, "retries": 1})
    assert runner_main(paths, s, job_log) == 1
    first, second = sorted(paths["failed_dir"].glob("run_01.attempt*.log"))
    text = job_log.read_text()
    assert text.startswith(
        f"error: run 1 of b/s failed: trainer exited with status 2; its log is kept at {second}\n"
    )
    before = text.split("runner: its output before that:\n", 1)[1]
    assert before.splitlines()[2:6] == [
        f"runner: run 1 of b/s failed: trainer exited with status 2; its log is kept at {first}",
        "  its last 1 lines:",
        "  | attempt",
        "runner: retrying: attempt 2 of 2",
    ]


def _rchar() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


# -- containment: nothing the trainer starts outlives its attempt (scripts/run/containment.py)


def stray_command(tmp_path: Path, end: str) -> tuple[str, Path]:
    """A trainer that starts a ``setsid`` grandchild (out of its process group and session)
    which keeps writing to the inherited log (and forks a ``sleep`` every 10 ms), waits until
    it has written once, logs a finished run of 0.4 s, then ends with ``end`` (e.g.
    ``exit 0``)."""
    pidfile = tmp_path / "stray.pid"
    stray = (  # it has written to the log once when its pid file appears
        f"echo stray still writing; echo $$ > {pidfile}.tmp; mv {pidfile}.tmp {pidfile}; "
        "while :; do echo stray still writing; sleep 0.01; done"
    )
    stop = MLLOG % (1400, "INTERVAL_END", "run_stop", '"status": "success"')
    command = (
        f"setsid sh -c {shlex.quote(stray)} & "
        f"while [ ! -e {pidfile} ]; do sleep 0.01; done; "
        f"echo {shlex.quote(MLLOG % (1000, 'INTERVAL_START', 'run_start', ''))}; "
        f"echo {shlex.quote(stop)}; {end}"
    )
    return command, pidfile


def expected_mechanisms(mode: str) -> set[str]:
    """What holds a run on this machine with MLPERF_CONTAINMENT=``mode``: a cgroup where the
    runner may make one under its own, else the subreaper."""
    return {"subreaper"} if mode == "subreaper" else {containment.probe()}


def gone(pid: int) -> bool:
    """The pid names no process, not even a zombie."""
    return not Path(f"/proc/{pid}").exists()


def kill_if_alive(pidfile: Path) -> None:
    """Whatever a test found, the stray does not outlive it."""
    if pidfile.exists() and not gone(pid := int(pidfile.read_text())):
        os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("mode", ["auto", "subreaper"])
def test_a_setsid_grandchild_is_killed_before_the_log_is_sealed(
    tmp_path: Path, paths, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """The trainer exits 0 leaving a setsid grandchild that writes to the log: it is gone
    (its pid free, not a zombie) when the log is sealed, the seal is the log's final state,
    and run.json says what held the run."""
    monkeypatch.setenv(containment.MODE_ENV, mode)
    command, pidfile = stray_command(tmp_path, "exit 0")
    at_seal = []
    real_add_seal = seals.add_seal

    def add_seal(meta: RunRecord, log: Path) -> RunRecord:
        at_seal.append(gone(int(pidfile.read_text())))
        return real_add_seal(meta, log)

    monkeypatch.setattr(seals, "add_seal", add_seal)
    try:
        meta = execute(spec(command), **paths)
    finally:
        kill_if_alive(pidfile)
    assert at_seal == [True]
    assert meta.containment in expected_mechanisms(mode)
    assert (meta.containment_killed or 0) >= 1  # the grandchild (and its sleep, if it ran)
    assert "stray still writing" in paths["log_path"].read_text()
    # nobody wrote to the log after its seal
    assert meta.log_seal is not None
    assert seals.verify_log(paths["log_path"], meta.log_seal) == (None, None)


@pytest.mark.parametrize(
    ("end", "timeout_s", "reason"),
    [("exit 3", 60, "trainer exited with status 3"), ("sleep 300", 3, "timed out after 3 s")],
    ids=["crash", "timeout"],
)
def test_a_setsid_grandchild_is_killed_whatever_ends_the_trainer(
    tmp_path: Path, paths, end: str, timeout_s: float, reason: str
) -> None:
    """A crash or a timeout (whose process-group kill a setsid grandchild escapes): the
    grandchild is gone when the attempt ends, before its log is kept."""
    command, pidfile = stray_command(tmp_path, end)
    try:
        with pytest.raises(RunFailed, match=reason):
            execute(spec(command, timeout_s=timeout_s), **paths)
        assert gone(int(pidfile.read_text()))
    finally:
        kill_if_alive(pidfile)
    (kept,) = paths["failed_dir"].glob("run_01.attempt1.*.log")
    assert "stray still writing" in kept.read_text()


def test_the_runner_process_kills_and_reaps_the_grandchild_before_it_writes_run_json(
    tmp_path: Path, paths
) -> None:
    """The runner as the rule runs it (its own process, the subreaper of its trainer): when it
    has written run.json and exited 0, the grandchild's pid is free and the log is as sealed."""
    command, pidfile = stray_command(tmp_path, "exit 0")
    try:
        assert runner_main(paths, spec(command), tmp_path / "job.log") == 0
        assert gone(int(pidfile.read_text()))
    finally:
        kill_if_alive(pidfile)
    meta = json.loads(paths["meta_path"].read_text())
    assert meta["containment"] == containment.probe() and meta["containment_killed"] >= 1
    assert seals.verify_log(paths["log_path"], meta[seals.SEAL_KEY]) == (None, None)
    job_log = (tmp_path / "job.log").read_text()
    assert "killed before its log was checked and sealed (containment: " in job_log
