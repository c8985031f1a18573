"""Today's MLPerf implementations run end to end (issue 23), with a real Docker engine and real
podman: NVIDIA's RetinaNet v5.1 (`tyche_ngpu8_ngc25.04_pytorch`: one task per GPU, the data
mounts of its config_mounts.sh checked against expected-mounts.csv) and AMD's Llama 2 70B LoRA
(one launch, torchrun inside), each from a copy of its published folder
(tests/data/published/mlperf-v5.1-implementations.tar.xz) turned into an overlay by `python -m
scripts implementation`.

NVIDIA's and AMD's Dockerfiles need NGC's CUDA or AMD's ROCm base and compile GPU code, so the
image is built from tests/data/v51_standin/Dockerfile on the CI's local Debian image instead;
its train.py replays one of the implementation's own published logs, re-timed to now (see its
README.md). Everything else is the implementation's own: run_and_time.sh, the config_*.sh that
the generated config_SUT.sh sources, config_mounts.sh's mount points.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from scripts.data import mountcheck
from scripts.mlperf import config_sh
from tests.conftest import REPO, jobs_run, need_docker, need_podman, published, snakemake
from tests.test_slurm import slurm, submitted  # noqa: F401 (slurm: the fixture)

V51 = "mlperf-v5.1-implementations"
STANDIN = REPO / "tests" / "data" / "v51_standin"
RETINANET = "NVIDIA/benchmarks/retinanet/implementations/tyche_ngpu8_ngc25.04_pytorch"
RETINANET_RESULTS = "NVIDIA/results/tyche_ngpu8_ngc25.04_pytorch"
AMD = "AMD/benchmarks/llama2_70b_lora/implementations/MI300X_EPYC_9575F_pytorch_llama2_70b"
AMD_RESULTS = "AMD/results/MI300X_EPYC_9575F_pytorch_llama2_70b"


def standin_folder(tmp_path: Path, impl: str, results: str, train_at: str, workdir: str) -> Path:
    """A copy of the published implementation (and its round's results and system
    description, laid out as training_results_v5.1) with the stand-in's files added."""
    src, root = published() / V51, tmp_path / "training_results_v5.1"
    vendor = impl.split("/")[0]
    for rel in (impl, results):
        shutil.copytree(src / rel, root / rel)
    system = Path(results).name
    (root / vendor / "systems").mkdir(parents=True, exist_ok=True)
    shutil.copy2(src / vendor / "systems" / f"{system}.json", root / vendor / "systems")
    folder = root / impl
    text = (STANDIN / "Dockerfile").read_text()
    (folder / "Dockerfile.standin").write_text(
        text.replace("ARG STANDIN_WORKDIR=/workspace/ssd", f"ARG STANDIN_WORKDIR={workdir}")
    )
    (folder / train_at).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(STANDIN / "train.py", folder / train_at)
    shutil.copy2(STANDIN / "standin-torchrun", folder / "standin-torchrun")
    logs = sorted((root / results).rglob("result_0.txt"))
    shutil.copy2(logs[0], folder / Path(train_at).parent / "replay.txt")
    return folder


def standin_data(tmp_path: Path, folders: dict[str, dict[str, int]]) -> tuple[dict, Path]:
    """Small data folders (name -> {relative file: size}) as one archive the workflow fetches,
    verifies and unpacks: the dataset entry and the unpacked tree (for expected-mounts.csv)."""
    tree = tmp_path / "standin-data"
    for folder, files in folders.items():
        for rel, size in files.items():
            path = tree / folder / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(bytes(range(256)) * (size // 256) + b"x" * (size % 256))
    archive = tmp_path / "standin-data.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for folder in folders:
            tar.add(tree / folder, arcname=folder)
    entry = {
        "name": archive.name,
        "url": f"file://{archive}",
        "sha256": hashlib.sha256(archive.read_bytes()).hexdigest(),
        "unpack": True,
    }
    return entry, tree


def overlay(wf: Path, folder: Path, config: str, out: str) -> dict:
    """`python -m scripts implementation` on the folder, as a user runs it; returns the
    overlay it made. The file is then left without the README's data commands (its
    dataset.commands: downloads of hundreds of GB), as a user who has the data edits it: the
    tests give the stand-in's small data in their own overlay, which cannot take a mapping
    key away from an earlier file (Snakemake merges them)."""
    made = subprocess.run(
        [sys.executable, "-m", "scripts", "implementation", str(folder), "--config", config]
        + ["--system", "SUT", "--output", out],
        cwd=wf,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    text = (wf / out).read_text()
    data = yaml.safe_load(text)
    edited = copy.deepcopy(data)
    for bench in edited["benchmarks"].values():
        assert bench.pop("dataset")["commands"]  # the README's, read by the overlay
    head = "".join(line for line in text.splitlines(keepends=True) if line.startswith("#"))
    (wf / out).write_text(head + yaml.safe_dump(edited, sort_keys=False))
    return data


def site(wf: Path, benchmark: str, base: str, dataset: dict, backend: str, **impl: object) -> str:
    """What the stand-in changes: its Dockerfile on the local base, the small data, a fast
    replay; the system SUT: 2 GPUs' worth of ranks on this machine's CPUs."""
    (wf / "site.yaml").write_text(
        yaml.safe_dump(
            {
                "benchmarks": {
                    benchmark: {
                        "dataset": {"files": [dataset]},
                        "implementation": {
                            "env": {"REPLAY_SPEEDUP": "2000"},
                            "container": {
                                "dockerfile": "Dockerfile.standin",
                                "build_args": {"FROM_IMAGE_NAME": base},
                                "build_network": "none",
                            },
                            **impl,
                        },
                    }
                },
                "systems": {
                    "SUT": {
                        "description": "this machine, 2 ranks",
                        "backend": backend,
                        "gpus": 2,
                        "threads": 1,
                        "timeout_s": 900,
                        "topology": {"sockets": 1, "cores_per_socket": 2, "threads_per_core": 1},
                        "container": {"gpus": "none"},
                    }
                },
            }
        )
    )
    return "site.yaml"


def results_of(wf: Path, benchmark: str) -> list[dict]:
    return [
        json.loads(p.read_text())
        for p in sorted((wf / "results" / benchmark / "SUT").glob("run_*/result.json"))
    ]


RETINANET_DATA = {
    "DATADIR": {
        "info.json": 300,
        "train/data/0001.jpg": 1000,
        "train/data/0002.jpg": 1200,
        "train/labels/openimages-mlperf.json": 700,
        "validation/data/0003.jpg": 900,
        "validation/labels/openimages-mlperf.json": 400,
    },
    "BACKBONE_DIR": {"hub/checkpoints/resnext50_32x4d-7cdf4587.pth": 2048},
}


@pytest.mark.parametrize("engine", ["docker", "podman"])
def test_nvidias_retinanet_v51_runs_five_times_one_task_per_gpu(
    engine: str, workflow_copy: Path, tmp_path: Path
) -> None:
    base = need_docker() if engine == "docker" else need_podman()
    wf = workflow_copy
    folder = standin_folder(tmp_path, RETINANET, RETINANET_RESULTS, "train.py", "/workspace/ssd")
    made = overlay(wf, folder, "config_GB200_002x04x032.sh", "retinanet.yaml")
    impl = made["benchmarks"]["retinanet-v5.1"]["implementation"]
    assert impl["container"]["launch"] == "per_gpu"
    assert {m["key"] for m in impl["container"]["data_mounts"]} == {
        "OPEN_IMAGES_V6_DIR",
        "BACKBONE_DIR",
    }
    importer = [s for s in made["campaign"]["systems"] if s != "SUT"]
    assert len(importer) == 1  # NVIDIA's published result of this implementation joins
    dataset, tree = standin_data(tmp_path, RETINANET_DATA)
    args = ["--cores", "2", "--configfile", "config/benchmarks/mlperf-v5.1.yaml"]
    args += ["retinanet.yaml", site(wf, "retinanet-v5.1", base, dataset, engine)]
    target = "results/retinanet-v5.1/summary.csv"

    if engine == "docker":
        # NVIDIA's own expected-mounts.csv (1,170,301 training images) against the small data:
        # every run is refused before its container starts, naming the key and the counts
        refused = snakemake(wf, target, *args)
        assert refused.returncode != 0
        logs = " ".join(p.read_text() for p in (wf / "logs").rglob("run_0*.log"))
        assert "OPEN_IMAGES_V6_DIR" in logs and "1,170,301" in logs, logs[-3000:]
        assert not list((wf / "results/retinanet-v5.1/SUT").glob("run_*/result.json"))

    # the stand-in's own expected-mounts.csv, describing the small data as mountcheck does
    mounts = {"OPEN_IMAGES_V6_DIR": tree / "DATADIR", "BACKBONE_DIR": tree / "BACKBONE_DIR"}
    mountcheck.write_expected(mountcheck.describe(mounts), folder / "expected-mounts.csv")
    compared = "results/retinanet-v5.1/comparison.csv"
    done = snakemake(wf, target, compared, *args, timeout=1500)
    assert done.returncode == 0, done.stderr[-4000:]
    jobs = [j.split()[0] for j in jobs_run(done.stderr)]
    assert jobs.count("build_image") == 1 and jobs.count("train_run") == 5, jobs

    # config_SUT.sh generated into the image's context, sourcing NVIDIA's config
    context = wf / "build/retinanet-v5.1/SUT/context"
    values = config_sh.read_exported(context / "config_SUT.sh")
    assert (values["DGXSYSTEM"], values["DGXNNODES"], values["DGXNGPU"]) == ("SUT", "1", "2")
    assert values["BATCHSIZE"] == "32" and values["NCCL_NVLS_ENABLE"] == "1"  # the base's

    results = results_of(wf, "retinanet-v5.1")
    assert len(results) == 5
    seeds = set()
    for n, result in enumerate(results, 1):
        run = wf / f"results/retinanet-v5.1/SUT/run_{n:02d}"
        log = (run / "mlperf.log").read_text()
        # the real run_and_time.sh ran train.py once per GPU: rank 0's output is the log
        assert "stand-in train.py: rank 0 of 2: DGXSYSTEM=SUT DGXNNODES=1 DGXNGPU=2" in log
        assert "--dataset-path', '/datasets/open-images-v6'" in log
        rank_1 = (run / "ranks" / "rank_1.log").read_text()
        assert "rank 1 of 2" in rank_1 and "rank 1 of 2" not in log
        # one DATESTAMP for the run's ranks, as run.sub gives them
        stamps = {re.search(r"DATESTAMP=(\d{21})", text).group(1) for text in (log, rank_1)}
        assert len(stamps) == 1
        assert result["compliance"] == "pass", result["compliance_detail"]
        assert result["converged"] is True
        meta = json.loads((run / "run.json").read_text())
        assert result["seed"] == meta["seed"]  # the run's SEED, in its log
        # which way it was launched: the rank launcher started run_and_time.sh once per GPU
        assert meta["launch"] == {
            "mode": "per_gpu",
            "by": "rank_launcher",
            "tasks_per_node": 2,
            "tasks": 2,
        }
        seeds.add(meta["seed"])
    assert len(seeds) == 5

    with (wf / target).open() as fh:
        rows = {row["system"]: row for row in csv.DictReader(fh)}
    assert set(rows) == {"SUT", importer[0]}
    # NVIDIA's five published runs, scored as mlperf-logging's summarizer scores them
    assert float(rows[importer[0]]["score_s"]) == pytest.approx(1340.062667)
    assert rows["SUT"]["valid"] == "True" and 0 < float(rows["SUT"]["score_s"]) < 60
    with (wf / compared).open() as fh:
        compared_rows = list(csv.DictReader(fh))
    # the published system is the overlay's reference: SUT against it (the replay runs 2000x
    # faster than NVIDIA's GB200s, which the comparison says)
    assert [(r["system"], r["reference"]) for r in compared_rows] == [("SUT", importer[0])]
    assert float(compared_rows[0]["speedup"]) > 100


AMD_DATA = {  # run_with_docker.sh: ${DATADIR}/data at /data, ${DATADIR}/model at /ckpt
    "DATADIR": {
        "data/train.npy": 4096,
        "data/validation.npy": 1024,
        "model/llama2-70b.nemo": 2048,
        "model/model_config.yaml": 100,
    },
}


def test_amds_llama2_70b_lora_v51_runs_through_its_docker_path(
    workflow_copy: Path, tmp_path: Path
) -> None:
    base = need_docker()
    wf = workflow_copy
    folder = standin_folder(tmp_path, AMD, AMD_RESULTS, "src/train.py", "/workspace/code")
    made = overlay(wf, folder, "config_MI300X_1x8x1.sh", "amd.yaml")
    bench = next(iter(made["benchmarks"]))
    assert bench == "llama2_70b_lora-v5.1"
    impl = made["benchmarks"][bench]["implementation"]
    assert impl["container"].get("launch", "once") == "once"  # torchrun starts the ranks
    dataset, _ = standin_data(tmp_path, AMD_DATA)
    args = ["--cores", "2", "--configfile", "config/benchmarks/mlperf-v5.1.yaml", "amd.yaml"]
    args += [site(wf, bench, base, dataset, "docker")]
    done = snakemake(wf, f"results/{bench}/summary.csv", *args, timeout=1500)
    assert done.returncode == 0, done.stderr[-4000:]
    results = results_of(wf, bench)
    assert len(results) == 10
    for n, result in enumerate(results, 1):
        run = wf / f"results/{bench}/SUT/run_{n:02d}"
        log = (run / "mlperf.log").read_text()
        assert "STARTING TIMING RUN AT" in log  # AMD's run_and_time.sh
        assert "rank 0 of 8" in log  # torchrun --nproc_per_node=8 of AMD's run_and_time.sh
        assert result["compliance"] == "pass", result["compliance_detail"]
        # which way it was launched: docker started run_and_time.sh once; torchrun the ranks
        meta = json.loads((run / "run.json").read_text())
        assert meta["launch"] == {"mode": "once", "by": "docker", "tasks_per_node": 1, "tasks": 1}


@pytest.mark.usefixtures("slurm")
def test_nvidias_retinanet_v51_runs_each_run_as_a_slurm_job_with_docker(
    workflow_copy: Path, tmp_path: Path
) -> None:
    """The same per-run job on the CI's real Slurm (profiles/slurm): each run is a Slurm job
    whose runner starts the container there. Pyxis cannot be installed here, so this is the
    docker launcher inside the job; the Pyxis command lines are checked against run.sub's own
    in tests/test_pyxis.py."""
    base = need_docker()
    wf = workflow_copy
    folder = standin_folder(tmp_path, RETINANET, RETINANET_RESULTS, "train.py", "/workspace/ssd")
    overlay(wf, folder, "config_GB200_002x04x032.sh", "retinanet.yaml")
    dataset, tree = standin_data(tmp_path, RETINANET_DATA)
    mounts = {"OPEN_IMAGES_V6_DIR": tree / "DATADIR", "BACKBONE_DIR": tree / "BACKBONE_DIR"}
    mountcheck.write_expected(mountcheck.describe(mounts), folder / "expected-mounts.csv")
    site(wf, "retinanet-v5.1", base, dataset, "docker")
    two = wf / "two.yaml"
    two.write_text(yaml.safe_dump({"benchmarks": {"retinanet-v5.1": {"runs": 2}}}))
    args = ["--profile", "profiles/slurm", "--slurm-init-seconds-before-status-checks", "5"]
    args += ["--configfile", "config/benchmarks/mlperf-v5.1.yaml", "retinanet.yaml"]
    args += ["site.yaml", str(two)]
    done = snakemake(wf, "results/retinanet-v5.1/summary.csv", *args, timeout=1500)
    assert done.returncode == 0, done.stderr[-4000:]
    jobs = submitted(done.stderr)
    runs = {k: v for k, v in jobs.items() if k.startswith("rule_train_run")}
    assert set(runs) == {
        "rule_train_run retinanet-v5.1_SUT_01",
        "rule_train_run retinanet-v5.1_SUT_02",
    }
    for n, result in enumerate(results_of(wf, "retinanet-v5.1"), 1):
        assert result["slurm_job_id"] == runs[f"rule_train_run retinanet-v5.1_SUT_{n:02d}"]
        assert result["compliance"] == "pass", result["compliance_detail"]
        log = (wf / f"results/retinanet-v5.1/SUT/run_{n:02d}/mlperf.log").read_text()
        assert "stand-in train.py: rank 0 of 2" in log


def test_a_synthetic_retinanet_run_runs_is_labelled_and_never_scored(
    workflow_copy: Path, tmp_path: Path
) -> None:
    """implementation.synthetic: USE_SYNTHETIC_DATA=1 reaches NVIDIA's run_and_time.sh (which
    then gives train.py --syn-dataset 2 --skip-eval), the data check is skipped, and the row
    says why there is no score."""
    base = need_docker()
    wf = workflow_copy
    folder = standin_folder(tmp_path, RETINANET, RETINANET_RESULTS, "train.py", "/workspace/ssd")
    overlay(wf, folder, "config_GB200_002x04x032.sh", "retinanet.yaml")
    dataset, _ = standin_data(tmp_path, RETINANET_DATA)  # NVIDIA's expected-mounts.csv kept
    site(wf, "retinanet-v5.1", base, dataset, "docker", synthetic=True)
    one = wf / "one.yaml"
    one.write_text(yaml.safe_dump({"benchmarks": {"retinanet-v5.1": {"runs": 1}}}))
    args = ["--cores", "2", "--configfile", "config/benchmarks/mlperf-v5.1.yaml"]
    args += ["retinanet.yaml", "site.yaml", str(one)]
    done = snakemake(wf, "results/retinanet-v5.1/summary.csv", *args, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    run = wf / "results/retinanet-v5.1/SUT/run_01"
    log = (run / "mlperf.log").read_text()
    assert "--syn-dataset', '2'" in log and "--skip-eval" in log  # run_and_time.sh's own
    assert '"key": "eval_accuracy"' not in log
    job_log = (wf / "logs/train_run/retinanet-v5.1/SUT/run_01.log").read_text()
    assert "synthetic" in job_log  # the mount check skipped, and said so
    (result,) = results_of(wf, "retinanet-v5.1")
    assert result["synthetic"] is True
    with (wf / "results/retinanet-v5.1/summary.csv").open() as fh:
        rows = {row["system"]: row for row in csv.DictReader(fh)}
    assert rows["SUT"]["valid"] == "False" and rows["SUT"]["score_s"] == ""
    assert "synthetic data" in rows["SUT"]["reason"]
