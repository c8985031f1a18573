"""The backend interface without an engine: the registry is the schema's list of backends, each
backend answers every question of the interface, podman's command lines differ from docker's
only where podman does, and a podman system's record is a docker system's with its name."""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

import pytest

from scripts.campaign import comparability, config_checks, run_specs
from scripts.core import config as cfg
from scripts.run import backends
from scripts.run.backends import container, docker, podman
from scripts.run.backends.base import Backend
from scripts.run.backends.image import image_spec
from scripts.run.spec import RunSpec
from tests.conftest import REPO


def podman_cpu_config(tmp_path: Path) -> dict[str, Any]:
    overlay = tmp_path / "ci.yaml"
    overlay.write_text(
        "campaign: {systems: [podman-cpu, docker-cpu]}\n"
        "systems:\n"
        "  podman-cpu: {container: {memory: 4g, cpus: 1.5, shm_size: 256m}}\n"
        "  docker-cpu: {container: {memory: 4g, cpus: 1.5, shm_size: 256m}}\n"
    )
    files = [REPO / "config/systems/podman-cpu.yaml", REPO / "config/systems/docker-cpu.yaml"]
    return config_checks.load_campaign([*files, overlay])


def test_the_registry_has_exactly_the_backends_the_schema_allows() -> None:
    schema = cfg.load_schema()
    assert set(backends.NAMES) == set(schema["$defs"]["system"]["properties"]["backend"]["enum"])
    trained = schema["$defs"]["benchmark"]["properties"]["implementation"]["properties"]
    assert set(trained["backends"]["items"]["enum"]) == {
        n for n in backends.NAMES if backends.get(n).trains
    }
    for name in backends.NAMES:
        assert backends.get(name).name == name


def test_every_backend_says_whether_its_runs_are_trained_or_imported() -> None:
    """The plan and the rules ask ``trains`` and ``imports``, never a backend's name."""
    for name in backends.NAMES:
        backend = backends.get(name)
        assert isinstance(backend.trains, bool) and isinstance(backend.imports, bool)
        assert backend.trains != backend.imports, name  # made here, or read from a folder
    assert [n for n in backends.NAMES if backends.get(n).imports] == ["import"]


def test_an_unknown_backend_is_named_with_the_known_ones() -> None:
    with pytest.raises(backends.BackendError, match=r"unknown backend 'slurm'; backends: local"):
        backends.get("slurm")


@pytest.mark.parametrize("name", backends.NAMES)
def test_every_backend_has_every_method_of_the_interface(name: str) -> None:
    backend = backends.get(name)
    for method, declared in inspect.getmembers(Backend, inspect.isfunction):
        if method.startswith("_"):
            continue
        ours = getattr(backend, method)
        assert callable(ours), method
        wanted = list(inspect.signature(declared).parameters)[1:]
        assert list(inspect.signature(ours).parameters) == wanted, method


def test_the_import_backend_never_trains() -> None:
    spec = RunSpec(
        benchmark="b",
        system="published",
        run=1,
        seed=1,
        command="true",
        env={},
        timeout_s=None,
        threads=1,
        scale="test",
        config_fingerprint="f",
        comparability={},
        backend="import",
    )
    with pytest.raises(backends.BackendError, match=r"published has backend import: its runs"):
        backends.get("import").check_run(spec, None, Path("results/b/published/run_01"))


@pytest.mark.parametrize(
    ("gpus", "count", "assigned", "flags"),
    [
        ("auto", 0, (), []),
        ("auto", 2, ("2", "3"), ["--device", "nvidia.com/gpu=2", "--device", "nvidia.com/gpu=3"]),
        ("auto", 4, (), ["--device", "nvidia.com/gpu=all"]),
        ("none", 4, ("0", "1", "2", "3"), []),
        ("all", 0, (), ["--device", "nvidia.com/gpu=all"]),
        (2, 4, (), ["--device", "nvidia.com/gpu=0", "--device", "nvidia.com/gpu=1"]),
        ([0, 3], 2, ("0", "1"), ["--device", "nvidia.com/gpu=0", "--device", "nvidia.com/gpu=3"]),
    ],
)
def test_podman_gets_its_gpus_as_cdi_devices(
    gpus: Any, count: int, assigned: tuple[str, ...], flags: list[str]
) -> None:
    assert podman.gpu_flags(gpus, count, assigned) == flags


def test_the_exact_podman_commands_of_the_embedded_benchmark(tmp_path: Path) -> None:
    """docker's command lines with podman's name (tests/test_docker_backend.py has docker's),
    and, for a caller who is not root, podman's user namespace that keeps the caller's uid."""
    config = podman_cpu_config(tmp_path)
    spec = image_spec(config, "gnmt", "podman-cpu", REPO, tmp_path)
    ctx = tmp_path / "ctx"
    argv = podman.build_argv(spec, ctx, tmp_path / "iid")
    as_docker = docker.build_argv(spec, ctx, tmp_path / "iid")
    assert argv == ["podman", *as_docker[1:]]
    assert "mlperf-gnmt:podman-cpu" in argv
    run = run_specs.run_spec(
        config,
        "gnmt",
        "podman-cpu",
        2,
        python="/venv/bin/python",
        dataset_dir=f"{tmp_path}/data/gnmt/dataset",
        run_dir=f"{tmp_path}/results/gnmt/podman-cpu/run_02",
    )
    assert run.backend == "podman" and run.command.startswith("python3 -m scripts.gnmt.train")
    common = {
        "image": "sha256:feed",
        "name": "c",
        "command": run.command,
        "env": container.container_env(run),
        "dataset_dir": Path(run.container["host_dataset_dir"]),
        "run_dir": Path(run.container["host_run_dir"]),
    }
    userns = [] if os.geteuid() == 0 else ["--userns", "keep-id"]
    assert podman.run_argv(run.container, **common) == [
        "podman",
        "run",
        "--rm",
        "--name",
        "c",
        "--label",
        "org.mlperf-workflow.container=c",
        "--init",
        "--network",
        "none",
        *userns,
        "--user",
        f"{os.getuid()}:{os.getgid()}",
        "--workdir",
        "/workspace",
        "--mount",
        f"type=bind,source={tmp_path}/data/gnmt/dataset,target=/data,readonly",
        "--mount",
        f"type=bind,source={tmp_path}/results/gnmt/podman-cpu/run_02,target=/results",
        "--shm-size",
        "256m",
        "--cpus",
        "1.5",
        "--memory",
        "4g",
        "--env",
        f"MLPERF_WORKFLOW_SEED={run.seed}",
        "sha256:feed",
        "/bin/bash",
        "-c",
        run.command,
    ]


def test_a_podman_systems_record_is_a_docker_systems_with_its_backend(tmp_path: Path) -> None:
    config = podman_cpu_config(tmp_path)
    ours = comparability.comparability(config, "gnmt", "podman-cpu")
    theirs = comparability.comparability(config, "gnmt", "docker-cpu")
    assert ours["system"].pop("backend") == "podman"
    assert theirs["system"].pop("backend") == "docker"
    assert ours["container"]["image"]["tag"] == "mlperf-gnmt:podman-cpu"
    for record in (ours, theirs):  # the tag names the system
        record["container"]["image"].pop("tag")
        record["container"].pop("image_inputs_sha256")
        record["container"]["run"].pop("tag")
    assert ours == theirs


def test_a_podman_system_needs_a_benchmark_with_a_container(tmp_path: Path) -> None:
    overlay = tmp_path / "nocont.yaml"
    overlay.write_text("benchmarks: {gnmt: {implementation: {container: null}}}")
    with pytest.raises(cfg.ConfigError, match=r"podman-cpu has backend 'podman' but "):
        config_checks.load_campaign([REPO / "config/systems/podman-cpu.yaml", overlay])


def test_container_backends_ask_for_their_image_and_local_for_nothing(tmp_path: Path) -> None:
    config = podman_cpu_config(tmp_path)
    for name in ("docker", "podman"):
        b = backends.get(name)
        assert b.run_inputs(config, "gnmt", "s") == {"image": "results/gnmt/s/image.json"}
        assert b.runner_args("gnmt", "s") == ["--image-stamp", "results/gnmt/s/image.json"]
        assert b.environment_args(config, "gnmt", "s") == [
            "--image-stamp",
            "results/gnmt/s/image.json",
            "--image-python",
            "python3",
        ]
        assert b.has_image() and b.module == f"scripts.run.backends.{name}"
    local = backends.get("local")
    assert local.run_inputs(config, "gnmt", "s") == {} and local.runner_args("gnmt", "s") == []
    assert local.environment_inputs("gnmt", "s") == {} and not local.has_image()


def test_a_local_run_has_its_system_s_threads_whatever_snakemake_set(monkeypatch) -> None:
    """Snakemake's job shell sets OMP_NUM_THREADS and the BLAS counts to the job's threads
    capped at --cores (1 with --cores 1): the run gets its system's threads, unless the
    system's env sets one."""
    from scripts.run.backends.local import THREAD_VARIABLES

    for name in THREAD_VARIABLES:
        monkeypatch.setenv(name, "1")  # as in `snakemake --cores 1`'s job shell
    spec = RunSpec(
        benchmark="b", system="s", run=1, seed=7, command="true", env={"MKL_NUM_THREADS": "3"},
        timeout_s=None, threads=2, scale="t", config_fingerprint="c", comparability={},
    )  # fmt: skip
    env = backends.get("local").launch(spec, spec.command, {}).env
    assert {n: env[n] for n in THREAD_VARIABLES} == {
        n: "3" if n == "MKL_NUM_THREADS" else "2" for n in THREAD_VARIABLES
    }
