# Configuration loading and validation, and every input function and helper of the rules.

import json
import os
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger

from scripts import campaign, cluster, dataset
from scripts import config as cfg
from scripts.run_training import GRACE_S

WORKFLOW_DIR = Path(workflow.basedir)


def _config_sources():
    """(file, data) for every config file in merge order, to name the file behind an error."""
    files = [WORKFLOW_DIR / f for f in DEFAULT_CONFIGFILES]
    files += [Path(f) for f in workflow.config_settings.configfiles]
    return [(str(f), cfg.load_yaml(f) or {}) for f in files if Path(f).exists()]


try:
    CONFIG = cfg.load_and_validate(config, _config_sources())
except cfg.ConfigError as exc:
    raise WorkflowError(str(exc)) from None

BENCHMARKS = CONFIG["benchmarks"]
SYSTEMS = CONFIG["systems"]
DATA_DIR = CONFIG["data_dir"].rstrip("/")
# the python (and so the environment) that runs snakemake also runs the rules' scripts
PY = f"env PYTHONPATH={shlex.quote(str(WORKFLOW_DIR))} {shlex.quote(sys.executable)} -m"


wildcard_constraints:
    benchmark="[A-Za-z0-9][A-Za-z0-9_.-]*",
    system="[A-Za-z0-9][A-Za-z0-9_.-]*",
    run=r"\d\d+",
    file="[A-Za-z0-9][A-Za-z0-9_.-]*",


def json_arg(value):
    """A value as one quoted shell word of JSON."""
    return shlex.quote(json.dumps(value, sort_keys=True))


def dataset_files(benchmark):
    return BENCHMARKS[benchmark]["dataset"]["files"]


def dataset_file(benchmark, name):
    for f in dataset_files(benchmark):
        if f["name"] == name:
            return f
    raise WorkflowError(f"benchmark {benchmark!r} has no dataset file {name!r}")


def run_ids(benchmark):
    return cfg.run_ids(BENCHMARKS[benchmark]["runs"])


def campaign_systems():
    return cfg.campaign_systems(CONFIG)


def run_results(benchmark):
    """Every result.json of a benchmark: all systems of the campaign x all runs."""
    return [
        f"results/{benchmark}/{system}/run_{run}/result.json"
        for system in campaign_systems()
        for run in run_ids(benchmark)
    ]


def campaign_targets():
    return [f"results/{b}/summary.csv" for b in CONFIG["campaign"]["benchmarks"]]


def run_spec_json(wildcards):
    spec = cfg.run_spec(
        CONFIG,
        wildcards.benchmark,
        wildcards.system,
        int(wildcards.run),
        python=sys.executable,
        dataset_dir=f"{DATA_DIR}/{wildcards.benchmark}/dataset",
        run_dir=f"results/{wildcards.benchmark}/{wildcards.system}/run_{wildcards.run}",
        # a cluster job (e.g. Slurm via profiles/slurm) has its GPUs from the scheduler
        gpu_assign="scheduler" if workflow.remote_exec else "local",
    )
    return spec.to_json()


def job_resources(job):
    """The resources of a system's jobs, one function per resource (scripts/cluster.py):
    Slurm's partition, account, nodes, CPUs, memory, time, constraint, GPUs... for the Slurm
    executor, and `gpu`, which --resources gpu=N caps on one machine. None leaves one out.
    """

    def resource(name):
        def get(wildcards):
            system = SYSTEMS[wildcards.system]
            timeout = (
                system["timeout_s"] or BENCHMARKS[wildcards.benchmark]["timeout_s"]
            )
            res = cluster.job_resources(
                system, timeout_s=timeout, grace_s=GRACE_S, job=job
            )
            return res[name]

        return get

    return {name: resource(name) for name in cluster.RESOURCE_NAMES}


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


def main_invocation():
    """The snakemake the user started, not a job step of a cluster or subprocess executor:
    only it checks the campaign before the plan is built."""
    return not (workflow.remote_exec or workflow.subprocess_exec)


def remove_stale_derived_files():
    """Missing run files, or a changed dataset checksum, make derived files stale: remove them
    so they are rebuilt (scripts/campaign.py says why). A dry run only warns."""
    root = Path.cwd()
    stale = []
    for benchmark in BENCHMARKS:
        stale += campaign.stale_downloads(
            root / DATA_DIR / benchmark, dataset_files(benchmark)
        )
        stale += campaign.stale_derived_files(
            root, benchmark, campaign_systems(), run_ids(benchmark)
        )
    if not stale:
        return
    if campaign.is_dry_run(sys.argv):
        logger.warning(
            "These derived files are out of date and a real run will rebuild them:\n"
            + campaign.describe(stale, root)
        )
        return
    logger.warning(
        "Removing derived files that no longer match the runs on disk (they are rebuilt):\n"
        + campaign.describe(stale, root)
    )
    campaign.remove_stale(stale)


def check_locks():
    """A second snakemake on the same folder gets a clear message; locks left by a killed one
    (kill -9 leaves Snakemake's lock files behind) are removed so the plain command resumes.
    """
    if {"--nolock", "--unlock"} & set(sys.argv) or campaign.is_dry_run(sys.argv):
        return  # these take no lock (and --unlock is how a user clears one by hand)
    root = Path.cwd()
    locks = campaign.lock_files(root)
    if not locks:
        return
    others = campaign.other_snakemakes(root, os.getpid())
    if others:
        pid, cmd = others[0]
        raise WorkflowError(
            f"locked: another snakemake (pid {pid}) is running in {root}:\n  {cmd}\n"
            "Wait for it to finish (watch it with: python -m scripts.status), or stop it "
            f"(kill {pid}); its unfinished runs are redone by the next invocation."
        )
    logger.warning(
        "Removing stale Snakemake locks left by an invocation that was killed: "
        + ", ".join(str(p.relative_to(root)) for p in locks)
    )
    for path in locks:
        path.unlink(missing_ok=True)


def check_comparability():
    """Stop, naming the runs, if finished runs were made under a different configuration,
    dataset or environment than the current ones: never redo or mix them silently."""
    root = Path.cwd()
    problems = []
    for benchmark in BENCHMARKS:
        for system in campaign_systems():
            current = campaign.current_state(
                cfg.comparability(CONFIG, benchmark, system),
                manifest=root / DATA_DIR / benchmark / "manifest.json",
                environment=root / "results" / benchmark / system / "environment.json",
            )
            bad = campaign.incomparable_runs(
                root, benchmark, system, run_ids(benchmark), current
            )
            if bad:
                problems.append(campaign.incomparable_message(benchmark, system, bad))
    if problems:
        raise WorkflowError(
            "finished runs would no longer be comparable; nothing was run:\n  "
            + "\n  ".join(problems)
        )


if main_invocation():
    check_locks()
    check_comparability()
    remove_stale_derived_files()


def finished_results(benchmark):
    """The result.json files that exist now (for the partial report)."""
    return [f for f in run_results(benchmark) if Path(f).exists()]
