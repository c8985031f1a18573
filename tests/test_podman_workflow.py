"""The podman backend against a real podman (.ci/podman-up.sh sets it up in CI), with the same
guarantees as docker: the embedded GNMT campaign end to end through snakemake in podman
containers (the image a file target, built once), and, on a small image, a run that streams its
log and writes as the caller with the dataset read-only and no network, a timeout and a killed
snakemake that leave no container behind, and a leftover of a killed runner removed first."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from scripts.run.backends import container, podman
from scripts.run.backends.image import ImageSpec
from scripts.run.failure import RunFailed
from scripts.run.runner import execute
from scripts.run.spec import RunSpec
from tests.conftest import (
    REPO,
    containers_labelled,
    jobs_run,
    need_podman,
    quick_gnmt,
    snakemake,
    snapshot,
)
from tests.test_docker_engine import DOCKERFILE, EMIT, paths
from tests.test_docker_engine import run_spec as docker_run_spec
from tests.test_docker_workflow import owned_by_caller


def labelled() -> list[str]:
    return containers_labelled(cli="podman")


def test_the_embedded_campaign_runs_in_podman_containers_and_the_image_is_built_once(
    workflow_copy: Path,
) -> None:
    base = need_podman()
    wf = workflow_copy
    overlay = wf / "ci.yaml"
    overlay.write_text(
        yaml.safe_dump(
            {
                "campaign": {"systems": ["podman-cpu"], "reference_system": "podman-cpu"},
                "benchmarks": {"gnmt": quick_gnmt(runs=3)},
                "systems": {"podman-cpu": {"container": {"build_args": {"BASE_IMAGE": base}}}},
            }
        )
    )
    args = ["--cores", "1", "--configfile", "config/systems/podman-cpu.yaml", str(overlay)]
    targets = ["results/gnmt/summary.csv", "results/gnmt/report.html"]
    first = snakemake(wf, *targets, *args)
    assert first.returncode == 0, first.stderr[-4000:]
    jobs = [j.split()[0] for j in jobs_run(first.stderr)]
    assert jobs.count("build_image") == 1 and jobs.count("fetch_wheels") == 1
    assert jobs.count("train_run") == 3

    system = wf / "results/gnmt/podman-cpu"
    stamp = json.loads((system / "image.json").read_text())
    assert stamp["tag"] == "mlperf-gnmt:podman-cpu"
    assert stamp["build_args"] == {"BASE_IMAGE": base}
    assert stamp["image_id"].startswith("sha256:") and len(stamp["context_sha256"]) == 64
    assert stamp["podman_build_argv"][:2] == ["podman", "build"]
    assert "--network" in stamp["podman_build_argv"]  # the build is offline
    assert stamp["engine"]["client"]
    environment = json.loads((system / "environment.json").read_text())
    assert environment["image_id"] == stamp["image_id"]
    assert environment["packages"]["torch"].startswith("2.13.0")  # read inside the image
    summary = pd.read_csv(wf / "results/gnmt/summary.csv")
    assert summary.loc[0, "system"] == "podman-cpu" and bool(summary.loc[0, "valid"])
    assert summary.loc[0, "n_converged"] == 3
    for run in ("01", "02", "03"):
        meta = json.loads((system / f"run_{run}/run.json").read_text())
        assert meta["backend"] == "podman" and meta["image_id"] == stamp["image_id"]
        assert "image_id" in meta["fingerprint_keys"]
        argv = meta["podman_argv"]
        assert argv[:2] == ["podman", "run"]
        assert argv[argv.index("--network") + 1] == "none"
        assert argv[argv.index("--user") + 1] == f"{os.getuid()}:{os.getgid()}"
        assert any(a.endswith("target=/data,readonly") for a in argv)
        assert "--privileged" not in argv
        result = json.loads((system / f"run_{run}/result.json").read_text())
        assert result["converged"] is True
    assert owned_by_caller(system) == []
    assert [n for n in labelled() if n.startswith("mlperf-gnmt-podman-cpu-")] == []
    report = (wf / "results/gnmt/report.html").read_text()
    assert stamp["image_id"] in report and "podman run of run 01" in report

    # a second invocation reuses the image: nothing is built or run
    before = snapshot(wf)
    second = snakemake(wf, *targets, *args)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Nothing to be done" in second.stderr and jobs_run(second.stderr) == []
    assert snapshot(wf) == before

    # an image gone from podman's store, with finished runs: reported, nothing built or run.
    # --no-prune keeps the build's untagged parent layers (the wheels' pip install, about a
    # minute to build): podman's rmi removes them by default, and then every later run of this
    # test built the heavy layer again (CI: 143-152 s instead of the docker test's 92-95 s)
    subprocess.run(
        ["podman", "rmi", "--force", "--no-prune", stamp["image_id"]],
        capture_output=True,
        check=True,
    )
    third = snakemake(wf, *targets, *args)
    assert third.returncode != 0
    assert f"its image {stamp['image_id']} is no longer in podman's image store" in third.stderr
    assert "podman load" in third.stderr
    assert jobs_run(third.stderr) == [] and snapshot(wf) == before


# ---------------------------------------------------------------------------------------------
# The runner and podman, on a small image (tests/test_docker_engine.py's stand-in trainer)


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A small image built through the backend's build step; its stamp."""
    base = need_podman()
    src = tmp_path_factory.mktemp("image-src")
    (src / "emit.py").write_text(EMIT)
    (src / "Dockerfile").write_text(DOCKERFILE)
    spec = ImageSpec(
        benchmark="enginetest",
        system="p",
        tag="mlperf-enginetest:p",
        dockerfile="Dockerfile",
        build_args={"BASE_IMAGE": base},
        build_network="none",
        copies=[(str(src / "Dockerfile"), "Dockerfile"), (str(src / "emit.py"), "emit.py")],
        inputs={"test": 1},
        inputs_sha256="0" * 64,
    )
    work = tmp_path_factory.mktemp("build")
    stamp = work / "image.json"
    record = podman.build(spec, stamp, work / "context")
    return {"spec": spec, "stamp": stamp, "record": record, "work": work}


def run_spec(tmp_path: Path, command: str, timeout_s: float | None = 60) -> RunSpec:
    return dataclasses.replace(docker_run_spec(tmp_path, command, timeout_s), backend="podman")


def name_of(spec: RunSpec) -> str:
    run_dir = Path(spec.container["host_run_dir"])
    return container.container_name(spec.benchmark, spec.system, spec.run, run_dir)


def test_a_podman_build_writes_a_stamp_of_the_image_it_made(image) -> None:
    record = image["record"]
    inspected = subprocess.run(
        ["podman", "image", "inspect", "--format", "{{.Id}}", "mlperf-enginetest:p"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert record["image_id"] == f"sha256:{inspected}"  # podman's inspect drops the prefix
    assert record["podman_build_argv"][:2] == ["podman", "build"]
    assert json.loads(image["stamp"].read_text()) == record
    assert podman.BACKEND.stale_reason(image["stamp"], image["spec"]) is None


def test_a_podman_run_streams_its_log_reads_the_data_read_only_and_writes_as_the_caller(
    image, tmp_path: Path
) -> None:
    spec = run_spec(tmp_path, "python3 /opt/emit.py ok")
    spec.env["EPOCH_S"] = "0"
    meta = execute(spec, **paths(tmp_path), image_stamp=image["stamp"])
    log = (Path(spec.container["host_run_dir"]) / "mlperf.log").read_text()
    assert meta.backend == "podman" and meta.image_id == image["record"]["image_id"]
    argv = meta.argv_of("podman")
    assert argv is not None and argv[argv.index("--user") + 1] == f"{os.getuid()}:{os.getgid()}"
    out = Path(spec.container["host_run_dir"]) / "out.txt"
    assert out.stat().st_uid == os.getuid()
    assert f"uid: {os.getuid()} gid: {os.getgid()}" in log
    assert "dataset writable: False" in log and "corpus.txt" in log  # mounted read-only
    assert "interfaces: ['lo']" in log  # --network none
    assert name_of(spec) not in labelled()


def test_a_podman_run_past_its_timeout_leaves_no_container_behind(image, tmp_path: Path) -> None:
    spec = run_spec(tmp_path, "python3 /opt/emit.py hang", timeout_s=3)
    p = paths(tmp_path)
    t0 = time.monotonic()
    with pytest.raises(RunFailed, match=r"timed out after 3 s; container stopped and removed"):
        execute(spec, **p, image_stamp=image["stamp"])
    assert time.monotonic() - t0 < 30
    assert name_of(spec) not in labelled()
    assert podman.containers_named(name_of(spec)) == []
    (kept,) = p["failed_dir"].glob("run_01.attempt1.*.log")
    assert "started" in kept.read_text()


def test_a_podman_container_left_by_a_killed_runner_is_removed_before_the_run(
    image, tmp_path: Path
) -> None:
    spec = run_spec(tmp_path, "python3 /opt/emit.py ok")
    spec.env["EPOCH_S"] = "0"
    name = name_of(spec)
    leftover = subprocess.run(
        ["podman", "run", "-d", "--name", name, "--label", "org.mlperf-workflow.container=" + name]
        + [image["record"]["image_id"], "sleep", "600"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    meta = execute(spec, **paths(tmp_path), image_stamp=image["stamp"])
    assert meta.exit_code == 0
    gone = subprocess.run(["podman", "container", "exists", leftover], capture_output=True)
    assert gone.returncode != 0
    assert podman.containers_named(name) == []


def test_when_snakemake_is_killed_its_podman_container_is_stopped(image, tmp_path: Path) -> None:
    """What happens when snakemake is killed with -9: the runner (its child, as train_run's
    `exec` makes it) notices within a second and takes the container down."""
    spec = run_spec(tmp_path, "python3 /opt/emit.py hang", timeout_s=600)
    p = paths(tmp_path)
    args = [sys.executable, "-m", "scripts.run.runner", "--spec", spec.to_json()]
    args += ["--log", str(p["log_path"]), "--meta", str(p["meta_path"])]
    args += ["--failed-dir", str(p["failed_dir"]), "--dataset-manifest"]
    args += [str(p["dataset_manifest"]), "--environment", str(p["environment"])]
    args += ["--image-stamp", str(image["stamp"])]
    runner_pid = tmp_path / "runner.pid"
    parent = subprocess.Popen(
        ["bash", "-c", '"$@" & echo $! > ' + str(runner_pid) + "; wait", "bash", *args],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    name = name_of(spec)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and name not in labelled():
        time.sleep(0.2)
    assert name in labelled(), "the container never started"
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and podman.containers_named(name):
        time.sleep(0.2)
    assert podman.containers_named(name) == []
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
