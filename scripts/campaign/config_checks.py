"""Loading a campaign: the validated config, cross-checked.

``scripts/core/config.py`` reads, merges and validates the config files (the schema);
:func:`check_campaign` adds the cross-checks a schema cannot express: names that refer to
definitions, seeds per run, command placeholders (:mod:`scripts.campaign.command`), a system's
GPUs and Slurm settings, its backend's own checks, and the import systems' folders.
:func:`load_campaign` does both, for the tools that read a campaign without running snakemake.

**Reads the disk**: the config files (:func:`load_campaign`) and the import systems' folders.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from scripts.campaign.command import placeholders, render_command, sample_context
from scripts.campaign.topology import (
    benchmark_systems,
    campaign_systems,
    import_dir,
    import_folder,
)
from scripts.core.config import (
    ConfigError,
    config_sources,
    load_and_validate,
    merge_sources,
    source_of,
)
from scripts.core.dataset_setting import has_no_dataset
from scripts.data.sources import check_dataset
from scripts.run import backends
from scripts.run.cluster import check_slurm_config


def load_campaign(overlays: Sequence[str | Path] = ()) -> dict[str, Any]:
    """The default config files merged with ``overlays`` as Snakemake merges them, validated,
    with defaults filled in, and cross-checked (for tools that read a campaign without running
    snakemake). ConfigError names the file behind each problem."""
    sources = config_sources(overlays)
    full = load_and_validate(merge_sources(sources), sources)
    check_campaign(full, sources)
    return full


def check_campaign(config: Mapping[str, Any], sources: Sequence[tuple[str, Any]] = ()) -> None:
    """Cross-checks a schema cannot express, on a validated config with its defaults: names
    that refer to definitions, then (once they resolve) the import systems' folders. One
    ConfigError lists every problem."""
    problems = (
        _campaign_name_problems(config)
        + [p for name, bench in config["benchmarks"].items() for p in _bench_problems(name, bench)]
        + [p for name in config["systems"] for p in _system_problems(config, name)]
    )
    if not problems:  # names resolve: the import checks can look the systems up
        problems += _import_problems(config, sources)
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))


def _campaign_name_problems(config: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    campaign = config["campaign"]
    for name in campaign["benchmarks"]:
        if name not in config["benchmarks"]:
            problems.append(
                f"campaign.benchmarks names {name!r}, which is not defined; "
                f"defined benchmarks: {', '.join(sorted(config['benchmarks']))}"
            )
    for name in campaign.get("systems") or []:
        if name not in config["systems"]:
            problems.append(
                f"campaign.systems names {name!r}, which is not defined; "
                f"defined systems: {', '.join(sorted(config['systems']))}"
            )
    ref = campaign.get("reference_system")
    if ref is not None and ref not in config["systems"]:
        problems.append(f"campaign.reference_system {ref!r} is not a defined system")
    return problems


def _bench_problems(bname: str, bench: Mapping[str, Any]) -> list[str]:
    """A benchmark's seeds, dataset, and the placeholders of its command and env values."""
    problems: list[str] = []
    seeds = bench.get("seeds")
    if seeds is not None and len(seeds) < bench["runs"]:
        problems.append(
            f"benchmarks.{bname}.seeds has {len(seeds)} seeds for {bench['runs']} runs; "
            "give one seed per run or null"
        )
    if isinstance(bench.get("dataset"), Mapping):
        problems += [f"benchmarks.{bname}.{p}" for p in check_dataset(bench["dataset"])]
    if "implementation" not in bench:
        return problems
    if has_no_dataset(bench):
        problems += _no_dataset_problems(bname, bench["implementation"])
    context = sample_context(bench)
    try:
        render_command(bench["implementation"]["command"], context)
    except ConfigError as exc:
        problems.append(f"benchmarks.{bname}.implementation.command: {exc}")
    for key, value in bench["implementation"].get("env", {}).items():
        try:
            render_command(str(value), context, shell=False)
        except ConfigError as exc:
            problems.append(f"benchmarks.{bname}.implementation.env.{key}: {exc}")
    return problems


def _no_dataset_problems(bname: str, implementation: Mapping[str, Any]) -> list[str]:
    """``dataset: none``: no dataset folder exists, so no template may name one and no
    container key may mount or prepare one."""
    why = f"but benchmarks.{bname}.dataset is none (the implementation brings its own data)"
    templates = {"command": implementation["command"]}
    templates.update({f"env.{k}": str(v) for k, v in implementation.get("env", {}).items()})
    problems = [
        f"benchmarks.{bname}.implementation.{key} uses {{dataset_dir}}, {why}: there is no "
        "dataset folder; remove it, or give the benchmark a dataset"
        for key, template in templates.items()
        if "dataset_dir" in placeholders(template)
    ]
    container = implementation.get("container") or {}
    problems += [
        f"benchmarks.{bname}.implementation.container.{key} needs the dataset, {why}; remove "
        "it, or give the benchmark a dataset"
        for key in ("data_mounts", "prepare")
        if container.get(key)
    ]
    return problems


def _system_problems(config: Mapping[str, Any], sname: str) -> list[str]:
    """A system's GPUs, Slurm settings, hyper-parameter overrides and container sections."""
    problems: list[str] = []
    system = config["systems"][sname]
    devices = system.get("gpu_devices")
    if devices is not None and system["gpus"] > len(devices):
        problems.append(
            f"systems.{sname}.gpus is {system['gpus']} but gpu_devices lists only "
            f"{len(devices)} GPU(s) ({devices}); a run could never start"
        )
    problems += check_slurm_config(sname, system)
    for bname in system.get("hyperparameters", {}):
        if bname not in config["benchmarks"]:
            problems.append(
                f"systems.{sname}.hyperparameters names benchmark {bname!r}, which is not defined"
            )
    # e.g. a container backend: a container section of every campaign benchmark it runs
    problems += backends.get(system["backend"]).config_problems(config, sname)
    return problems


def _import_problems(
    config: Mapping[str, Any], sources: Sequence[tuple[str, Any]] = ()
) -> list[str]:
    """An import system whose folder is missing or holds no benchmark's results, and a
    campaign benchmark that no system of the campaign can run or import."""
    problems: list[str] = []
    importable = {
        b: v["mlperf_name"] for b, v in config["benchmarks"].items() if "mlperf_name" in v
    }
    for sname in campaign_systems(config):
        system = config["systems"][sname]
        if not backends.get(system["backend"]).imports:
            continue
        folder = import_dir(system)
        where = f"{source_of(['systems', sname, 'import_dir'], sources)}: " if sources else ""
        if not folder.is_dir():
            problems.append(
                f"{where}systems.{sname}.import_dir: folder {folder} does not exist (expected "
                "a folder of published results with one sub-folder per benchmark, e.g. "
                "training_results_v0.6/NVIDIA/results/dgx1_ngc19.05_pytorch from "
                "https://github.com/mlcommons/training_results_v0.6)"
            )
        elif not any(import_folder(config, b, sname) for b in importable):
            looked = ", ".join(sorted({f"{n}/result_*.txt" for n in importable.values()}))
            problems.append(
                f"{where}systems.{sname}.import_dir: {folder} holds no results of a defined "
                f"benchmark (looked for {looked or 'nothing: no benchmark defines mlperf_name'})"
            )
    if problems:
        return problems
    for bname in config["campaign"]["benchmarks"]:
        if bname in config["benchmarks"] and not benchmark_systems(config, bname):
            problems.append(
                f"campaign.benchmarks: no system of the campaign can run or import {bname!r} "
                "(it needs an implementation for a local system, or an import system with "
                f"a folder of its results)"
            )
    return problems
