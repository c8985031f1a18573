"""NVIDIA's MLPerf v0.6 ``config_<SYSTEM>.sh``: one layout of the one generator, config_sh.

NVIDIA's v0.6 implementations (training_results_v0.6, ``NVIDIA/benchmarks/<benchmark>/
implementations/pytorch``) source ``config_${DGXSYSTEM}.sh`` inside the container; without
it, run_and_time.sh says "Unknown system, assuming DGX1" and trains with DGX-1's settings.
``config_script: nvidia-v0.6`` has scripts/mlperf/config_sh.py write it from the system's yaml
(layout "v0.6": :func:`scripts.mlperf.config_sh.generate_v06`, whose docstring has the table).
This module keeps the names that callers and the ``nvidia-v06`` command use.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from scripts.mlperf import config_sh as _config_sh
from scripts.mlperf.config_sh import DL_PARAMS as DL_PARAMS
from scripts.mlperf.config_sh import SYSTEM_HPS as SYSTEM_HPS
from scripts.mlperf.config_sh import SystemConfigError as SystemConfigError
from scripts.mlperf.config_sh import config_filename as config_filename

KIND = _config_sh.V06_KIND  # the benchmark's implementation.container.config_script


def config_sh(
    system: str,
    system_cfg: Mapping[str, Any],
    hyperparameters: Mapping[str, Any],
    *,
    target: float,
    timeout_s: float | None = None,
) -> str:
    """The text of ``config_<system>.sh`` in the v0.6 layout (config_sh.v06_text)."""
    return _config_sh.v06_text(
        system, system_cfg, hyperparameters, target=target, timeout_s=timeout_s
    )


def config_files(config: Mapping[str, Any], benchmark: str, system: str) -> dict[str, str]:
    """The file of (benchmark, system) that the image build writes into its context
    (config_sh.config_files, which picks the layout from the benchmark's config_script)."""
    return _config_sh.config_files(config, benchmark, system)


def main(argv: list[str] | None = None) -> int:
    """``python -m scripts nvidia-v06 SYSTEM``: ``config-sh SYSTEM --benchmark gnmt-v0.6``."""
    p = argparse.ArgumentParser(
        prog="python -m scripts nvidia-v06",
        description="Print the config_<SYSTEM>.sh that the workflow writes into the build "
        "context of SYSTEM's image (give the same --configfile overlays as the campaign); "
        "the same as `python -m scripts config-sh SYSTEM --benchmark gnmt-v0.6`.",
    )
    p.add_argument("system", help="the system's name, e.g. SUT")
    p.add_argument("--benchmark", default="gnmt-v0.6")
    p.add_argument("--configfile", nargs="+", default=[], help="config overlays, in order")
    args = p.parse_args(argv)
    files = ["--configfile", *args.configfile] if args.configfile else []
    return _config_sh.main([args.system, "--benchmark", args.benchmark, *files])


if __name__ == "__main__":
    raise SystemExit(main())
