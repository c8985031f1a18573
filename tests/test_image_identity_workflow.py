"""What identifies an image, end to end through snakemake (docs/containers.md, "What identifies
an image"): campaigns made by the workflow before images were identified by their content
digests (commit ef74108, main before the package move), on the local backend and in docker, are
picked up by this workflow with no run redone, no image rebuilt and every file under results/
keeping its bytes; and a docker campaign goes on, with nothing redone, after its trainer's code
moved to another host folder and was tidied, but stops, naming the file, at a real change.

The docker campaigns use the fake trainer (tests/fake_trainer.py) in a small image: the CI base
image with the trainer and mlperf-logging's stdlib-only ``mllog`` copied in (no wheels)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import mlperf_logging
import pytest
import yaml

from tests.conftest import (
    copy_workflow,
    fake_campaign,
    jobs_run,
    need_docker,
    snakemake,
    snapshot,
)
from tests.test_formats_workflow import (
    new_code_in,
    old_workflow,
    picked_up_by_the_new_code,
    trainer_starts,
)

pytestmark = pytest.mark.workflow

TARGET = "results/fake/summary.csv"
# main before the package move: the last workflow that identified images by their files' bytes
BEFORE_CONTENT_DIGESTS = "ef74108"
SYSTEM = "docker-fake"
STAMP = f"results/fake/{SYSTEM}/image.json"
DOCKERFILE = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
WORKDIR /workspace
COPY mlperf_logging /workspace/mlperf_logging
COPY fake_trainer.py /workspace/fake_trainer.py
ENV HOME=/tmp PYTHONDONTWRITEBYTECODE=1
"""


def docker_fake_campaign(wf: Path, base: str, context: list[object] | None = None) -> Path:
    """The fake benchmark (2 runs) on a docker system only; returns the overlay. The trainer
    and mlperf-logging's ``mllog`` (stdlib only) are copied into the workflow folder and into
    the image (``context``: the container section's, by default at the same paths)."""
    overlay = fake_campaign(wf, runs=2)
    package = Path(mlperf_logging.__file__).parent
    (wf / "mlperf_logging/mllog").mkdir(parents=True)
    shutil.copy2(package / "__init__.py", wf / "mlperf_logging/__init__.py")
    for name in ("__init__.py", "constants.py", "mllog.py"):
        shutil.copy2(package / "mllog" / name, wf / "mlperf_logging/mllog" / name)
    (wf / "fake.Dockerfile").write_text(DOCKERFILE)
    config = yaml.safe_load(overlay.read_text())
    config["campaign"].update(systems=[SYSTEM], reference_system=SYSTEM)
    config["benchmarks"]["fake"]["implementation"]["container"] = {
        "dockerfile": "fake.Dockerfile",
        "context": context or ["fake_trainer.py", "mlperf_logging"],
        "build_args": {"BASE_IMAGE": base},
        "workdir": "/workspace",
    }
    config["systems"] = {
        SYSTEM: {
            "description": "the fake trainer in a container",
            "backend": "docker",
            "threads": 1,
            "gpus": 0,
            "container": {"gpus": "none"},
        }
    }
    overlay.write_text(yaml.safe_dump(config))
    return overlay


def nothing_redone(wf: Path, overlay: Path, before: dict[str, object]) -> None:
    """A snakemake invocation that runs no training and builds no image, and changes no file
    under results/."""
    again = snakemake(wf, TARGET, "--cores", "2", "--configfile", str(overlay))
    assert again.returncode == 0, again.stderr[-3000:]
    jobs = jobs_run(again.stdout + again.stderr)
    assert not [j for j in jobs if j.startswith(("train_run", "build_image", "fetch"))], jobs
    assert snapshot(wf) == before  # every file under results/: same bytes, same mtime


def status_sees_every_run_done(wf: Path, overlay: Path) -> None:
    status = subprocess.run(
        [sys.executable, "-m", "scripts", "status", "--configfile", str(overlay)],
        cwd=wf,
        capture_output=True,
        text=True,
    )
    assert status.returncode == 0, status.stderr
    assert "2 runs: 2 done" in status.stdout


def test_a_local_campaign_made_before_content_digests_is_picked_up_without_running_again(
    tmp_path: Path,
) -> None:
    wf = old_workflow(tmp_path / "wf", BEFORE_CONTENT_DIGESTS)
    overlay = str(fake_campaign(wf, runs=2, faults={"marker_dir": "markers"}))
    first = snakemake(wf, TARGET, "--cores", "2", "--configfile", overlay)
    assert first.returncode == 0, first.stderr[-3000:]
    assert (wf / "scripts/backends/image.py").exists()  # the tree before the package move
    before, starts = snapshot(wf), trainer_starts(wf)
    assert "results/fake/local/run_02/result.json" in before and starts == 2
    picked_up_by_the_new_code(wf, overlay, before, starts)


@pytest.mark.services
def test_a_docker_campaign_made_before_content_digests_is_picked_up_without_rebuilding(
    tmp_path: Path,
) -> None:
    base = need_docker()
    wf = old_workflow(tmp_path / "wf", BEFORE_CONTENT_DIGESTS)
    overlay = docker_fake_campaign(wf, base)
    first = snakemake(wf, TARGET, "--cores", "2", "--configfile", str(overlay))
    assert first.returncode == 0, first.stderr[-4000:]
    jobs = [j.split()[0] for j in jobs_run(first.stdout + first.stderr)]
    assert jobs.count("build_image") == 1 and jobs.count("train_run") == 2
    stamp = json.loads((wf / STAMP).read_text())
    assert "inputs_version" not in stamp["inputs"]  # identified by the files' bytes
    assert len(stamp["inputs"]["files"]["fake_trainer.py"]) == 64
    before = snapshot(wf)
    assert f"results/fake/{SYSTEM}/run_02/result.json" in before and TARGET in before

    new_code_in(wf)
    nothing_redone(wf, overlay, before)
    status_sees_every_run_done(wf, overlay)

    # its trainer's code moves to another host folder, at the same place in the image: the
    # image is the same, and still identified as it was built
    (wf / "trainer").mkdir()
    for name in ("fake_trainer.py", "mlperf_logging"):
        (wf / name).rename(wf / "trainer" / name)
    config = yaml.safe_load(overlay.read_text())
    config["benchmarks"]["fake"]["implementation"]["container"]["context"] = [
        {"from": "trainer/fake_trainer.py", "to": "fake_trainer.py"},
        {"from": "trainer/mlperf_logging", "to": "mlperf_logging"},
    ]
    overlay.write_text(yaml.safe_dump(config))
    nothing_redone(wf, overlay, before)


@pytest.mark.services
def test_a_docker_campaign_goes_on_after_its_trainer_moved_and_was_tidied_not_changed(
    tmp_path: Path,
) -> None:
    base = need_docker()
    wf = copy_workflow(tmp_path / "wf")
    overlay = docker_fake_campaign(wf, base)
    first = snakemake(wf, TARGET, "--cores", "2", "--configfile", str(overlay))
    assert first.returncode == 0, first.stderr[-4000:]
    stamp = json.loads((wf / STAMP).read_text())
    assert stamp["inputs"]["inputs_version"] == 2
    assert stamp["inputs"]["files"]["fake_trainer.py"].startswith("python-tokens:")
    meta = json.loads((wf / f"results/fake/{SYSTEM}/run_01/run.json").read_text())
    assert meta["comparability"]["container"]["image"] == stamp["inputs"]
    before = snapshot(wf)

    # moved: the code is in another host folder, at the same paths in the image
    (wf / "code").mkdir()
    for name in ("fake_trainer.py", "mlperf_logging"):
        (wf / name).rename(wf / "code" / name)
    config = yaml.safe_load(overlay.read_text())
    config["benchmarks"]["fake"]["implementation"]["container"]["context"] = [
        {"from": "code/fake_trainer.py", "to": "fake_trainer.py"},
        {"from": "code/mlperf_logging", "to": "mlperf_logging"},
    ]
    overlay.write_text(yaml.safe_dump(config))
    # tidied: comments, blank lines, a call wrapped over lines, trailing spaces
    trainer = wf / "code/fake_trainer.py"
    source = trainer.read_text()
    tidied = source.replace("\ndef ", "\n# tidied: a comment above each function\n\n\ndef ")
    tidied = tidied.replace(
        'p.add_argument("--seed", type=int, required=True)',
        'p.add_argument(  # wrapped\n        "--seed",\n        type=int,\n'
        "        required=True\n    )   ",
    )
    assert tidied.count("# tidied") > 3 and "# wrapped" in tidied
    trainer.write_text(tidied)
    nothing_redone(wf, overlay, before)

    # a real change in the code is another image: with finished runs, the workflow stops
    trainer.write_text(tidied.replace('"--seed",\n        type=int', '"--seed",\n        type=str'))
    assert trainer.read_text() != tidied
    third = snakemake(wf, TARGET, "--cores", "2", "--configfile", str(overlay))
    assert third.returncode != 0
    assert "finished runs would no longer be comparable" in third.stderr
    assert "container.image.files.fake_trainer.py" in third.stderr
    assert jobs_run(third.stdout + third.stderr) == [] and snapshot(wf) == before
