"""The plan: what a validated config means for a campaign. Everything the rules ask is here.

``scripts/core/config.py`` reads, merges and validates the config files; this module derives from
the result, without running anything:

- **the campaign's topology**: the systems it runs (:func:`campaign_systems`), which of them
  have runs of a benchmark (:func:`benchmark_systems`: a local or container system where the
  benchmark has an implementation for its backend, an import system where its folder holds
  the benchmark's published logs) and the ids of those runs (:func:`system_run_ids`);
- **the cross-checks** a schema cannot express (:func:`check_campaign`: names that refer to
  definitions, seeds per run, command placeholders, import folders);
- **run numbers, ids and seeds**. A run's *number* (``run``) is an ``int`` everywhere in Python
  and in the JSON files (``run.json`` and ``result.json`` hold ``"run": 7``). Its *id*
  (``run_id``) is the text that names its files, ``07`` or ``007``: it is made only by
  ``layout.run_id`` and read back only by ``layout.parse_run_id``, at the boundary of paths and
  wildcards. A run's seed is configured or derived from the benchmark and the run number
  (:func:`seed_for`), the same on every system;
- **the command of a run**: the hyper-parameters with the system's overrides, and the command
  context (the 12 placeholders of ``implementation.command`` and ``env``), listed once in
  :func:`_context`: :func:`command_context` gives a run's values (for its command and the
  container's data preparation), the config check gives sample values;
  :func:`render_command` fills a template, each value one shell word;
- **the run spec** (:class:`RunSpec`), all that one training run needs, as JSON for the runner;
- **comparability**: the record that makes two runs of (benchmark, system) comparable
  (:func:`comparability`; its fingerprint is ``hashing.canonical_sha256`` of it), what differs
  between two records (:func:`differences`), and the finished runs that differ from the
  current config, dataset or environment (:func:`incomparable_runs`).

Whatever depends on a system's backend (its config checks, its part of the record, how its
run's command sees its paths) the backend answers (:mod:`scripts.run.backends`); nothing here names
one, the import backend's topology aside (its runs are the files of its folder).
"""

from __future__ import annotations

import hashlib
import json
import shlex
import string
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from scripts.core import formats, hashing, layout
from scripts.core.config import (
    WORKFLOW_DIR,
    ConfigError,
    config_sources,
    load_and_validate,
    merge_sources,
    source_of,
)
from scripts.core.layout import benchmark_folder, result_files
from scripts.core.records import differences, hyperparameters
from scripts.data.sources import check_dataset
from scripts.data.tree import tree_digest_of
from scripts.data.verify import verified_manifest_sha256
from scripts.mlperf.log_validity import DEFAULT_MAX_LOG_BYTES
from scripts.run import backends
from scripts.run.cluster import check_slurm_config
from scripts.run.gpus import declared_devices
from scripts.run.spec import RunSpec

# ---------------------------------------------------------------------------------------------
# Loading a campaign: the validated config, cross-checked.


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
    if "dataset" in bench:
        problems += [f"benchmarks.{bname}.{p}" for p in check_dataset(bench["dataset"])]
    if "implementation" not in bench:
        return problems
    context = _check_context(bench)
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
        if system["backend"] != "import":
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


# ---------------------------------------------------------------------------------------------
# Topology: which systems have which runs of which benchmark.


def campaign_systems(config: Mapping[str, Any]) -> list[str]:
    """The systems a campaign runs: ``campaign.systems`` or every defined system."""
    return list(config["campaign"].get("systems") or config["systems"])


def import_dir(system: Mapping[str, Any]) -> Path:
    """An import system's folder, '{workflow_dir}' replaced (relative to the working dir)."""
    return Path(system["import_dir"].replace("{workflow_dir}", str(WORKFLOW_DIR)))


def import_folder(config: Mapping[str, Any], benchmark: str, system: str) -> Path | None:
    """The folder of result_*.txt that an import system has for a benchmark, or None (not an
    import system, a benchmark without mlperf_name, or no such folder with results): its
    mlperf_name's folder, else one of its folder_aliases' (scripts.core.layout)."""
    sys_, bench = config["systems"][system], config["benchmarks"][benchmark]
    if sys_["backend"] != "import":
        return None
    return benchmark_folder(import_dir(sys_), bench)


def can_produce(config: Mapping[str, Any], benchmark: str, system: str) -> bool:
    """Whether a system has runs of a benchmark: an import system when it has a folder of
    the benchmark's results, any other system when the benchmark has an implementation."""
    backend = config["systems"][system]["backend"]
    if not backends.get(backend).trains:  # the import backend: the files of its folder
        return import_folder(config, benchmark, system) is not None
    implementation = config["benchmarks"][benchmark].get("implementation")
    if implementation is None:
        return False
    allowed = implementation.get("backends")
    if allowed and backend not in allowed:
        return False  # e.g. an implementation that only runs in its container
    return backends.get(backend).can_run(implementation)  # e.g. a container section


def benchmark_systems(config: Mapping[str, Any], benchmark: str) -> list[str]:
    """The systems of the campaign that have runs of ``benchmark``."""
    return [s for s in campaign_systems(config) if can_produce(config, benchmark, s)]


def system_runs(config: Mapping[str, Any], benchmark: str, system: str) -> int:
    """How many runs (benchmark, system) has: the configured runs, or for an import system
    one per result file in its folder (run N is the N-th file by number)."""
    folder = import_folder(config, benchmark, system)
    if folder is not None:
        return len(result_files(folder))
    return int(config["benchmarks"][benchmark]["runs"])


def system_run_ids(config: Mapping[str, Any], benchmark: str, system: str) -> list[str]:
    """The ids of the runs of (benchmark, system), for their paths: ``01``, ``02``, ..."""
    return run_ids(system_runs(config, benchmark, system))


def run_ids(runs: int) -> list[str]:
    """The ids of runs 1 .. ``runs``: ``01``, ``02``, ... (scripts/core/layout.py formats them)."""
    return layout.run_ids(runs)


# ---------------------------------------------------------------------------------------------
# Seeds, hyper-parameters and the command context.


def derive_seed(benchmark: str, run: int) -> int:
    """The seed of run ``run`` when none is configured: a hash of benchmark and run number.

    The same run number gets the same seed on every system, so systems are compared on the
    same seeds; different numbers get unrelated seeds (not 1, 2, 3...).
    """
    digest = hashlib.sha256(f"mlperf-workflow:{benchmark}:{run}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def seed_for(bench: Mapping[str, Any], benchmark: str, run: int) -> int:
    """Run ``run``'s seed: the benchmark's ``seeds[run - 1]``, or :func:`derive_seed`."""
    seeds = bench.get("seeds")
    return int(seeds[run - 1]) if seeds else derive_seed(benchmark, run)


def hp_args(hp: Mapping[str, Any]) -> list[str]:
    """``--name value`` for each hyper-parameter (``_`` in names becomes ``-``), as words:
    ``{hp_args}`` puts each one into a command as one shell word."""
    return [w for k, v in hp.items() for w in (f"--{k.replace('_', '-')}", str(v))]


def run_port(run: int) -> int:
    """{port}: a TCP port for a run's distributed launcher (NVIDIA's run.sub passes
    ``--master_port=$((4242 + RANDOM % 1000))``); distinct per run number, in the same range."""
    return 4242 + run % 1000


def _context(
    *,
    python: str,
    dataset_dir: str,
    run_dir: str,
    seed: int,
    run: int,
    target: float,
    threads: int,
    gpus: int,
    system: str,
    hp: Mapping[str, Any],
) -> dict[str, Any]:
    """The placeholders of a command template, each with its raw value (the one place that
    lists them; :func:`render_command` quotes)."""
    return {
        "python": python,
        "dataset_dir": dataset_dir,
        "run_dir": run_dir,
        "seed": seed,
        "run": run,
        "target": target,
        "threads": threads,
        "gpus": gpus,
        "system": system,
        "port": run_port(run),
        "hp": dict(hp),
        "hp_args": hp_args(hp),
    }


def command_context(
    config: Mapping[str, Any],
    benchmark: str,
    system: str,
    run: int,
    *,
    python: str,
    dataset_dir: str,
    run_dir: str,
) -> dict[str, Any]:
    """The placeholders of run ``run`` of (benchmark, system): ``python``, ``dataset_dir`` and
    ``run_dir`` as the command sees them (inside a container: its python and mount points)."""
    bench, sys_ = config["benchmarks"][benchmark], config["systems"][system]
    return _context(
        python=python,
        dataset_dir=dataset_dir,
        run_dir=run_dir,
        seed=seed_for(bench, benchmark, run),
        run=run,
        target=bench["quality"]["target"],
        threads=sys_["threads"],
        gpus=sys_["gpus"],
        system=system,
        hp=hyperparameters(config, benchmark, system),
    )


def _check_context(bench: Mapping[str, Any]) -> dict[str, Any]:
    """Sample values of every placeholder, to check a benchmark's templates before any run."""
    return _context(
        python="python",
        dataset_dir="d",
        run_dir="r",
        seed=1,
        run=1,
        target=1.0,
        threads=1,
        gpus=0,
        system="s",
        hp=bench["implementation"].get("hyperparameters", {}),
    )


class _Fill(string.Formatter):
    """str.format with every substituted value made one shell word (``shell``) or plain text.

    A value that is a list (``{hp_args}``) is a list of words. The context holds raw values:
    quoting is done here, once, the same way for every placeholder."""

    def __init__(self, shell: bool) -> None:
        self.shell = shell

    def format_field(self, value: Any, format_spec: str) -> str:
        if isinstance(value, list | tuple):
            words = [format(v, format_spec) for v in value]
            return shlex.join(words) if self.shell else " ".join(words)
        text = format(value, format_spec)
        return shlex.quote(text) if self.shell else text


def render_command(template: str, context: Mapping[str, Any], *, shell: bool = True) -> str:
    """Fill a command template: each placeholder's value becomes one shell word (a value with
    spaces or ``;`` stays one argument and never runs as code). ``shell=False``: plain text,
    for environment values. A clear error for unknown placeholders."""
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
        for field in fields:
            root = field.split("[")[0].split(".")[0]
            if root not in context:
                raise ConfigError(
                    f"unknown placeholder {{{field}}}; known: "
                    + ", ".join("{" + k + "}" for k in sorted(context))
                )
        return _Fill(shell).format(template, **context)
    except ConfigError:
        raise
    except (KeyError, IndexError) as exc:
        raise ConfigError(f"placeholder {exc} has no value in {template!r}") from None
    except ValueError as exc:  # a bad format spec or a lone brace
        raise ConfigError(f"{exc} in {template!r} (write {{{{ for a literal brace)") from None


def compliance_ruleset(bench: Mapping[str, Any]) -> str | None:
    """The mlperf-logging ruleset that checks this benchmark's logs (its ``mlperf`` section,
    config/benchmarks/mlperf-v<round>.yaml), or None: not an MLPerf benchmark (the embedded
    toy benchmark), whose runs are "not applicable", never a faked pass."""
    ruleset: str | None = (bench.get("mlperf") or {}).get("ruleset")
    return ruleset


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
) -> RunSpec:  # long: one line per field of the RunSpec it builds
    """The spec of run number ``run`` of (benchmark, system). ``python``, ``dataset_dir`` and
    ``run_dir`` are the host's; ``gpu_assign``: "scheduler" when the run executes as a cluster
    job (its GPUs are the job's), "local" otherwise (scripts/run/gpus.py assigns them)."""
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
    record = comparability(config, benchmark, system)
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
        config_fingerprint=hashing.canonical_sha256(record),
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
        **log_expectations(bench),
    )


def log_expectations(bench: Mapping[str, Any]) -> dict[str, Any]:
    """What the log of a run of ``bench`` made here must meet besides being a valid MLPerf log
    (RunSpec's ``mlperf_names`` and ``max_log_bytes``)."""
    name = bench.get("mlperf_name")
    return {
        "mlperf_names": [name, *bench.get("folder_aliases", [])] if name else [],
        "max_log_bytes": int(bench.get("max_log_bytes", DEFAULT_MAX_LOG_BYTES)),
    }


# ---------------------------------------------------------------------------------------------
# Comparability: finished runs are never silently redone or mixed after a config change.


def table_settings(config: Mapping[str, Any], benchmark: str) -> dict[str, Any]:
    """What a benchmark's tables, plots and report are computed with besides its runs: the
    statistics section, the reference system and the benchmark's max_nonconverged
    (scripts/campaign/preflight.py remakes them when these change)."""
    return {
        "statistics": dict(config["statistics"]),
        "reference_system": config["campaign"].get("reference_system"),
        "max_nonconverged": config["benchmarks"][benchmark]["max_nonconverged"],
    }


def comparability(config: Mapping[str, Any], benchmark: str, system: str) -> dict[str, Any]:
    """What makes two runs of (benchmark, system) comparable, as configured."""
    bench, sys_ = config["benchmarks"][benchmark], config["systems"][system]
    implementation = bench.get("implementation", {})
    record = {
        "benchmark": benchmark,
        "quality": bench["quality"],
        "dataset": [
            {k: f.get(k) for k in ("name", "sha256", "md5", "unpack")}
            for f in bench.get("dataset", {}).get("files", [])
        ],
        "command": implementation.get("command"),
        "implementation_env": implementation.get("env", {}),
        "hyperparameters": hyperparameters(config, benchmark, system),
        "system": {k: sys_.get(k) for k in ("backend", "threads", "gpus", "env")},
        # e.g. a container system's image and how its containers run
        **backends.get(sys_["backend"]).fingerprint_record(config, benchmark, system),
    }
    record["system"].update(backends.get(sys_["backend"]).system_record(sys_))
    nodes = (sys_.get("slurm") or {}).get("nodes", 1)
    if nodes != 1:  # only then, so single-node runs keep the record they were made with
        record["system"]["nodes"] = nodes
    if sys_.get("cache", "cold") != "cold":  # warm runs are not comparable with cold ones
        record["system"]["cache"] = sys_["cache"]
    return record


def current_state(
    record: dict[str, Any],
    manifest: Path,
    environment: Path,
    dataset_tree: Path | None = None,
) -> dict[str, Any]:
    """What finished runs are compared against (see :func:`incomparable_runs`): the config's
    comparability record, and the dataset manifest, the unpacked tree's digest (from its
    manifest ``dataset_tree``) and the environment digest where they exist."""
    return {
        "comparability": record,
        "config_fingerprint": hashing.canonical_sha256(record),
        "dataset_manifest_sha256": (
            verified_manifest_sha256(manifest) if manifest.exists() else None
        ),
        "dataset_tree_sha256": tree_digest_of(dataset_tree) if dataset_tree else None,
        "environment_digest": (
            json.loads(environment.read_text()).get("digest") if environment.exists() else None
        ),
    }


def incomparable_runs(
    root: Path,
    benchmark: str,
    system: str,
    run_ids: Sequence[str],
    current: dict[str, Any],
) -> dict[str, list[str]]:
    """Finished runs of (benchmark, system) that differ from ``current``, with what differs,
    by run id.

    ``current`` has ``comparability`` (the config record) and its ``config_fingerprint``, and,
    where known, ``dataset_manifest_sha256``, ``dataset_tree_sha256`` and
    ``environment_digest``. A key that a run did not record (e.g. ``dataset_tree_sha256`` of a
    run made before the workflow recorded the unpacked tree) is "not recorded", never a
    difference.
    """
    found: dict[str, list[str]] = {}
    if not (root / "results" / benchmark / system).is_dir():
        return found  # no run of it yet (a fresh campaign: one stat, not one per run)
    for run_id in run_ids:
        meta_path = layout.run_dir(root, benchmark, system, run_id) / "run.json"
        if not meta_path.exists():
            continue
        try:
            meta = formats.read_json(meta_path, "run.json")
        except (OSError, ValueError):
            continue
        if "comparability" in meta:
            diffs = differences(meta["comparability"], current["comparability"])
        elif meta.get("config_fingerprint") != current.get("config_fingerprint"):
            diffs = ["the configuration (fingerprint) changed"]
        else:
            diffs = []
        for key, label in (
            ("dataset_manifest_sha256", "the verified dataset (manifest.json)"),
            ("dataset_tree_sha256", "the unpacked dataset (dataset.manifest.json)"),
            ("environment_digest", "the environment (environment.json digest)"),
        ):
            if current.get(key) and meta.get(key) and meta[key] != current[key]:
                diffs.append(f"{label} changed")
        if diffs:
            found[run_id] = diffs
    return found


def incomparable_message(benchmark: str, system: str, bad: dict[str, list[str]]) -> str:
    """What differs for which runs (``bad``: by run id), and what to do about it."""
    changes = sorted({d for diffs in bad.values() for d in diffs})
    if len(changes) > 12:
        changes = changes[:12] + [f"... and {len(changes) - 12} more"]
    return (
        f"results/{benchmark}/{system}: runs {', '.join(sorted(bad))} were made under a "
        "different configuration:\n    "
        + "\n    ".join(changes)
        + "\n  Restore the previous configuration to continue this campaign, or move the old "
        "runs aside (kept, not deleted) and start anew:\n"
        f"    python -m scripts archive results/{benchmark}/{system}"
    )
