# MLPerf-style training benchmarks as file targets.
#
#   snakemake --cores 1 results/gnmt/summary.csv
#
# Wiring only: configuration (validated before any job runs), one rules file per stage, and the
# default target. The logic lives in scripts/ (an importable, unit-tested Python package).

from snakemake.utils import min_version

min_version("9.0")


# snakemake --report report.html: the tables, plots and report.html of the campaign
report: "report/workflow.rst"


import sys

sys.path.insert(0, workflow.basedir)  # the scripts package

from snakemake.exceptions import WorkflowError
from scripts.core.config import DEFAULT_CONFIGFILES, ConfigError, check_config_files

# a YAML error in them names the file, line and column (the configfile: lines' own does not)
try:
    check_config_files(workflow.basedir, DEFAULT_CONFIGFILES)
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None

# Defaults (scripts/core/config.py DEFAULT_CONFIGFILES: config/config.yaml, config/benchmarks/gnmt.yaml,
# config/systems/local.yaml, config/benchmarks/mlperf-v0.6.yaml), then overlays: later files win, and any --configfile given
# on the command line is merged on top of all of them (e.g. --configfile config/systems/x.yaml).
for _configfile in DEFAULT_CONFIGFILES:

    configfile: _configfile


include: "rules/common.smk"
include: "rules/dataset.smk"
include: "rules/environment.smk"
include: "rules/image.smk"
include: "rules/train.smk"
include: "rules/import.smk"
include: "rules/report.smk"
include: "rules/submission.smk"


# under a cluster executor, only config cluster_rules are cluster jobs (rules/common.smk)
set_local_rules()


rule all:
    default_target: True
    input:
        inputs.campaign_targets(),
