# Configuration loading and validation, and every input function and helper of the rules.

import json
import re
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger

from scripts import backends, cluster, dataset, formats, hashing, import_logs, layout
from scripts import plan, preflight
from scripts.backends import container as containers
from scripts.backends import image as images
from scripts import config as cfg
from scripts.run_training import GRACE_S

WORKFLOW_DIR = Path(workflow.basedir)


def _config_sources():
    """(file, data) for every config file in merge order, to name the file behind an error."""
    files = [WORKFLOW_DIR / f for f in DEFAULT_CONFIGFILES]
    files += [Path(f) for f in workflow.config_settings.configfiles]
    return [(str(f), cfg.load_yaml(f) or {}) for f in files if Path(f).exists()]


try:
    _SOURCES = _config_sources()
    CONFIG = cfg.load_and_validate(config, _SOURCES)
    plan.check_campaign(CONFIG, _SOURCES)
except cfg.ConfigError as exc:
    raise WorkflowError(str(exc)) from None

BENCHMARKS = CONFIG["benchmarks"]
SYSTEMS = CONFIG["systems"]
DATA_DIR = CONFIG["data_dir"].rstrip("/")
# the python (and so the environment) that runs snakemake also runs the rules' scripts
PY = f"env PYTHONPATH={shlex.quote(str(WORKFLOW_DIR))} {shlex.quote(sys.executable)} -m"


# names as the schema has them; (?!\n): a target ending in a newline is no rule's output
# (Python's $ also matches before a final newline)
wildcard_constraints:
    benchmark=r"[A-Za-z0-9][A-Za-z0-9_.-]*(?!\n)",
    system=r"[A-Za-z0-9][A-Za-z0-9_.-]*(?!\n)",
    run=r"\d\d+",
    file=r"[A-Za-z0-9][A-Za-z0-9_.-]*(?!\n)",


def json_arg(value):
    """A value as one quoted shell word of JSON."""
    return shlex.quote(json.dumps(value, sort_keys=True))


def dataset_files(benchmark):
    # an import-only benchmark has no dataset
    return BENCHMARKS[benchmark].get("dataset", {}).get("files", [])


def uses_script(benchmark):
    """A dataset made by its script: it has one and no mirror (a mirror wins)."""
    ds = BENCHMARKS[benchmark]["dataset"]
    return bool(ds.get("script")) and not ds.get("mirror")


def dataset_folder(benchmark):
    """Where a benchmark's dataset files are: fetched into download/, or made by its script."""
    sub = "generated" if uses_script(benchmark) else "download"
    return f"{DATA_DIR}/{benchmark}/{sub}"


def dataset_files_dir(wildcards):
    return dataset_folder(wildcards.benchmark)


def dataset_inputs(wildcards):
    """What verify_dataset checks: the script's folder, or every fetched file."""
    if uses_script(wildcards.benchmark):
        return [dataset_files_dir(wildcards)]
    return [
        f"{DATA_DIR}/{wildcards.benchmark}/download/{f['name']}"
        for f in dataset_files(wildcards.benchmark)
    ]


def dataset_sources(benchmark, name):
    """The URLs download_file tries, in order: the mirror, then the file's url."""
    mirror = BENCHMARKS[benchmark]["dataset"].get("mirror")
    return dataset.sources(dataset_file(benchmark, name), mirror, WORKFLOW_DIR)


def download_policy_args(wildcards):
    d = CONFIG["download"]
    return (
        f"--retries {d['retries']} --backoff-s {d['backoff_s']} --timeout-s {d['timeout_s']}"
        + ("" if d["progress"] else " --no-progress")
    )


def dataset_file(benchmark, name):
    for f in dataset_files(benchmark):
        if f["name"] == name:
            return f
    raise WorkflowError(f"benchmark {benchmark!r} has no dataset file {name!r}")


def campaign_systems():
    return plan.campaign_systems(CONFIG)


def benchmark_systems(benchmark):
    """The systems of the campaign with runs of this benchmark (an import system only where
    it has the benchmark's logs; other systems where the benchmark has an implementation).
    """
    return plan.benchmark_systems(CONFIG, benchmark)


def system_run_ids(benchmark, system):
    return plan.system_run_ids(CONFIG, benchmark, system)


def run_results(benchmark):
    """Every result.json of a benchmark: each system that has its runs x each run."""
    systems = benchmark_systems(benchmark)
    if not systems:
        raise WorkflowError(
            f"no system of the campaign has runs of benchmark {benchmark!r}: it needs an "
            "implementation (for a local system) or an import system with a folder of its "
            "result_*.txt"
        )
    return [
        f"results/{benchmark}/{system}/run_{run}/result.json"
        for system in systems
        for run in system_run_ids(benchmark, system)
    ]


def campaign_targets():
    """Per campaign benchmark: the tables, and the report with its plots."""
    return [
        f"results/{b}/{name}"
        for b in CONFIG["campaign"]["benchmarks"]
        for name in ("summary.csv", "comparison.csv", "report.html")
    ]


def run_spec_json(wildcards):
    spec = plan.run_spec(
        CONFIG,
        wildcards.benchmark,
        wildcards.system,
        layout.parse_run_id(wildcards.run),
        python=sys.executable,
        dataset_dir=f"{DATA_DIR}/{wildcards.benchmark}/dataset",
        run_dir=f"results/{wildcards.benchmark}/{wildcards.system}/run_{wildcards.run}",
        # a cluster job (e.g. Slurm via profiles/slurm) has its GPUs from the scheduler
        gpu_assign="scheduler" if workflow.remote_exec else "local",
        prepared_dir=(
            prepared_dir(wildcards.benchmark, wildcards.system)
            if needs_prepare(wildcards.benchmark, wildcards.system)
            else None
        ),
    )
    return spec.to_json()


# ---------------------------------------------------------------------------------------------
# Backends (scripts/backends/): what a system's runs need beyond the dataset and environment;
# for container backends (rules/image.smk) images, sources, wheels, prepared data.


def backend_of(system):
    """The system's backend: every rule asks it, none names it."""
    return backends.get(SYSTEMS[system]["backend"])


def container_cfg(benchmark):
    return BENCHMARKS[benchmark].get("implementation", {}).get("container") or {}


def image_stamp(benchmark, system):
    return containers.image_stamp(benchmark, system)


def prepared_dir(benchmark, system):
    return containers.prepared_dir(CONFIG, benchmark, system)


def needs_prepare(benchmark, system):
    return backend_of(system).needs_prepare(CONFIG, benchmark)


def image_spec(benchmark, system):
    try:
        return images.image_spec(CONFIG, benchmark, system, WORKFLOW_DIR)
    except cfg.ConfigError as exc:
        raise WorkflowError(str(exc)) from None


def prepare_command(benchmark, system):
    """The data preparation command, with the run command's placeholders (run 1's values)."""
    options = containers.run_options(CONFIG, benchmark, system)
    context = plan.command_context(
        CONFIG,
        benchmark,
        system,
        1,
        python=options["python"],
        dataset_dir=options["dataset_mount"],
        run_dir=options["run_mount"],
    )
    return plan.render_command(container_cfg(benchmark)["prepare"]["command"], context)


def image_build_inputs(wildcards):
    """What the build needs from other rules: the fetched source (git) or the wheels."""
    cont, inputs = container_cfg(wildcards.benchmark), {}
    source = cont.get("source") or {}
    if source.get("git"):
        inputs["source"] = ancient(f"build/{wildcards.benchmark}/source")
    if cont.get("wheels"):
        inputs["wheels"] = ancient(f"build/{wildcards.benchmark}/wheels")
    return inputs


def container_run_inputs(wildcards):
    """What a run needs from its backend (a container backend: the image and the prepared
    data). ancient(): a rebuilt image does not by itself redo finished runs; the comparability
    check (scripts/preflight.py) stops instead.
    """
    needed = backend_of(wildcards.system).run_inputs(
        CONFIG, wildcards.benchmark, wildcards.system
    )
    return {name: ancient(path) for name, path in needed.items()}


def image_stamp_arg(wildcards):
    backend = backend_of(wildcards.system)
    return shlex.join(backend.runner_args(wildcards.benchmark, wildcards.system))


def image_module(wildcards):
    """The module whose command line builds and uses the system's images."""
    return backend_of(wildcards.system).module


def environment_inputs(wildcards):
    """A container system's environment is its image's: captured again when it changes."""
    return backend_of(wildcards.system).environment_inputs(
        wildcards.benchmark, wildcards.system
    )


def environment_image_args(wildcards):
    backend = backend_of(wildcards.system)
    return shlex.join(
        backend.environment_args(CONFIG, wildcards.benchmark, wildcards.system)
    )


def job_resources(job):
    """The resources of a system's jobs (scripts/cluster.py): Slurm's partition, account,
    nodes, CPUs, memory, time, constraint, GPUs... for the Slurm executor, and `gpu`, which
    --resources gpu=N caps on one machine. None leaves one out. A resource with the same value
    for every benchmark and system is given as that value: Snakemake inspects the signature of
    every resource function for every job, which made the dry run of 10,000 runs take 30 s.
    """

    def values(benchmark, system):
        sys_ = SYSTEMS[system]
        timeout = sys_["timeout_s"] or BENCHMARKS[benchmark]["timeout_s"]
        return cluster.job_resources(sys_, timeout_s=timeout, grace_s=GRACE_S, job=job)

    def resource(name):
        return lambda wildcards: values(wildcards.benchmark, wildcards.system)[name]

    table = [values(b, s) for b in BENCHMARKS for s in SYSTEMS]
    out = {}
    for name in cluster.RESOURCE_NAMES:
        distinct = {repr(row[name]) for row in table}
        if len(distinct) > 1:
            out[name] = resource(name)
        elif table[0][name] is not None:
            out[name] = table[0][name]
    return out


def set_local_rules():
    """Under a cluster executor only the rules of config cluster_rules are cluster jobs; every
    other rule (downloads, verification, parsing, reports) runs where snakemake runs."""
    names = {r.name for r in workflow.rules}
    unknown = sorted(set(CONFIG["cluster_rules"]) - names)
    if unknown:
        raise WorkflowError(
            f"cluster_rules names {', '.join(map(repr, unknown))}, which is not a rule of "
            f"the workflow; rules: {', '.join(sorted(names))}"
        )
    workflow.localrules(*sorted(names - set(CONFIG["cluster_rules"])))


def result_args(wildcards):
    """What train_run and import_run need to write result.json in the same job."""
    bench = BENCHMARKS[wildcards.benchmark]
    out = f"results/{wildcards.benchmark}/{wildcards.system}/run_{wildcards.run}/result.json"
    return (
        f"--result {shlex.quote(out)} --quality-json {json_arg(bench['quality'])} "
        f"--time-to-train {shlex.quote(bench['log']['time_to_train'])}"
    )


# ---------------------------------------------------------------------------------------------
# The load-time checks (scripts/preflight.py): the lock, seals, comparability, images, runs to
# parse again, stale derived files and dataset trees, before the plan is built. Only the
# snakemake the user started checks, not a job's own snakemake (cluster or subprocess executor).

JOB_SNAKEMAKE = workflow.remote_exec or workflow.subprocess_exec

try:
    preflight.run(
        CONFIG,
        Path.cwd(),
        sys.argv,
        job=JOB_SNAKEMAKE,
        workflow_dir=WORKFLOW_DIR,
        warn=logger.warning,
    )
except (preflight.Refused, formats.NewerFormat) as exc:
    # NewerFormat: a file of a newer workflow (scripts/formats.py); nothing is run or changed
    raise WorkflowError(str(exc)) from None


onsuccess:
    preflight.after_success(
        CONFIG, Path.cwd(), sys.argv, job=JOB_SNAKEMAKE, warn=logger.warning
    )


def finished_results(benchmark):
    """The result.json files that exist now (for the partial report)."""
    return [f for f in run_results(benchmark) if Path(f).exists()]


# ---------------------------------------------------------------------------------------------
# Import systems and the report.

# the plots of the report (scripts/plots.py makes results/<benchmark>/plots/<name>.png)
PLOTS = ("runs", "drift", "ecdf", "mean_ci", "speedup", "quality")

IMPORT_SYSTEMS = sorted(s for s, v in SYSTEMS.items() if v["backend"] == "import")


def import_systems_regex():
    """A wildcard constraint that matches exactly the import systems (nothing if none)."""
    return "|".join(re.escape(s) for s in IMPORT_SYSTEMS) or "(?!)"


def import_source(wildcards):
    """The published result_N.txt that is run NN of an import system."""
    folder = plan.import_folder(CONFIG, wildcards.benchmark, wildcards.system)
    if folder is None:
        raise WorkflowError(
            f"system {wildcards.system!r} has no folder of {wildcards.benchmark!r} results"
        )
    return str(import_logs.source_of(folder, layout.parse_run_id(wildcards.run)))


def import_spec_json(wildcards):
    record = plan.comparability(CONFIG, wildcards.benchmark, wildcards.system)
    bench = BENCHMARKS[wildcards.benchmark]
    return json.dumps(
        {
            "benchmark": wildcards.benchmark,
            "system": wildcards.system,
            "run": layout.parse_run_id(wildcards.run),
            "scale": bench["scale"],
            "mlperf_name": bench.get("mlperf_name"),
            "config_fingerprint": hashing.canonical_sha256(record),
            "comparability": record,
        },
        sort_keys=True,
    )


def report_context(benchmark):
    """What the report needs from the configuration: the benchmark, the systems and the
    reference system."""
    bench = BENCHMARKS[benchmark]
    return {
        "benchmark": {
            k: bench.get(k)
            for k in ("description", "scale", "runs", "max_nonconverged", "quality")
        },
        "reference_system": CONFIG["campaign"].get("reference_system"),
        "statistics": CONFIG["statistics"],
        "systems": {
            s: {
                k: SYSTEMS[s].get(k)
                for k in ("description", "backend", "threads", "gpus", "import_dir")
            }
            for s in benchmark_systems(benchmark)
        },
    }
