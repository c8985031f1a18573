"""The ``local`` backend: the trainer runs here, in this Python environment, as a subprocess in
its own process group (stopped by killing the group), with the GPUs assigned to the run in its
``CUDA_VISIBLE_DEVICES``."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scripts.run.backends.base import Launch, kill_group

if TYPE_CHECKING:  # types only: not imported at run time
    from scripts.run.backends.image import ImageSpec
    from scripts.run.spec import RunSpec


# the thread counts of OpenMP and the BLAS libraries, as Snakemake sets them in a job's shell
# (snakemake/shell.py)
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "GOTO_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


class LocalBackend:
    """Runs are subprocesses of the runner; nothing is added to the fingerprint."""

    name = "local"
    trains = True
    imports = False
    module = None

    def can_run(self, implementation: Mapping[str, Any]) -> bool:
        return True

    def config_problems(self, config: Mapping[str, Any], system: str) -> list[str]:
        return []

    def fingerprint_record(
        self, config: Mapping[str, Any], benchmark: str, system: str
    ) -> dict[str, Any]:
        return {}

    def system_record(self, system: Mapping[str, Any]) -> dict[str, Any]:
        return {}

    def run_setup(
        self,
        config: Mapping[str, Any],
        benchmark: str,
        system: str,
        *,
        python: str,
        dataset_dir: str,
        run_dir: str,
        prepared_dir: str | None,
    ) -> tuple[dict[str, Any], dict[str, str]]:
        return {}, {"python": python, "dataset_dir": dataset_dir, "run_dir": run_dir}

    def has_image(self) -> bool:
        return False

    def stale_reason(self, stamp: Path, spec: ImageSpec, check_engine: bool = True) -> str | None:
        return None  # no image

    def needs_prepare(self, config: Mapping[str, Any], benchmark: str) -> bool:
        return False

    def run_inputs(self, config: Mapping[str, Any], benchmark: str, system: str) -> dict[str, str]:
        return {}

    def runner_args(self, benchmark: str, system: str) -> list[str]:
        return []

    def environment_inputs(self, benchmark: str, system: str) -> dict[str, str]:
        return {}

    def environment_args(self, config: Mapping[str, Any], benchmark: str, system: str) -> list[str]:
        return []

    def check_run(self, spec: RunSpec, image_stamp: Path | None, run_dir: Path) -> None:
        return None

    def launch(
        self,
        spec: RunSpec,
        command: str,
        extra_env: Mapping[str, str],
        *,
        image_stamp: Path | None = None,
        user: str | None = None,
        gpu_devices: Sequence[str] = (),
    ) -> Launch:
        """``bash -c command`` with the spec's environment, the assigned GPUs
        (``extra_env``), the system's threads in every thread-count variable (unless the
        spec's environment sets one) and the seed."""
        env = dict(os.environ)
        # Snakemake's job shell has them at the job's threads capped at --cores (1 with
        # --cores 1, where a run of 2 threads then trained 7% slower than bare: docs/
        # PERFORMANCE.md section 12); a run uses its system's threads whatever --cores says
        env.update({name: str(spec.threads) for name in THREAD_VARIABLES})
        env.update(spec.env)
        env.update(extra_env)
        env["MLPERF_WORKFLOW_SEED"] = str(spec.seed)
        return Launch(["/bin/bash", "-c", command], env, kill_group, added_env=dict(extra_env))

    def probe(self, image_stamp: Path | None, python: str) -> dict[str, Any] | None:
        return None  # the software is this Python's, which scripts/run/environment.py reads


BACKEND = LocalBackend()
