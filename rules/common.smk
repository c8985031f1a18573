# Configuration loading and validation, the load-time checks, and the one object whose methods
# are every rule's input, params and resources functions (scripts/workflow/rule_inputs.py: unit-tested
# without snakemake; rules call inputs.<question>).

import os
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger

from scripts.campaign import config_checks, invocation, preflight
from scripts.core import config as cfg
from scripts.core import formats, layout
from scripts.workflow import collector, rule_inputs
from scripts.workflow.rule_inputs import RuleInputs, json_arg

WORKFLOW_DIR = Path(workflow.basedir)


def _config_sources():
    """(file, data) for every config file in merge order, to name the file behind an error."""
    files = [WORKFLOW_DIR / f for f in DEFAULT_CONFIGFILES]
    files += [Path(f) for f in workflow.config_settings.configfiles]
    return [(str(f), cfg.load_yaml(f) or {}) for f in files if Path(f).exists()]


try:
    _SOURCES = _config_sources()
    CONFIG = cfg.load_and_validate(config, _SOURCES, passed=layout.VALID_CONFIG)
    config_checks.check_campaign(CONFIG, _SOURCES)
except cfg.ConfigError as exc:
    raise WorkflowError(str(exc)) from None

BENCHMARKS = CONFIG["benchmarks"]
SYSTEMS = CONFIG["systems"]
DATA_DIR = CONFIG["data_dir"].rstrip("/")
# an import batch's processes: every core (snakemake gives a job at most --cores of them)
IMPORT_THREADS = os.cpu_count() or 1


# names as the schema has them (scripts/core/layout.py)
wildcard_constraints:
    benchmark=layout.NAME_WILDCARD,
    system=layout.NAME_WILDCARD,
    run=r"\d\d+",
    file=layout.NAME_WILDCARD,


inputs = RuleInputs(
    CONFIG,
    WORKFLOW_DIR,
    python=sys.executable,
    remote_exec=workflow.remote_exec,
    ancient=ancient,
)
PLOTS = rule_inputs.PLOTS
# the plan's thousands of jobs live until the end: fewer scans of Python's cycle collector
# (scripts/workflow/collector.py)
collector.for_the_plan()
# the python (and so the environment) that runs snakemake also runs the rules' scripts
PY = inputs.py


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


# ---------------------------------------------------------------------------------------------
# The load-time checks (scripts/campaign/preflight.py): the lock, seals, comparability, images, runs to
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
except (invocation.Refused, formats.NewerFormat) as exc:
    # NewerFormat: a file of a newer workflow (scripts/core/formats.py); nothing is run or changed
    raise WorkflowError(str(exc)) from None


onsuccess:
    preflight.after_success(
        CONFIG, Path.cwd(), sys.argv, job=JOB_SNAKEMAKE, warn=logger.warning
    )
