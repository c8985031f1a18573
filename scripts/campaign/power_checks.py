"""The load-time check of the campaign's power sources: a system with ``power.source: nvml``
needs NVIDIA's NVML on the host its runs execute on, and without it the workflow stops before
any run, in one line ("NVML not found: no NVIDIA driver on this host"), rather than measuring
nothing in every run (a source that fails during a run is only named in its record).

The runs execute here unless the invocation names a cluster executor (``--executor slurm``,
``-e slurm`` or a ``--profile`` / ``$SNAKEMAKE_PROFILE`` whose ``config.yaml`` sets a
non-local ``executor``, as profiles/slurm does): then the login node's lack of a driver says
nothing about the compute nodes, the check is left to each run (a node without NVML: the run's
record names it) and a warning says so. Only the snakemake the user started checks
(:mod:`scripts.campaign.preflight`), also in a dry run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from scripts.campaign.topology import campaign_systems
from scripts.core.config import ConfigError, load_yaml
from scripts.run import backends

# executors that run the jobs on this host (snakemake's own, and its dry-run stand-ins)
LOCAL_EXECUTORS = frozenset({"local", "dryrun", "touch"})


def nvml_systems(config: Mapping[str, Any]) -> list[str]:
    """The campaign's systems that run here (not imports) with ``power.source: nvml``."""
    return [
        name
        for name in campaign_systems(config)
        if (config["systems"][name].get("power") or {}).get("source") == "nvml"
        and not backends.get(config["systems"][name]["backend"]).imports
    ]


def _option(argv: Sequence[str], *names: str) -> str | None:
    """The value of the last of ``names`` on the command line (``--x v``, ``--x=v``)."""
    found = None
    for i, arg in enumerate(argv):
        for name in names:
            if arg == name and i + 1 < len(argv):
                found = argv[i + 1]
            elif arg.startswith(f"{name}=") and name.startswith("--"):
                found = arg.split("=", 1)[1]
    return found


def _profile_executor(profile: str) -> str | None:
    """The ``executor`` of a snakemake profile (a folder, or a name under
    ~/.config/snakemake or /etc/xdg/snakemake), or None."""
    candidates = [Path(profile)]
    if os.sep not in profile:
        candidates += [
            Path.home() / ".config" / "snakemake" / profile,
            Path("/etc/xdg/snakemake") / profile,
        ]
    for folder in candidates:
        config = folder / "config.yaml"
        if config.is_file():
            try:
                data = load_yaml(config)
            except ConfigError:
                return None  # snakemake itself says what is wrong with it
            executor = data.get("executor") if isinstance(data, dict) else None
            return str(executor) if executor is not None else None
    return None


def cluster_executor(argv: Sequence[str], environ: Mapping[str, str]) -> str | None:
    """The non-local executor this invocation names (its jobs run on other hosts), or None."""
    executor = _option(argv, "--executor", "-e")
    if executor is None:
        profile = _option(argv, "--profile") or environ.get("SNAKEMAKE_PROFILE")
        executor = _profile_executor(profile) if profile else None
    return executor if executor and executor not in LOCAL_EXECUTORS else None


def power_problem(
    config: Mapping[str, Any],
    argv: Sequence[str],
    environ: Mapping[str, str],
    warn: Callable[[str], None],
    probe: Callable[[], str | None] | None = None,
) -> str | None:
    """Why the campaign cannot run here (one line), or None: a system with an ``nvml`` source
    whose runs execute on this host, which has no NVML (``probe``, by default
    :func:`scripts.run.nvml_power.nvml_problem`)."""
    systems = nvml_systems(config)
    if not systems:
        return None
    if probe is None:
        # lazy: NVML's module loads only for a campaign that asks for it
        from scripts.run.nvml_power import nvml_problem as probe
    names = ", ".join(systems)
    executor = cluster_executor(argv, environ)
    if executor is not None:
        warn(
            f"power.source nvml ({names}): NVML is not checked here, the runs execute through "
            f"the {executor} executor; a node without it runs without power (named in run.json)"
        )
        return None
    problem = probe()
    if problem is None:
        return None
    return (
        f"{problem} (systems {names}: power.source nvml); set power.source to command or "
        "none, or run on a host with an NVIDIA driver"
    )
