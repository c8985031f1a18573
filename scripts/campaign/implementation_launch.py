"""How a published implementation launches a run, learnt by running its own launcher with
stand-ins: what ``run.sub`` (Slurm + Pyxis) or ``run_with_docker.sh`` would start.

NVIDIA's MLPerf Training v5.x folders launch with ``run.sub``: it sources ``config_mounts.sh``
(``_cont_mounts``, and ``mounts_to_verify`` of nemo), has ``python3 -m mlperf_common.mountcheck
--mounts_to_verify KEY:/path ...`` check the data when ``VERIFY_MOUNTS=1``, and starts each run
as ``srun --ntasks-per-node=${DGXNGPU} --container-mounts=... --container-workdir=${WORK_DIR}
slurm2pytorch ./run_and_time.sh``. AMD's folders use ``run_with_docker.sh``: ``docker run
--volume=${DATADIR}/data:/data ...`` then ``docker exec --env=... --env=SEED=$RANDOM NAME bash
./run_and_time.sh`` per run. These are programs, so they are read by running them (never by
matching their text): :func:`dry_launch` runs the launcher in a copy of the folder, with
``bash --noprofile --norc`` in a clean environment, after sourcing the chosen config as a user
does, and with ``srun``, ``docker``, ``sudo``, ``sleep`` and the other commands that would reach
a cluster, a container, root or the clock replaced by stand-ins that record their arguments and
environment and do nothing. Each host folder the launcher reads (``DATADIR``, ``LOGDIR``, ...)
is given a marker path under the scratch folder, so a mount ``<marker>/DATADIR/data:/data``
says which variable, and which folder under it, the container sees at ``/data``.

:func:`read_mounts` is the fallback without a launcher (or one that fails): ``config_mounts.sh``
sourced alone (:func:`scripts.mlperf.config_sh.read_vars`).
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from scripts.mlperf.config_read import kill_session
from scripts.mlperf.config_sh import CLEAN_PATH, SHELL_OWN, ConfigScriptError, read_vars

LAUNCHERS = (("run.sub", "pyxis"), ("run_with_docker.sh", "docker"))
# commands that would reach a cluster, a container engine, root or the clock
STAND_INS = (
    "srun sbatch salloc scontrol squeue scancel enroot docker podman nvidia-smi rocm-smi "
    "sudo sleep mpirun modprobe cpupower"
).split()
# what the launcher is given, beyond the config's exports and the host folders' markers: one
# run (NEXP=1), no cache drop or NCCL test or compliance check, mounts verified, no Slurm job
LAUNCH_ENV = {
    "NEXP": "1",
    "CLEAR_CACHES": "0",
    "DROPCACHE_CMD": "true",
    "VERIFY_MOUNTS": "1",
    "NCCL_TEST": "0",
    "CHECK_COMPLIANCE": "0",
    "DATESTAMP": "000000000000000000000",
    "CONT": "mlperf-implementation-image",
    "SLURM_JOB_ID": "",
    "SLURM_JOB_NODELIST": "node0",
    "SLURM_JOB_NUM_NODES": "1",
}
HOST_VARIABLES = ("DATADIR", "LOGDIR", "MODEL", "BACKBONE_DIR")  # what the READMEs set
# variables a launcher exports that are the launch's own, not the run's: the rank launcher
# (scripts/run/rank_launcher.py) gives MASTER_ADDR and MASTER_PORT
NOT_RUN_ENV = frozenset({"MASTER_ADDR", "MASTER_PORT", "RUNSUB_DIR", "SEED"})
UNBOUND = re.compile(r"([A-Za-z_][A-Za-z0-9_]*): unbound variable")
MAX_UNBOUND_ROUNDS = 8
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
RUN_SCRIPT = "run_and_time.sh"
MAX_COPIED_BYTES = 1 << 20  # the largest file of the folder copied for the dry launch


class LaunchError(RuntimeError):
    """The launcher could not be run with stand-ins, or started no run."""


@dataclass
class Launch:
    """What one run gets from the launcher: mounts (host path, container path), the mounts it
    verifies (key, container path), tasks per node, working folder, the command's last words
    (``./run_and_time.sh`` or ``bash ./run_and_time.sh``), and the environment it adds."""

    launcher: str  # pyxis, docker or podman
    script: str  # run.sub or run_with_docker.sh
    mounts: list[tuple[str, str]] = field(default_factory=list)
    verify: list[tuple[str, str]] = field(default_factory=list)
    tasks_per_node: int | None = None
    workdir: str | None = None
    command: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    seeded: bool = False


def launcher_script(impl: Path) -> tuple[str, str] | None:
    """(file, launcher) of the folder's launch script: run.sub (pyxis) first."""
    for name, launcher in LAUNCHERS:
        if (impl / name).is_file():
            return name, launcher
    return None


def markers(root: Path, names: Iterable[str]) -> dict[str, str]:
    """Each host variable's marker: a path under ``root`` named after it."""
    return {n: str(root / n) for n in names if NAME.match(n)}


def host_variable(path: str, root: Path) -> str | None:
    """``VAR`` or ``VAR/sub`` for a path under the markers' ``root``; None for another path."""
    prefix = str(root) + "/"
    if not path.startswith(prefix):
        return None
    return path[len(prefix) :].rstrip("/") or None


def _stand_in(bash: str) -> str:
    # one file per call: calls in the background must not interleave
    return (
        f"#!{bash}\n"
        'f=$(mktemp "$MLPERF_LAUNCH_RECORDS/call.XXXXXXXX") || exit 0\n'
        '{ printf \'%s\\0\' "${0##*/}" "$#" "$@"; env -0; } > "$f"\n'
        "exit 0\n"
    )


def _copy_folder(impl: Path, dest: Path) -> Path:
    """The implementation copied (links kept as links), so what the launcher writes beside
    itself stays in the scratch folder; without .git and files over MAX_COPIED_BYTES (model
    code and scripts are small; a checkpoint or data left in the folder is not copied)."""

    def skipped(folder: str, names: list[str]) -> list[str]:
        out = []
        for name in names:
            try:
                st = os.lstat(os.path.join(folder, name))
            except OSError:
                continue
            if name == ".git" or (stat.S_ISREG(st.st_mode) and st.st_size > MAX_COPIED_BYTES):
                out.append(name)
        return out

    shutil.copytree(impl, dest, symlinks=True, ignore=skipped)
    return dest


def _run(
    argv: Sequence[str], cwd: Path, env: Mapping[str, str], out: Path, timeout_s: float
) -> int:
    with open(out, "wb") as fh:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise LaunchError(f"still running after {timeout_s:g} s, stopped") from None
        finally:
            kill_session(proc)  # nothing it started outlives it
    return proc.returncode


def _records(folder: Path) -> list[tuple[str, list[str], dict[str, str]]]:
    """(command, argv, environment) of each stand-in call."""
    calls = []
    for path in sorted(folder.glob("call.*")):
        parts = path.read_bytes().decode("utf-8", "surrogateescape").split("\0")
        if len(parts) < 2 or not parts[1].isdigit():
            continue
        n = int(parts[1])
        args, rest = parts[2 : 2 + n], parts[2 + n :]
        env = dict(e.partition("=")[::2] for e in rest if "=" in e)
        calls.append((parts[0], args, env))
    return calls


def _stand_ins(folder: Path, bash: str) -> Path:
    """A folder of the stand-ins, put first in the launcher's PATH."""
    folder.mkdir()
    for name in STAND_INS:
        (folder / name).write_text(_stand_in(bash))
        (folder / name).chmod(0o755)
    return folder


def dry_launch(
    impl: Path,
    config: str,
    host_names: Iterable[str],
    baseline: Mapping[str, str],
    *,
    timeout_s: float = 60.0,
) -> tuple[Launch, dict[str, str], Path]:
    """Run the folder's launcher with stand-ins after ``source ./<config>``; return what its
    run would get, the host variables' markers it was given, and the markers' root (inside a
    scratch folder removed on return: compare paths with :func:`host_variable` only).
    A variable the launcher needs and was not given (bash: ``NAME: unbound variable``) gets a
    marker and the launcher runs again. ``baseline``: the config's exports (the run gets them
    from the generated config, not from the launcher). LaunchError says why it started no run."""
    found = launcher_script(impl)
    if found is None:
        raise LaunchError(f"{impl}: no run.sub or run_with_docker.sh")
    script, launcher = found
    bash = shutil.which("bash", path=CLEAN_PATH)
    if bash is None:
        raise LaunchError(f"no bash in {CLEAN_PATH}")
    names = list(dict.fromkeys([*HOST_VARIABLES, *host_names]))
    with tempfile.TemporaryDirectory(prefix="mlperf-launch-") as tmp:
        scratch = Path(tmp)
        root = scratch / "host"
        folder = _copy_folder(impl, scratch / "impl")
        stand_ins = _stand_ins(scratch / "bin", bash)
        for attempt in range(MAX_UNBOUND_ROUNDS):
            records = scratch / f"records{attempt}"
            records.mkdir()
            given = markers(root, names)
            env = {
                **LAUNCH_ENV,
                **given,
                "PATH": f"{stand_ins}:{CLEAN_PATH}",
                "HOME": str(scratch / "home"),
                "MLPERF_LAUNCH_RECORDS": str(records),
            }
            source = f"source ./{_quote(config)} >/dev/null || exit; exec bash ./{script}"
            log = scratch / f"launch{attempt}.log"
            rc = _run([bash, "--noprofile", "--norc", "-c", source], folder, env, log, timeout_s)
            output = log.read_bytes().decode("utf-8", "replace")
            calls = _records(records)
            own = _Given(env, baseline, (str(scratch), LAUNCH_ENV["DATESTAMP"], LAUNCH_ENV["CONT"]))
            launch = _read_calls(calls, launcher, script, own)
            if launch is not None:
                return launch, given, root
            missing = [n for n in UNBOUND.findall(output) if n not in names]
            if not missing:
                last = [ln for ln in output.splitlines() if ln.strip()][-1:] or ["(no output)"]
                raise LaunchError(
                    f"{script} started no {RUN_SCRIPT} (exit status {rc}); last line: "
                    f"{last[0].strip()[:300]}"
                )
            names += missing
    raise LaunchError(f"{script} still needs more variables after {MAX_UNBOUND_ROUNDS} tries")


def _quote(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9._+-]+", name):
        raise LaunchError(f"config {name!r} is not a plain file name")
    return name


@dataclass(frozen=True)
class _Given:
    """What the dry launch gave the launcher: its environment, the config's exports, and the
    strings (scratch path, date stamp, image) a value made from them holds."""

    env: Mapping[str, str]
    baseline: Mapping[str, str]
    made_of: tuple[str, ...]

    def run_env(self, env: Mapping[str, str]) -> dict[str, str]:
        """The variables the launcher adds to a run's environment that are the run's own:
        not given, not the config's, not Slurm's or the shell's, not made of what the dry
        launch gave (SPREFIX holds the date stamp), not MASTER_ADDR/PORT (the rank
        launcher's), not SEED (the workflow's {seed})."""
        return {
            k: v
            for k, v in sorted(env.items())
            if NAME.match(k)
            and k not in self.env
            and self.baseline.get(k) != v
            and k not in SHELL_OWN
            and k not in NOT_RUN_ENV
            and not k.startswith("SLURM_")
            and v
            and not any(part in v for part in self.made_of)
        }


def _read_calls(
    calls: list[tuple[str, list[str], dict[str, str]]],
    launcher: str,
    script: str,
    given: _Given,
) -> Launch | None:
    """The Launch of the recorded calls, None when none started run_and_time.sh."""
    launch = Launch(launcher=launcher, script=script)
    run = None
    for command, args, env in calls:
        if command == "srun" and "mlperf_common.mountcheck" in args:
            launch.verify = _verify_pairs(_option_values(args, "--mounts_to_verify"))
        if command in ("srun", "docker", "podman") and _run_script_at(args) is not None:
            run = (command, args, env)
        if command in ("docker", "podman") and args[:1] == ["run"]:
            launch.mounts = _engine_mounts(args)
            launch.launcher = command
    if run is None:
        return None
    command, args, env = run
    at = _run_script_at(args)
    assert at is not None
    start = at - 1 if at > 0 and args[at - 1] in ("bash", "sh") else at
    launch.command = args[start:]
    if command == "srun":  # pyxis: the task's environment is srun's
        tasks = _option(args, "--ntasks-per-node")
        launch.tasks_per_node = int(tasks) if tasks and tasks.isdigit() else None
        launch.workdir = _option(args, "--container-workdir")
        mounts = _option(args, "--container-mounts") or ""
        launch.mounts = [_split_mount(m) for m in mounts.split(",") if m]
        run_env = dict(env)
    else:  # docker exec: the variables it names
        run_env = _exec_env(args[:start], env)
        launch.workdir = _option(args[:start], "--workdir", "-w")
    launch.seeded = "SEED" in run_env
    launch.env = given.run_env(run_env)
    return launch


def _run_script_at(args: Sequence[str]) -> int | None:
    for i, word in enumerate(args):
        if word == RUN_SCRIPT or word.endswith("/" + RUN_SCRIPT):
            return i
    return None


def _option(args: Sequence[str], *names: str) -> str | None:
    """The value of the last ``--name=value`` or ``--name value`` among ``args``."""
    value = None
    for i, word in enumerate(args):
        for name in names:
            if word.startswith(name + "="):
                value = word[len(name) + 1 :]
            elif word == name and i + 1 < len(args):
                value = args[i + 1]
    return value


def _option_values(args: Sequence[str], name: str) -> list[str]:
    """The words after ``name`` up to the next option (argparse's nargs='+')."""
    if name not in args:
        return []
    out = []
    for word in args[args.index(name) + 1 :]:
        if word.startswith("--"):
            break
        out.append(word)
    return out


def _verify_pairs(words: Iterable[str]) -> list[tuple[str, str]]:
    """mountcheck's ``KEY:/container/path`` words as (key, path)."""
    pairs = []
    for word in words:
        key, sep, path = word.partition(":")
        if sep and key and path:
            pairs.append((key, path))
    return pairs


def _split_mount(spec: str) -> tuple[str, str]:
    """``src:dst[:flags]`` (pyxis, docker -v) as (src, dst)."""
    parts = spec.split(":")
    return parts[0], parts[1] if len(parts) > 1 else parts[0]


def _engine_mounts(args: Sequence[str]) -> list[tuple[str, str]]:
    """The bind mounts of a ``docker run`` / ``podman run``: -v, --volume and --mount."""
    mounts = []
    for i, word in enumerate(args):
        value = None
        if word.startswith("--volume="):
            value = word[len("--volume=") :]
        elif word in ("-v", "--volume") and i + 1 < len(args):
            value = args[i + 1]
        elif word.startswith("--mount=") or (word == "--mount" and i + 1 < len(args)):
            fields = dict(
                f.partition("=")[::2]
                for f in (word[len("--mount=") :] if "=" in word else args[i + 1]).split(",")
            )
            src, dst = (
                fields.get("source") or fields.get("src"),
                fields.get("target") or fields.get("dst"),
            )
            if src and dst:
                mounts.append((src, dst))
        if value:
            mounts.append(_split_mount(value))
    return mounts


def _exec_env(options: Sequence[str], env: Mapping[str, str]) -> dict[str, str]:
    """The variables a ``docker exec`` / ``podman exec`` sets: --env/-e NAME=VALUE, or NAME
    (taken from the caller's environment)."""
    out = {}
    for i, word in enumerate(options):
        item = None
        if word.startswith("--env="):
            item = word[len("--env=") :]
        elif word in ("-e", "--env") and i + 1 < len(options):
            item = options[i + 1]
        if item:
            name, sep, value = item.partition("=")
            out[name] = value if sep else env.get(name, "")
    return out


def read_mounts(
    impl: Path, env: Mapping[str, str], host_names: Iterable[str]
) -> tuple[list[tuple[str, str]], list[tuple[str, str]], Path]:
    """Without a launcher that runs: the mounts and verified mounts of ``config_mounts.sh``
    sourced alone (in a copy of the folder, with ``env`` and a marker per host variable);
    ConfigScriptError when it fails. Returns (mounts, verify, the markers' root: gone on
    return, for :func:`host_variable`)."""
    names = list(dict.fromkeys([*HOST_VARIABLES, *host_names]))
    with tempfile.TemporaryDirectory(prefix="mlperf-mounts-") as tmp:
        root = Path(tmp) / "host"
        folder = _copy_folder(impl, Path(tmp) / "impl")
        found = read_vars(
            folder / "config_mounts.sh",
            ["_cont_mounts", "mounts_to_verify"],
            env={**env, **LAUNCH_ENV, **markers(root, names), "HOME": str(Path(tmp) / "home")},
        )
    mounts = [_split_mount(m) for m in found.get("_cont_mounts", "").split(",") if m]
    return mounts, _verify_pairs(found.get("mounts_to_verify", "").split()), root


__all__ = ["ConfigScriptError", "Launch", "LaunchError", "dry_launch", "read_mounts"]
