# Configuration loading and validation, and every input function and helper of the rules.

import json
import os
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger

from scripts import campaign, dataset
from scripts import config as cfg

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


def uses_script(benchmark):
    """A dataset made by its script: it has one and no mirror (a mirror wins)."""
    ds = BENCHMARKS[benchmark]["dataset"]
    return bool(ds.get("script")) and not ds.get("mirror")


def dataset_files_dir(wildcards):
    sub = "generated" if uses_script(wildcards.benchmark) else "download"
    return f"{DATA_DIR}/{wildcards.benchmark}/{sub}"


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
    )
    return spec.to_json()


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
