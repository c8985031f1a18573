# MLPerf-style training benchmarks as file targets.
#
#   snakemake --cores 1 results/gnmt/summary.csv
#
# Wiring only: configuration (validated before any job runs), one rules file per stage, and the
# default target. The logic lives in scripts/ (an importable, unit-tested Python package).

from snakemake.utils import min_version

min_version("9.0")


# Defaults, then overlays: later files win, and any --configfile given on the command line
# is merged on top of all of them (e.g. --configfile config/systems/my-server.yaml).
DEFAULT_CONFIGFILES = [
    "config/config.yaml",
    "config/benchmarks/gnmt.yaml",
    "config/systems/local.yaml",
]


configfile: "config/config.yaml"
configfile: "config/benchmarks/gnmt.yaml"
configfile: "config/systems/local.yaml"


include: "rules/common.smk"
include: "rules/dataset.smk"
include: "rules/environment.smk"
include: "rules/train.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        campaign_targets(),
