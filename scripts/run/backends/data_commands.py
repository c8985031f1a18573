"""The implementation's data commands (config ``dataset.commands``), run once per data folder in
the benchmark's image.

Today's MLPerf implementations make their data with their own scripts, run inside their image
(NVIDIA's RetinaNet README: ``docker run ... -v <data>:/workspace/ssd_dataset <image>``, then
``./public-scripts/download_openimages_mlperf.sh -d /workspace/ssd_dataset/open-images-v6``;
AMD's ``scripts/prepare_data_and_model.sh``). Rule ``run_data_command`` (rules/dataset.smk) runs
one such command with ``docker run`` (or podman's) as the existing one-time ``prepare`` step
does (:meth:`ContainerEngine.run_argv`): the image of the campaign's first system that runs the
benchmark and has one (named in the log), ``<data_dir>/<benchmark>/made/FOLDER.partial``
mounted writable at the command's ``mount``, the implementation's workdir, the caller's
uid:gid, the command's network, no GPUs and no dataset (it makes it). Its output streams to
the rule's log. Only when it exits 0 is ``FOLDER.partial`` renamed ``FOLDER``: a failed
command leaves nothing Snakemake or the dataset rule could take as done. The partial folder is
kept and mounted again by the next attempt, so a download that resumes (``wget -c``, fiftyone's
zoo) does not start over, as the dataset script's ``.partial`` folder is kept
(scripts/data/sources.py: run_script). Then rule link_dataset_folders treats ``made/FOLDER``
exactly as a ``dataset.folders`` entry (scripts/data/folders.py).
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from scripts.data import datalock
from scripts.run import backends
from scripts.run.backends.engine import ContainerEngine
from scripts.run.backends.errors import BackendError
from scripts.run.backends.stamp import read_stamp

PARTIAL = ".partial"
# run keys that say how a training run sees the data, which a data command makes instead
RUN_ONLY_KEYS = ("data_mounts", "expected_mounts", "launch", "prepared_mount")


def command_options(run_options: Mapping[str, Any], command: Mapping[str, Any]) -> dict[str, Any]:
    """The container options of one data command: the system's run options (workdir, limits)
    with the command's writable mount and network, and no GPUs (a download needs none)."""
    options = {k: v for k, v in run_options.items() if k not in RUN_ONLY_KEYS}
    options.update(
        prepared_mount=command["mount"],
        network=command.get("network") or "default",
        gpus="none",
        gpu_count=0,
    )
    return options


def partial_folder(output: Path) -> Path:
    """Where a command writes until it succeeds: ``FOLDER.partial`` beside ``FOLDER``."""
    return output.with_name(output.name + PARTIAL)


def make_folder(output: Path, fill: Callable[[Path], int]) -> int:
    """Have ``fill`` write into ``output``'s partial folder (kept from a failed attempt) and
    rename it ``output`` only when it returns 0; return its status."""
    if output.exists() or output.is_symlink():
        raise BackendError(
            f"{output} exists already: move it away to make it again with its data command"
        )
    partial = partial_folder(output)
    if partial.exists():
        print(f"data command: {partial} is kept from a failed attempt; writing into it", flush=True)
    partial.mkdir(parents=True, exist_ok=True)
    rc = fill(partial)
    if rc == 0:
        partial.rename(output)
    return rc


def data_argv(
    engine: ContainerEngine, options: Mapping[str, Any], image: str, name: str, command: str,
    folder: Path,
) -> list[str]:  # fmt: skip
    """The exact ``<engine> run`` command line of one data command writing into ``folder``."""
    return engine.run_argv(
        options,
        image=image,
        name=name,
        command=command,
        env={},
        dataset_dir=None,
        run_dir=None,
        prepared_dir=folder,
        prepared_writable=True,
    )


def run_command(args: argparse.Namespace) -> int:
    """Run one data command (``args`` as :func:`main` parses them); its status."""
    engine = backends.get(args.engine)
    if not isinstance(engine, ContainerEngine):
        raise BackendError(f"--engine {args.engine}: not a container engine (docker, podman)")
    record = read_stamp(args.stamp)
    options = json.loads(args.options)
    print(
        f"data command: folder {args.output.name} of {args.benchmark}, in the image of system "
        f"{args.system} ({record.get('tag')}, {record['image_id']}, {args.stamp}), mounted "
        f"writable at {options['prepared_mount']}, network {options['network']}",
        flush=True,
    )

    def fill(folder: Path) -> int:
        argv = data_argv(engine, options, record["image_id"], args.name, args.command, folder)
        print(f"data command: {shlex.join(argv)}", flush=True)
        engine.remove_container(args.name)
        try:
            return subprocess.call(argv, stdin=subprocess.DEVNULL)
        finally:
            engine.remove_container(args.name)

    return make_folder(args.output, fill)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m scripts.run.backends.data_commands",
        description="run one of the implementation's data commands in its image, making one "
        "data folder (rule run_data_command)",
    )
    p.add_argument("--engine", required=True, help="docker or podman: the engine of the image")
    p.add_argument("--options", required=True, help="the container options as JSON")
    p.add_argument("--stamp", type=Path, required=True, help="the image's image.json")
    p.add_argument("--command", required=True, help="the bash command run in the image")
    p.add_argument("--output", type=Path, required=True, help="the folder to make")
    p.add_argument("--name", required=True, help="the container's name")
    p.add_argument("--benchmark", required=True, help="named in the log")
    p.add_argument("--system", required=True, help="whose image it is, named in the log")
    p.add_argument("--lock", type=Path, help="the dataset's lock (scripts/data/datalock.py)")
    p.add_argument("--lock-wait-s", type=float, default=datalock.DEFAULT_WAIT_S)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    what = f"running its data command for {args.output.name}"
    try:
        with datalock.held_for_command(args.lock, what, args.lock_wait_s or None, say):
            rc = run_command(args)
    except (BackendError, datalock.DataLocked, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if rc != 0:
        partial = partial_folder(args.output)
        print(
            f"error: the data command of {args.output.name} exited with status {rc}; its "
            f"output is above; what it wrote is kept in {partial} for the next attempt",
            file=sys.stderr,
        )
        return 1
    print(f"data command: made {args.output}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
