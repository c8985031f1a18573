"""The local backend: a crash is a failed job with its log kept; a timeout kills the whole tree."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from scripts import dataset
from scripts.config import RunSpec
from scripts.run_training import RunFailed, execute

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


@pytest.fixture
def paths(tmp_path: Path) -> dict[str, Path]:
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"files": []}))
    # the unpacked tree beside it, and its manifest: the runner checks them before each run
    dataset.prepare([], tmp_path, tmp_path / "dataset", tmp_path / "dataset.manifest.json")
    environment = tmp_path / "environment.json"
    environment.write_text(json.dumps({"digest": "envdigest"}))
    return {
        "log_path": tmp_path / "run_01" / "mlperf.log",
        "meta_path": tmp_path / "run_01" / "run.json",
        "failed_dir": tmp_path / "logs" / "failed" / "b" / "s",
        "dataset_manifest": manifest,
        "environment": environment,
    }


def good_log_command(tmp_path: Path) -> str:
    lines = [
        MLLOG % (1000, "INTERVAL_START", "run_start", ""),
        MLLOG % (3500, "INTERVAL_END", "run_stop", '"status": "success"'),
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
    assert meta["exit_code"] == 0 and meta["seed"] == 7
    assert json.loads(paths["meta_path"].read_text())["fingerprint"] == meta["fingerprint"]
    assert meta["environment_digest"] == "envdigest" and meta["config_fingerprint"] == "cfp"


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        ("echo started; exit 3", "exited with status 3"),
        ("echo started; kill -9 $$", "killed by signal 9"),
        ("echo no events here", "no run_stop event"),
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
    assert meta["attempts"] == 2
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
    assert execute(spec(good_log_command(tmp_path)), **paths)["exit_code"] == 0
