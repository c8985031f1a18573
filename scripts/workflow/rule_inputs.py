"""The plan as the rules ask it: wildcards in, paths and command-line arguments out.

``rules/common.smk`` builds one :class:`RuleInputs` from the validated configuration, and every
rule's input, params and resources functions are its methods (``inputs.run_results``,
``inputs.run_spec_json``...). Each method is a thin answer from the campaign's plan
(:mod:`scripts.campaign.topology`, :mod:`scripts.campaign.command`,
:mod:`scripts.campaign.run_specs`), :mod:`scripts.workflow.import_jobs` (the import batches),
:mod:`scripts.run.backends` (what a system's backend needs) or :mod:`scripts.data.sources`
(where a benchmark's files come from), so the rules name no backend, and all of it is tested
without running snakemake (tests/test_rule_inputs.py).

Snakemake's own markers are given, not imported: ``ancient`` (default: the path unchanged)
wraps the inputs that must not by themselves redo finished jobs. A question the configuration
cannot answer raises :class:`scripts.core.config.ConfigError` with a one-line message.
"""

from __future__ import annotations

import inspect
import json
import re
import shlex
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from scripts.campaign.run_specs import comparable_record, compliance_ruleset, run_spec
from scripts.campaign.topology import benchmark_systems, system_run_ids
from scripts.core import layout
from scripts.core.config import ConfigError
from scripts.core.window_setting import window_of
from scripts.run import backends, cluster
from scripts.run.backends.base import GRACE_S
from scripts.workflow import import_jobs
from scripts.workflow.backend_inputs import BackendInputs, Wildcards, container_module
from scripts.workflow.dataset_inputs import DatasetInputs, json_arg
from scripts.workflow.import_jobs import IMPORT_BATCH_RUNS, ImportBatch
from scripts.workflow.submission_inputs import SubmissionInputs

# the plots of the report (scripts/analysis/plots.py makes results/<benchmark>/plots/<name>.png)
PLOTS = ("runs", "drift", "ecdf", "mean_ci", "speedup", "quality")
# ... and, for a benchmark with the M-of-N protocol only, every window's score
# (scripts/analysis/window_plot.py, rule plot_windows)
WINDOWS_PLOT = "windows"
# the summary rules' tables and the report, per campaign benchmark (the default target)
CAMPAIGN_FILES = ("summary.csv", "comparison.csv", "report.html")


def _same_path(path: str) -> str:
    return path


class RuleInputs(DatasetInputs, BackendInputs, SubmissionInputs):
    """Every question a rule asks, answered from one validated configuration.

    ``python`` runs the jobs' scripts; ``remote_exec``: jobs run under a cluster executor (their
    GPUs come from the scheduler); ``ancient`` is Snakemake's marker (identity in tests).
    """

    def __init__(
        self,
        config: Mapping[str, Any],
        workflow_dir: Path,
        *,
        python: str,
        remote_exec: bool = False,
        ancient: Callable[[str], Any] = _same_path,
    ) -> None:
        self.config = config
        self.benchmarks: Mapping[str, Any] = config["benchmarks"]
        self.systems: Mapping[str, Any] = config["systems"]
        self.data_dir: str = config["data_dir"].rstrip("/")
        self.workflow_dir = workflow_dir
        self.python = python
        # the prefix of every rule's module command: the python (and so the environment) that
        # runs snakemake, the workflow's package on its path
        self.py = f"env PYTHONPATH={shlex.quote(str(workflow_dir))} {shlex.quote(python)} -m"
        self.remote_exec = remote_exec
        self.ancient = ancient
        self.import_systems = sorted(
            s for s, v in self.systems.items() if backends.get(v["backend"]).imports
        )
        # what every run of a (benchmark, system), or of a benchmark, shares: asked once per
        # job, made once (10,000 jobs in a dry run of 10,000 runs)
        self._comparable: dict[tuple[str, str], tuple[dict[str, Any], str]] = {}
        self._comparable_json: dict[tuple[str, str], str] = {}
        self._result_args: dict[str, str] = {}
        self._pairs: frozenset[tuple[str, str]] | None = None

    # -- the campaign -------------------------------------------------------------------------

    def campaign_targets(self) -> list[str]:
        """Per campaign benchmark: the tables, and the report with its plots."""
        return [
            f"results/{b}/{name}"
            for b in self.config["campaign"]["benchmarks"]
            for name in CAMPAIGN_FILES
        ]

    def benchmark_systems(self, benchmark: str) -> list[str]:
        """The systems of the campaign with runs of this benchmark (an import system only where
        it has the benchmark's logs; other systems where the benchmark has an implementation)."""
        return benchmark_systems(self.config, benchmark)

    def system_run_ids(self, benchmark: str, system: str) -> list[str]:
        return system_run_ids(self.config, benchmark, system)

    def run_results(self, benchmark: str) -> list[str]:
        """Every result.json of a benchmark: each system that has its runs x each run."""
        systems = self.benchmark_systems(benchmark)
        if not systems:
            raise ConfigError(
                f"no system of the campaign has runs of benchmark {benchmark!r}: it needs an "
                "implementation (for a local system) or an import system with a folder of its "
                "result_*.txt"
            )
        return [
            f"{self._run_dir(benchmark, system, run)}/result.json"
            for system in systems
            for run in self.system_run_ids(benchmark, system)
        ]

    def finished_results(self, benchmark: str) -> list[str]:
        """The result.json files that exist now (for the partial report)."""
        return [f for f in self.run_results(benchmark) if Path(f).exists()]

    def expected_runs(self, benchmark: str) -> dict[str, int]:
        """How many runs each system of the benchmark has (the partial report's denominators)."""
        return {
            s: len(self.system_run_ids(benchmark, s)) for s in self.benchmark_systems(benchmark)
        }

    def plots(self, benchmark: str) -> list[str]:
        """The report's plots; with the M-of-N protocol (a window setting) also every window's
        score (rule plot_windows), so a benchmark without one has no such job. Asked once per
        report, never per run."""
        windowed = window_of(self.config, benchmark) is not None
        names = (*PLOTS, WINDOWS_PLOT) if windowed else PLOTS
        return [f"results/{benchmark}/plots/{name}.png" for name in names]

    def environments(self, benchmark: str) -> list[str]:
        """environment.json of the systems that run here (import systems have their run.json)."""
        return [
            f"results/{benchmark}/{s}/environment.json"
            for s in self.benchmark_systems(benchmark)
            if s not in self.import_systems
        ]

    def _run_dir(self, benchmark: str, system: str, run: str) -> str:
        # layout.run_dir's path as text, without a Path per job (10,000 of them in a dry run)
        return f"results/{benchmark}/{system}/{layout.run_name(run)}"

    # -- a training run -------------------------------------------------------------------------

    def threads(self, wildcards: Wildcards) -> int:
        threads: int = self.systems[wildcards.system]["threads"]
        return threads

    def train_threads(self) -> int | Callable[[Wildcards], int]:
        """train_run's threads: the number where every trained system has the same, else
        :meth:`threads` (Snakemake asks a function for every job, 10,000 in a dry run of
        10,000 runs)."""
        values = {self.systems[s]["threads"] for s in self.trained_systems()}
        if len(values) == 1:
            only: int = values.pop()
            return only
        return self.threads

    def _campaign_pairs(self) -> frozenset[tuple[str, str]]:
        """The (benchmark, system) pairs whose runs the campaign trains, made once."""
        if self._pairs is None:
            self._pairs = frozenset(
                (b, s)
                for b in self.config["campaign"]["benchmarks"]
                for s in self.benchmark_systems(b)
                if s not in self.import_systems
            )
        return self._pairs

    def _refuse_outside_campaign(self, wildcards: Wildcards) -> None:
        """ConfigError for a run of a (benchmark, system) the campaign does not train."""
        if (wildcards.benchmark, wildcards.system) not in self._campaign_pairs():
            raise ConfigError(self._outside_campaign(wildcards.benchmark, wildcards.system))

    def _outside_campaign(self, benchmark: str, system: str) -> str:
        campaign = self.config["campaign"]
        if benchmark not in campaign["benchmarks"]:
            names = ", ".join(campaign["benchmarks"])
            where = f"benchmark {benchmark} is not in campaign.benchmarks ({names})"
        else:
            names = ", ".join(self.benchmark_systems(benchmark)) or "none"
            where = (
                f"system {system} has no runs of {benchmark} in the campaign (its systems: {names})"
            )
        return (
            f"results/{benchmark}/{system}: {where}; add it to the campaign (an overlay, or "
            f"--config) to run it, so that its runs are checked and planned like the others"
        )

    def trained_systems(self) -> list[str]:
        """The systems whose runs train (not an import system's)."""
        return [s for s in self.systems if s not in self.import_systems]

    def runner_command(self, wildcards: Wildcards) -> DeferredCommand:
        """train_run's one param: :meth:`command_line`, made when the shell is formatted (to
        run or print the job), not when Snakemake evaluates params: it evaluates every param of
        every job, also in a dry run that prints none (``-n -q``), to find the job's conda
        environment. A run outside the campaign is refused here, at once (:meth:`runner_args`
        says why)."""
        self._refuse_outside_campaign(wildcards)
        return DeferredCommand(self.command_line, wildcards)

    def command_line(self, wildcards: Wildcards) -> str:
        """train_run's command, all but its log's redirection: the runner with
        :meth:`runner_args`, the run's mlperf.log and run.json (the rule's outputs) and the
        system's environment.json (its input). Made here, not from placeholders of the rule's
        shell: Snakemake formats the shell of every job three times when ``-n`` prints it,
        0.2 ms a job with seven placeholders."""
        b, s = wildcards.benchmark, wildcards.system
        run_dir = self._run_dir(b, s, wildcards.run)
        return (
            f"{self.py} scripts.run.runner {self.runner_args(wildcards)}"
            f" --log {shlex.quote(run_dir + '/mlperf.log')}"
            f" --meta {shlex.quote(run_dir + '/run.json')}"
            f" --environment {shlex.quote(f'results/{b}/{s}/environment.json')}"
        )

    def runner_args(self, wildcards: Wildcards) -> str:
        """train_run's one param, quoted: the run's spec, where a failed run's log is kept,
        the backend's arguments (:meth:`image_stamp_arg`) and result.json's
        (:meth:`result_args`). A run of a (benchmark, system) outside the campaign is refused:
        the load-time checks (seals, comparability) and the job's resources are the campaign's.
        """
        self._refuse_outside_campaign(wildcards)
        failed_dir = f"logs/failed/{wildcards.benchmark}/{wildcards.system}"
        words = [
            f"--spec {shlex.quote(self.run_spec_json(wildcards))}",
            f"--failed-dir {shlex.quote(failed_dir)}",
            shlex.join(self.dataset_manifest_args(wildcards.benchmark)),
            self.image_stamp_arg(wildcards),
            self.result_args(wildcards),
        ]
        return " ".join(w for w in words if w)

    def run_spec_json(self, wildcards: Wildcards) -> str:
        b, s = wildcards.benchmark, wildcards.system
        spec = run_spec(
            self.config,
            b,
            s,
            layout.parse_run_id(wildcards.run),
            python=self.python,
            dataset_dir=self.run_dataset_dir(b),
            run_dir=self._run_dir(b, s, wildcards.run),
            # a cluster job (e.g. Slurm via profiles/slurm) has its GPUs from the scheduler
            gpu_assign="scheduler" if self.remote_exec else "local",
            prepared_dir=(
                container_module().prepared_dir(self.config, b, s)
                if self.backend_of(s).needs_prepare(self.config, b)
                else None
            ),
            comparable=self._comparable_record(b, s),
        )
        # the record every run of (b, s) shares, encoded once where it is made once
        return spec.to_json(comparability_json=self._comparable_json.get((b, s)))

    def _comparable_record(self, benchmark: str, system: str) -> tuple[dict[str, Any], str]:
        """run_specs.comparable_record, made once per (benchmark, system) where it depends on
        the configuration alone. Not for a backend with an image: its part names the image
        its stamp records, and the stamp changes when the image is built during the run
        (Snakemake asks a job's params again before it runs it)."""
        key = (benchmark, system)
        found = self._comparable.get(key)
        if found is None:
            found = comparable_record(self.config, benchmark, system)
            if not self.backend_of(system).has_image():
                self._comparable[key] = found
                self._comparable_json[key] = json.dumps(found[0], sort_keys=True)
        return found

    def result_args(self, wildcards: Wildcards) -> str:
        """What train_run needs to write result.json in the same job."""
        out = f"{self._run_dir(wildcards.benchmark, wildcards.system, wildcards.run)}/result.json"
        return f"--result {shlex.quote(out)} {self._benchmark_result_args(wildcards.benchmark)}"

    def _benchmark_result_args(self, benchmark: str) -> str:
        """result_args' part that every run of the benchmark shares, made once."""
        if benchmark not in self._result_args:
            bench = self.benchmarks[benchmark]
            args = (
                f"--quality-json {json_arg(bench['quality'])} "
                f"--time-to-train {shlex.quote(bench['log']['time_to_train'])}"
            )
            if ruleset := compliance_ruleset(bench):  # mlperf-logging's checker on the log
                args += (
                    f" --compliance-ruleset {shlex.quote(ruleset)}"
                    f" --compliance-cache {shlex.quote(str(layout.COMPLIANCE_CACHE))}"
                )
            self._result_args[benchmark] = args
        return self._result_args[benchmark]

    def job_resources(self, job: str) -> dict[str, Any]:
        """The resources of a system's jobs (scripts/run/cluster.py): Slurm's partition, account,
        nodes, CPUs, memory, time, constraint, GPUs... for the Slurm executor, and ``gpu``,
        which --resources gpu=N caps on one machine. None leaves one out. A resource with the
        same value for every (benchmark, system) of the campaign is given as that value:
        Snakemake evaluates every resource function of every job it prints or runs, which made
        the dry run of 10,000 runs take 30 s, and with the other benchmarks and systems of the
        config counted (gnmt's timeout and ``local``'s threads beside the campaign's) two stayed
        functions: 0.3 ms a job in ``-n``. A run outside the campaign is refused
        (:meth:`runner_args`), so it never runs with the campaign's values.
        """

        def values(benchmark: str, system: str) -> dict[str, Any]:
            sys_ = self.systems[system]
            timeout = sys_["timeout_s"] or self.benchmarks[benchmark]["timeout_s"]
            return cluster.job_resources(sys_, timeout_s=timeout, grace_s=GRACE_S, job=job)

        def resource(name: str) -> Callable[[Wildcards], Any]:
            return lambda wildcards: values(wildcards.benchmark, wildcards.system)[name]

        pairs = self._campaign_pairs() if job == "train" else None
        table = (
            [values(b, s) for b, s in sorted(pairs)]
            if pairs
            else [values(b, s) for b in self.benchmarks for s in self.systems]
        )
        out: dict[str, Any] = {}
        for name in cluster.RESOURCE_NAMES:
            distinct = {repr(row[name]) for row in table}
            if len(distinct) > 1:
                out[name] = resource(name)
            elif table[0][name] is not None:
                out[name] = table[0][name]
        return out

    # -- import systems -------------------------------------------------------------------------

    def trained_systems_regex(self) -> str:
        """A wildcard constraint of train_run that matches exactly the systems that train: an
        import system's runs come from its batch (import.smk) and are never trained."""
        if not self.import_systems:  # the rules' constraint of every system: one class, fast
            return layout.NAME_WILDCARD
        return "|".join(re.escape(s) for s in sorted(self.trained_systems())) or "(?!)"

    def import_batches(self, max_runs: int = IMPORT_BATCH_RUNS) -> list[ImportBatch]:
        """The import jobs (rules/import.smk): scripts.workflow.import_jobs.import_batches."""
        return import_jobs.import_batches(self.config, max_runs)

    def import_plan_file(self, batch: ImportBatch, root: Path = Path(".")) -> str:
        """The batch's plan as a file named by its content, the rule's input
        (scripts.workflow.import_jobs.import_plan_file)."""
        return import_jobs.import_plan_file(batch, root)

    # -- the report -----------------------------------------------------------------------------

    def window_option(self, wildcards: Wildcards) -> str:
        """summarize's ``--window N `` for a benchmark with the M-of-N protocol
        (scripts/core/window_setting.py), else "": the command is then what it was before."""
        window = window_of(self.config, wildcards.benchmark)
        return f"--window {window} " if window is not None else ""

    def report_context(self, benchmark: str) -> dict[str, Any]:
        """What the report needs from the configuration: the benchmark, the systems and the
        reference system."""
        bench = self.benchmarks[benchmark]
        return {
            "benchmark": {
                k: bench.get(k)
                for k in ("description", "scale", "runs", "max_nonconverged", "quality")
            },
            "reference_system": self.config["campaign"].get("reference_system"),
            "statistics": self.config["statistics"],
            "systems": {
                s: {
                    k: self.systems[s].get(k)
                    for k in ("description", "backend", "threads", "gpus", "import_dir")
                }
                for s in self.benchmark_systems(benchmark)
            },
        }


class DeferredCommand:
    """A command line made on first use, then kept: what Snakemake formats into a rule's shell
    (``{params.command}``: ``format`` asks for it, once per job however often the shell is
    formatted). Snakemake keeps a param that is not text, a number or a container out of its
    metadata; the profile's ``rerun-triggers`` leave params out anyway."""

    __slots__ = ("_make", "_wildcards", "_text")

    def __init__(self, make: Callable[[Wildcards], str], wildcards: Wildcards) -> None:
        self._make = make
        self._wildcards = wildcards
        self._text: str | None = None

    def __str__(self) -> str:
        if self._text is None:
            self._text = self._make(self._wildcards)
        return self._text

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)

    def __repr__(self) -> str:
        return f"DeferredCommand({str(self)!r})"


# Snakemake reads the signature of every input, params and resources function for every job
# (snakemake.common.get_function_params: inspect.signature, twice the work for a bound method):
# 110,000 calls in a dry run of 10,000 runs. It takes a function's precomputed parameters from
# this attribute instead (snakemake.common.overwrite_function_params, as its own ioutils do);
# tests/test_rule_inputs.py checks the name against the installed Snakemake.
SNAKEMAKE_PARAMS_ATTR = "_overwrite_params"


def _precompute_signatures(cls: type) -> None:
    """Give each method that takes ``wildcards`` its parameters as a bound method has them."""
    for name, func in vars(cls).items():
        if name.startswith("_") or not callable(func):
            continue
        params = list(inspect.signature(func).parameters.values())[1:]  # without self
        if params and params[0].name == "wildcards":
            setattr(func, SNAKEMAKE_PARAMS_ATTR, MappingProxyType({p.name: p for p in params}))


_precompute_signatures(DatasetInputs)
_precompute_signatures(BackendInputs)
_precompute_signatures(RuleInputs)
