# Configuration loading and validation, and every input function and helper of the rules.

import json
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger

WORKFLOW_DIR = Path(workflow.basedir)
if str(WORKFLOW_DIR) not in sys.path:
    sys.path.insert(0, str(WORKFLOW_DIR))

from scripts import config as cfg  # noqa: E402


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
    )
    return spec.to_json()


def cfg_url(url):
    """A dataset URL with {workflow_dir} replaced by this workflow's folder."""
    return url.replace("{workflow_dir}", str(WORKFLOW_DIR))


def remove_stale_derived_files():
    """Missing run files make derived files stale: remove those so they are rebuilt (see
    scripts/campaign.py). Only in the main invocation, never in a dry run or a cluster job.
    """
    from scripts import campaign

    if workflow.remote_exec or workflow.subprocess_exec:
        return
    root = Path.cwd()
    stale = []
    for benchmark in BENCHMARKS:
        if (root / "results" / benchmark).is_dir():
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
    for path, _ in stale:
        path.unlink(missing_ok=True)


remove_stale_derived_files()
