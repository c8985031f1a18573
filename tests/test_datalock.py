"""A dataset made by one process at a time (scripts/data/datalock.py), with real processes: the
second waits naming the first, stops in one line after its wait, goes on when the first dies;
a campaign's own jobs go on under its lock, and the jobs of a killed campaign are waited for."""

from __future__ import annotations

import hashlib
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from scripts.campaign import config_checks, invocation, preflight
from scripts.data import cli, datalock
from scripts.workflow.rule_inputs import RuleInputs
from tests.conftest import REPO
from tests.httpserver import Served, Server, http_server

BODY = bytes(range(256)) * 256  # 64 KiB
MD5 = hashlib.md5(BODY).hexdigest()

# a holder: takes the lock (argv: lock, token or ''), says so, holds it until stdin closes
HOLD = """
import sys
from pathlib import Path
from scripts.data import datalock
held = datalock.take(Path(sys.argv[1]), "holding it for a test", None, print, sys.argv[2] or None)
print("held", flush=True)
sys.stdin.read()
held.release()
"""
# a dataset command's lock (argv: lock): goes on under its campaign's (token in its env) or
# takes it; says how, holds it until stdin closes
COMMAND = """
import sys
from pathlib import Path
from scripts.data import datalock
held = datalock.for_command(Path(sys.argv[1]), "a test command", 30, print)
print("joined" if held.fd is None else "took", flush=True)
sys.stdin.read()
held.release()
"""


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    """Wait for a condition (never for a guessed time), failing after ``timeout``."""
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.02)


def text(path: Path) -> str:
    return path.read_text() if path.exists() else ""


class Proc:
    """A python process run from ``cwd`` with the workflow importable, its output in files."""

    def __init__(self, tmp: Path, name: str, argv: list[str], env: dict[str, str] | None = None):
        self.cwd = tmp / name
        self.cwd.mkdir(exist_ok=True)
        self.out, self.err = tmp / f"{name}.out", tmp / f"{name}.err"
        full_env = {k: v for k, v in os.environ.items() if k != datalock.TOKEN_ENV}
        full_env.update({"PYTHONPATH": str(REPO), **(env or {})})
        with self.out.open("w") as out, self.err.open("w") as err:
            self.p = subprocess.Popen(
                [sys.executable, *argv], cwd=self.cwd, env=full_env, stdin=subprocess.PIPE,
                stdout=out, stderr=err, text=True,
            )  # fmt: skip

    def says(self, words: str) -> bool:
        return words in text(self.out) + text(self.err)

    def finish(self) -> int:
        assert self.p.stdin is not None
        self.p.stdin.close()
        return self.p.wait(timeout=60)


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for proc in started:
        if proc.p.poll() is None:
            proc.p.kill()
            proc.p.wait()


@pytest.fixture
def server() -> Iterator[Server]:
    with http_server() as s:
        yield s


def fetch_argv(url: str, dest: Path, lock: Path, *more: str) -> list[str]:
    return ["-m", "scripts.data.cli", "fetch", "--url", url, "--dest", str(dest), "--md5", MD5,
            "--lock", str(lock), "--no-progress", *more]  # fmt: skip


def waiting_line(proc: Proc) -> str:
    (line,) = [x for x in (text(proc.out) + text(proc.err)).splitlines() if "waiting for" in x]
    return line


def test_a_second_fetch_waits_naming_the_first_then_finds_the_file_made(
    tmp_path: Path, server: Server, procs: list[Proc]
) -> None:
    gate = threading.Event()
    server.files["/x.bin"] = Served(BODY, gate=gate)  # the first fetch is busy until the gate
    lock, dest = tmp_path / "data" / "b.lock", tmp_path / "data" / "b" / "download" / "x.bin"
    first = Proc(tmp_path, "campaign-a", fetch_argv(server.url("x.bin"), dest, lock))
    procs.append(first)
    wait_for(lambda: len(server.requests) == 1, "the first fetch's request")
    second = Proc(tmp_path, "campaign-b", fetch_argv(server.url("x.bin"), dest, lock))
    procs.append(second)
    wait_for(lambda: second.says("waiting for"), "the second's waiting line")
    line = waiting_line(second)
    assert line.startswith(
        f"waiting for {lock}: held by pid {first.p.pid} on {socket.gethostname()}, working "
        f"folder {first.cwd}, since "
    )
    assert line.endswith(", for fetching x.bin (waits up to 86400 s: config data_lock_wait_s)")
    assert (dest.parent / "x.bin.part").exists()  # the first one's bytes: untouched
    gate.set()
    assert first.finish() == 0 and second.finish() == 0, text(second.err)
    assert dest.read_bytes() == BODY and len(server.requests) == 1  # fetched once
    assert second.says(f"{dest} is here already and its checksums match: not fetched again")


def test_a_second_fetch_stops_in_one_line_after_its_wait_and_changes_nothing(
    tmp_path: Path, server: Server, procs: list[Proc]
) -> None:
    gate = threading.Event()
    server.files["/x.bin"] = Served(BODY, gate=gate)
    lock, dest = tmp_path / "data" / "b.lock", tmp_path / "data" / "b" / "download" / "x.bin"
    first = Proc(tmp_path, "campaign-a", fetch_argv(server.url("x.bin"), dest, lock))
    procs.append(first)
    wait_for(lambda: len(server.requests) == 1, "the first fetch's request")
    t0 = time.monotonic()
    second = Proc(
        tmp_path, "campaign-b", fetch_argv(server.url("x.bin"), dest, lock, "--lock-wait-s", "1")
    )
    procs.append(second)
    assert second.p.wait(timeout=60) == 1
    assert time.monotonic() - t0 < 1 + 10  # its wait, and a python start on a loaded machine
    err = text(second.err).splitlines()
    assert len(err) == 2 and "Traceback" not in text(second.err)
    assert err[0].startswith(f"waiting for {lock}: held by pid {first.p.pid}")
    assert err[1].startswith(
        f"error: {lock} is still held after 1 s by pid {first.p.pid} on {socket.gethostname()}, "
        f"working folder {first.cwd}, since "
    )
    assert err[1].endswith(
        ", for fetching x.bin: nothing was changed; run again once it is done, or raise "
        "data_lock_wait_s"
    )
    gate.set()
    assert first.finish() == 0 and dest.read_bytes() == BODY


def test_the_lock_is_let_go_when_its_holder_is_killed(tmp_path: Path, procs: list[Proc]) -> None:
    lock = tmp_path / "data" / "b.lock"
    holder = Proc(tmp_path, "holder", ["-c", HOLD, str(lock), ""])
    procs.append(holder)
    wait_for(lambda: holder.says("held"), "the holder")
    src = tmp_path / "x.bin"
    src.write_bytes(BODY)
    dest = tmp_path / "data" / "b" / "download" / "x.bin"
    fetcher = Proc(tmp_path, "fetcher", fetch_argv(src.as_uri(), dest, lock))
    procs.append(fetcher)
    wait_for(lambda: fetcher.says("waiting for"), "the fetcher's waiting line")
    assert "for holding it for a test" in waiting_line(fetcher)
    holder.p.send_signal(signal.SIGKILL)
    assert fetcher.finish() == 0 and dest.read_bytes() == BODY


def test_a_campaigns_jobs_go_on_under_its_lock_and_a_killed_campaigns_jobs_are_waited_for(
    tmp_path: Path, procs: list[Proc]
) -> None:
    lock = tmp_path / "data" / "b.lock"
    campaign = Proc(tmp_path, "campaign", ["-c", HOLD, str(lock), "token-a"])
    procs.append(campaign)
    wait_for(lambda: campaign.says("held"), "the campaign's hold")
    job = Proc(tmp_path, "job", ["-c", COMMAND, str(lock)], {datalock.TOKEN_ENV: "token-a"})
    procs.append(job)
    wait_for(lambda: job.says("joined"), "the job going on under its campaign's lock")
    assert not job.says("waiting")
    outsider = Proc(tmp_path, "outsider", ["-c", COMMAND, str(lock)], {datalock.TOKEN_ENV: "b"})
    procs.append(outsider)
    wait_for(lambda: outsider.says("waiting for"), "the other campaign's job waiting")
    # kill -9 of the campaign leaves its job running: the next holder waits for that job
    campaign.p.send_signal(signal.SIGKILL)
    wait_for(lambda: outsider.says("the dataset jobs of an earlier holder"), "waiting for jobs")
    assert not outsider.says("took")
    assert job.finish() == 0
    wait_for(lambda: outsider.says("took"), "the other job taking the lock")
    assert outsider.finish() == 0


def test_a_campaign_waits_for_a_held_dataset_then_stops_in_one_line(
    tmp_path: Path, procs: list[Proc], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The load-time checks (preflight) take each dataset's lock before they read it."""
    monkeypatch.delenv(datalock.TOKEN_ENV, raising=False)  # set by hold_datasets, undone after
    holder = Proc(tmp_path, "holder", ["-c", HOLD, str(tmp_path / "data" / "b.lock"), ""])
    procs.append(holder)
    wait_for(lambda: holder.says("held"), "the holder")
    config = {
        "data_dir": "data",
        "data_lock_wait_s": 0.5,
        "benchmarks": {"b": {"dataset": {"files": [{"name": "x.bin", "md5": MD5}]}}, "i": {}},
    }
    said: list[str] = []
    mode = invocation.Mode.of(["snakemake"])
    with pytest.raises(invocation.Refused) as info:
        preflight.hold_datasets(config, tmp_path, mode, said.append)
    assert str(info.value).startswith(
        f"{tmp_path / 'data' / 'b.lock'} is still held after 0.5 s by pid {holder.p.pid} on "
    )
    assert "\n" not in str(info.value) and len(said) == 1 and said[0].startswith("waiting for")
    assert preflight.hold_datasets(config, tmp_path, invocation.Mode.of(["-n"]), said.append) == []
    assert holder.finish() == 0
    # free: taken, and let go once the tree is complete (its manifest is written last)
    ((held, tree),) = preflight.hold_datasets(config, tmp_path, mode, said.append)
    assert tree == tmp_path / "data" / "b" / "dataset" and held.fd is not None
    preflight.let_go_when_complete([(held, tree)])
    assert held.fd is not None  # not made yet: kept
    tree.mkdir(parents=True)
    (tree.parent / "dataset.manifest.json").write_text("{}")
    wait_for(lambda: held.fd is None, "the lock let go once the tree is complete", 30)
    assert (tmp_path / "data" / "b.lock").read_text() == ""  # no stale record left


def test_a_campaign_holds_the_datasets_its_targets_need() -> None:
    ds = {"dataset": {"files": [{"name": "x.bin", "md5": MD5}]}}
    config = {"data_dir": "/shared/data", "benchmarks": {"a": ds, "b": ds, "imported": {}}}
    root = Path("/work/campaign")
    needs = lambda *targets: preflight.campaign_datasets(config, root, targets)  # noqa: E731
    assert needs() == ["a", "b"]  # the default target
    assert needs("results/b/summary.csv") == ["b"]
    assert needs("/shared/data/a/dataset", "results/b/local/run_01/result.json") == ["a", "b"]
    assert needs("/shared/data/a/manifest.json") == ["a"]
    assert needs("results/b/summary.csv", "report") == ["a", "b"]  # a rule's name: all
    assert needs("results/imported/summary.csv") == []  # a benchmark without a dataset


def test_the_rules_give_the_commands_the_lock_the_wait_the_limits_and_the_deadline(
    tmp_path: Path,
) -> None:
    """config -> schema -> the rules' params -> the commands' options, for the new keys."""
    overlay = {
        "data_lock_wait_s": 5,
        "download": {"deadline_s": None, "min_bytes_per_s": 10},
        "benchmarks": {"gnmt": {"dataset": {"max_unpacked_bytes": 1000}}},
    }
    (tmp_path / "o.yaml").write_text(yaml.safe_dump(overlay))
    inputs = RuleInputs(
        config_checks.load_campaign([tmp_path / "o.yaml"]), REPO, python=sys.executable
    )
    wc = SimpleNamespace(benchmark="gnmt", file="toy-ende-v1.tar.gz")
    unpack = ["unpack", "--files-json", "[]", "--dir", "d", "--dest", "t"]
    args = cli._parser().parse_args(
        unpack + shlex.split(inputs.unpack_limit_args(wc) + " " + inputs.data_lock_args(wc))
    )
    assert (args.max_unpacked_bytes, args.lock, args.lock_wait_s) == (
        1000, Path("data/gnmt.lock"), 5
    )  # fmt: skip
    fetch = ["fetch", "--url", "http://h/x", "--dest", "x"]
    args = cli._parser().parse_args(fetch + shlex.split(inputs.download_policy_args()))
    assert (args.deadline_s, args.min_bytes_per_s) == (0, 10)  # null: no deadline (0)
    defaults = RuleInputs(config_checks.load_campaign([]), REPO, python=sys.executable)
    assert defaults.unpack_limit_args(wc) == ""  # the default rule: 100 x, at least 1 GiB
    args = cli._parser().parse_args(fetch + shlex.split(defaults.download_policy_args()))
    assert (args.deadline_s, args.min_bytes_per_s) == (86400, 1024)
    assert "--lock-wait-s 86400" in defaults.data_lock_args(wc)
