"""The bert-v5.0 replay campaign (tests/data/bert_replay/README.md): a working folder set up for
its overlay, whose trainer replays NVIDIA's published v5.0 BERT logs re-timed to now.

``install(wf)`` copies the trainer, the shared re-timing code and the ten published logs into a
copy of the workflow (``tests.conftest.copy_workflow``) and returns the ``--configfile``
arguments; then, e.g.::

    snakemake(wf, "results/bert-v5.0/summary.csv", "--cores", "2", "--configfile", *install(wf))
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from tests.conftest import REPO, published

HERE = REPO / "tests" / "data" / "bert_replay"
OVERLAY = HERE / "bert-v5.0-replay.yaml"
ROUND = "config/benchmarks/mlperf-v5.0.yaml"  # bert-v5.0's definition, relative to the copy
BENCHMARK, SYSTEM = "bert-v5.0", "replay"
# NVIDIA's v5.0 BERT results that the runs replay (one 8-GPU node, ten runs of about 250 s)
PUBLISHED_LOGS = "mlperf-v5.0-nvidia/results/nyx_n1_ngc25.04_pytorch/bert"


def published_log(n: int) -> Path:
    """NVIDIA's published result_<n>.txt (n: 0..9)."""
    return published() / PUBLISHED_LOGS / f"result_{n}.txt"


def install(wf: Path, order: Sequence[int] = range(10)) -> list[str]:
    """Put the replay trainer where the overlay's command finds it, relative to the working
    folder ``wf`` (as in the repository: tests/data/bert_replay/replay.py beside
    tests/data/v51_standin/train.py), with the published logs in tests/data/bert_replay/logs;
    return the --configfile arguments: the round's definitions, then the overlay.

    ``order``: the published result numbers that runs 1, 2, ... replay (copied as result_0,
    result_1, ...; the trainer wraps around past the last): by default the ten as published."""
    data = wf / "tests" / "data"
    logs = data / "bert_replay" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    (data / "v51_standin").mkdir(parents=True, exist_ok=True)
    shutil.copy2(HERE / "replay.py", data / "bert_replay" / "replay.py")
    shutil.copy2(REPO / "tests/data/v51_standin/train.py", data / "v51_standin" / "train.py")
    for i, n in enumerate(order):
        shutil.copy2(published_log(n), logs / f"result_{i}.txt")
    return [ROUND, str(OVERLAY)]
