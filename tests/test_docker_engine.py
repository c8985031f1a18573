"""The docker backend against a real Docker engine (.ci/docker-up.sh starts one in CI): a build
and its stamp, a run whose output streams into its log and whose files belong to the given
user, a timeout and a dead parent that leave no container behind, and a leftover container of a
killed runner that is removed before the run starts again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from scripts.data.tree import write_tree_manifest
from scripts.run.backends import container, docker
from scripts.run.backends.image import ImageSpec
from scripts.run.failure import RunFailed
from scripts.run.runner import execute
from scripts.run.spec import RunSpec
from tests.conftest import REPO, containers_labelled, need_docker

# A stand-in trainer for the container (the base image has no mlperf-logging): MLLOG lines by
# hand, and what it sees of its mounts, user and network.
EMIT = r"""
import json, os, sys, time

last = [0]

def ev(key, kind, **md):
    # strictly increasing: a run_stop at its run_start is not a valid MLPerf log
    last[0] = max(int(time.time() * 1000), last[0] + 1)
    print(":::MLLOG " + json.dumps({"namespace": "", "time_ms": last[0],
          "event_type": kind, "key": key, "value": None, "metadata": md}), flush=True)

mode = sys.argv[1]
print("started", flush=True)
if mode == "hang":
    while True:
        time.sleep(3600)
ev("run_start", "INTERVAL_START")
print("epoch 1", flush=True)
time.sleep(float(os.environ.get("EPOCH_S", "0")))
with open("/results/out.txt", "w") as fh:
    fh.write("written in the container\n")
print("dataset writable:", os.access("/data", os.W_OK), flush=True)
print("dataset:", sorted(os.listdir("/data")), flush=True)
print("interfaces:", sorted(os.listdir("/sys/class/net")), flush=True)
print("uid:", os.getuid(), "gid:", os.getgid(), flush=True)
ev("run_stop", "INTERVAL_END", status="success")
"""

DOCKERFILE = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
COPY emit.py /opt/emit.py
"""


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A small image built through the backend's build step; its stamp."""
    base = need_docker()
    src = tmp_path_factory.mktemp("image-src")
    (src / "emit.py").write_text(EMIT)
    (src / "Dockerfile").write_text(DOCKERFILE)
    spec = ImageSpec(
        benchmark="enginetest",
        system="s",
        tag="mlperf-enginetest:s",
        dockerfile="Dockerfile",
        build_args={"BASE_IMAGE": base},
        build_network="none",
        copies=[(str(src / "Dockerfile"), "Dockerfile"), (str(src / "emit.py"), "emit.py")],
        inputs={"test": 1},
        inputs_sha256="0" * 64,
    )
    work = tmp_path_factory.mktemp("build")
    stamp = work / "image.json"
    record = docker.build(spec, stamp, work / "context")
    return {"spec": spec, "stamp": stamp, "record": record, "work": work}


def test_a_build_writes_a_stamp_and_the_same_inputs_give_the_same_image(image) -> None:
    record = image["record"]
    inspected = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", "mlperf-enginetest:s"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert record["image_id"] == inspected
    assert record["tag"] == "mlperf-enginetest:s"
    assert record["build_args"] == image["spec"].build_args
    assert len(record["context_sha256"]) == 64 and record["docker_build_argv"][:2] == [
        "docker",
        "build",
    ]
    assert json.loads(image["stamp"].read_text()) == record
    again = docker.build(image["spec"], image["work"] / "again.json", image["work"] / "c2")
    assert again["image_id"] == record["image_id"]  # the build cache: no new image
    assert again["context_sha256"] == record["context_sha256"]


def run_spec(tmp_path: Path, command: str, timeout_s: float | None = 60) -> RunSpec:
    dataset = tmp_path / "dataset"
    dataset.mkdir(exist_ok=True)
    (dataset / "corpus.txt").write_text("data\n")
    run_dir = tmp_path / "results/b/s/run_01"
    container = {
        "tag": "mlperf-enginetest:s",
        "python": "python3",
        "workdir": None,
        "dataset_mount": "/data",
        "run_mount": "/results",
        "prepared_mount": None,
        "network": "none",
        "gpus": "none",
        "gpu_count": 0,
        "ipc": None,
        "shm_size": None,
        "ulimits": {},
        "cpus": 1,
        "memory": "256m",
        "devices": [],
        "security_opt": [],
        "init": True,
        "stop_grace_s": 2,
        "host_dataset_dir": str(dataset),
        "host_run_dir": str(run_dir),
        "host_prepared_dir": None,
    }
    return RunSpec(
        benchmark="enginetest",
        system="s",
        run=1,
        seed=11,
        command=command,
        env={"EPOCH_S": "3"},
        timeout_s=timeout_s,
        threads=1,
        scale="test",
        config_fingerprint="cfp",
        comparability={"a": 1},
        backend="docker",
        container=container,
    )


def paths(tmp_path: Path) -> dict[str, Path]:
    manifest = tmp_path / "manifest.json"
    manifest.write_text("{}")
    # the unpacked tree beside it (run_spec made it), and its manifest: the runner checks them
    (tmp_path / "dataset").mkdir(exist_ok=True)
    write_tree_manifest(tmp_path / "dataset")
    environment = tmp_path / "environment.json"
    environment.write_text(json.dumps({"digest": "d"}))
    run_dir = tmp_path / "results/b/s/run_01"
    return {
        "log_path": run_dir / "mlperf.log",
        "meta_path": run_dir / "run.json",
        "failed_dir": tmp_path / "logs/failed/b/s",
        "dataset_manifest": manifest,
        "environment": environment,
    }


def name_of(spec: RunSpec) -> str:
    run_dir = Path(spec.container["host_run_dir"])
    return container.container_name(spec.benchmark, spec.system, spec.run, run_dir)


def test_a_container_run_streams_its_log_and_writes_as_the_given_user(
    image, tmp_path: Path
) -> None:
    spec = run_spec(tmp_path, "python3 /opt/emit.py ok")
    p = paths(tmp_path)
    # another user than the caller (who owns the run folder in real use): 4242 when this test
    # runs as root (as in CI), else the caller
    uid, gid = (4242, 4343) if os.getuid() == 0 else (os.getuid(), os.getgid())
    run_dir = Path(spec.container["host_run_dir"])
    run_dir.mkdir(parents=True)
    os.chown(run_dir, uid, gid)
    seen: dict[str, float] = {}
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.05):
            if p["log_path"].exists() and "epoch 1" in p["log_path"].read_text():
                seen["epoch 1"] = time.monotonic()
                return

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        meta = execute(spec, **p, image_stamp=image["stamp"], user=f"{uid}:{gid}")
    finally:
        finished = time.monotonic()
        stop.set()
        watcher.join()
    # the container's output reached the log while it was still training (it then sleeps 3 s)
    assert finished - seen["epoch 1"] > 2
    log = p["log_path"].read_text()
    assert meta.backend == "docker" and meta.image_id == image["record"]["image_id"]
    argv = meta.argv_of("docker")
    assert argv is not None and argv[argv.index("--user") + 1] == f"{uid}:{gid}"
    out = run_dir / "out.txt"
    assert (out.stat().st_uid, out.stat().st_gid) == (uid, gid)  # not root-owned
    assert f"uid: {uid} gid: {gid}" in log
    assert "dataset writable: False" in log and "corpus.txt" in log  # mounted read-only
    assert "interfaces: ['lo']" in log  # --network none
    assert name_of(spec) not in containers_labelled()


def test_by_default_the_container_runs_as_the_caller(image, tmp_path: Path) -> None:
    spec = run_spec(tmp_path, "python3 /opt/emit.py ok")
    spec.env["EPOCH_S"] = "0"
    meta = execute(spec, **paths(tmp_path), image_stamp=image["stamp"])
    argv = meta.argv_of("docker")
    assert argv is not None and argv[argv.index("--user") + 1] == f"{os.getuid()}:{os.getgid()}"
    out = Path(spec.container["host_run_dir"]) / "out.txt"
    assert out.stat().st_uid == os.getuid()


def test_a_run_past_its_timeout_leaves_no_container_behind(image, tmp_path: Path) -> None:
    spec = run_spec(tmp_path, "python3 /opt/emit.py hang", timeout_s=3)
    p = paths(tmp_path)
    t0 = time.monotonic()
    with pytest.raises(RunFailed, match=r"timed out after 3 s; container stopped and removed"):
        execute(spec, **p, image_stamp=image["stamp"])
    assert time.monotonic() - t0 < 30
    assert name_of(spec) not in containers_labelled()
    assert docker.containers_named(name_of(spec)) == []
    (kept,) = p["failed_dir"].glob("run_01.attempt1.*.log")
    assert "started" in kept.read_text()


def test_a_container_left_by_a_killed_runner_is_removed_before_the_run(
    image, tmp_path: Path
) -> None:
    spec = run_spec(tmp_path, "python3 /opt/emit.py ok")
    spec.env["EPOCH_S"] = "0"
    name = name_of(spec)
    leftover = subprocess.run(
        ["docker", "run", "-d", "--name", name, "--label", "org.mlperf-workflow.container=" + name]
        + [image["record"]["image_id"], "sleep", "600"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    meta = execute(spec, **paths(tmp_path), image_stamp=image["stamp"])
    assert meta.exit_code == 0
    gone = subprocess.run(["docker", "inspect", leftover], capture_output=True)
    assert gone.returncode != 0
    assert docker.containers_named(name) == []


def test_when_the_runner_loses_its_parent_its_container_is_stopped(image, tmp_path: Path) -> None:
    """What happens when snakemake is killed with -9: the runner (its child) notices within a
    second and takes the container down."""
    spec = run_spec(tmp_path, "python3 /opt/emit.py hang", timeout_s=600)
    p = paths(tmp_path)
    args = [
        sys.executable,
        "-m",
        "scripts.run.runner",
        "--spec",
        spec.to_json(),
        "--log",
        str(p["log_path"]),
        "--meta",
        str(p["meta_path"]),
        "--failed-dir",
        str(p["failed_dir"]),
        "--dataset-manifest",
        str(p["dataset_manifest"]),
        "--environment",
        str(p["environment"]),
        "--image-stamp",
        str(image["stamp"]),
    ]
    runner_pid = tmp_path / "runner.pid"
    parent = subprocess.Popen(
        ["bash", "-c", '"$@" & echo $! > ' + str(runner_pid) + "; wait", "bash", *args],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    name = name_of(spec)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and name not in containers_labelled():
        time.sleep(0.2)
    assert name in containers_labelled(), "the container never started"
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and docker.containers_named(name):
        time.sleep(0.2)
    assert docker.containers_named(name) == []
    pid = int(runner_pid.read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the runner {pid} survived its parent")
