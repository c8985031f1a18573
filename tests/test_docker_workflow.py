"""Campaigns in containers, end to end through snakemake on a real Docker engine: the embedded
GNMT campaign through the docker-cpu overlay (the image built once, rebuilt when its context
changes, never mixed with finished runs), and NVIDIA's v0.6 GNMT code path with a stand-in of
its source (fetched at a commit, config_SUT.sh generated into the image, preprocessing, run.sub's
variables, the :::MLL log parsed)."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import yaml

from scripts.campaign.archive import main as campaign_main
from tests.conftest import (
    REPO,
    containers_labelled,
    jobs_run,
    need_docker,
    quick_gnmt,
    snakemake,
    snapshot,
)
from tests.test_docker_backend import CONFIG_SUT_SH

# NVIDIA's run.sub asks for unlimited locked memory; a container cannot get more than the
# host's hard limit (8 MiB on the CI machines), so the test asks for that
_HARD = resource.getrlimit(resource.RLIMIT_MEMLOCK)[1]
MEMLOCK = -1 if _HARD == resource.RLIM_INFINITY else _HARD


def owned_by_caller(root: Path) -> list[str]:
    """Paths below ``root`` that do not belong to the caller."""
    uid = os.getuid()
    return [str(p) for p in [root, *root.rglob("*")] if p.lstat().st_uid != uid]


def leftover_containers(prefix: str) -> list[str]:
    return [n for n in containers_labelled() if n.startswith(prefix)]


def test_the_embedded_campaign_runs_in_containers_and_the_image_is_built_once(
    workflow_copy: Path,
) -> None:
    base = need_docker()
    wf = workflow_copy
    overlay = wf / "ci.yaml"
    overlay.write_text(
        yaml.safe_dump(
            {
                "campaign": {"systems": ["docker-cpu"], "reference_system": "docker-cpu"},
                "benchmarks": {"gnmt": quick_gnmt(runs=3)},
                "systems": {"docker-cpu": {"container": {"build_args": {"BASE_IMAGE": base}}}},
            }
        )
    )
    args = ["--cores", "1", "--configfile", "config/systems/docker-cpu.yaml", str(overlay)]
    targets = ["results/gnmt/summary.csv", "results/gnmt/report.html"]
    first = snakemake(wf, *targets, *args)
    assert first.returncode == 0, first.stderr[-4000:]
    jobs = [j.split()[0] for j in jobs_run(first.stderr)]
    assert jobs.count("build_image") == 1 and jobs.count("fetch_wheels") == 1
    assert jobs.count("train_run") == 3

    system = wf / "results/gnmt/docker-cpu"
    stamp = json.loads((system / "image.json").read_text())
    assert stamp["tag"] == "mlperf-gnmt:docker-cpu"
    assert stamp["build_args"] == {"BASE_IMAGE": base}
    assert stamp["image_id"].startswith("sha256:") and len(stamp["context_sha256"]) == 64
    assert stamp["docker_build_argv"][:2] == ["docker", "build"]
    assert "--network" in stamp["docker_build_argv"]  # the build is offline
    environment = json.loads((system / "environment.json").read_text())
    assert environment["image_id"] == stamp["image_id"]
    assert environment["packages"]["torch"].startswith("2.13.0")  # read inside the image
    summary = pd.read_csv(wf / "results/gnmt/summary.csv")
    assert summary.loc[0, "system"] == "docker-cpu" and bool(summary.loc[0, "valid"])
    assert summary.loc[0, "n_converged"] == 3
    for run in ("01", "02", "03"):
        meta = json.loads((system / f"run_{run}/run.json").read_text())
        assert meta["backend"] == "docker" and meta["image_id"] == stamp["image_id"]
        argv = meta["docker_argv"]
        assert argv[argv.index("--network") + 1] == "none"
        assert argv[argv.index("--user") + 1] == f"{os.getuid()}:{os.getgid()}"
        assert any(a.endswith("target=/data,readonly") for a in argv)
        assert "--privileged" not in argv
        result = json.loads((system / f"run_{run}/result.json").read_text())
        assert result["converged"] is True
    assert owned_by_caller(system) == []
    assert leftover_containers("mlperf-gnmt-docker-cpu-") == []
    report = (wf / "results/gnmt/report.html").read_text()
    assert stamp["image_id"] in report and "docker run of run 01" in report

    # a second invocation reuses the image: nothing is built or run
    before = snapshot(wf)
    second = snakemake(wf, *targets, *args)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Nothing to be done" in second.stderr and jobs_run(second.stderr) == []
    assert snapshot(wf) == before

    # a changed file of the build context means another image: with finished runs that is
    # reported, and nothing is built or run
    model = wf / "scripts/gnmt/model.py"
    model.write_text(model.read_text() + "CHANGED = True  # a change in the build context\n")
    third = snakemake(wf, *targets, *args)
    assert third.returncode != 0
    assert "finished runs would no longer be comparable" in third.stderr
    assert "container.image.files.scripts/gnmt/model.py" in third.stderr
    assert jobs_run(third.stderr) == [] and snapshot(wf) == before

    # once the old runs are moved aside, the image is rebuilt (its heavy layer from the cache)
    cwd = Path.cwd()
    os.chdir(wf)
    try:
        assert campaign_main(["archive", "results/gnmt/docker-cpu"]) == 0
    finally:
        os.chdir(cwd)
    fourth = snakemake(wf, "results/gnmt/docker-cpu/image.json", *args)
    assert fourth.returncode == 0, fourth.stderr[-3000:]
    assert [j.split()[0] for j in jobs_run(fourth.stderr)] == ["build_image"]
    rebuilt = json.loads((system / "image.json").read_text())
    assert rebuilt["image_id"] != stamp["image_id"]
    assert rebuilt["context_sha256"] != stamp["context_sha256"]
    build_log = (wf / "logs/build_image/gnmt/docker-cpu.log").read_text()
    assert "Using cache" in build_log or "CACHED" in build_log

    # without finished runs, a changed context file, or an image gone from the engine, just
    # rebuilds it
    corpus = wf / "scripts/gnmt/corpus.py"
    corpus.write_text(corpus.read_text() + "ANOTHER = True\n")
    fifth = snakemake(wf, "results/gnmt/docker-cpu/image.json", *args)
    assert fifth.returncode == 0, fifth.stderr[-3000:]
    assert "files.scripts/gnmt/corpus.py" in fifth.stderr
    assert [j.split()[0] for j in jobs_run(fifth.stderr)] == ["build_image"]
    image_id = json.loads((system / "image.json").read_text())["image_id"]
    subprocess.run(["docker", "rmi", "--force", image_id], capture_output=True, check=True)
    sixth = snakemake(wf, "results/gnmt/docker-cpu/image.json", *args)
    assert sixth.returncode == 0, sixth.stderr[-3000:]
    assert f"its image {image_id} is no longer in the Docker engine" in sixth.stderr
    assert [j.split()[0] for j in jobs_run(sixth.stderr)] == ["build_image"]


def standin_repo(tmp_path: Path) -> tuple[str, str, str]:
    """The stand-in of NVIDIA's implementation in a git repository at NVIDIA's path:
    (URL, commit, subdir)."""
    subdir = "NVIDIA/benchmarks/gnmt/implementations/pytorch"
    repo = tmp_path / "training_results_standin"
    shutil.copytree(REPO / "tests/data/nvidia_gnmt_standin", repo / subdir)
    (repo / "README.md").write_text("stand-in of training_results_v0.6\n")

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()

    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "stand-in")
    commit = git("rev-parse", "HEAD")
    (repo / "README.md").write_text("a later commit that must not be used\n")
    git("commit", "-qam", "later")
    return f"file://{repo}", commit, subdir


def wmt_standin_dataset(tmp_path: Path) -> list[dict[str, str]]:
    """The seven file names that NVIDIA's verify_dataset.sh checks, with small contents."""
    names = [
        "train.tok.clean.bpe.32000.en",
        "train.tok.clean.bpe.32000.de",
        "newstest_dev.tok.clean.bpe.32000.en",
        "newstest_dev.tok.clean.bpe.32000.de",
        "newstest2014.tok.bpe.32000.en",
        "newstest2014.tok.bpe.32000.de",
        "newstest2014.de",
    ]
    folder = tmp_path / "wmt16_de_en"
    folder.mkdir()
    files = []
    for i, name in enumerate(names):
        path = folder / name
        path.write_text("".join(f"sentence {i} {j}\n" for j in range(5 + i)))
        md5 = hashlib.md5(path.read_bytes()).hexdigest()
        files.append({"name": name, "url": f"file://{path}", "md5": md5})
    return files


def test_nvidias_gnmt_code_path_runs_with_a_stand_in_of_its_source(
    workflow_copy: Path, tmp_path: Path
) -> None:
    base = need_docker()
    wf = workflow_copy
    url, commit, subdir = standin_repo(tmp_path)
    # a site without the NGC registry or GPUs, and the seven WMT16 file names with small
    # contents; everything else as config/benchmarks/gnmt-v0.6{,-nvidia}.yaml say
    site = wf / "site.yaml"
    site.write_text(
        yaml.safe_dump(
            {
                "campaign": {"benchmarks": ["gnmt-v0.6"], "systems": ["SUT"]},
                "benchmarks": {
                    "gnmt-v0.6": {
                        "runs": 3,
                        "dataset": {"files": wmt_standin_dataset(tmp_path)},
                        "implementation": {
                            "container": {
                                "source": {"git": url, "commit": commit, "subdir": subdir},
                                "build_args": {"FROM_IMAGE_NAME": base},
                                "build_network": "none",
                            }
                        },
                    }
                },
                # no GPUs here, and locked memory up to the host's limit (see MEMLOCK)
                "systems": {
                    "SUT": {"container": {"gpus": "none", "ulimits": {"memlock": MEMLOCK}}}
                },
            }
        )
    )
    args = ["--cores", "1", "--configfile", "config/benchmarks/gnmt-v0.6.yaml"]
    args += ["config/benchmarks/gnmt-v0.6-nvidia.yaml", "config/systems/sut-4xv100.yaml"]
    args += [str(site)]
    done = snakemake(wf, "results/gnmt-v0.6/summary.csv", *args)
    assert done.returncode == 0, done.stderr[-4000:]
    jobs = [j.split()[0] for j in jobs_run(done.stderr)]
    for rule, count in (("fetch_source", 1), ("build_image", 1), ("prepare_data", 1)):
        assert jobs.count(rule) == count, jobs
    assert jobs.count("train_run") == 3

    # the source at the pinned commit, not the later one
    assert (
        wf / "build/gnmt-v0.6/source/README.md"
    ).read_text() == "stand-in of training_results_v0.6\n"
    # config_SUT.sh generated from the system yaml into the context before the build ...
    context = wf / "build/gnmt-v0.6/SUT/context"
    assert (context / "config_SUT.sh").read_text() == CONFIG_SUT_SH
    # ... so it is in the image
    stamp = json.loads((wf / "results/gnmt-v0.6/SUT/image.json").read_text())
    assert stamp["tag"] == "mlperf-nvidia-rnn_translator:SUT"
    assert stamp["generated"] == ["config_SUT.sh"]
    in_image = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", stamp["image_id"]]
        + ["cat", "/workspace/rnn_translator/config_SUT.sh"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert in_image == CONFIG_SUT_SH
    prepared = wf / "data/gnmt-v0.6/prepared/SUT/training.bin"
    assert prepared.read_text() == "5 sentences, max length 75\n"

    system = wf / "results/gnmt-v0.6/SUT"
    for run in ("01", "02", "03"):
        log = (system / f"run_{run}/mlperf.log").read_text()
        assert "Unknown system" not in log
        assert "system SUT: DGXNGPU=4 DGXNSOCKET=2 DGXSOCKETCORES=14 DGXHT=2" in log
        assert (
            f"bind_launch: 4 processes on 2 sockets x 14 cores, master port {4242 + int(run)}"
            in log
        )
        assert "dataset writable: False" in log and "prepared data writable: False" in log
        assert "RESULT,RNN_TRANSLATOR," in log
        meta = json.loads((system / f"run_{run}/run.json").read_text())
        argv = meta["docker_argv"]
        for flag, value in (
            ("--network", "host"),
            ("--ipc", "host"),
            ("--workdir", "/workspace/rnn_translator"),
            ("--security-opt", "seccomp=unconfined"),
        ):
            assert argv[argv.index(flag) + 1] == value
        assert f"memlock={MEMLOCK}" in argv and "stack=67108864" in argv and "--gpus" not in argv
        extra = "--fused-attention --fused-xentropy --no-log-all-ranks"
        assert f"EXTRA_OPTS={extra} --seed {meta['seed']}" in argv
        assert "DGXSYSTEM=SUT" in argv and "SLURM_NTASKS_PER_NODE=4" in argv
        result = json.loads((system / f"run_{run}/result.json").read_text())
        assert result["converged"] is True and result["time_to_train_s"] > 0
        assert result["result_line_wall_s"] is not None
        # what train.py wrote below its working folder is in the run folder, the caller's
        written = system / f"run_{run}/gnmt_wmt16/log_rank_0.log"
        assert written.read_text() == f"uid {os.getuid()} gid {os.getgid()}\n"
    assert owned_by_caller(system) == []
    summary = pd.read_csv(wf / "results/gnmt-v0.6/summary.csv")
    assert bool(summary.loc[0, "valid"]) and summary.loc[0, "n_converged"] == 3
    assert leftover_containers("mlperf-gnmt-v0.6-SUT-") == []
