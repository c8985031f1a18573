"""The workflow's one command line: ``python -m scripts <verb> [arguments]``.

Each verb is the command-line of one module (its ``main``), so ``python -m scripts <verb>
--help`` is that module's help. The modules' own forms (``python -m scripts.campaign.status``)
work as well; the rules call those. Only the chosen verb's module is imported, so a verb
starts as fast as its module alone.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import NamedTuple


class Verb(NamedTuple):
    module: str  # under scripts., whose main(argv) runs the verb
    prefix: tuple[str, ...]  # arguments put before the user's (a subcommand of that main)
    summary: str


VERBS: dict[str, Verb] = {
    # a campaign on disk
    "status": Verb("campaign.status", (), "which runs are done, running, failed or missing"),
    "rerun": Verb("campaign.archive", ("rerun",), "move one run aside; the next run redoes it"),
    "archive": Verb("campaign.archive", ("archive",), "move a system's runs aside, kept"),
    "seal": Verb("run.seals", ("seal",), "seal finished runs' logs (after an upgrade)"),
    # published results
    "import": Verb("run.published.cli", (), "a published round as a config overlay (overlay)"),
    "verify": Verb("analysis.verify", (), "our scores beside the official summarizer's"),
    "rounds": Verb("mlperf.round_files", (), "write or check config/benchmarks/mlperf-v*.yaml"),
    "compliance": Verb("mlperf.compliance", (), "mlperf-logging's checkers on logs"),
    "implementation": Verb(
        "campaign.implementation", (), "a published implementation folder as a config overlay"
    ),
    # datasets and images
    "dataset": Verb("data.cli", (), "fetch, verify, unpack and check a dataset"),
    "mountcheck": Verb("data.mountcheck", (), "data folders against an expected-mounts.csv"),
    "image": Verb("run.backends.image", (), "fetch an image's source or wheels"),
    "docker": Verb("run.backends.docker", (), "build a docker image, prepare data in it"),
    "podman": Verb("run.backends.podman", (), "build a podman image, prepare data in it"),
    "nvidia-v06": Verb("mlperf.nvidia_v06", (), "config-sh of gnmt-v0.6 (NVIDIA's v0.6 layout)"),
    "config-sh": Verb("mlperf.config_sh", (), "NVIDIA config_<system>.sh: generate, --show"),
    # one run, and the tables and report made from runs
    "train": Verb("run.runner", (), "one training run: the runner a train_run job calls"),
    "environment": Verb("run.environment", (), "capture a system's environment.json"),
    "tables": Verb("analysis.tables", (), "parse, collect, summarize, compare, evals"),
    "leaderboard": Verb("analysis.leaderboard", (), "leaderboard.csv and its plots"),
    "plots": Verb("analysis.plots", (), "the report's plots from the tables"),
    "window-plot": Verb("analysis.window_plot", (), "M-of-N: every window's score, plotted"),
    "report": Verb("analysis.report", (), "report.html from the tables and plots"),
    # a submission
    "submission": Verb(
        "submission.cli", (), "submission/<submitter>/ and its package checker's verdict"
    ),
}


def usage() -> str:
    width = max(map(len, VERBS))
    lines = [f"  {name:<{width}}  {verb.summary}" for name, verb in VERBS.items()]
    return (
        "usage: python -m scripts <verb> [arguments]\n\n"
        "The MLPerf training workflow's tools (snakemake runs the workflow itself).\n\n"
        "verbs:\n" + "\n".join(lines) + "\n\n"
        "python -m scripts <verb> --help says what a verb takes.\n"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage(), end="")
        return 0 if args else 2
    name, rest = args[0], args[1:]
    verb = VERBS.get(name)
    if verb is None:
        print(f"python -m scripts: unknown verb {name!r}\n\n{usage()}", end="", file=sys.stderr)
        return 2
    module = importlib.import_module(f"scripts.{verb.module}")
    sys.argv[0] = f"python -m scripts {name}"
    return int(module.main([*verb.prefix, *rest]) or 0)


if __name__ == "__main__":
    sys.exit(main())
