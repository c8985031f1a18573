"""The command lines of a run on Slurm with Pyxis and enroot, as NVIDIA's ``run.sub`` has them.

NVIDIA's MLPerf Training v5.x ``run.sub`` (e.g. mlcommons/training_results_v5.1,
NVIDIA/benchmarks/retinanet/implementations/tyche_ngpu8_ngc25.04_pytorch/run.sub and
NVIDIA/benchmarks/llama2_70b_lora/implementations/nemo/run.sub) runs the benchmark inside its
Slurm job with one step of one task per GPU::

    srun -l [--mpi=pmix] --ntasks-per-node="${DGXNGPU}" --time="${WALLTIME_RUNANDTIME}" \\
        --container-name="${_cont_name}" "${PYXIS_DEFAULTS[@]}" \\
        --container-mounts="${_cont_mounts}" --container-workdir="${WORK_DIR}" \\
        --container-env=MASTER_PORT,MASTER_ADDR slurm2pytorch ./run_and_time.sh

after a first step that made the named container from ``--container-image="${CONT}"``.
:func:`srun_argv` is that step with the image given on the step itself (a squashfs file that
:func:`enroot_import_argv` made from the local engine's image), and ``--nodes`` (the run's
nodes, which run.sub leaves to the allocation). Only command lines are made here: Pyxis and
enroot cannot run on the machines that test this, so tests/test_pyxis.py checks them against
run.sub's own lines.

What Pyxis and enroot accept, from their sources (NVIDIA/pyxis args.c and
pyxis_slurmstepd.c, NVIDIA/enroot src/docker.sh):

- ``--container-mounts=SRC:DST[:FLAGS][,SRC:DST...]``: entries split at every ``,``, then at
  every ``:``; flags joined with ``+``; a source or target that starts with neither ``.`` nor
  ``/`` is refused; each entry then becomes an fstab line (``src dst flags``) for enroot. A
  path holding ``,``, ``:`` or white space cannot be said, and is refused here
  (:class:`PyxisError`) rather than mounted as something else.
- ``--container-image``: a value that starts with ``.`` or ``/`` is a squashfs file; anything
  else is a Docker image reference to import (so a relative path must start with ``./``).
- ``--container-name=NAME[:FLAGS]``: a container of that name that exists already is used and
  the import is skipped, so a name must not outlive its image (run.sub uses
  ``${MODEL_NAME}_${SLURM_JOB_ID}`` and removes every container at the start and end of the
  job); without a name, Pyxis makes a container for the step and removes it after.
- ``enroot import --output FILE dockerd://IMAGE[:TAG]`` (``podman://`` for podman): the
  reference must match ``[[:alnum:]/._:-]+`` (no digest ``@sha256:``; an image id
  ``sha256:...`` is fine), and enroot refuses an output file that exists already.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import PurePath

# run.sub: "Make sure we are using the same pyxis/enroot arguments no matter how the system
# defaults have been set"
PYXIS_DEFAULTS = ("--no-container-mount-home", "--container-remap-root", "--container-writable")
# run.sub's --container-env: the rendezvous variables, from the host over the image's
RENDEZVOUS_ENV = ("MASTER_PORT", "MASTER_ADDR")
# the enroot URI scheme of a local engine's image store
ENROOT_SCHEMES = {"docker": "dockerd", "podman": "podman"}
# enroot's docker::daemon::import: ^[[:alpha:]]+://([[:alnum:]/._:-]+)$
_ENROOT_REFERENCE = re.compile(r"[A-Za-z0-9/._:-]+")
MOUNT_FLAGS = ("ro", "rw")  # the flags run.sub's config_mounts.sh use
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_UNSAYABLE = re.compile(r"[,:\s]")  # Pyxis splits at , and :, enroot's fstab at white space

Mount = tuple[str | PurePath, str | PurePath] | tuple[str | PurePath, str | PurePath, str]


class PyxisError(ValueError):
    """A value that Pyxis or enroot cannot take as given; the message names it and why."""


def enroot_import_argv(
    image_tag: str, sqsh_path: str | PurePath, engine: str = "docker"
) -> list[str]:
    """``enroot import --output SQSH dockerd://TAG``: the local engine's image ``image_tag`` as a
    squashfs file that ``--container-image`` can take. enroot refuses an existing output file:
    the caller writes a new name and renames it, or removes the old file first."""
    scheme = ENROOT_SCHEMES.get(engine)
    if scheme is None:
        known = ", ".join(sorted(ENROOT_SCHEMES))
        raise PyxisError(f"enroot import: engine {engine!r} has no enroot scheme (known: {known})")
    if not _ENROOT_REFERENCE.fullmatch(image_tag):
        raise PyxisError(
            f"enroot import: image {image_tag!r} is not a reference enroot's {scheme}:// takes "
            "(letters, digits and / . _ : - only; use a tag or an image id, not a digest)"
        )
    output = _path("enroot import --output", sqsh_path)
    return ["enroot", "import", "--output", output, f"{scheme}://{image_tag}"]


def container_mounts(mounts: Sequence[Mount]) -> str:
    """``--container-mounts``' value: ``SRC:DST[:FLAGS]``, comma separated, as run.sub's
    ``_cont_mounts``."""
    entries = []
    for mount in mounts:
        if len(mount) not in (2, 3):
            raise PyxisError(f"--container-mounts: {mount!r} is not (host, container[, flags])")
        host = _path("--container-mounts source", mount[0])
        target = _path("--container-mounts target", mount[1])
        entry = f"{host}:{target}"
        if len(mount) == 3:
            flags = mount[2]
            if flags not in MOUNT_FLAGS:
                raise PyxisError(
                    f"--container-mounts: flags {flags!r} of {host} are not one of "
                    f"{', '.join(MOUNT_FLAGS)}"
                )
            entry += f":{flags}"
        entries.append(entry)
    if not entries:
        raise PyxisError("--container-mounts: no mount given")
    return ",".join(entries)


def srun_argv(
    *,
    ntasks_per_node: int,
    nodes: int,
    image: str | PurePath,
    name: str | None,
    mounts: Sequence[Mount],
    workdir: str | PurePath,
    env_names: Sequence[str] = RENDEZVOUS_ENV,
    time_min: int | None = None,
    mpi: str | None = None,
    command: Sequence[str],
) -> list[str]:
    """The run's step as run.sub's: ``ntasks_per_node`` tasks (one per GPU, run.sub's
    ``${DGXNGPU}``) on each of ``nodes`` nodes, in a container of the squashfs file ``image``
    (named ``name``, or one Pyxis makes for the step when None), with run.sub's
    PYXIS_DEFAULTS, ``mounts``, ``workdir``, the host's values of ``env_names``, a time limit
    of ``time_min`` minutes (run.sub's ``${WALLTIME_RUNANDTIME}``), ``--mpi`` where the
    implementation's run.sub has it (Llama 2 70B LoRA: ``pmix``), running ``command``."""
    argv = ["srun", "-l"]
    if mpi is not None:
        argv.append(f"--mpi={_word('--mpi', mpi)}")
    argv.append(f"--ntasks-per-node={_count('ntasks_per_node', ntasks_per_node)}")
    argv.append(f"--nodes={_count('nodes', nodes)}")
    if time_min is not None:
        argv.append(f"--time={_count('time_min', time_min)}")
    argv.append(f"--container-image={_image(image)}")
    if name is not None:
        argv.append(f"--container-name={_name(name)}")
    argv += PYXIS_DEFAULTS
    argv.append(f"--container-mounts={container_mounts(mounts)}")
    argv.append(f"--container-workdir={_path('--container-workdir', workdir, absolute=True)}")
    argv.append(f"--container-env={_env_names(env_names)}")
    if not command or not all(isinstance(word, str) and word for word in command):
        raise PyxisError(f"srun: the command {list(command)!r} must be non-empty words")
    return argv + list(command)


def _path(what: str, value: str | PurePath, *, absolute: bool = False) -> str:
    """A path as Pyxis takes it: starting with / or . (absolute: with /), without , : or
    white space."""
    text = str(value)
    if not text.startswith("/") and (absolute or not text.startswith(".")):
        needs = "an absolute path" if absolute else "a path that starts with / or ./"
        raise PyxisError(f"{what}: {text!r} must be {needs}")
    if _UNSAYABLE.search(text):
        raise PyxisError(
            f"{what}: {text!r} holds a comma, a colon or white space, which Pyxis's "
            "SRC:DST[:FLAGS],... cannot express; use a path without them (e.g. a symlink)"
        )
    return text


def _image(image: str | PurePath) -> str:
    text = str(image)
    if not text.startswith(("/", ".")):
        raise PyxisError(
            f"--container-image: {text!r} would be taken for a Docker image to import; give "
            "the squashfs file as an absolute path or one that starts with ./"
        )
    if "," in text:  # srun passes the value as given, but keep it one plain word
        raise PyxisError(f"--container-image: {text!r} holds a comma")
    return text


def _name(name: str) -> str:
    if not name or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise PyxisError(
            f"--container-name: {name!r} must be letters, digits and _ . - (a ':' would be "
            "read as Pyxis's name flags)"
        )
    return name


def _env_names(names: Sequence[str]) -> str:
    if not names:
        raise PyxisError("--container-env: no variable named")
    for name in names:
        if not _ENV_NAME.fullmatch(name):
            raise PyxisError(f"--container-env: {name!r} is not a variable name")
    return ",".join(names)


def _count(what: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PyxisError(f"srun: {what} {value!r} must be a whole number of at least 1")
    return value


def _word(what: str, value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", value):
        raise PyxisError(f"srun {what}: {value!r} is not one plain word")
    return value
