"""The implementation's data commands (config dataset.commands): the config's checks, the
container's command line, and the partial folder renamed only on success
(scripts/run/backends/data_commands.py). Through snakemake and docker:
tests/test_data_commands_workflow.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.data.folders import dataset_folders, made_folder
from scripts.data.sources import check_dataset
from scripts.run.backends.data_commands import (
    command_options,
    data_argv,
    make_folder,
    partial_folder,
)
from scripts.run.backends.docker import BACKEND as DOCKER
from scripts.run.backends.errors import BackendError
from scripts.run.backends.podman import BACKEND as PODMAN

COMMAND = {"folder": "DATADIR", "command": "./download.sh -d /d", "mount": "/d"}
RUN_OPTIONS = {
    "workdir": "/workspace/ssd",
    "dataset_mount": "/data",
    "run_mount": "/results",
    "network": "none",
    "gpus": "auto",
    "gpu_count": 8,
    "shm_size": "1g",
    "data_mounts": [{"key": "K", "path": "DATADIR", "mount": "/datasets/x"}],
    "expected_mounts": "expected-mounts.csv",
    "launch": "per_gpu",
    "prepared_mount": None,
}


def test_a_dataset_gives_exactly_one_of_files_folders_and_commands() -> None:
    assert check_dataset({"commands": [COMMAND]}) == []
    both = check_dataset({"commands": [COMMAND], "folders": {"DATADIR": "/x"}})
    assert len(both) == 1 and "given: folders, commands" in both[0]
    twice = check_dataset({"commands": [COMMAND, COMMAND]})
    assert twice == ["dataset.commands: folder DATADIR is made twice"]
    assert check_dataset({"commands": [COMMAND], "mirror": "/m"}) == [
        "dataset.mirror: a dataset of folders has none (it is not fetched)"
    ]


def test_the_made_folders_are_a_dataset_of_folders() -> None:
    assert made_folder("data/", "b", "DATADIR") == "data/b/made/DATADIR"
    assert dataset_folders({"commands": [COMMAND]}, "data", "b") == {
        "DATADIR": "data/b/made/DATADIR"
    }
    assert dataset_folders({"folders": {"X": "/x"}}, "data", "b") == {"X": "/x"}
    assert dataset_folders({"files": []}, "data", "b") == {}


def test_options_mount_the_folder_writable_without_gpus_or_the_runs_data() -> None:
    options = command_options(RUN_OPTIONS, COMMAND)
    assert options["prepared_mount"] == "/d" and options["network"] == "default"
    assert options["gpus"] == "none" and "data_mounts" not in options
    assert "expected_mounts" not in options and "launch" not in options
    argv = data_argv(DOCKER, options, "sha256:abc", "n", COMMAND["command"], Path("/tmp/p"))
    mounts = [argv[i + 1] for i, w in enumerate(argv) if w == "--mount"]
    assert mounts == ["type=bind,source=/tmp/p,target=/d"]  # writable, and nothing else
    assert "--network" not in argv  # the engine's default network
    assert "--gpus" not in argv and "--privileged" not in argv
    assert argv[argv.index("--workdir") + 1] == "/workspace/ssd"
    assert argv[argv.index("--shm-size") + 1] == "1g"
    assert argv[-4:] == ["sha256:abc", "/bin/bash", "-c", "./download.sh -d /d"]
    offline = command_options(RUN_OPTIONS, {**COMMAND, "network": "none"})
    argv = data_argv(PODMAN, offline, "sha256:abc", "n", "true", Path("/tmp/p"))
    assert argv[argv.index("--network") + 1] == "none" and "--device" not in argv


def test_a_folder_is_renamed_only_when_its_command_succeeds(tmp_path: Path) -> None:
    output = tmp_path / "made" / "DATADIR"

    def fail(folder: Path) -> int:
        (folder / "half").write_text("x")
        return 3

    assert make_folder(output, fail) == 3
    assert not output.exists() and (partial_folder(output) / "half").is_file()

    def succeed(folder: Path) -> int:
        assert (folder / "half").is_file()  # the failed attempt's files, to resume from
        (folder / "all").write_text("x")
        return 0

    assert make_folder(output, succeed) == 0
    assert sorted(p.name for p in output.iterdir()) == ["all", "half"]
    assert not partial_folder(output).exists()
    with pytest.raises(BackendError, match="exists already"):
        make_folder(output, succeed)
