"""The pyxis backend (scripts/run/backends/pyxis.py) without Slurm, Pyxis, enroot or docker:
NVIDIA's RetinaNet v5.1 overlay (python -m scripts implementation on the published folder) on a
pyxis system gives run.sub's per-run srun step, with the workflow's own image, mounts and
environment; enroot's import; the refusals. Pyxis and enroot never ran here: scontrol and
enroot are stand-in scripts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from scripts.campaign import run_specs
from scripts.campaign.config_checks import load_campaign
from scripts.core import formats
from scripts.core.config import WORKFLOW_DIR
from scripts.run import backends, cluster
from scripts.run import pyxis as commands
from scripts.run.backends import pyxis
from tests.test_pyxis import default_of, expand, implementation, pyxis_defaults, run_step

ROUND_FILE = WORKFLOW_DIR / "config" / "benchmarks" / "mlperf-v5.1.yaml"
BENCH = "retinanet-v5.1"
IMAGE_ID = "sha256:" + "ab" * 32


def standin(bin_dir: Path, name: str, body: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    path = bin_dir / name
    path.write_text("#!/bin/bash\n" + body)
    path.chmod(0o755)


@pytest.fixture
def config(tmp_path: Path) -> dict:
    out = tmp_path / "retinanet.yaml"
    made = subprocess.run(
        [sys.executable, "-m", "scripts", "implementation", str(implementation("retinanet"))]
        + ["--config", "config_GB200_002x04x032.sh", "--system", "SUT", "--output", str(out)],
        cwd=WORKFLOW_DIR, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    site = tmp_path / "site.yaml"
    topology = {"sockets": 2, "cores_per_socket": 8, "threads_per_core": 2}
    site.write_text(
        yaml.safe_dump(
            {
                "benchmarks": {BENCH: {"implementation": {"backends": ["pyxis"]}}},
                "systems": {
                    "SUT": {
                        "backend": "pyxis",
                        "gpus": 8,
                        "topology": topology,
                        "timeout_s": 1740,
                        "slurm": {"nodes": 2},
                    }
                },
            }  # fmt: skip
        )
    )
    return load_campaign([ROUND_FILE, out, site])


def spec_of(config: dict, tmp_path: Path):
    return run_specs.run_spec(
        config, BENCH, "SUT", 1, python="python3",
        dataset_dir=str(tmp_path / "data" / BENCH / "dataset"),
        run_dir=str(tmp_path / "results" / BENCH / "SUT" / "run_01"),
        gpu_assign="scheduler",
    )  # fmt: skip


def stamps(tmp_path: Path, image_id: str = IMAGE_ID) -> Path:
    """An image stamp and a squashfs stamp of the same image, as build_image and import_sqsh
    write them."""
    image = tmp_path / "results" / BENCH / "SUT" / "image.json"
    image.parent.mkdir(parents=True, exist_ok=True)
    image.write_text(json.dumps(formats.stamped("image.json", {"image_id": IMAGE_ID, "tag": "t"})))
    sqsh = tmp_path / "build" / "image.sqsh"
    sqsh.parent.mkdir(parents=True, exist_ok=True)
    sqsh.write_bytes(b"hsqs")
    pyxis.sqsh_stamp_of(image).write_text(json.dumps({"image_id": image_id, "sqsh": str(sqsh)}))
    return image


def test_the_launch_is_run_sub_s_step_with_the_workflow_s_image_mounts_and_env(
    config: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    standin(tmp_path / "bin", "scontrol", 'printf "node7\\nnode8\\n"\n')
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.setenv("SLURM_JOB_NODELIST", "node[7-8]")
    spec = spec_of(config, tmp_path)
    image = stamps(tmp_path)
    launch = backends.get("pyxis").launch(spec, "ignored", {}, image_stamp=image)
    ours = launch.argv

    run_sub = implementation("retinanet") / "run.sub"
    workdir = default_of(run_sub, "WORK_DIR")
    mounts = next(w for w in ours if w.startswith("--container-mounts="))
    values = {
        "DGXNGPU": "8",
        "WALLTIME_RUNANDTIME": "30",  # 1740 s: 29 min, and one behind the runner's timeout
        "_cont_name": "unused",
        "_cont_mounts": mounts.split("=", 1)[1],
        "WORK_DIR": workdir,
    }
    theirs = expand(run_step(run_sub), values, {"PYXIS_DEFAULTS": pyxis_defaults(run_sub)})
    # the workflow's values: the image on the step (no named container of a first step), its
    # node count, the run's environment names after run.sub's, bash -c of the run's command
    sqsh = str((tmp_path / "build" / "image.sqsh").resolve())
    expected = [w for w in theirs if not w.startswith("--container-name=")]
    expected.insert(expected.index("--time=30"), "--nodes=2")
    expected.insert(expected.index("--time=30") + 1, f"--container-image={sqsh}")
    env = next(w for w in theirs if w.startswith("--container-env="))
    ours_env = next(w for w in ours if w.startswith("--container-env="))
    assert ours_env.startswith(env + ",")  # MASTER_PORT,MASTER_ADDR, then the run's
    assert {"SEED", "MODEL_NAME", "MLPERF_WORKFLOW_SEED"} <= set(ours_env.split("=")[1].split(","))
    expected[expected.index(env)] = ours_env
    assert theirs[-2:] == ["slurm2pytorch", "./run_and_time.sh"]
    assert ours[:-3] == expected[:-2]
    assert ours[-3:-1] == ["bash", "-c"] and ours[-1].startswith(pyxis.SLURM2PYTORCH)
    assert ours[-1].endswith("source ./config_SUT.sh && ./run_and_time.sh")
    assert workdir == "/workspace/ssd" and f"--container-workdir={workdir}" in ours

    # the mounts: run.sub's targets (config_mounts.sh), the dataset read-only, the run writable
    entries = mounts.split("=", 1)[1].split(",")
    data = (tmp_path / "data" / BENCH / "dataset").resolve()
    run_dir = (tmp_path / "results" / BENCH / "SUT" / "run_01").resolve()
    assert entries == [
        f"{data}:/data:ro",
        f"{data}/DATADIR:/datasets/open-images-v6:ro",
        f"{data}/BACKBONE_DIR:/root/.cache/torch:ro",
        f"{run_dir}:/results:rw",
    ]
    # srun's environment: the values the names pass, the rendezvous on the job's first node
    assert launch.env["MASTER_ADDR"] == "node7"
    assert launch.env["MASTER_PORT"] == str(cluster.master_port("4242"))
    assert launch.env["SEED"] == str(spec.seed) and launch.env["MODEL_NAME"]
    assert launch.record["pyxis_argv"] == ours and launch.record["image"]["sqsh"] == sqsh
    # run.json says which way: srun started one task per GPU of each node
    assert launch.record["launch"] == {
        "mode": "per_gpu",
        "by": "srun",
        "tasks_per_node": spec.gpus,
        "tasks": spec.gpus * spec.nodes,
    }
    assert f"--ntasks-per-node={spec.gpus}" in ours and f"--nodes={spec.nodes}" in ours
    assert launch.engine == "srun" and run_dir.is_dir()


def test_one_task_per_node_without_per_gpu(config: dict, tmp_path: Path) -> None:
    config["benchmarks"][BENCH]["implementation"]["container"].pop("launch")
    spec = spec_of(config, tmp_path)
    argv = pyxis.step_argv(spec, tmp_path / "i.sqsh", {"A": "1"})
    assert "--ntasks-per-node=1" in argv
    assert argv[-3:] == ["bash", "-c", "source ./config_SUT.sh && ./run_and_time.sh"]
    assert "--container-env=MASTER_PORT,MASTER_ADDR,A" in argv


def test_check_run_refuses_outside_slurm_and_a_squashfs_of_another_image(
    config: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = spec_of(config, tmp_path)
    backend = backends.get("pyxis")
    run_dir = tmp_path / "results" / BENCH / "SUT" / "run_01"
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    with pytest.raises(backends.BackendError, match="--profile profiles/slurm") as refused:
        backend.check_run(spec, stamps(tmp_path), run_dir)
    assert "\n" not in str(refused.value) and "SUT has backend pyxis" in str(refused.value)
    monkeypatch.setenv("SLURM_JOB_ID", "1")
    with pytest.raises(backends.BackendError, match="was imported from image sha256:0"):
        backend.check_run(spec, stamps(tmp_path, "sha256:0"), run_dir)


def test_enroot_imports_the_image_by_id_through_a_temporary_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # enroot's own behaviour where it matters: an existing output is refused
    standin(
        tmp_path / "bin",
        "enroot",
        'echo "$@" >> "$ENROOT_CALLS"; [ -e "$3" ] && exit 1; echo sqsh > "$3"\n',
    )
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    monkeypatch.setenv("ENROOT_CALLS", str(tmp_path / "calls"))
    image = stamps(tmp_path)
    sqsh, stamp = tmp_path / "build" / "b" / "image.sqsh", tmp_path / "image.sqsh.json"
    for _ in range(2):  # the second import replaces the first file
        rc = pyxis.main(["import-sqsh", "--image-stamp", str(image), "--sqsh", str(sqsh)]
                        + ["--stamp", str(stamp)])  # fmt: skip
        assert rc == 0
    record = json.loads(stamp.read_text())
    partial = str(sqsh.resolve()) + ".partial"
    assert record["enroot_argv"] == commands.enroot_import_argv(IMAGE_ID, partial)
    assert record["enroot_argv"] == [
        "enroot",
        "import",
        "--output",
        partial,
        f"dockerd://{IMAGE_ID}",
    ]
    assert (record["sqsh"], record["image_id"]) == (str(sqsh.resolve()), IMAGE_ID)
    assert sqsh.read_text() == "sqsh\n" and not Path(partial).exists()
    rule = (WORKFLOW_DIR / "rules" / "image.smk").read_text()
    assert "rule import_sqsh:" in rule and "scripts.run.backends.pyxis import-sqsh" in rule


def test_registered_with_its_inputs_its_slurm_job_and_its_docs(config: dict) -> None:
    backend = backends.get("pyxis")
    assert backend.name == "pyxis" and backend.trains and backend.has_image()
    assert backend.module == "scripts.run.backends.pyxis"
    assert backend.run_inputs(config, BENCH, "SUT") == {
        "image": f"results/{BENCH}/SUT/image.json",
        "sqsh": f"results/{BENCH}/SUT/image.sqsh.json",
    }
    # the job's snakemake runs in the batch step, so that the run's srun is a step of the job
    one_node = {"backend": "pyxis", "gpus": 8, "slurm": {"nodes": 1}}
    res = cluster.job_resources(one_node, timeout_s=600, grace_s=10)
    assert (res["mpi"], res["tasks"], res["gres"], res["tasks_per_gpu"]) == ("srun", 1, "gpu:8", 0)
    docs = (WORKFLOW_DIR / "docs" / "slurm-and-gpus.md").read_text()
    assert "## Slurm with Pyxis" in docs and "backend: pyxis" in docs


def test_a_benchmark_without_a_workdir_is_refused_for_pyxis(config: dict) -> None:
    config["benchmarks"][BENCH]["implementation"]["container"].pop("workdir")
    problems = backends.get("pyxis").config_problems(config, "SUT")
    assert any("has no workdir, which srun's --container-workdir needs" in p for p in problems)
