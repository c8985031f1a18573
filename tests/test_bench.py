"""The benchmarks under bench/ keep working: each runs in its quick mode (numbers in docs/)."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import REPO


def test_dataset_verify_bench_quick() -> None:
    out = subprocess.run(
        [sys.executable, str(REPO / "bench" / "dataset_verify.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    ratio = re.search(r"verify / md5sum: ([\d.]+)x", out)
    reads = re.search(r"([\d.]+) reads per byte", out)
    assert ratio and float(ratio.group(1)) > 0, out
    assert reads and 1.0 <= float(reads.group(1)) < 1.1, out  # one pass, quick mode included
