"""The synthetic smoke run of bench/gpu_check.sh --synthetic: NVIDIA's RetinaNet v5.1
(tests/data/published/mlperf-v5.1-implementations.tar.xz) made into an overlay by `python -m
scripts implementation`, with ``implementation.synthetic: true`` and 1 run, on this machine's
GPUs in docker, the image built from tests/data/v51_standin/Dockerfile on ``--base`` (its
train.py replays NVIDIA's published log). A copy of the workflow runs it in ``--work``; it
prints the run's result.json and summary.csv. Not run in CI (it needs a GPU)."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
IMPL = "NVIDIA/benchmarks/retinanet/implementations/tyche_ngpu8_ngc25.04_pytorch"
RESULTS = "NVIDIA/results/tyche_ngpu8_ngc25.04_pytorch"
STANDIN = REPO / "tests" / "data" / "v51_standin"


def implementation_folder(work: Path) -> Path:
    """The published folder, laid out as training_results_v5.1, with the stand-in's files."""
    archive = REPO / "tests/data/published/mlperf-v5.1-implementations.tar.xz"
    with tarfile.open(archive) as tar:
        tar.extractall(work / "published", filter="data")
    root = next((work / "published").rglob("NVIDIA")).parent
    folder = root / IMPL
    shutil.copy2(STANDIN / "Dockerfile", folder / "Dockerfile.standin")
    shutil.copy2(STANDIN / "train.py", folder / "train.py")
    shutil.copy2(STANDIN / "standin-torchrun", folder / "standin-torchrun")
    shutil.copy2(sorted((root / RESULTS).rglob("result_0.txt"))[0], folder / "replay.txt")
    return folder


def small_data(work: Path) -> dict:
    """A tiny dataset archive: the rules need one; a synthetic run reads none."""
    import hashlib

    tree = work / "data"
    for rel in ("DATADIR/info.json", "BACKBONE_DIR/weights.pth"):
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_text("synthetic run: not read\n")
    archive = work / "data.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name in ("DATADIR", "BACKBONE_DIR"):
            tar.add(tree / name, arcname=name)
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    return {"name": archive.name, "url": f"file://{archive}", "sha256": digest, "unpack": True}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--gpus", type=int, required=True)
    p.add_argument("--base", required=True, help="FROM_IMAGE_NAME of the stand-in image")
    args = p.parse_args(argv)
    wf = args.work / "workflow"
    shutil.copytree(
        REPO, wf, ignore=shutil.ignore_patterns(".git", "results", "data", ".snakemake")
    )
    folder = implementation_folder(args.work)
    cmd = [sys.executable, "-m", "scripts", "implementation", str(folder)]
    cmd += ["--config", "config_GB200_002x04x032.sh", "--system", "GPU", "--output", "impl.yaml"]
    subprocess.run(cmd, cwd=wf, check=True)
    site = {
        "benchmarks": {
            "retinanet-v5.1": {
                "runs": 1,
                "dataset": {"files": [small_data(args.work)]},
                "implementation": {
                    "synthetic": True,
                    "container": {
                        "dockerfile": "Dockerfile.standin",
                        "build_args": {"FROM_IMAGE_NAME": args.base},
                        "build_network": "default",
                    },
                },
            }
        },
        "systems": {
            "GPU": {
                "description": "this machine's GPUs, synthetic data",
                "backend": "docker",
                "gpus": args.gpus,
                "threads": 2,
                "timeout_s": 1800,
                "container": {"gpus": "auto", "ipc": "host"},
            }
        },
    }
    (wf / "site.yaml").write_text(yaml.safe_dump(site))
    target = "results/retinanet-v5.1/summary.csv"
    run = [
        "snakemake",
        "--cores",
        "2",
        target,
        "--configfile",
        "config/benchmarks/mlperf-v5.1.yaml",
    ]
    rc = subprocess.run([*run, "impl.yaml", "site.yaml"], cwd=wf).returncode
    for out in sorted((wf / "results/retinanet-v5.1").glob("GPU/run_*/result.json")):
        print(f"== {out}\n{out.read_text()}")
    if (wf / target).exists():
        print(f"== {target}\n{(wf / target).read_text()}")
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
