"""NVIDIA-style ``config_<SYSTEM>.sh`` (MLPerf Training v5.x): read with real bash, generated
for a system from one of the implementation's own configs.

NVIDIA's implementations (training_results_v5.1, ``NVIDIA/benchmarks/<benchmark>/
implementations/<impl>/``) are configured by ``config_<SYSTEM>.sh`` files that the user
sources before ``sbatch -N $DGXNNODES -t $WALLTIME run.sub``. A config sources its siblings
(``source $(dirname ${BASH_SOURCE[0]})/config_common.sh``), sets hyper-parameters as
``export BATCHSIZE=${BATCHSIZE:-32}``, the system as ``export DGXNNODES=2``, ``DGXNGPU``,
``DGXSOCKETCORES``, ``DGXNSOCKET``, ``DGXHT``, the time limits ``WALLTIME_RUNANDTIME`` (srun
``--time`` of one run, minutes) and ``WALLTIME=$((9 + ${NEXP:-1} * ($WALLTIME_RUNANDTIME +
3)))`` (sbatch ``-t`` of NEXP runs), and the system's name as ``DGXSYSTEM`` from its own file
name. Such files are programs, so they are read by running them with bash (:func:`read_exported`,
:func:`read_vars`), never with regular expressions.

For a system of the workflow, :func:`generate` writes ``config_<SYSTEM>.sh`` beside a chosen
base config (``implementation.container.base_config``): it sources the base for everything the
system does not set, and sets the system's values from its yaml (:func:`system_values`):

===================  ========================================================================
DGXSYSTEM            the system's name
DGXNNODES            ``slurm.nodes`` (1 without it)
DGXNGPU              ``gpus``: GPUs per node, one training process each
DGXNSOCKET           ``topology.sockets``
DGXSOCKETCORES       ``topology.cores_per_socket``
DGXHT                ``topology.threads_per_core``: 2 with hyper-threading, 1 without
WALLTIME_RUNANDTIME  ``timeout_s`` (the system's, else the benchmark's) in minutes, rounded up;
                     the base's when neither is given
(hyper-parameters)   the benchmark's ``implementation.hyperparameters`` with the system's
                     ``hyperparameters.<benchmark>`` (what the runs' records say they used)
===================  ========================================================================

The generated file exports these values, then sources the base while *holding* them: a
function named ``export`` skips the base's ``export NAME=...`` of a held name, so what the base
derives from them is derived from the system's values by the base's own formulas (``WALLTIME``
from ``WALLTIME_RUNANDTIME`` and ``NEXP``; the nemo configs' ``SEGMENT=$(( CP / DGXNGPU ))``).
After the base, the values are exported again, so they also win over a base's plain
(unexported) assignment; a value that such a base derived from a plain assignment stays the
base's. ``--show`` (``python -m scripts config-sh --base F --show``) prints what a config sets.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from scripts.core.config import ConfigError, config_sources, load_and_validate, merge_sources
from scripts.core.records import hyperparameters as merged_hyperparameters
from scripts.mlperf.nvidia_v06 import SystemConfigError

KIND = "config-sh"  # the benchmark's implementation.container.config_script
CLEAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# variables bash itself exports into the environment of the commands it runs
SHELL_OWN = frozenset({"PWD", "OLDPWD", "SHLVL", "_"})
# names a config may not be given: bash's own variables, and the generated file's helpers
RESERVED = frozenset({"PATH", "IFS", "PWD", "OLDPWD", "SHLVL", "_", "HOME", "SHELL", "PS4"})
RESERVED_PREFIXES = ("BASH", "_config_sh_")
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
BASE_NAME = re.compile(r"config_[A-Za-z0-9._+-]+\.sh\Z")
SYSTEM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*\Z")
# the system's values, in the order the generated file sets them (overrides follow, sorted)
SYSTEM_KEYS = (
    "DGXSYSTEM",
    "DGXNNODES",
    "DGXNGPU",
    "DGXNSOCKET",
    "DGXSOCKETCORES",
    "DGXHT",
    "WALLTIME_RUNANDTIME",
)
SystemValues = dict[str, str]  # name -> value, as the generated file exports them
_END = "__config_sh_end__"  # printed after the script returns: a script that exits never prints it


class ConfigScriptError(RuntimeError):
    """A config script that failed, timed out, or exited where a sourced file must return."""


def config_filename(system: str) -> str:
    return f"config_{system}.sh"


def _check_name(name: str, what: str) -> str:
    if not NAME.match(name):
        raise ValueError(f"{what} {name!r} is not a shell variable name (letters, digits, _)")
    if name in RESERVED or name.startswith(RESERVED_PREFIXES):
        raise ValueError(
            f"{what} {name!r} is bash's own variable or the generated file's; rename it"
        )
    return name


def _clean_env(env: Mapping[str, str] | None) -> dict[str, str]:
    """``env -i`` plus PATH and the caller's variables: nothing of the workflow's own
    environment (a user's LR or DGXNGPU) leaks into what a config computes."""
    out = {"PATH": CLEAN_PATH}
    for key, value in (env or {}).items():
        if not NAME.match(key) or "\0" in str(value):
            raise ValueError(f"environment variable {key!r}={value!r} cannot be given to bash")
        out[key] = str(value)
    return out


def _last_line(stderr: bytes) -> str:
    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    return lines[-1] if lines else "(nothing on stderr)"


def _run_sourced(path: Path, after: str, env: Mapping[str, str] | None, timeout_s: float) -> bytes:
    """Source ``path`` in a clean bash and run ``after`` in the same shell; return what
    ``after`` prints (the script's own stdout is discarded: NVIDIA's configs echo).

    bash runs in the script's folder and sources ``./<name>``, so a config's
    ``$(dirname ${BASH_SOURCE[0]})`` is ``.`` even when the folder's path has spaces. stdin is
    /dev/null (a script that asks fails instead of waiting), and bash is its own process group,
    killed whole at the timeout. A script that calls ``exit`` fails: sourcing it would end the
    shell that sources it.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigScriptError(f"{path}: no such config script")
    bash = shutil.which("bash", path=CLEAN_PATH)
    if bash is None:
        raise ConfigScriptError(f"{path}: no bash in {CLEAN_PATH} to read it with")
    script = (
        f"source ./{shlex.quote(path.name)} >/dev/null || exit\nprintf '%s\\0' {_END}\n{after}\n"
    )
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            [bash, "--noprofile", "--norc", "-c", script],
            cwd=path.parent,
            env=_clean_env(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            start_new_session=True,
        )
        try:
            out, _ = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            err.seek(0)
            raise ConfigScriptError(
                f"{path}: still running after {timeout_s:g} s, stopped (reading a config runs "
                f"it); last line on stderr: {_last_line(err.read())}"
            ) from None
        _kill_group(proc)  # nothing the script started in the background outlives the read
        err.seek(0)
        stderr = err.read()
    if proc.returncode != 0:
        raise ConfigScriptError(
            f"{path}: exit status {proc.returncode}; last line on stderr: {_last_line(stderr)}"
        )
    head, sep, rest = out.partition(_END.encode() + b"\0")
    if not sep or head:
        raise ConfigScriptError(
            f"{path}: exit status 0 before its end (the script calls exit; sourcing it would "
            f"end the shell that sources it); last line on stderr: {_last_line(stderr)}"
        )
    return rest


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def read_exported(
    path: str | Path, *, env: Mapping[str, str] | None = None, timeout_s: float = 30.0
) -> dict[str, str]:
    """The variables a config script exports, as ``source F; env -0`` in a clean bash shows them.

    Reading a config runs it, as run.sub and a user's ``source config_X.sh`` do (in its own
    folder, ``bash --noprofile --norc``, ``env -i`` with only PATH and ``env``, e.g. NEXP,
    DATADIR). The result has the variables given in ``env`` (what the script's environment
    holds), not the shell's own (PWD, OLDPWD, SHLVL, _), nor PATH unless the script changed it.
    A script that fails, exits, or runs past ``timeout_s`` raises :class:`ConfigScriptError`.
    """
    out = _run_sourced(Path(path), "exec env -0", env, timeout_s)
    base_path = _clean_env(env)["PATH"]
    found: dict[str, str] = {}
    for entry in out.split(b"\0"):
        name, sep, value = _decode(entry).partition("=")
        if not sep or name in SHELL_OWN or (name == "PATH" and value == base_path):
            continue
        found[name] = value
    return found


def read_vars(
    path: str | Path,
    names: Iterable[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 30.0,
) -> dict[str, str]:
    """The values of the named shell variables after sourcing the script, exported or not
    (NVIDIA's config_mounts.sh leaves ``_cont_mounts`` unexported). Unset names are absent.
    Reading runs the script, exactly as :func:`read_exported` does."""
    wanted = [_name_to_read(n) for n in names]
    # names are checked identifiers, so they are safe in the command's text; NUL separates
    # values because a value may hold newlines and any byte but NUL
    after = "\n".join(f"[[ -v {n} ]] && printf '%s\\0%s\\0' {n} \"${{{n}}}\"" for n in wanted)
    out = _run_sourced(Path(path), after + "\ntrue", env, timeout_s)
    parts = out.split(b"\0")
    return {_decode(parts[i]): _decode(parts[i + 1]) for i in range(0, len(parts) - 1, 2)}


def _name_to_read(name: str) -> str:
    if not NAME.match(name):
        raise ValueError(f"{name!r} is not a shell variable name (letters, digits, _)")
    return name


def _shell_value(value: Any) -> str:
    """A yaml value as the config's text of it: a boolean as 1 or 0 (nvidia_v06's rule), a
    number as Python writes it; write "True" as a string where the base wants that word."""
    if isinstance(value, bool):
        return str(int(value))
    return str(value)


def _topology(system_name: str, system_cfg: Mapping[str, Any]) -> dict[str, int]:
    topo = system_cfg.get("topology") or {}
    missing = [k for k in ("sockets", "cores_per_socket", "threads_per_core") if k not in topo]
    if missing:
        raise SystemConfigError(
            f"systems.{system_name}.topology needs {', '.join(missing)} to generate "
            f"{config_filename(system_name)} (see `lscpu`: Socket(s), Core(s) per socket, "
            "Thread(s) per core)"
        )
    return {k: int(topo[k]) for k in ("sockets", "cores_per_socket", "threads_per_core")}


def system_values(
    system_name: str,
    system_cfg: Mapping[str, Any],
    benchmark: str,
    *,
    hyperparameters: Mapping[str, Any] | None = None,
    timeout_s: float | None = None,
) -> SystemValues:
    """What ``config_<system_name>.sh`` sets, from the system's yaml (the table in the module's
    docstring). ``hyperparameters`` defaults to the system's ``hyperparameters.<benchmark>``;
    ``timeout_s`` to the system's ``timeout_s``."""
    if not SYSTEM_NAME.match(system_name):
        raise SystemConfigError(
            f"system name {system_name!r} cannot name config_<SYSTEM>.sh "
            "(letters, digits, '.', '_', '+', '-')"
        )
    topo = _topology(system_name, system_cfg)
    gpus = int(system_cfg.get("gpus", 0))
    if gpus < 1:
        raise SystemConfigError(
            f"systems.{system_name}.gpus is {gpus}; NVIDIA's implementation needs at least one GPU"
        )
    values: SystemValues = {
        "DGXSYSTEM": system_name,
        "DGXNNODES": str(int((system_cfg.get("slurm") or {}).get("nodes") or 1)),
        "DGXNGPU": str(gpus),
        "DGXNSOCKET": str(topo["sockets"]),
        "DGXSOCKETCORES": str(topo["cores_per_socket"]),
        "DGXHT": str(topo["threads_per_core"]),
    }
    timeout = system_cfg.get("timeout_s") or timeout_s
    if timeout:
        values["WALLTIME_RUNANDTIME"] = str(math.ceil(float(timeout) / 60))
    if hyperparameters is None:
        hyperparameters = (system_cfg.get("hyperparameters") or {}).get(benchmark) or {}
    for key in sorted(hyperparameters):
        where = f"hyper-parameter {key} of {benchmark} on {system_name}"
        try:
            _check_name(key, where)
        except ValueError as exc:
            raise SystemConfigError(str(exc)) from None
        if key in values:
            raise SystemConfigError(
                f"{where} is a system value the yaml sets (gpus, slurm.nodes, topology, "
                "timeout_s); set it there"
            )
        values[key] = _shell_value(hyperparameters[key])
    return values


# Skips the base's `export NAME=...` of a held name (options and bare `export` pass through).
_HOLD = """\
export() {
    local _config_sh_arg
    if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ]; then builtin export "$@"; return; fi
    for _config_sh_arg in "$@"; do
        case "$_config_sh_held" in
            *" ${_config_sh_arg%%[+=]*} "*) ;;
            *) builtin export "$_config_sh_arg" || return ;;
        esac
    done
}"""


def generate(base_name: str, system_name: str, values: Mapping[str, str]) -> str:
    """The text of ``config_<system_name>.sh``: the base sourced with the system's values held,
    then the values exported again (the module's docstring says why)."""
    if not BASE_NAME.match(base_name) or base_name == config_filename(system_name):
        raise ValueError(
            f"base config {base_name!r} must be a file name config_<name>.sh beside the "
            f"generated {config_filename(system_name)} (no folder, not the file itself)"
        )
    if values.get("DGXSYSTEM", system_name) != system_name:
        raise ValueError(f"DGXSYSTEM {values['DGXSYSTEM']!r} is not the system {system_name!r}")
    names = [_check_name(n, "config variable") for n in values]
    exports = [f"export {n}={shlex.quote(str(values[n]))}" for n in names]
    return "\n".join(
        [
            "#!/bin/bash",
            f"# {config_filename(system_name)}: generated by the workflow "
            f"(scripts/mlperf/config_sh.py) for system {system_name}",
            f"# from {base_name}. Do not edit: change the system's yaml (gpus, slurm.nodes,",
            "# topology, timeout_s, hyperparameters.<benchmark>) and the workflow makes it anew.",
            "# The system's values are held while the base is sourced (its `export` of them is",
            "# skipped), so what the base derives from them, such as WALLTIME, uses them; they",
            "# are exported again after it.",
            "",
            *exports,
            "",
            f"_config_sh_held=' {' '.join(names)} '",
            _HOLD,
            f'source "$(dirname "${{BASH_SOURCE[0]}}")/{base_name}"',
            "_config_sh_status=$?",
            "unset -f export",
            "unset _config_sh_held",
            "",
            *exports,
            '[ "$_config_sh_status" -eq 0 ]',  # the file's status is the base's
            "",
        ]
    )


def config_files(config: Mapping[str, Any], benchmark: str, system: str) -> dict[str, str]:
    """The file of (benchmark, system) that the image build writes into its context, beside
    the base (``implementation.container.base_config``; ``config_script: config-sh``)."""
    bench = config["benchmarks"][benchmark]
    cont = (bench.get("implementation") or {}).get("container") or {}
    base = cont.get("base_config")
    if not base:
        raise SystemConfigError(
            f"benchmarks.{benchmark}.implementation.container.base_config is not set: "
            f"config_script {KIND} needs the implementation's config_<name>.sh to start from"
        )
    values = system_values(
        system,
        config["systems"][system],
        benchmark,
        hyperparameters=merged_hyperparameters(config, benchmark, system),
        timeout_s=bench.get("timeout_s"),
    )
    try:
        text = generate(str(base), system, values)
    except ValueError as exc:
        raise SystemConfigError(f"benchmarks.{benchmark}: {exc}") from None
    return {config_filename(system): text}


def _parse_env(items: Sequence[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--env {item!r} is not NAME=VALUE")
        env[key] = value
    return env


def _show(base: str, env_items: Sequence[str]) -> int:
    try:
        found = read_exported(base, env=_parse_env(env_items))
    except (ConfigScriptError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for name in sorted(found):
        print(f"{name}={shlex.quote(found[name])}")
    return 0


def _generated(args: argparse.Namespace) -> dict[str, str]:
    # validated with defaults (not cross-checked: the plan is above this module)
    sources = config_sources(args.configfile)
    config = load_and_validate(merge_sources(sources), sources)
    for kind, name in (("systems", args.system), ("benchmarks", args.benchmark)):
        if name not in config[kind]:
            raise ConfigError(
                f"no {kind[:-1]} {name!r} in these config files; defined: "
                + ", ".join(sorted(config[kind]))
            )
    impl = config["benchmarks"][args.benchmark].setdefault("implementation", {})
    cont = impl.get("container") or {}
    if args.base:  # another of the implementation's configs as the base
        impl["container"] = {**cont, "base_config": Path(args.base).name}
    elif cont.get("config_script") != KIND:
        raise ConfigError(
            f"{args.benchmark}'s implementation.container.config_script is not {KIND!r}: "
            "it generates no config_<SYSTEM>.sh (give --base config_<name>.sh to try one)"
        )
    return config_files(config, args.benchmark, args.system)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m scripts config-sh",
        description="Print the config_<SYSTEM>.sh that the workflow writes beside the base "
        "config in the build context of SYSTEM's image (give the campaign's --configfile "
        "overlays), or with --base F --show, the variables config F exports (reading it runs "
        "it, in a clean environment).",
    )
    p.add_argument("system", nargs="?", help="the system's name, e.g. SUT")
    p.add_argument("--benchmark", help="the benchmark whose implementation it configures")
    p.add_argument("--configfile", nargs="+", default=[], help="config overlays, in order")
    p.add_argument("--base", help="a config_<name>.sh (the base to generate from, or to --show)")
    p.add_argument("--show", action="store_true", help="print what --base exports, sorted")
    p.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="with --show: a variable the config sees (NEXP, DATADIR...)",
    )
    args = p.parse_args(argv)
    if args.show:
        if not args.base or args.system:
            p.error("--show takes --base F and no SYSTEM")
        return _show(args.base, args.env)
    if not args.system or not args.benchmark:
        p.error("give SYSTEM and --benchmark (or --base F --show)")
    try:
        files = _generated(args)
    except (ConfigError, SystemConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for name, text in files.items():
        print(f"# {name}")
        print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
