"""What a system's backend asks of the rules (rules/image.smk, rules/environment.smk and
train_run's container inputs), a part of :class:`scripts.workflow.rule_inputs.RuleInputs`: the
image's spec and build inputs, a fetched source, the wheels, the prepared data, the image stamp a
run reads and the environment capture's arguments. Each answer comes from the system's backend
(:mod:`scripts.run.backends`), so no rule names one.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

from scripts.campaign.command import command_context, render_command
from scripts.run import backends
from scripts.run.backends.base import Backend
from scripts.workflow.dataset_inputs import json_arg


class Wildcards(Protocol):
    """The wildcards of a job, as Snakemake gives them (only those a rule has are read)."""

    benchmark: str
    system: str
    run: str


def container_module() -> ModuleType:
    """scripts.run.backends.container, imported only when a container system asks for it."""
    # lazy: a campaign on the local backend loads no container code at every start
    from scripts.run.backends import container

    return container


class BackendInputs:
    """The backend part of RuleInputs; RuleInputs sets the attributes below."""

    config: Mapping[str, Any]
    benchmarks: Mapping[str, Any]
    systems: Mapping[str, Any]
    workflow_dir: Path
    ancient: Callable[[str], Any]
    trained_systems: Callable[[], list[str]]

    def backend_of(self, system: str) -> Backend:
        """The system's backend: every rule asks it, none names it."""
        return backends.get(self.systems[system]["backend"])

    # -- what a backend needs (container backends: rules/image.smk) -----------------------------

    def container_cfg(self, benchmark: str) -> dict[str, Any]:
        cont: dict[str, Any] = (
            self.benchmarks[benchmark].get("implementation", {}).get("container") or {}
        )
        return cont

    def container_run_inputs(self, wildcards: Wildcards) -> dict[str, Any]:
        """What a run needs from its backend (a container backend: the image and the prepared
        data). ancient(): a rebuilt image does not by itself redo finished runs; the
        comparability check (scripts/campaign/preflight.py) stops instead.
        """
        needed = self.backend_of(wildcards.system).run_inputs(
            self.config, wildcards.benchmark, wildcards.system
        )
        return {name: self.ancient(path) for name, path in needed.items()}

    def container_run_input_functions(self) -> list[Any]:
        """train_run's input function for :meth:`container_run_inputs`, unpacked, where a
        trained system's backend has run inputs for a benchmark; none otherwise."""
        if not any(
            self.backend_of(s).run_inputs(self.config, b, s)
            for b in self.benchmarks
            for s in self.trained_systems()
        ):
            return []
        from snakemake.io import unpack  # the rules' own; this module loads without Snakemake

        return [unpack(self.container_run_inputs)]

    def image_stamp_arg(self, wildcards: Wildcards) -> str:
        backend = self.backend_of(wildcards.system)
        return shlex.join(backend.runner_args(wildcards.benchmark, wildcards.system))

    def image_module(self, wildcards: Wildcards) -> str:
        """The module whose command line builds and uses the system's images."""
        return self.backend_of(wildcards.system).module

    def environment_inputs(self, wildcards: Wildcards) -> dict[str, str]:
        """A container system's environment is its image's: captured again when it changes."""
        return self.backend_of(wildcards.system).environment_inputs(
            wildcards.benchmark, wildcards.system
        )

    def environment_args(self, wildcards: Wildcards) -> str:
        """capture_environment's --backend and the backend's own arguments (its image)."""
        name = self.systems[wildcards.system]["backend"]
        extra = self.backend_of(wildcards.system).environment_args(
            self.config, wildcards.benchmark, wildcards.system
        )
        return shlex.join(["--backend", name, *extra])

    def image_spec_json(self, wildcards: Wildcards) -> str:
        b, s = wildcards.benchmark, wildcards.system
        # lazy: the image code loads only for a system with an image
        from scripts.run.backends import image

        return image.image_spec(self.config, b, s, self.workflow_dir).to_json()

    def image_build_inputs(self, wildcards: Wildcards) -> dict[str, Any]:
        """What the build needs from other rules: the fetched source (git) or the wheels."""
        cont, inputs = self.container_cfg(wildcards.benchmark), {}
        source = cont.get("source") or {}
        if source.get("git"):
            inputs["source"] = self.ancient(f"build/{wildcards.benchmark}/source")
        if cont.get("wheels"):
            inputs["wheels"] = self.ancient(f"build/{wildcards.benchmark}/wheels")
        return inputs

    def source_args(self, wildcards: Wildcards) -> str:
        """fetch_source's --git, --commit and --subdir."""
        source = self.container_cfg(wildcards.benchmark)["source"]
        return shlex.join(
            ["--git", source["git"], "--commit", source["commit"],
             "--subdir", source.get("subdir") or ""]
        )  # fmt: skip

    def wheels_requirements(self, wildcards: Wildcards) -> str:
        return f"{self.workflow_dir}/{self.container_cfg(wildcards.benchmark)['wheels']}"

    def run_options_json(self, wildcards: Wildcards) -> str:
        options = container_module().run_options(self.config, wildcards.benchmark, wildcards.system)
        return json_arg(options)

    def prepare_command(self, wildcards: Wildcards) -> str:
        """The data preparation command, with the run command's placeholders (run 1's values)."""
        b, s = wildcards.benchmark, wildcards.system
        options = container_module().run_options(self.config, b, s)
        context = command_context(
            self.config,
            b,
            s,
            1,
            python=options["python"],
            dataset_dir=options["dataset_mount"],
            run_dir=options["run_mount"],
        )
        return render_command(self.container_cfg(b)["prepare"]["command"], context)
