"""tests/data/published: the unpacked archives hold exactly the files SHA256SUMS names, with
those bytes (pack.py checks the same before it writes an archive)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tests.conftest import published

SUMS = Path(__file__).resolve().parent / "data" / "published" / "SHA256SUMS"


def test_every_unpacked_file_is_the_one_sha256sums_names():
    root = published()
    named = dict(reversed(line.split("  ", 1)) for line in SUMS.read_text().splitlines())
    found = {str(f.relative_to(root)) for f in root.rglob("*") if f.is_file()}
    assert found == set(named)
    wrong = [
        rel
        for rel, digest in named.items()
        if hashlib.sha256((root / rel).read_bytes()).hexdigest() != digest
    ]
    assert not wrong
    v51 = root / "mlperf-v5.1-implementations"
    assert (
        len(
            list(
                (v51 / "NVIDIA/results/tyche_ngpu8_ngc25.04_pytorch/retinanet").glob("result_*.txt")
            )
        )
        == 5
    )
