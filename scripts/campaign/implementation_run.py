"""How one run of a published implementation starts and sees its data, for its overlay: the
command's last words, one task per GPU or one in all, the variables the launcher adds, the
working folder, and the data mounts with the keys of expected-mounts.csv.

The mounts come from the launcher as it runs (:func:`scripts.campaign.implementation_launch.
dry_launch`: ``--container-mounts`` of the srun that starts ``run_and_time.sh``, or ``docker
run --volume``), else from ``config_mounts.sh`` alone. A mount's host side is a variable the
user sets (``DATADIR``, ``MODEL``, ``BACKBONE_DIR``), maybe with a folder under it (AMD's
``${DATADIR}/data``); in the overlay it is a folder of the dataset folder of that name
(``path: DATADIR``, ``path: DATADIR/data``). Its key is the one mountcheck verifies at the
same container path (``mounts_to_verify``), else the variable's name where expected-mounts.csv
has that key; a mount left over is paired with a key left over by the folder's name, or when
one of each is left (retinanet's run.sub verifies ``OPEN_IMAGES_V6_DIR`` at
``/workspace/ssd_dataset/open-images-v6`` while config_mounts.sh mounts ``DATADIR`` at
``/datasets/open-images-v6``, where run_and_time.sh reads it): the overlay mounts the data
where the run reads it, and a note says where the files disagree.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from scripts.campaign.implementation_launch import (
    Launch,
    LaunchError,
    dry_launch,
    host_variable,
    launcher_script,
    read_mounts,
)
from scripts.mlperf.config_sh import ConfigScriptError

RUN_MOUNT = "/results"  # the schema's default run_mount
LOG_VARIABLE = "LOGDIR"
RUN_COMMAND = "./run_and_time.sh"


@dataclass
class RunFacts:
    """What the overlay's implementation says about one run (see the module's docstring)."""

    launcher: str  # a line for the overlay's head
    command: list[str]
    launch: str  # once or per_gpu
    script: str = "the launcher"  # run.sub or run_with_docker.sh, where it ran
    seeded: bool = False
    env: dict[str, str] = field(default_factory=dict)
    workdir: str | None = None
    run_mount: str = RUN_MOUNT
    data: list[dict[str, str]] = field(default_factory=list)
    # (key, container path) that the launcher's mountcheck verifies (mounts_to_verify)
    verify: list[tuple[str, str]] = field(default_factory=list)


def run_facts(
    impl: Path,
    config: str,
    exports: Mapping[str, str],
    keys: Sequence[str],
    missing: list[str],
    notes: list[str],
) -> RunFacts:
    """The RunFacts of the folder with ``config`` (whose exports are ``exports``); what it
    cannot find goes to ``missing``, where its files disagree to ``notes``."""
    found = launcher_script(impl)
    launch = None
    mounts: list[tuple[str, str]] = []
    verify: list[tuple[str, str]] = []
    root = Path("/nonexistent")
    if found is None:
        missing.append("run.sub or run_with_docker.sh (how a run starts)")
    else:
        try:
            launch, _, root = dry_launch(impl, config, keys, exports)
            mounts, verify = launch.mounts, launch.verify
        except (LaunchError, OSError) as exc:
            notes.append(f"{found[0]} could not be run with stand-ins: {exc}")
    if launch is None:
        mounts, verify, root = _config_mounts(impl, exports, keys, missing, notes)
    facts = _facts(impl, launch, found, exports, notes)
    facts.run_mount = _run_mount(mounts, root, launch is not None, notes)
    facts.data = _data_mounts(mounts, verify, keys, root, facts.script, notes)
    facts.verify = list(verify)
    if not facts.data:
        missing.append("data mounts")
    return facts


def _config_mounts(
    impl: Path,
    exports: Mapping[str, str],
    keys: Sequence[str],
    missing: list[str],
    notes: list[str],
) -> tuple[list[tuple[str, str]], list[tuple[str, str]], Path]:
    if not (impl / "config_mounts.sh").is_file():
        missing.append("config_mounts.sh (the data mounts)")
        return [], [], Path("/nonexistent")
    try:
        return read_mounts(impl, exports, keys)
    except (ConfigScriptError, ValueError, OSError) as exc:
        notes.append(f"config_mounts.sh could not be read: {exc}")
        return [], [], Path("/nonexistent")


def _facts(
    impl: Path,
    launch: Launch | None,
    found: tuple[str, str] | None,
    exports: Mapping[str, str],
    notes: list[str],
) -> RunFacts:
    """Command, launch mode, seed, environment and working folder."""
    if launch is None:
        pyxis = found is not None and found[1] == "pyxis"
        command = [RUN_COMMAND] if pyxis or found is None else ["bash", RUN_COMMAND]
        what = f"{found[1]} ({found[0]}, not run)" if found else "none found"
        if pyxis:
            notes.append("launch per_gpu is assumed: NVIDIA's run.sub starts a task per GPU")
        return RunFacts(what, command, "per_gpu" if pyxis else "once")
    gpus = exports.get("DGXNGPU", "")
    tasks = launch.tasks_per_node
    per_gpu = launch.launcher == "pyxis" and tasks is not None and (tasks > 1 or str(tasks) == gpus)
    if per_gpu:
        how = f"as {tasks} task(s) per node, one per GPU"
    elif launch.launcher == "pyxis":
        how = f"as {tasks or 1} task per node"
    else:
        how = f"once per run ({launch.launcher} exec)"
    line = (
        f"{launch.launcher} ({launch.script} starts {' '.join(launch.command)} {how}; read by "
        "running it with stand-ins for srun, docker, sudo)"
    )
    return RunFacts(
        line,
        launch.command,
        "per_gpu" if per_gpu else "once",
        script=launch.script,
        seeded=launch.seeded,
        env=dict(launch.env),
        workdir=launch.workdir,
    )


def _run_mount(
    mounts: Sequence[tuple[str, str]], root: Path, launched: bool, notes: list[str]
) -> str:
    """The container path of the LOGDIR mount (the run's folder)."""
    for host, container in mounts:
        if host_variable(host, root) == LOG_VARIABLE:
            return container
    if launched:
        notes.append(f"the launcher mounts no {LOG_VARIABLE}: the run's folder is at {RUN_MOUNT}")
    return RUN_MOUNT


def _key_name(path: str) -> str:
    key = re.sub(r"[^A-Za-z0-9_]", "_", path)
    return key if re.match(r"[A-Za-z_]", key) else f"_{key}"


def _data_mounts(
    mounts: Sequence[tuple[str, str]],
    verify: Sequence[tuple[str, str]],
    keys: Sequence[str],
    root: Path,
    script: str,
    notes: list[str],
) -> list[dict[str, str]]:
    """The data_mounts entries ({key, path, mount}) of the launcher's mounts."""
    data: list[tuple[str, str]] = []  # (variable path, container path)
    for host, container in mounts:
        var = host_variable(host, root)
        if var == LOG_VARIABLE:
            continue
        if var is None:
            notes.append(
                f"the mount {host or '(empty)'}:{container} is not from a host folder the "
                "overlay knows (DATADIR, MODEL, BACKBONE_DIR, expected-mounts.csv's keys): left out"
            )
            continue
        data.append((var, container))
    verified = dict((path, key) for key, path in verify)
    chosen: dict[int, str] = {}
    for i, (var, container) in enumerate(data):
        if container in verified:
            chosen[i] = verified[container]
        elif var in keys:
            chosen[i] = var
    _pair_left_over(data, verify, keys, chosen, script, notes)
    out = []
    for i, (var, container) in enumerate(data):
        out.append({"key": chosen.get(i) or _key_name(var), "path": var, "mount": container})
    used = {e["key"] for e in out}
    unmounted = [k for k in keys if k not in used]
    if unmounted:
        notes.append(
            f"expected-mounts.csv has key(s) {', '.join(unmounted)} that no data mount "
            "has: not checked"
        )
    return out


def _pair_left_over(
    data: Sequence[tuple[str, str]],
    verify: Sequence[tuple[str, str]],
    keys: Sequence[str],
    chosen: dict[int, str],
    script: str,
    notes: list[str],
) -> None:
    """Keys for the mounts that have none: a verified key left over whose path ends like the
    mount's, else the only key left over for the only mount left."""
    left = [i for i in range(len(data)) if i not in chosen]
    where = dict(verify)
    spare = [k for k, _ in verify if k not in chosen.values()]
    spare += [k for k in keys if k not in chosen.values() and k not in spare]
    for i in left:
        var, container = data[i]
        same_name = [
            k
            for k in spare
            if posixpath.basename(where.get(k, "")) == posixpath.basename(container)
        ]
        if len(same_name) == 1 or (len(left) == 1 and len(spare) == 1):
            key = (same_name or spare)[0]
            chosen[i] = key
            spare.remove(key)
            if key in where:
                notes.append(
                    f"{script} verifies {key} at {where[key]}, but mounts {var} at "
                    f"{container} (config_mounts.sh), where the run reads it: the overlay "
                    f"mounts it at {container}, checked as {key}"
                )
