"""The campaign on a real Slurm (started by .ci/slurm-up.sh) through profiles/slurm: each run is
its own Slurm job with its id recorded, a run that fails in Slurm is redone by the next
invocation, and a 2-node system starts its command on both nodes with one srun per node.

Under CI=true these tests fail when the Slurm is not there; elsewhere they skip
(start it with: .ci/slurm-up.sh).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from scripts.campaign import status
from tests.conftest import REPO, fake_campaign, quick_gnmt, set_faults, snakemake, snapshot

NODES = ("c0", "n1", "n2")
# 1 s before the first status check (the profile's 5 s is bench/slurm_latency.py's to measure):
# these tests' Slurm jobs last 3-15 s. The executor (2.8.0) adds 10 s to the interval after each
# check that saw no job complete (a failed or cancelled one does not count), so it checks at 1,
# 12, 33 s (5, 20, 45 s with 5), and before it exits it sleeps out the interval it is in (21 s
# with 1, 25 s with 5, after a failure seen at the second check). Measured back to back: the
# two-node test 74 s -> 50-52 s, the embedded campaign 73 s -> 52 s, the failing run's 54-55 s
# -> 32 s or 63 s (when its run 1, queued behind the other two for a GPU, ends after 12 s).
FAST = ("--slurm-init-seconds-before-status-checks", "1")


def slurm_problem() -> str | None:
    """Why the test Slurm cannot be used, or None when its nodes answer."""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return "Slurm's client commands are not installed"
    try:
        proc = subprocess.run(
            ["sinfo", "-h", "-N", "-o", "%N %T"], capture_output=True, text=True, timeout=20
        )
    except subprocess.TimeoutExpired:
        return "sinfo did not answer in 20 s"
    if proc.returncode != 0:
        return f"sinfo failed: {proc.stderr.strip()}"
    states = dict(line.split() for line in proc.stdout.splitlines() if line.strip())
    bad = {n: states.get(n, "absent") for n in NODES}
    bad = {n: s for n, s in bad.items() if s.rstrip("*") not in ("idle", "mixed", "allocated")}
    return f"nodes not usable: {bad}" if bad else None


@pytest.fixture(scope="module")
def slurm() -> None:
    problem = slurm_problem()
    if problem is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"the test Slurm is not running ({problem}); .ci/run starts it")
    pytest.skip(f"no test Slurm ({problem}); start it with .ci/slurm-up.sh")


def submitted(output: str) -> dict[str, str]:
    """{'<rule> <wildcards>': slurm job id} from the executor's messages."""
    jobs = {}
    for m in re.finditer(r"submitted with SLURM jobid (\d+) \(log: (\S+)\)", output):
        log = Path(m.group(2))
        jobs[f"{log.parents[1].name} {log.parent.name}"] = m.group(1)
    return jobs


def job_state(job_id: str) -> str:
    out = subprocess.run(
        ["squeue", "-h", "-j", job_id, "-t", "all", "-o", "%T"],
        capture_output=True,
        text=True,
        timeout=20,
    )
    return out.stdout.strip()


def result(wf: Path, benchmark: str, run: str) -> dict:
    return json.loads((wf / f"results/{benchmark}/local/run_{run}/result.json").read_text())


def overlay(wf: Path, name: str, data: dict) -> str:
    path = wf / name
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_an_embedded_campaign_runs_each_run_as_its_own_slurm_job(workflow_copy: Path, slurm):
    wf = workflow_copy
    three = overlay(wf, "three.yaml", {"benchmarks": {"gnmt": quick_gnmt(runs=3)}})
    proc = snakemake(
        wf, "results/gnmt/summary.csv", "--profile", "profiles/slurm", "--configfile", three, *FAST
    )
    assert proc.returncode == 0, proc.stderr[-4000:]

    jobs = submitted(proc.stderr)
    assert set(jobs) == {
        "rule_capture_environment gnmt_local",
        "rule_train_run gnmt_local_01",
        "rule_train_run gnmt_local_02",
        "rule_train_run gnmt_local_03",
    }
    ids = set()
    for run in ("01", "02", "03"):
        res = result(wf, "gnmt", run)
        job = jobs[f"rule_train_run gnmt_local_{run}"]
        assert res["slurm_job_id"] == job  # recorded by the run itself, inside its job
        assert res["slurm_job_nodelist"] == "c0" and res["hosts"] == ["c0"]
        assert res["converged"] is True
        # Slurm's own output file of that job holds the job's snakemake running this run
        slurm_log = (wf / f"logs/slurm/rule_train_run/gnmt_local_{run}/{job}.log").read_text()
        assert f"wildcards: benchmark=gnmt, system=local, run={run}" in slurm_log
        assert "Finished jobid" in slurm_log
        ids.add(job)
    assert len(ids) == 3

    summary = pd.read_csv(wf / "results/gnmt/summary.csv")
    assert summary.loc[0, "n_runs"] == 3 and bool(summary.loc[0, "valid"])
    runs = pd.read_csv(wf / "results/gnmt/runs.csv", dtype={"slurm_job_id": str})
    assert set(runs["slurm_job_id"]) == ids
    # --exclusive (the default): the runs had the node to themselves, one after the other
    assert list(runs["overlapping_runs"]) == [0, 0, 0]
    # download, verification and the tables ran here, not as Slurm jobs
    for rule in ("download_file", "verify_dataset", "collect_runs", "summarize"):
        assert f"localrule {rule}:" in proc.stderr
    assert sorted(p.name for p in (wf / "logs/slurm").iterdir()) == [
        "rule_capture_environment",
        "rule_train_run",
    ]


def wait_for(folder: Path, pattern: str, seconds: float) -> Path:
    deadline = time.monotonic() + seconds
    while not (found := sorted(folder.glob(pattern))):
        if time.monotonic() > deadline:
            raise AssertionError(f"no {folder}/{pattern} within {seconds} s")
        time.sleep(0.5)
    return found[0]


def test_a_run_that_fails_in_slurm_is_redone_on_the_next_invocation(workflow_copy: Path, slurm):
    wf = workflow_copy
    # run 2 crashes; run 3 hangs until its Slurm job is cancelled (as by an admin or a node
    # failure). 1 CPU and 1 GPU each, nodes shared: two runs at once on the 2-GPU node.
    bench = fake_campaign(
        wf, runs=3, faults={"crash": [2], "hang": [3], "marker_dir": "markers", "env_dir": "envs"}
    )
    system = overlay(
        wf,
        "gpu1.yaml",
        {
            # the environment capture runs here (its Slurm job is tested with the embedded one)
            "cluster_rules": ["train_run"],
            "systems": {"local": {"threads": 1, "gpus": 1, "slurm": {"exclusive": False}}},
        },
    )
    args = ("--profile", "profiles/slurm", "--configfile", str(bench), system, *FAST)
    cmd = [sys.executable, "-m", "snakemake", "results/fake/summary.csv", *args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAKEMAKE")}
    first = subprocess.Popen(
        cmd, cwd=wf, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        # the trainer of run 3 has started (and hangs) inside its Slurm job
        trainer = json.loads(wait_for(wf / "envs", "run_3.*.json", 180).read_text())
        hung_job = trainer["env"]["SLURM_JOB_ID"]
        marker = json.loads((wf / "logs/running/fake/local/run_03.json").read_text())
        assert marker["slurm_job_id"] == hung_job
        assert job_state(hung_job) == "RUNNING"
        # seen from a login node (another host), status asks squeue about the job
        remote = {**marker, "host": "some-compute-node"}
        state = status.remote_run_state("03", remote, wf / "results/fake/local/run_03")
        assert state.state == "running"
        assert f"on some-compute-node in Slurm job {hung_job} (RUNNING)" in state.detail
        subprocess.run(["scancel", hung_job], check=True, timeout=20)
        _, err = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
    assert first.returncode != 0

    jobs = submitted(err)
    crashed_job = jobs["rule_train_run fake_local_02"]
    assert job_state(crashed_job) == "FAILED"
    assert job_state(hung_job) == "CANCELLED"
    assert f"SLURM-job '{hung_job}' failed, SLURM status is: 'CANCELLED'" in err
    state = status.remote_run_state("03", remote, wf / "results/fake/local/run_03")
    assert state.state == "interrupted" and f"Slurm job {hung_job} is CANCELLED" in state.detail
    for run in ("02", "03"):
        assert not (wf / f"results/fake/local/run_{run}/mlperf.log").exists()
    failed = wf / "logs/failed/fake/local"
    assert "trainer exited with status 3" in next(failed.glob("run_02.attempt1.*")).read_text()
    assert "interrupted by signal 15" in next(failed.glob("run_03.attempt1.*")).read_text()
    assert (wf / f"logs/slurm/rule_train_run/fake_local_02/{crashed_job}.log").exists()
    done = result(wf, "fake", "01")
    assert done["slurm_job_id"] == jobs["rule_train_run fake_local_01"]
    # inside Slurm the job's GPU is Slurm's choice, recorded as given
    assert done["gpu_assignment"] == "scheduler" and done["gpu_devices"] in (["0"], ["1"])
    kept = {k: v for k, v in snapshot(wf).items() if "/run_01/" in k}

    set_faults(wf, {"marker_dir": "markers", "env_dir": "envs"})
    again = snakemake(wf, "results/fake/summary.csv", *args)
    assert again.returncode == 0, again.stderr[-4000:]
    redone = submitted(again.stderr)
    assert set(redone) == {"rule_train_run fake_local_02", "rule_train_run fake_local_03"}
    assert {k: v for k, v in snapshot(wf).items() if "/run_01/" in k} == kept
    starts = sorted(p.name.split(".")[0] for p in (wf / "markers").iterdir())
    assert starts == ["run_1", "run_2", "run_2", "run_3", "run_3"]
    for run in ("02", "03"):
        res = result(wf, "fake", run)
        assert res["slurm_job_id"] == redone[f"rule_train_run fake_local_{run}"]
        assert res["slurm_job_id"] not in (crashed_job, hung_job)
    assert pd.read_csv(wf / "results/fake/summary.csv").loc[0, "n_runs"] == 3


def test_a_two_node_run_starts_one_srun_per_node_and_a_dead_node_fails_it(
    workflow_copy: Path, slurm
):
    wf = workflow_copy
    # node 1 crashes, node 0 would wait for it forever: the launch stops node 0 and fails the run
    bench = fake_campaign(
        wf, runs=1, faults={"crash_node1": [1], "hang": [1], "env_dir": "envs"}, timeout_s=120
    )
    system = overlay(
        wf,
        "two-nodes.yaml",
        {
            "cluster_rules": ["train_run"],
            "systems": {
                "local": {"threads": 1, "gpus": 1, "slurm": {"partition": "multi", "nodes": 2}}
            },
        },
    )
    args = ("--profile", "profiles/slurm", "--configfile", str(bench), system, *FAST)
    first = snakemake(wf, "results/fake/summary.csv", *args)
    assert first.returncode != 0
    kept = next((wf / "logs/failed/fake/local").glob("run_01.attempt1.*")).read_text()
    assert "attempt failed: trainer exited with status 3" in kept  # not a timeout
    assert "# workflow: output of node_1.log:" in kept and "crashing on purpose" in kept
    assert "launch: a node failed with status 3; stopping the others" in kept
    failed_job = submitted(first.stderr)["rule_train_run fake_local_01"]
    assert job_state(failed_job) == "FAILED"

    shutil.rmtree(wf / "envs")
    set_faults(wf, {"env_dir": "envs"})
    again = snakemake(wf, "results/fake/summary.csv", *args)
    assert again.returncode == 0, again.stderr[-4000:]
    job = submitted(again.stderr)["rule_train_run fake_local_01"]
    res = result(wf, "fake", "01")
    assert res["slurm_job_id"] == job != failed_job
    assert res["slurm_job_nodelist"] == "n[1-2]" and res["hosts"] == ["n1", "n2"]
    assert res["nodes"] == 2 and res["converged"] is True

    seen = sorted(
        (json.loads(p.read_text()) for p in (wf / "envs").iterdir()),
        key=lambda r: r["env"]["MLPERF_NODE_RANK"],
    )
    assert [r["env"]["SLURMD_NODENAME"] for r in seen] == ["n1", "n2"]
    assert [r["env"]["MLPERF_NODE_RANK"] for r in seen] == ["0", "1"]
    assert {r["env"]["SLURM_JOB_ID"] for r in seen} == {job}
    assert len({r["env"]["SLURM_STEP_ID"] for r in seen}) == 2  # one srun step per node
    assert all(r["env"]["CUDA_VISIBLE_DEVICES"] == "0" for r in seen)  # each node's own GPU
    addr, port = seen[0]["env"]["MLPERF_MASTER_ADDR"], seen[0]["env"]["MLPERF_MASTER_PORT"]
    for r in seen:
        rank = r["env"]["MLPERF_NODE_RANK"]
        assert r["env"]["MLPERF_NNODES"] == "2"
        assert r["env"]["MULTI_NODE"] == (
            f" --nnodes=2 --node_rank={rank} --master_addr={addr} --master_port={port}"
        )
    run_dir = wf / "results/fake/local/run_01"
    assert ':::MLLOG {"namespace": "", ' in (run_dir / "node_1.log").read_text()
    assert "run_stop" in (run_dir / "mlperf.log").read_text()


def test_the_latency_bench_measures_the_profile_on_slurm(slurm):
    """bench/slurm_latency.py --quick --runs 2 (--jobs 1) on this Slurm: every run's job was
    seen finished after it ended, by the executor's squeue polls at the profile's interval. Two
    runs, not --quick's 3: each costs about 20 s (a 5 s job is seen by the check at 20 s), and
    two already give a gap and polls before and after a run was seen."""
    init_s = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())[
        "slurm-init-seconds-before-status-checks"
    ]
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench/slurm_latency.py"), "--quick", "--runs", "2"],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    m = re.search(
        r"^I=(\d+) jobs=1: seen latency median ([\d.]+) s max ([\d.]+) s; gap median ([\d.]+) s "
        r"max ([\d.]+) s; ([\d.]+) squeue calls/min; (\d+) \+ (\d+) in jobs `scontrol show "
        r"config`; intervals between its squeue calls \(s\): ([\d. ]+)$",
        proc.stdout,
        re.M,
    )
    assert m, proc.stdout
    assert int(m.group(1)) == init_s
    seen_median, seen_max, gap_median, gap_max, per_min = map(float, m.group(2, 3, 4, 5, 6))
    # a job is seen after it ended (the latency is not negative), the next run starts after
    assert 0 <= seen_median <= seen_max and 0 < gap_median <= gap_max
    assert per_min > 0
    # the executor re-reads the cluster's config (MinJobAge) at every status check, and each of
    # the 2 jobs' snakemakes reads it as it starts
    assert int(m.group(7)) >= len(m.group(9).split()) and int(m.group(8)) >= 2
    # the executor polled at the profile's interval: never sooner, and right after a run was
    # seen finished it waited about that long again (the margin is for a loaded machine)
    intervals = [float(i) for i in m.group(9).split()]
    assert len(intervals) >= 2
    assert min(intervals) >= init_s - 0.5
    assert min(intervals) < init_s + 5
