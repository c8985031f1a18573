"""A system's slurm: config as executor resources, and the multi-node launch (run.sub's way)."""

from __future__ import annotations

import io
import json
import os
import shlex
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from scripts.campaign import comparability, config_checks, status, topology
from scripts.core import config as cfg
from scripts.run import cluster
from tests.conftest import snakemake


def system(**slurm):
    """A system as the workflow sees it after validation (defaults filled in)."""
    full = config_checks.load_campaign()
    sys_ = full["systems"]["local"]
    sys_["slurm"].update(slurm)
    return sys_


def test_a_single_node_run_is_one_job_with_the_systems_resources():
    s = system(
        partition="gpu",
        account="proj1",
        mem_mb=64000,
        constraint="v100",
        qos="bench",
        extra="--reservation=mlperf",
    )
    s["gpus"] = 4
    res = cluster.job_resources(s, timeout_s=600, grace_s=10)
    assert set(res) == set(cluster.RESOURCE_NAMES)
    assert res == {
        "slurm_partition": "gpu",
        "slurm_account": "proj1",
        "constraint": "v100",
        "qos": "bench",
        "mem_mb": 64000,
        # one attempt of at most 600 s + 10 s kill grace + 5 s, plus 5 minutes of slack
        "runtime": 11 + 5,
        "cpus_per_task": 2,  # the system's threads
        "slurm_extra": "--exclusive --reservation=mlperf",
        "nodes": 1,
        "gpu": 4,  # --gpus=4 for the job and its step; also what --resources gpu=N counts
        "gres": None,
        "mpi": None,
        "tasks": None,
        "tasks_per_gpu": None,
    }


def test_unset_values_leave_the_choice_to_the_cluster():
    s = system(exclusive=False)
    res = cluster.job_resources(s, timeout_s=None, grace_s=10)
    assert res["slurm_partition"] is None and res["slurm_account"] is None
    assert res["mem_mb"] == 0 and res["runtime"] == 0  # the executor then omits --mem, -t
    assert res["slurm_extra"] is None
    assert res["gpu"] == 0


def test_retries_lengthen_the_default_time_limit_and_runtime_min_overrides_it():
    s = system()
    s["retries"] = 2
    assert (
        cluster.job_resources(s, timeout_s=3600, grace_s=10)["runtime"] == 181 + 5
    )  # ceil(3 x (3600 + 10 + 5) s) + 5 min
    s["slurm"]["runtime_min"] = 240
    assert cluster.job_resources(s, timeout_s=3600, grace_s=10)["runtime"] == 240


def test_a_multi_node_run_asks_for_gpus_per_node_and_runs_its_own_launch():
    s = system(nodes=4, cpus_per_task=40)
    s["gpus"] = 8
    res = cluster.job_resources(s, timeout_s=None, grace_s=10)
    assert res["nodes"] == 4
    assert res["gres"] == "gpu:8" and res["gpu"] is None  # --gres is per node, --gpus is not
    assert res["mpi"] == "srun" and res["tasks"] == 4  # the job's snakemake runs in the batch step
    assert res["tasks_per_gpu"] == 0  # no --ntasks-per-gpu=4 from the executor
    assert res["cpus_per_task"] == 40


def test_the_environment_capture_is_one_small_job_on_the_same_kind_of_node():
    s = system(partition="gpu", constraint="a100", nodes=4)
    s["gpus"] = 8
    res = cluster.job_resources(s, timeout_s=600, grace_s=10, job="environment")
    assert res["slurm_partition"] == "gpu" and res["constraint"] == "a100"
    assert res["nodes"] == 1 and res["gpu"] == 8 and res["mpi"] is None
    assert res["runtime"] == cluster.ENVIRONMENT_RUNTIME_MIN
    assert res["cpus_per_task"] == 1 and res["slurm_extra"] is None


def test_extra_flags_that_the_executor_sets_are_refused_with_the_key_to_use(tmp_path):
    overlay = tmp_path / "cluster.yaml"
    overlay.write_text(
        yaml.safe_dump({"systems": {"local": {"slurm": {"extra": "--partition=big --exclusive"}}}})
    )
    with pytest.raises(cfg.ConfigError) as err:
        config_checks.load_campaign([overlay])
    msg = str(err.value)
    assert "systems.local.slurm.extra: '--partition=big --exclusive' sets the partition" in msg
    assert "use the matching key of systems.local.slurm" in msg


def test_unknown_slurm_keys_and_bad_values_name_the_file_and_key(tmp_path):
    overlay = tmp_path / "cluster.yaml"
    overlay.write_text(yaml.safe_dump({"systems": {"local": {"slurm": {"node": 2}}}}))
    with pytest.raises(cfg.ConfigError, match=r"cluster.yaml: unknown key 'systems.local.slurm"):
        config_checks.load_campaign([overlay])
    overlay.write_text(yaml.safe_dump({"systems": {"local": {"slurm": {"nodes": 0}}}}))
    with pytest.raises(cfg.ConfigError, match=r"systems.local.slurm.nodes: 0 is less than"):
        config_checks.load_campaign([overlay])
    overlay.write_text(yaml.safe_dump({"systems": {"local": {"gpus": 2, "gpu_devices": [3]}}}))
    with pytest.raises(cfg.ConfigError, match=r"gpu_devices lists only 1 GPU"):
        config_checks.load_campaign([overlay])


def test_nodes_count_for_comparability_only_when_more_than_one(tmp_path):
    base = comparability.comparability(config_checks.load_campaign(), "gnmt", "local")
    assert "nodes" not in base["system"]  # single-node runs keep the record they were made with
    overlay = tmp_path / "n2.yaml"
    overlay.write_text(yaml.safe_dump({"systems": {"local": {"slurm": {"nodes": 2}}}}))
    two_nodes = config_checks.load_campaign([overlay])
    assert comparability.comparability(two_nodes, "gnmt", "local")["system"]["nodes"] == 2


def test_one_node_launch_runs_the_command_as_is():
    command, placement = cluster.launch_command(
        "train --x", 1, Path("r"), {}, cpus_per_task=2, gpus_per_node=0
    )
    assert command == "train --x"
    assert placement["slurm_job_id"] is None and len(placement["hosts"]) == 1


def test_a_multi_node_run_outside_slurm_says_what_to_do():
    with pytest.raises(cluster.ClusterError, match=r"needs a Slurm allocation: run the campaign"):
        cluster.launch_command("train", 2, Path("r"), {}, cpus_per_task=1, gpus_per_node=0)


def test_each_node_is_one_srun_step_with_its_rank_as_run_sub_does():
    argv = cluster.srun_node_argv(
        "python train.py --seed 3",
        "n2",
        1,
        2,
        cpus_per_task=40,
        gpus_per_node=8,
        addr="10.0.0.1",
        port=4250,
    )
    assert argv == [
        "srun", "--nodes=1", "--ntasks=1", "--nodelist=n2", "--mem=0", "--cpus-per-task=40",
        "--gres=gpu:8",
        "env", "MLPERF_NNODES=2", "MLPERF_NODE_RANK=1", "MLPERF_MASTER_ADDR=10.0.0.1",
        "MLPERF_MASTER_PORT=4250",
        "MULTI_NODE= --nnodes=2 --node_rank=1 --master_addr=10.0.0.1 --master_port=4250",
        "/bin/bash", "-c", "python train.py --seed 3",
    ]  # fmt: skip


def _plan(command: str) -> list[dict]:
    argv = shlex.split(command)
    assert argv[1:3] == ["-I", str(Path(cluster.__file__).resolve())] and argv[3] == "launch"
    return json.loads(argv[4])


def test_the_launch_starts_every_node_at_once_and_keeps_node_0_as_the_log():
    command = cluster.multinode_command(
        "python train.py", ["n1", "n2", "n3"], Path("results/b/s/run_01"),
        cpus_per_task=1, gpus_per_node=0, addr="10.0.0.1", port=4243,
    )  # fmt: skip
    plan = _plan(command)
    assert [node["host"] for node in plan] == ["n1", "n2", "n3"]
    assert all(node["argv"][0] == "srun" for node in plan)
    assert "--nodelist=n1" in plan[0]["argv"] and plan[0]["log"] is None
    assert plan[1]["log"] == "results/b/s/run_01/node_1.log"
    assert plan[2]["log"] == "results/b/s/run_01/node_2.log"
    # the command is one word after bash -c
    assert plan[2]["argv"][-3:] == ["/bin/bash", "-c", "python train.py"]
    assert "MLPERF_NODE_RANK=2" in plan[2]["argv"] and "--gres=gpu:0" not in plan[2]["argv"]
    with pytest.raises(cluster.ClusterError, match="at least 2 hosts"):
        cluster.multinode_command(
            "x", ["n1"], Path("r"), cpus_per_task=1, gpus_per_node=0, addr="a", port=1
        )


def _supervise(tmp_path: Path, *scripts: str) -> tuple[int, str]:
    plan = [
        {"argv": ["/bin/sh", "-c", script], "host": f"n{rank}",
         "log": None if rank == 0 else str(tmp_path / f"node_{rank}.log")}
        for rank, script in enumerate(scripts)
    ]  # fmt: skip
    err = io.StringIO()
    return cluster.supervise_nodes(plan, err), err.getvalue()


def test_nodes_that_exit_in_the_same_instant_all_count(tmp_path):
    # bash's `wait -n` loop lost one of two statuses here and reported 127 (a CI failure)
    for _ in range(30):
        assert _supervise(tmp_path, "exit 0", "exit 0", "exit 0")[0] == 0
        assert _supervise(tmp_path, "exit 0", "exit 4")[0] == 4


def test_the_first_failing_node_stops_the_others_and_gives_the_status(tmp_path):
    started = time.monotonic()
    status, err = _supervise(tmp_path, "exec sleep 600", "echo dying; exit 3")
    assert status == 3 and time.monotonic() - started < 300  # not the sleeper's 600 s
    assert "launch: node 1 of 2: n1" in err
    assert "launch: a node failed with status 3; stopping the others" in err
    assert (tmp_path / "node_1.log").read_text() == "dying\n"


def test_a_node_killed_by_a_signal_reports_128_plus_the_signal(tmp_path):
    assert _supervise(tmp_path, "exit 0", "kill -9 $$")[0] == 128 + 9


def test_the_launch_runs_as_a_script_without_the_package_on_the_path(tmp_path):
    command = cluster.multinode_command(
        "x", ["n1", "n2"], tmp_path, cpus_per_task=1, gpus_per_node=0, addr="a", port=1
    )
    argv = shlex.split(command)
    plan = [
        {"argv": ["/bin/sh", "-c", "exit 0"], "host": "n1", "log": None},
        {"argv": ["/bin/sh", "-c", "exit 5"], "host": "n2", "log": str(tmp_path / "n.log")},
    ]
    done = subprocess.run(
        [*argv[:4], json.dumps(plan)], capture_output=True, text=True, cwd=tmp_path,
        env={"PATH": os.environ["PATH"]}, timeout=120,
    )  # fmt: skip
    assert done.returncode == 5, done.stderr
    assert "launch: a node failed with status 5" in done.stderr


def test_the_rendezvous_port_differs_between_jobs():
    assert cluster.master_port("1234") == 4242 + 234
    assert cluster.master_port(None) == 4242
    assert cluster.master_port("not-a-number") == 4242


def test_slurm_job_outside_slurm_is_empty():
    assert cluster.slurm_job({}) == {
        "slurm_job_id": None,
        "slurm_job_nodelist": None,
        "slurm_nnodes": None,
    }
    assert cluster.slurm_job(
        {"SLURM_JOB_ID": "7", "SLURM_JOB_NODELIST": "n[1-2]", "SLURM_JOB_NUM_NODES": "2"}
    ) == {"slurm_job_id": "7", "slurm_job_nodelist": "n[1-2]", "slurm_nnodes": 2}


def test_the_example_cluster_system_validates_and_becomes_the_campaign():
    full = config_checks.load_campaign([cfg.WORKFLOW_DIR / "config/systems/slurm-example.yaml"])
    assert topology.campaign_systems(full) == ["cluster-node"]
    res = cluster.job_resources(full["systems"]["cluster-node"], timeout_s=600, grace_s=10)
    assert res["cpus_per_task"] == 4 and res["mem_mb"] == 8000 and res["nodes"] == 1
    assert res["slurm_extra"] == "--exclusive"


def test_status_of_a_run_on_another_host_without_slurm_here(tmp_path, monkeypatch):
    info = {"host": "node7", "started_utc": "2026-01-01T00:00:00", "slurm_job_id": None}
    state = status.remote_run_state("01", info, tmp_path)
    assert state.state == "running" and state.detail.startswith("on node7 since 2026-01-01")
    assert "(not checked from here)" in state.detail
    monkeypatch.setattr(cluster, "job_state", lambda job: None)  # squeue cannot be asked
    state = status.remote_run_state("01", {**info, "slurm_job_id": "42"}, tmp_path)
    assert state.state == "running" and "on node7 in Slurm job 42 since" in state.detail


@pytest.mark.workflow
def test_a_misspelt_cluster_rule_stops_before_anything_runs(workflow_copy: Path):
    overlay = workflow_copy / "typo.yaml"
    overlay.write_text(yaml.safe_dump({"cluster_rules": ["train_runs"]}))
    proc = snakemake(workflow_copy, "-n", "--configfile", str(overlay))
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "cluster_rules names 'train_runs', which is not a rule of the workflow" in out
    assert "train_run" in out.split("rules: ", 1)[1]
