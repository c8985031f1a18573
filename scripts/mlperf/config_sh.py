"""``config_<SYSTEM>.sh`` for a system, from its yaml: the one generator of NVIDIA-style configs.

NVIDIA's run scripts read a system's launch settings and hyper-parameters from
``config_${DGXSYSTEM}.sh``. The image build of ``scripts/run/backends/image.py`` writes that
file into the build context (:func:`config_files`), so editing the system's yaml, not a copy of
NVIDIA's file, configures a run. The benchmark's ``implementation.container.config_script``
picks the layout (:data:`LAYOUTS`); both take the system's values from one mapping of its yaml
(:func:`system_values`, with one set of error messages):

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

``config-sh`` (layout "source-base", NVIDIA's and AMD's v5.x scripts): the file sits beside a
base config of the implementation (``implementation.container.base_config``), exports these
values, then sources the base while *holding* them: a function named ``export`` skips the
base's ``export NAME=...`` of a held name, so what the base derives from them is derived from
the system's values by the base's own formulas (``WALLTIME`` from ``WALLTIME_RUNANDTIME`` and
``NEXP``; the nemo configs' ``SEGMENT=$(( CP / DGXNGPU ))``). After the base, the values are
exported again, so they also win over a base's plain (unexported) assignment; a value that such
a base derived from a plain assignment stays the base's.

``nvidia-v0.6`` (layout "v0.6", training_results_v0.6's ``config_DGX1.sh``): the whole file,
as NVIDIA's has it and ``run_and_time.sh`` sources it inside the container (no base to source:
v0.6's configs are complete): the run parameters (``DGXNNODES=1``: v0.6's layout is single-node;
``WALLTIME`` as H:MM:SS of ``timeout_s``, NVIDIA's 5:00:00 without one), the hyper-parameters
as ``NAME=${NAME:-value}`` in config_DGX1.sh's order with ``TARGET`` the benchmark's quality
target (a variable given to the container still wins, as with ``run.sub``), then the system
parameters with ``DGXIBDEVICES`` (``container.devices`` as ``--device=`` options) and
``BIND_LAUNCH`` (hyper-parameter, 1 by default). Plain assignments, as NVIDIA's: read them
back with :func:`~scripts.mlperf.config_read.read_vars`. Its bytes are in the image's
fingerprint (docs/containers.md), so the text never changes for an existing system
(tests/data/config_sh_v06 holds the texts made before this module owned the layout).

``python -m scripts config-sh SYSTEM --benchmark B`` prints the file a system gets;
``--base F --show`` prints what a config exports (reading it runs it:
scripts/mlperf/config_read.py).
"""

from __future__ import annotations

import argparse
import math
import re
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from scripts.core.config import ConfigError, config_sources, load_and_validate, merge_sources
from scripts.core.records import hyperparameters as merged_hyperparameters
from scripts.mlperf.config_read import CLEAN_PATH as CLEAN_PATH
from scripts.mlperf.config_read import NAME, ConfigScriptError, read_exported
from scripts.mlperf.config_read import SHELL_OWN as SHELL_OWN
from scripts.mlperf.config_read import read_vars as read_vars

KIND = "config-sh"  # config_script of the source-base layout
V06_KIND = "nvidia-v0.6"  # config_script of NVIDIA's v0.6 layout
# the benchmark's implementation.container.config_script -> the layout of the generated file
LAYOUTS = {KIND: "source-base", V06_KIND: "v0.6"}
# names a config may not be given: bash's own variables, and the generated file's helpers
RESERVED = frozenset({"PATH", "IFS", "PWD", "OLDPWD", "SHLVL", "_", "HOME", "SHELL", "PS4"})
RESERVED_PREFIXES = ("BASH", "_config_sh_")
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
# v0.6: config_DGX1.sh's order of the DL parameters; other hyper-parameters follow, sorted
DL_PARAMS = (
    "LR",
    "TRAIN_BATCH_SIZE",
    "TEST_BATCH_SIZE",
    "WARMUP_STEPS",
    "REMAIN_STEPS",
    "DECAY_INTERVAL",
    "TARGET",
    "MAX_SEQ_LEN",
    "NUMEPOCHS",
    "MATH",
    "EXTRA_OPTS",
)
# v0.6: hyper-parameters that are system parameters in NVIDIA's layout
SYSTEM_HPS = ("BIND_LAUNCH",)


class SystemConfigError(ValueError):
    """A system's yaml that cannot make its config_<SYSTEM>.sh (names the key to set)."""


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


def _shell_value(value: Any) -> str:
    """A yaml value as the config's text of it: a boolean as 1 or 0 (v0.6's rule), a
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


def _v06_walltime(timeout_s: float | None) -> str:
    if not timeout_s:
        return "5:00:00"  # NVIDIA's default
    total = int(timeout_s)
    return f"{total // 3600}:{total % 3600 // 60:02d}:{total % 60:02d}"


def generate_v06(
    system_name: str,
    values: Mapping[str, str],
    *,
    timeout_s: float | None = None,
    devices: Sequence[str] = (),
) -> str:
    """The text of ``config_<system_name>.sh`` in NVIDIA's v0.6 layout (the module's docstring)
    from :func:`system_values` (which must hold ``TARGET``). The image's fingerprint holds these
    bytes: tests/test_config_sh_v06.py pins them."""
    ib = " ".join(f"--device={d}" for d in devices)
    lines = [
        "#!/bin/bash",
        # these bytes are in the image's fingerprint: the module's old path stays in the text
        "# Generated by the workflow (scripts/nvidia_v06.py) from the yaml of system "
        f"{system_name}.",
        "# Do not edit: change systems.<name> (gpus, topology, container.devices,",
        "# hyperparameters) and the workflow rebuilds the image with the new file.",
        "",
        "## System run parms",
        "DGXNNODES=1",
        "DGXSYSTEM=$(basename $(readlink -f ${BASH_SOURCE[0]}) | sed 's/^config_//' "
        "| sed 's/\\.sh$//' )",
        f"WALLTIME={_v06_walltime(timeout_s)}",
        "",
        "## DL params",
    ]
    hp = [k for k in values if k not in SYSTEM_KEYS]
    ordered = [k for k in DL_PARAMS if k in hp]
    ordered += sorted(k for k in hp if k not in DL_PARAMS and k not in SYSTEM_HPS)
    for key in ordered:
        # EXTRA_OPTS uses '-' (not ':-') as NVIDIA's does: an empty EXTRA_OPTS given to the
        # container means "no extra options", not "the defaults"
        op = "-" if key == "EXTRA_OPTS" else ":-"
        lines.append(f"{key}=${{{key}{op}{shlex.quote(values[key])}}}")
    lines += [
        "",
        "## System config params",
        f"DGXNGPU={values['DGXNGPU']}",
        f"DGXSOCKETCORES={values['DGXSOCKETCORES']}",
        f"DGXHT={values['DGXHT']} \t# HT is on is 2, HT off is 1",
        f"DGXIBDEVICES={shlex.quote(ib)}",
        f"DGXNSOCKET={values['DGXNSOCKET']}",
        f"BIND_LAUNCH={shlex.quote(values.get('BIND_LAUNCH', '1'))}",
        "",
    ]
    return "\n".join(lines)


def v06_text(
    system_name: str,
    system_cfg: Mapping[str, Any],
    hyperparameters: Mapping[str, Any],
    *,
    target: float,
    timeout_s: float | None = None,
    benchmark: str = "gnmt-v0.6",
) -> str:
    """The v0.6 file of a system: ``hyperparameters`` with ``TARGET`` the quality target;
    ``timeout_s`` the benchmark's (the system's own ``timeout_s`` wins, as in
    :func:`system_values`)."""
    timeout = system_cfg.get("timeout_s") or timeout_s
    values = system_values(
        system_name,
        system_cfg,
        benchmark,
        hyperparameters={**hyperparameters, "TARGET": target},
        timeout_s=timeout,
    )
    devices = (system_cfg.get("container") or {}).get("devices") or []
    return generate_v06(system_name, values, timeout_s=timeout, devices=devices)


def _source_base_text(config: Mapping[str, Any], benchmark: str, system: str) -> str:
    bench = config["benchmarks"][benchmark]
    base = ((bench.get("implementation") or {}).get("container") or {}).get("base_config")
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
        return generate(str(base), system, values)
    except ValueError as exc:
        raise SystemConfigError(f"benchmarks.{benchmark}: {exc}") from None


def config_files(config: Mapping[str, Any], benchmark: str, system: str) -> dict[str, str]:
    """The files of (benchmark, system) that the image build writes into its context
    (scripts/run/backends/image.py: generated_files), in the layout of the benchmark's
    ``implementation.container.config_script``; none without one."""
    bench = config["benchmarks"][benchmark]
    kind = ((bench.get("implementation") or {}).get("container") or {}).get("config_script")
    if not kind:
        return {}
    if kind not in LAYOUTS:
        raise ValueError(
            f"benchmarks.{benchmark}.implementation.container.config_script {kind!r} is not "
            f"one of {', '.join(LAYOUTS)}"
        )
    if LAYOUTS[kind] == "source-base":
        return {config_filename(system): _source_base_text(config, benchmark, system)}
    text = v06_text(
        system,
        config["systems"][system],
        merged_hyperparameters(config, benchmark, system),
        target=bench["quality"]["target"],
        timeout_s=bench.get("timeout_s"),
        benchmark=benchmark,
    )
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
        impl["container"] = {**cont, "config_script": KIND, "base_config": Path(args.base).name}
    elif cont.get("config_script") not in LAYOUTS:
        raise ConfigError(
            f"{args.benchmark}'s implementation.container.config_script is not "
            f"{' or '.join(map(repr, LAYOUTS))}: it generates no config_<SYSTEM>.sh "
            "(give --base config_<name>.sh to try one)"
        )
    return config_files(config, args.benchmark, args.system)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m scripts config-sh",
        description="Print the config_<SYSTEM>.sh that the workflow writes into the build "
        "context of SYSTEM's image, in the layout of the benchmark's config_script (give the "
        "campaign's --configfile overlays), or with --base F --show, the variables config F "
        "exports (reading it runs it, in a clean environment).",
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
