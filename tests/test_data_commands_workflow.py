"""The implementation's data commands (config dataset.commands) through snakemake with a real
Docker engine: NVIDIA's RetinaNet v5.1 stand-in (tests/test_implementations_workflow.py), whose
DATADIR and BACKBONE_DIR are made by a shell command each, run in the built image with the
folder mounted writable where NVIDIA's README mounts its data; a failing command leaves nothing
taken as done, and once it succeeds the folders are linked, counted and two runs pass.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import yaml

from scripts.data import mountcheck
from tests.conftest import jobs_run, need_docker, snakemake
from tests.test_implementations_workflow import (
    RETINANET,
    RETINANET_DATA,
    RETINANET_RESULTS,
    overlay,
    results_of,
    site,
    standin_folder,
)

BENCH = "retinanet-v5.1"
# where NVIDIA's README mounts its data folder (docker run -v <data>:/workspace/ssd_dataset)
MOUNTS = {
    "DATADIR": "/workspace/ssd_dataset/open-images-v6",
    "BACKBONE_DIR": "/workspace/ssd_dataset/torch-home",
}


def writes(mount: str, files: dict[str, int]) -> str:
    """A shell command that makes ``files`` (relative path: size) under ``mount``, from the
    implementation's workdir (its run_and_time.sh is there)."""
    steps = ["test -f run_and_time.sh"]
    for rel, size in files.items():
        path = shlex.quote(f"{mount}/{rel}")
        steps.append(f"mkdir -p $(dirname {path}) && head -c {size} /dev/zero > {path}")
    return " && ".join(steps)


def test_data_commands_make_the_data_folders_in_the_image(
    workflow_copy: Path, tmp_path: Path
) -> None:
    base = need_docker()
    wf = workflow_copy
    folder = standin_folder(tmp_path, RETINANET, RETINANET_RESULTS, "train.py", "/workspace/ssd")
    made = overlay(wf, folder, "config_GB200_002x04x032.sh", "retinanet.yaml")
    # the overlay read the same folders and mounts from NVIDIA's README (its commands download
    # 350 GB: the stand-in's below write small files where they would)
    assert {c["folder"]: c["mount"] for c in made["benchmarks"][BENCH]["dataset"]["commands"]} == (
        MOUNTS
    )
    # expected-mounts.csv of the data the commands make (mountcheck counts files and bytes)
    local = tmp_path / "expected"
    for name, files in RETINANET_DATA.items():
        for rel, size in files.items():
            (local / name / rel).parent.mkdir(parents=True, exist_ok=True)
            (local / name / rel).write_bytes(b"\0" * size)
    keys = {"OPEN_IMAGES_V6_DIR": local / "DATADIR", "BACKBONE_DIR": local / "BACKBONE_DIR"}
    mountcheck.write_expected(mountcheck.describe(keys), folder / "expected-mounts.csv")
    site(wf, BENCH, base, {}, "docker")
    data = yaml.safe_load((wf / "site.yaml").read_text())
    commands = [
        {"folder": n, "command": writes(MOUNTS[n], RETINANET_DATA[n]), "mount": MOUNTS[n]}
        | {"network": "none"}
        for n in ("DATADIR", "BACKBONE_DIR")
    ]
    good = commands[0]["command"]
    commands[0]["command"] = f"{good} && echo half-way && exit 3"  # fails after writing
    data["benchmarks"][BENCH]["dataset"] = {"commands": commands}
    data["benchmarks"][BENCH]["runs"] = 2
    (wf / "site.yaml").write_text(yaml.safe_dump(data))
    args = ["--cores", "2", "--configfile", "config/benchmarks/mlperf-v5.1.yaml"]
    args += ["retinanet.yaml", "site.yaml"]
    target = f"results/{BENCH}/summary.csv"
    made = wf / "data" / BENCH / "made"

    failed = snakemake(wf, target, *args, timeout=600)
    assert failed.returncode != 0
    log = (wf / f"logs/run_data_command/{BENCH}/DATADIR.log").read_text()
    assert "half-way" in log and "exited with status 3" in log, log[-2000:]
    assert "in the image of system SUT" in log
    assert not (made / "DATADIR").exists()  # nothing taken as done
    assert (made / "DATADIR.partial/train/data/0001.jpg").stat().st_size == 1000  # kept
    assert not (wf / "data" / BENCH / "manifest.json").exists()
    assert not list((wf / "results" / BENCH / "SUT").glob("run_*/result.json"))

    commands[0]["command"] = good
    (wf / "site.yaml").write_text(yaml.safe_dump(data))
    done = snakemake(wf, target, *args, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    jobs = [j.split()[0] for j in jobs_run(done.stderr)]
    assert jobs.count("run_data_command") <= 2 and jobs.count("train_run") == 2, jobs
    assert not (made / "DATADIR.partial").exists()
    assert (made / "BACKBONE_DIR/hub/checkpoints/resnext50_32x4d-7cdf4587.pth").is_file()
    manifest = json.loads((wf / "data" / BENCH / "manifest.json").read_text())
    counted = {f["name"]: f["num_files"] for f in manifest["folders"]}
    assert counted == {"DATADIR": 6, "BACKBONE_DIR": 1}
    assert (wf / "data" / BENCH / "dataset" / "DATADIR").resolve() == (made / "DATADIR").resolve()
    results = results_of(wf, BENCH)
    assert len(results) == 2
    for result in results:
        assert result["compliance"] == "pass", result["compliance_detail"]
