"""The dataset rules' input and params functions (rules/dataset.smk), a part of
:class:`scripts.workflow.rule_inputs.RuleInputs`: where a benchmark's files come from, where they
go, and the download, lock and unpack arguments.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from scripts.campaign.topology import benchmark_systems
from scripts.core.config import ConfigError
from scripts.core.dataset_setting import dataset_section, has_no_dataset
from scripts.data import datalock
from scripts.data.download_policy import DEADLINE_S, MIN_BYTES_PER_S
from scripts.data.folders import dataset_folders
from scripts.data.sources import expand_url, sources
from scripts.run import backends


class Wildcards(Protocol):
    """A dataset job's wildcards, as Snakemake gives them."""

    benchmark: str


def json_arg(value: Any) -> str:
    """A value as one quoted shell word of JSON."""
    return shlex.quote(json.dumps(value, sort_keys=True))


class DatasetInputs:
    """The dataset part of RuleInputs; RuleInputs sets these attributes."""

    config: Mapping[str, Any]
    benchmarks: Mapping[str, Any]
    data_dir: str
    workflow_dir: Path
    ancient: Callable[[str], Any]

    # -- what a run takes of its dataset (rules/train.smk: train_run) ---------------------------

    def _any_without_dataset(self) -> bool:
        return any(has_no_dataset(bench) for bench in self.benchmarks.values())

    def dataset_run_input_patterns(self) -> dict[str, Any]:
        """train_run's dataset inputs as patterns, the unpacked tree and its verified manifest
        (ancient(): a re-verified dataset does not by itself redo finished runs), where every
        benchmark has a dataset: no function that Snakemake asks for every job. {} where one
        says ``dataset: none``: :meth:`dataset_run_input_functions` gives them then."""
        if self._any_without_dataset():
            return {}
        return {
            "dataset": self.ancient(f"{self.data_dir}/{{benchmark}}/dataset"),
            "manifest": self.ancient(f"{self.data_dir}/{{benchmark}}/manifest.json"),
        }

    def dataset_run_input_functions(self) -> list[Any]:
        """train_run's input function for :meth:`dataset_run_inputs`, unpacked, where a
        benchmark says ``dataset: none``; none otherwise (the patterns are the inputs)."""
        if not self._any_without_dataset():
            return []
        from snakemake.io import unpack  # the rules' own; this module loads without Snakemake

        return [unpack(self.dataset_run_inputs)]

    def dataset_run_inputs(self, wildcards: Wildcards) -> dict[str, Any]:
        """A run's dataset inputs: the tree and its manifest; none for ``dataset: none``."""
        b = wildcards.benchmark
        if has_no_dataset(self.benchmarks[b]):
            return {}
        return {
            "dataset": self.ancient(f"{self.data_dir}/{b}/dataset"),
            "manifest": self.ancient(f"{self.data_dir}/{b}/manifest.json"),
        }

    def dataset_manifest_args(self, benchmark: str) -> list[str]:
        """The runner's ``--dataset-manifest`` (what it checks the tree against before each
        run and records in run.json); none for ``dataset: none``."""
        if has_no_dataset(self.benchmarks[benchmark]):
            return []
        return ["--dataset-manifest", f"{self.data_dir}/{benchmark}/manifest.json"]

    def run_dataset_dir(self, benchmark: str) -> str:
        """The host's dataset folder of a run ({dataset_dir} on the local backend); "" for
        ``dataset: none`` (the config check refuses a template that uses it then)."""
        if has_no_dataset(self.benchmarks[benchmark]):
            return ""
        return f"{self.data_dir}/{benchmark}/dataset"

    # -- the dataset rules (rules/dataset.smk) --------------------------------------------------

    def dataset(self, benchmark: str) -> Mapping[str, Any]:
        """The benchmark's dataset section, for a rule that makes its dataset: a ConfigError
        naming the benchmark for ``dataset: none`` (no dataset job is planned for one; this
        is a target that asks for it by its path)."""
        bench = self.benchmarks[benchmark]
        if has_no_dataset(bench):
            raise ConfigError(
                f"benchmarks.{benchmark}.dataset is none (the implementation brings its own "
                f"data): there is no dataset to fetch, verify or unpack in "
                f"{self.data_dir}/{benchmark}"
            )
        return dataset_section(bench)

    def dataset_files(self, benchmark: str) -> list[dict[str, Any]]:
        # an import-only benchmark has no dataset
        files: list[dict[str, Any]] = self.dataset(benchmark).get("files", [])
        return files

    def dataset_file(self, benchmark: str, name: str) -> dict[str, Any]:
        for f in self.dataset_files(benchmark):
            if f["name"] == name:
                return f
        raise ConfigError(f"benchmark {benchmark!r} has no dataset file {name!r}")

    def uses_script(self, benchmark: str) -> bool:
        """A dataset made by its script: it has one and no mirror (a mirror wins)."""
        ds = self.dataset(benchmark)
        return bool(ds.get("script")) and not ds.get("mirror")

    def dataset_folder(self, benchmark: str) -> str:
        """Where a benchmark's dataset files are: fetched into download/, or made by its script."""
        sub = "generated" if self.uses_script(benchmark) else "download"
        return f"{self.data_dir}/{benchmark}/{sub}"

    def dataset_files_dir(self, wildcards: Wildcards) -> str:
        return self.dataset_folder(wildcards.benchmark)

    def dataset_inputs(self, wildcards: Wildcards) -> list[str]:
        """What verify_dataset checks: the script's folder, or every fetched file."""
        if self.uses_script(wildcards.benchmark):
            return [self.dataset_files_dir(wildcards)]
        return [
            f"{self.data_dir}/{wildcards.benchmark}/download/{f['name']}"
            for f in self.dataset_files(wildcards.benchmark)
        ]

    def download_args(self, wildcards: Any) -> str:
        """download_file's --url (the mirror, then the file's url) and checksum arguments."""
        name, benchmark = wildcards.file, wildcards.benchmark
        mirror = self.dataset(benchmark).get("mirror")
        spec = self.dataset_file(benchmark, name)
        urls = sources(spec, mirror, self.workflow_dir)
        return " ".join(
            [f"--url {shlex.quote(u)}" for u in urls]
            + [f"--{a} {spec[a]}" for a in ("sha256", "md5") if a in spec]
        )

    def download_policy_args(self, wildcards: Wildcards | None = None) -> str:
        d = self.config["download"]
        deadline = d.get("deadline_s", DEADLINE_S)
        return (
            f"--retries {d['retries']} --backoff-s {d['backoff_s']} --timeout-s {d['timeout_s']}"
            f" --deadline-s {deadline or 0} --min-bytes-per-s "
            f"{d.get('min_bytes_per_s', MIN_BYTES_PER_S)}"
            + ("" if d["progress"] else " --no-progress")
        )

    def dataset_script(self, benchmark: str) -> tuple[str, str]:
        """The dataset script's command and the folder it runs in."""
        script = self.dataset(benchmark)["script"]
        return script["command"], expand_url(script["cwd"], self.workflow_dir)

    def files_json(self, wildcards: Wildcards) -> str:
        return json_arg(self.dataset_files(wildcards.benchmark))

    def data_lock_args(self, wildcards: Wildcards) -> str:
        """The dataset commands' lock (<data_dir>/<benchmark>.lock) and how long they wait for
        another holder (config data_lock_wait_s; 0: no limit): scripts/data/datalock.py."""
        lock = datalock.lock_path(self.data_dir, wildcards.benchmark)
        wait = self.config.get(datalock.WAIT_KEY, datalock.DEFAULT_WAIT_S)
        return f"--lock {shlex.quote(str(lock))} --lock-wait-s {wait or 0}"

    def dataset_folders(self, benchmark: str) -> dict[str, str]:
        """A dataset of folders the user already has (config dataset.folders) or its data
        commands make (dataset.commands: <data_dir>/<b>/made/NAME), or {}."""
        return dataset_folders(
            dataset_section(self.benchmarks[benchmark]), self.data_dir, benchmark
        )

    def folder_benchmarks_regex(self) -> str:
        """link_dataset_folders' wildcard constraint: exactly the benchmarks whose dataset is
        folders (none: a pattern that matches nothing), so the other dataset rules never
        compete for the rest."""
        names = sorted(b for b in self.benchmarks if self.dataset_folders(b))
        return "|".join(re.escape(b) for b in names) or "(?!)"

    def folders_args(self, wildcards: Wildcards) -> str:
        """link_dataset_folders' --folders-json and --key (named in its messages)."""
        b = wildcards.benchmark
        key = "commands" if self.data_commands(b) else "folders"
        return (
            f"--folders-json {json_arg(self.dataset_folders(b))} "
            f"--key {shlex.quote(f'benchmarks.{b}.dataset.{key}')}"
        )

    # -- the implementation's data commands (dataset.commands; rule run_data_command) --------

    def data_commands(self, benchmark: str) -> list[dict[str, Any]]:
        commands: list[dict[str, Any]] = (
            dataset_section(self.benchmarks[benchmark]).get("commands") or []
        )
        return commands

    def made_folders(self, wildcards: Wildcards) -> list[str]:
        """link_dataset_folders' inputs: the folders the data commands make (none for folders
        the user has)."""
        return list(self.dataset_folders(wildcards.benchmark).values()) if self.data_commands(
            wildcards.benchmark
        ) else []  # fmt: skip

    def data_command_benchmarks_regex(self) -> str:
        """run_data_command's wildcard constraint: the benchmarks with data commands."""
        names = sorted(b for b in self.benchmarks if self.data_commands(b))
        return "|".join(re.escape(b) for b in names) or "(?!)"

    def data_command_system(self, benchmark: str) -> str:
        """Whose image runs the data commands: the campaign's first system that runs the
        benchmark and whose backend has an image."""
        for system in benchmark_systems(self.config, benchmark):
            if backends.get(self.config["systems"][system]["backend"]).has_image():
                return system
        raise ConfigError(
            f"benchmarks.{benchmark}.dataset.commands run in the benchmark's image, but no "
            "system of the campaign that runs it has a backend with an image (docker, podman, "
            "pyxis)"
        )

    def data_command_image(self, wildcards: Wildcards) -> str:
        """run_data_command's input: the image stamp of :meth:`data_command_system`."""
        b = wildcards.benchmark
        return f"results/{b}/{self.data_command_system(b)}/image.json"

    def data_command_args(self, wildcards: Any) -> str:
        """run_data_command's arguments: the engine, the command and its container options."""
        # lazy: the container code loads only for a campaign with data commands
        from scripts.run.backends.container import run_options
        from scripts.run.backends.data_commands import command_options
        from scripts.run.backends.engine import ContainerEngine

        b, folder = wildcards.benchmark, wildcards.folder
        found = [c for c in self.data_commands(b) if c["folder"] == folder]
        if not found:
            raise ConfigError(f"benchmarks.{b}.dataset.commands has no folder {folder!r}")
        system = self.data_command_system(b)
        options = command_options(run_options(self.config, b, system), found[0])
        engine = backends.get(self.config["systems"][system]["backend"])
        assert isinstance(engine, ContainerEngine)  # has_image: docker, podman, pyxis (docker's)
        return shlex.join(
            ["--engine", engine.cli, "--options", json.dumps(options, sort_keys=True)]
            + ["--command", found[0]["command"], "--benchmark", b, "--system", system]
            + ["--name", f"mlperf-{b}-data-{folder}"]
        )

    def unpack_limit_args(self, wildcards: Wildcards) -> str:
        """unpack_dataset's --max-unpacked-bytes (config dataset.max_unpacked_bytes), or none:
        the default limit (scripts/data/archives.py: unpack_limit)."""
        limit = self.dataset(wildcards.benchmark).get("max_unpacked_bytes")
        return "" if limit is None else f"--max-unpacked-bytes {int(limit)}"
