"""scripts/run/pyxis.py: the srun and enroot command lines of a run on Slurm with Pyxis,
checked against NVIDIA's own v5.1 run.sub and config_mounts.sh (Pyxis and enroot do not run
here). run.sub is read with shlex; config_mounts.sh, which is shell logic, is run by bash."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from functools import cache
from pathlib import Path

import pytest

from scripts.run import pyxis
from tests.conftest import published

IMPLEMENTATIONS = {
    "retinanet": "retinanet/implementations/tyche_ngpu8_ngc25.04_pytorch",
    "llama2_70b_lora": "llama2_70b_lora/implementations/nemo",
}
COMMAND = ["slurm2pytorch", "./run_and_time.sh"]  # run.sub's, after its options


def implementation(impl: str) -> Path:
    root = published() / "mlperf-v5.1-implementations" / "NVIDIA" / "benchmarks"
    return root / IMPLEMENTATIONS[impl]


@cache
def logical_lines(path: Path) -> tuple[str, ...]:
    """The file's lines with backslash continuations joined, as the shell reads them."""
    return tuple(path.read_text().replace("\\\n", " ").splitlines())


def pyxis_defaults(path: Path) -> tuple[str, ...]:
    """run.sub's ``PYXIS_DEFAULTS=( ... )`` array."""
    for line in logical_lines(path):
        found = re.fullmatch(r"\s*PYXIS_DEFAULTS=\((.*)\)\s*", line)
        if found:
            return tuple(shlex.split(found.group(1)))
    raise AssertionError(f"{path}: no PYXIS_DEFAULTS array")


def run_step(path: Path) -> list[str]:
    """The words of run.sub's per-run step: the srun that runs ./run_and_time.sh."""
    steps = [
        shlex.split(line, comments=True)
        for line in logical_lines(path)
        if line.lstrip().startswith("srun ") and "./run_and_time.sh" in line
    ]
    assert len(steps) == 1, f"{path}: {len(steps)} sruns of ./run_and_time.sh"
    return steps[0]


def default_of(path: Path, name: str) -> str:
    """The default run.sub gives a variable: ``: "${NAME:=default}"``."""
    text = path.read_text()
    found = re.search(r':\s+"\$\{' + re.escape(name) + r':=([^}]*)\}"', text)
    assert found, f"{path}: no default for {name}"
    return found.group(1)


def expand(words: list[str], values: dict[str, str], arrays: dict[str, tuple[str, ...]]):
    """The words after the shell's expansion of ``${NAME}``, ``${NAME:-default}`` and
    ``${ARRAY[@]}`` (a whole word) with these values; any other expansion is an error."""
    out: list[str] = []
    for word in words:
        array = re.fullmatch(r"\$\{(\w+)\[@\]\}", word)
        if array:
            out += arrays[array.group(1)]
            continue

        def value(found: re.Match[str]) -> str:
            name, default = found.group(1), found.group(3)
            return values[name] if name in values else default

        out.append(re.sub(r"\$\{(\w+)(:-([^}]*))?\}", value, word))
        assert "$" not in out[-1], f"unexpanded: {word}"
    return out


def config_mounts(impl: str, env: dict[str, str], cwd: Path) -> str:
    """``_cont_mounts`` as the implementation's config_mounts.sh makes it, run by bash."""
    script = implementation(impl) / "config_mounts.sh"
    result = subprocess.run(
        ["bash", "-c", 'set -e; source "$1"; printf %s "$_cont_mounts"', "bash", str(script)],
        env={"PATH": os.environ["PATH"], **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


def mounts_of(impl: str, tmp_path: Path) -> tuple[list[pyxis.Mount], dict[str, str]]:
    """The mounts of a run of ``impl``, and the variables config_mounts.sh makes the same
    ones from."""
    logs = tmp_path / "results"
    if impl == "retinanet":
        env = {"DATADIR": "/data/open-images", "LOGDIR": str(logs), "BACKBONE_DIR": "/torch"}
        mounts: list[pyxis.Mount] = [
            ("/data/open-images", "/datasets/open-images-v6"),
            (logs, "/results"),
            ("/torch", "/root/.cache/torch"),
        ]
    else:
        env = {"DATADIR": "/data/gov-report", "MODEL": "/ckpt/llama2-70b", "LOGDIR": str(logs)}
        mounts = [
            ("/data/gov-report", "/data", "ro"),
            ("/ckpt/llama2-70b", "/ckpt", "ro"),
            (logs, "/results", "rw"),
        ]
    return mounts, env


# ---------------------------------------------------------------------------------------------
# against run.sub


@pytest.mark.parametrize("impl", sorted(IMPLEMENTATIONS))
def test_pyxis_defaults_are_run_sub_s(impl: str) -> None:
    assert pyxis.PYXIS_DEFAULTS == pyxis_defaults(implementation(impl) / "run.sub")


@pytest.mark.parametrize("impl", sorted(IMPLEMENTATIONS))
def test_the_mounts_are_written_as_config_mounts_sh_writes_them(impl: str, tmp_path: Path) -> None:
    mounts, env = mounts_of(impl, tmp_path)
    assert pyxis.container_mounts(mounts) == config_mounts(impl, env, tmp_path)


@pytest.mark.parametrize("impl", sorted(IMPLEMENTATIONS))
def test_the_run_step_is_run_sub_s_with_the_image_and_the_nodes(impl: str, tmp_path: Path) -> None:
    run_sub = implementation(impl) / "run.sub"
    theirs = run_step(run_sub)
    mounts, env = mounts_of(impl, tmp_path)
    values = {
        "DGXNGPU": "8",
        "WALLTIME_RUNANDTIME": "30",
        "_cont_name": f"{impl}_4242",
        "_cont_mounts": config_mounts(impl, env, tmp_path),
        "WORK_DIR": default_of(run_sub, "WORK_DIR"),
    }  # SLURM_MPI_TYPE unset: run.sub's default (pmix)
    expected = expand(theirs, values, {"PYXIS_DEFAULTS": pyxis_defaults(run_sub)})
    mpi = next((w.split("=", 1)[1] for w in expected if w.startswith("--mpi=")), None)
    assert (impl, mpi) in (("retinanet", None), ("llama2_70b_lora", "pmix"))
    ours = pyxis.srun_argv(
        ntasks_per_node=8,
        nodes=2,
        image="/images/mlperf.sqsh",
        name=f"{impl}_4242",
        mounts=mounts,
        workdir=values["WORK_DIR"],
        time_min=30,
        mpi=mpi,
        command=COMMAND,
    )
    # what run.sub does not have: the image (its first step gave it to the named container)
    # and the node count (its step takes the whole allocation)
    added = ["--container-image=/images/mlperf.sqsh", "--nodes=2"]
    assert [w for w in ours if w not in added] == expected
    assert all(w in ours for w in added)
    assert expected[-2:] == COMMAND  # the same command words
    assert "--ntasks-per-node=8" in expected  # one task per GPU: DGXNGPU's role


def test_without_a_name_a_time_or_mpi_the_step_has_none() -> None:
    argv = pyxis.srun_argv(
        ntasks_per_node=4,
        nodes=1,
        image="./mlperf.sqsh",
        name=None,
        mounts=[("./data", "/data", "ro")],
        workdir="/workspace",
        command=["./run_and_time.sh"],
    )
    assert argv == [
        "srun",
        "-l",
        "--ntasks-per-node=4",
        "--nodes=1",
        "--container-image=./mlperf.sqsh",
        *pyxis.PYXIS_DEFAULTS,
        "--container-mounts=./data:/data:ro",
        "--container-workdir=/workspace",
        "--container-env=MASTER_PORT,MASTER_ADDR",
        "./run_and_time.sh",
    ]


# ---------------------------------------------------------------------------------------------
# enroot


def test_enroot_imports_the_local_engine_s_image_to_a_squashfs_file() -> None:
    assert pyxis.enroot_import_argv("mlperf/retinanet:v5.1", Path("/images/r.sqsh")) == [
        "enroot",
        "import",
        "--output",
        "/images/r.sqsh",
        "dockerd://mlperf/retinanet:v5.1",
    ]
    argv = pyxis.enroot_import_argv("sha256:0123abcd", "./r.sqsh", engine="podman")
    assert argv[-1] == "podman://sha256:0123abcd"  # an image id is a reference too


@pytest.mark.parametrize(
    ("tag", "path", "engine", "message"),
    [
        ("repo@sha256:0123", "/i/r.sqsh", "docker", "not a reference enroot's dockerd://"),
        ("repo tag", "/i/r.sqsh", "docker", "not a reference enroot's dockerd://"),
        ("", "/i/r.sqsh", "docker", "not a reference"),
        ("repo:tag", "images/r.sqsh", "docker", "must be a path that starts with / or ./"),
        ("repo:tag", "/i/r.sqsh", "singularity", "engine 'singularity' has no enroot scheme"),
    ],
)
def test_enroot_import_refuses_what_enroot_cannot_take(
    tag: str, path: str, engine: str, message: str
) -> None:
    with pytest.raises(pyxis.PyxisError, match=re.escape(message)) as refused:
        pyxis.enroot_import_argv(tag, path, engine=engine)
    assert "\n" not in str(refused.value)


# ---------------------------------------------------------------------------------------------
# what Pyxis cannot express


def _step(**change: object) -> list[str]:
    arguments: dict[str, object] = {
        "ntasks_per_node": 8,
        "nodes": 1,
        "image": "/images/r.sqsh",
        "name": "retinanet_1",
        "mounts": [("/data", "/datasets")],
        "workdir": "/workspace/ssd",
        "time_min": 30,
        "command": COMMAND,
    }
    arguments.update(change)
    return pyxis.srun_argv(**arguments)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"mounts": [("/data/a,b", "/data")]}, "'/data/a,b' holds a comma, a colon or white"),
        ({"mounts": [("/data", "/data:x")]}, "target: '/data:x' holds a comma, a colon"),
        ({"mounts": [("/my data", "/data")]}, "'/my data' holds a comma, a colon or white"),
        ({"mounts": [("data", "/data")]}, "'data' must be a path that starts with / or ./"),
        ({"mounts": [("/data", "/data", "rprivate")]}, "flags 'rprivate' of /data"),
        ({"mounts": [("/data",)]}, "is not (host, container[, flags])"),
        ({"mounts": []}, "--container-mounts: no mount given"),
        ({"image": "images/r.sqsh"}, "would be taken for a Docker image to import"),
        ({"name": "retinanet:1"}, "--container-name: 'retinanet:1'"),
        ({"workdir": "workspace"}, "--container-workdir: 'workspace' must be an absolute path"),
        ({"env_names": ["MASTER_PORT,X"]}, "--container-env: 'MASTER_PORT,X'"),
        ({"env_names": []}, "--container-env: no variable named"),
        ({"ntasks_per_node": 0}, "ntasks_per_node 0 must be a whole number of at least 1"),
        ({"time_min": 0}, "time_min 0 must be a whole number"),
        ({"mpi": "pmix v4"}, "srun --mpi: 'pmix v4' is not one plain word"),
        ({"command": []}, "the command [] must be non-empty words"),
    ],
)
def test_a_value_pyxis_cannot_express_is_refused_in_one_line(
    change: dict[str, object], message: str
) -> None:
    with pytest.raises(pyxis.PyxisError, match=re.escape(message)) as refused:
        _step(**change)
    assert "\n" not in str(refused.value)
