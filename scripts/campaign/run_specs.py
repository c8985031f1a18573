"""The run spec (:class:`scripts.run.spec.RunSpec`): all that one training run needs, as JSON
for the runner, made from the config by :func:`run_spec`: its command and environment rendered
from the command context (:mod:`scripts.campaign.command`), its comparability record and
fingerprint (:mod:`scripts.campaign.comparability`), its GPUs, how its backend runs it (the
backend's ``run_setup``, e.g. a container's options), and what its log must meet besides being
a valid MLPerf log (:func:`log_expectations`, :func:`compliance_ruleset`).

Pure: it reads no file itself (a container backend's part of the record hashes what the image
is built from).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scripts.campaign.command import command_context, render_command
from scripts.campaign.comparability import comparability
from scripts.core import hashing, layout
from scripts.mlperf.log_validity import DEFAULT_MAX_LOG_BYTES
from scripts.run import backends
from scripts.run.gpus import declared_devices
from scripts.run.spec import SYNTHETIC_ENV, RunSpec


def run_spec(
    config: Mapping[str, Any],
    benchmark: str,
    system: str,
    run: int,
    *,
    python: str,
    dataset_dir: str,
    run_dir: str,
    gpu_assign: str = "local",
    prepared_dir: str | None = None,
    comparable: tuple[dict[str, Any], str] | None = None,
) -> RunSpec:  # long: one line per field of the RunSpec it builds
    """The spec of run number ``run`` of (benchmark, system). ``python``, ``dataset_dir`` and
    ``run_dir`` are the host's; ``gpu_assign``: "scheduler" when the run executes as a cluster
    job (its GPUs are the job's), "local" otherwise (scripts/run/gpus.py assigns them).
    ``comparable``: :func:`comparable_record` of (benchmark, system), which every run of it shares,
    for a caller that makes many (the rules: one per job); made here when not given."""
    bench, sys_ = config["benchmarks"][benchmark], config["systems"][system]
    # e.g. in a container: how it runs, and the image's python and the mount points
    container, paths = backends.get(sys_["backend"]).run_setup(
        config,
        benchmark,
        system,
        python=python,
        dataset_dir=dataset_dir,
        run_dir=run_dir,
        prepared_dir=prepared_dir,
    )
    context = command_context(config, benchmark, system, run, **paths)
    # env values may use the command's placeholders (e.g. NVIDIA's LR: "{hp[LR]}")
    env = {
        k: render_command(str(v), context, shell=False)
        for k, v in bench["implementation"].get("env", {}).items()
    }
    env.update({k: str(v) for k, v in sys_.get("env", {}).items()})
    record, fingerprint = comparable or comparable_record(config, benchmark, system)
    if record.get("synthetic"):  # last: no env of the benchmark or system turns it off
        env[SYNTHETIC_ENV] = "1"
    return RunSpec(
        benchmark=benchmark,
        system=system,
        run=run,
        seed=context["seed"],
        command=render_command(bench["implementation"]["command"], context),
        env=env,
        timeout_s=sys_.get("timeout_s") or bench.get("timeout_s"),
        threads=sys_["threads"],
        scale=bench["scale"],
        config_fingerprint=fingerprint,
        comparability=record,
        retries=sys_["retries"],
        gpus=sys_["gpus"],
        gpu_devices=declared_devices(sys_["gpus"], sys_.get("gpu_devices")),
        gpu_lock_dir=sys_["gpu_lock_dir"],
        gpu_assign=gpu_assign,
        nodes=sys_["slurm"]["nodes"],
        cpus_per_node=sys_["slurm"]["cpus_per_task"] or sys_["threads"],
        backend=sys_["backend"],
        container=container,
        fail_patterns=list(bench["implementation"].get("fail_patterns", [])),
        run_id=layout.run_id(run, bench["runs"]),
        cache=sys_.get("cache", "cold"),
        drop_caches=bool(sys_.get("drop_caches", False)),
        power=power_setting(sys_),
        **log_expectations(bench),
    )


def comparable_record(
    config: Mapping[str, Any], benchmark: str, system: str
) -> tuple[dict[str, Any], str]:
    """The comparability record of (benchmark, system) and its fingerprint, as a run spec has
    them (``comparability`` and ``config_fingerprint``)."""
    record = comparability(config, benchmark, system)
    return record, hashing.canonical_sha256(record)


def power_setting(system: Mapping[str, Any]) -> dict[str, Any]:
    """The system's ``power`` setting as a run spec carries it: empty for ``source: none`` (no
    power measured), so a system without power has the spec it had before the setting."""
    setting = dict(system.get("power") or {})
    return setting if setting.get("source", "none") != "none" else {}


def log_expectations(bench: Mapping[str, Any]) -> dict[str, Any]:
    """What the log of a run of ``bench`` made here must meet besides being a valid MLPerf log
    (RunSpec's ``mlperf_names`` and ``max_log_bytes``)."""
    name = bench.get("mlperf_name")
    return {
        "mlperf_names": [name, *bench.get("folder_aliases", [])] if name else [],
        "max_log_bytes": int(bench.get("max_log_bytes", DEFAULT_MAX_LOG_BYTES)),
    }


def compliance_ruleset(bench: Mapping[str, Any]) -> str | None:
    """The mlperf-logging ruleset that checks this benchmark's logs (its ``mlperf`` section,
    config/benchmarks/mlperf-v<round>.yaml), or None: not an MLPerf benchmark (the embedded
    toy benchmark), whose runs are "not applicable", never a faked pass."""
    ruleset: str | None = (bench.get("mlperf") or {}).get("ruleset")
    return ruleset
