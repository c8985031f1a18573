"""What a container run of today's implementations adds (scripts/run/backends/
implementation_runs.py and the container keys launch, data_mounts, expected_mounts): the
data folders mounted where the implementation reads them, one task per GPU through the rank
launcher, and the data checked against expected-mounts.csv before the container starts. The
end-to-end runs are tests/test_implementations_workflow.py."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from scripts.campaign import config_checks, run_specs
from scripts.data import mountcheck
from scripts.mlperf import config_sh
from scripts.run.backends import container, docker
from scripts.run.backends.errors import ContainerError
from scripts.run.backends.implementation_runs import (
    LAUNCHER,
    LAUNCHER_MOUNT,
    check_data_mounts,
    per_gpu_command,
)
from tests.conftest import REPO

MOUNTS = [
    {"key": "OPEN_IMAGES_V6_DIR", "path": "DATADIR", "mount": "/datasets/open-images-v6"},
    {"key": "BACKBONE_DIR", "path": "BACKBONE_DIR", "mount": "/root/.cache/torch"},
]


def docker_config(tmp_path: Path, **keys: object) -> dict:
    """The embedded benchmark on the docker-cpu system, with these implementation container
    keys."""
    import yaml

    overlay = tmp_path / "keys.yaml"
    overlay.write_text(
        yaml.safe_dump({"benchmarks": {"gnmt": {"implementation": {"container": keys}}}})
    )
    files = [REPO / "config/systems/docker-cpu.yaml", overlay]
    return config_checks.load_campaign(files)


def spec_of(config: dict, tmp_path: Path):
    return run_specs.run_spec(
        config,
        "gnmt",
        "docker-cpu",
        3,
        python="/venv/bin/python",
        dataset_dir=f"{tmp_path}/data/gnmt/dataset",
        run_dir=f"{tmp_path}/results/gnmt/docker-cpu/run_03",
    )


def test_a_campaign_without_the_new_keys_keeps_its_run_options_and_fingerprint(tmp_path):
    plain = docker_config(tmp_path)
    options = container.run_options(plain, "gnmt", "docker-cpu")
    assert not set(container.LATER_RUN_KEYS) & set(options)
    # the defaults, given, change nothing either
    same = docker_config(tmp_path, launch="once", data_mounts=[], expected_mounts=None)
    assert container.run_options(same, "gnmt", "docker-cpu") == options
    assert (
        run_specs.comparable_record(same, "gnmt", "docker-cpu")[1]
        == (run_specs.comparable_record(plain, "gnmt", "docker-cpu")[1])
    )
    new = docker_config(tmp_path, launch="per_gpu", data_mounts=MOUNTS)
    assert (
        run_specs.comparable_record(new, "gnmt", "docker-cpu")[1]
        != (run_specs.comparable_record(plain, "gnmt", "docker-cpu")[1])
    )


def test_the_data_folders_and_the_launcher_are_mounted_read_only(tmp_path):
    config = docker_config(
        tmp_path, launch="per_gpu", data_mounts=MOUNTS, expected_mounts="expected-mounts.csv"
    )
    spec = spec_of(config, tmp_path)
    assert spec.container["host_expected_mounts"] == (
        "build/gnmt/docker-cpu/context/expected-mounts.csv"
    )
    argv = docker.run_argv(
        spec.container,
        image="sha256:feed",
        name="c",
        command="true",
        env={},
        dataset_dir=Path(spec.container["host_dataset_dir"]),
        run_dir=Path(spec.container["host_run_dir"]),
        read_only=[(LAUNCHER, LAUNCHER_MOUNT)],
    )
    mounts = [argv[i + 1] for i, word in enumerate(argv) if word == "--mount"]
    data = f"{tmp_path}/data/gnmt/dataset"
    assert f"type=bind,source={data}/DATADIR,target=/datasets/open-images-v6,readonly" in mounts
    assert f"type=bind,source={data}/BACKBONE_DIR,target=/root/.cache/torch,readonly" in mounts
    assert f"type=bind,source={LAUNCHER},target={LAUNCHER_MOUNT},readonly" in mounts
    assert LAUNCHER.is_file()


def test_per_gpu_starts_the_command_once_per_gpu_through_the_rank_launcher(tmp_path):
    config = docker_config(tmp_path, launch="per_gpu")
    spec = spec_of(config, tmp_path)
    command = per_gpu_command(spec, "mlperf-x")
    # one DATESTAMP for every rank, as run.sub's, unless the run's env gives one
    export, launch = command.split("; exec ", 1)
    assert export == 'export DATESTAMP="${DATESTAMP:-$(date +%y%m%d%H%M%S%N)}"'
    words = shlex.split(launch)
    assert words[:2] == [spec.container["python"], LAUNCHER_MOUNT]
    assert words[words.index("--ntasks") + 1] == str(max(spec.gpus, 1))
    assert words[words.index("--rank-log-dir") + 1] == f"{spec.container['run_mount']}/ranks"
    assert words[words.index("--") + 1 :] == ["/bin/bash", "-c", spec.command]
    assert "--master-port" in words  # from MASTER_PORT in the container, else 29500


def test_a_data_folder_with_a_file_missing_is_refused_naming_the_key_and_the_counts(tmp_path):
    data = tmp_path / "dataset"
    for rel, size in (("DATADIR/train/a.jpg", 10), ("DATADIR/train/b.jpg", 20)):
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        (data / rel).write_bytes(b"x" * size)
    (data / "BACKBONE_DIR").mkdir()
    (data / "BACKBONE_DIR" / "w.pth").write_bytes(b"w" * 5)
    csv = tmp_path / "expected-mounts.csv"
    mounts = {"OPEN_IMAGES_V6_DIR": data / "DATADIR", "BACKBONE_DIR": data / "BACKBONE_DIR"}
    mountcheck.write_expected(mountcheck.describe(mounts), csv)
    opts = {"host_expected_mounts": str(csv), "host_dataset_dir": str(data), "data_mounts": MOUNTS}
    check_data_mounts(opts)  # as described: no problem
    (data / "DATADIR/train/b.jpg").unlink()
    with pytest.raises(ContainerError) as refused:
        check_data_mounts(opts)
    message = str(refused.value)
    assert str(csv) in message and "OPEN_IMAGES_V6_DIR: train" in message
    assert "2 files of 30 bytes expected, found 1 file of 10 bytes" in message
    # a key the run does not mount is not checked; an unreadable csv is one line
    check_data_mounts({**opts, "data_mounts": MOUNTS[1:]})
    csv.write_text("not,a,csv\n")
    with pytest.raises(ContainerError, match="cannot check the data mounts"):
        check_data_mounts(opts)


def test_the_docker_build_of_nvidias_own_dockerfile_is_the_one_its_readme_gives(tmp_path):
    """NVIDIA's Dockerfile needs NGC's CUDA base and compiles CUDA code, so it is not built
    here; the command the workflow would run is checked against the implementation's README
    (section 3.1: `docker build -t <registry>/mlperf-nvidia:single_stage_detector-pyt`, run in
    the implementation's folder): that folder as the context with its own Dockerfile and the
    Dockerfile's default base, plus the generated config_SUT.sh, under the workflow's tag."""
    import yaml

    from scripts.campaign.implementation import build_overlay
    from scripts.run.backends.image import image_spec, stage_context
    from tests.conftest import published

    impl = (
        published()
        / "mlperf-v5.1-implementations"
        / ("NVIDIA/benchmarks/retinanet/implementations/tyche_ngpu8_ngc25.04_pytorch")
    )
    readme = (impl / "README.md").read_text()
    assert "docker build -t <docker/registry>/mlperf-nvidia:single_stage_detector-pyt" in readme
    made, *_ = build_overlay(impl, "config_GB200_002x04x032.sh", "SUT")
    files = []
    for name, data in (
        ("overlay", made),
        (
            "system",
            {
                "systems": {
                    "SUT": {
                        "backend": "docker",
                        "gpus": 8,
                        "topology": {"sockets": 2, "cores_per_socket": 64, "threads_per_core": 2},
                    }
                }
            },
        ),
    ):
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data))
        files.append(path)
    config = config_checks.load_campaign([REPO / "config/benchmarks/mlperf-v5.1.yaml", *files])
    spec = image_spec(config, "retinanet-v5.1", "SUT", REPO, tmp_path)
    context = tmp_path / "context"
    argv = docker.build_argv(spec, context, tmp_path / "iid")
    assert argv[:2] == ["docker", "build"] and argv[-1] == str(context)
    assert argv[argv.index("--file") + 1] == str(context / "Dockerfile")
    assert argv[argv.index("--tag") + 1] == "mlperf-nvidia-retinanet:SUT"
    args = [argv[i + 1] for i, w in enumerate(argv) if w == "--build-arg"]
    default = "ARG FROM_IMAGE_NAME=nvcr.io/nvidia/pytorch:25.04-py3"
    assert default in (impl / "Dockerfile").read_text()
    assert args == ["FROM_IMAGE_NAME=nvcr.io/nvidia/pytorch:25.04-py3"]  # the default, named
    assert "--network" not in argv  # build_network default: apt-get and pip reach the network
    stage_context(spec, context)
    staged = {str(p.relative_to(context)) for p in context.rglob("*") if p.is_file()}
    own = {str(p.relative_to(impl)) for p in impl.rglob("*") if p.is_file()}
    assert staged == own | {"config_SUT.sh"}
    sut = config_sh.read_exported(context / "config_SUT.sh")
    assert (sut["DGXSYSTEM"], sut["DGXNNODES"], sut["DGXNGPU"]) == ("SUT", "1", "8")
    assert sut["BATCHSIZE"] == "32" and sut["LR"] == "0.000085"  # the base's, kept


def test_the_datestamp_is_run_subs_to_the_nanosecond():
    from scripts.run.backends.implementation_runs import datestamp

    stamp = datestamp(1_700_000_000_123_456_789)
    assert len(stamp) == 21 and stamp.endswith("123456789") and stamp.isdigit()
    shell = subprocess.run(
        ["date", "-d", "@1700000000", "+%y%m%d%H%M%S"], capture_output=True, text=True, check=True
    )
    assert stamp[:12] == shell.stdout.strip()
