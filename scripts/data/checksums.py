"""Multi-hash: the sha256 and md5 (those a file's config names) and the size of a stream, in
one pass, so that a download or a verification reads each byte once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

CHUNK = 1 << 20
HASHES = ("sha256", "md5")


class Hashing:
    """Running checksums and size of the bytes seen so far."""

    def __init__(self, algorithms: Sequence[str]) -> None:
        self.algorithms = list(algorithms)
        self.reset()

    def reset(self) -> None:
        self.hashers = {a: hashlib.new(a) for a in self.algorithms}
        self.size = 0

    def update(self, chunk: bytes | memoryview) -> None:
        for h in self.hashers.values():
            h.update(chunk)
        self.size += len(chunk)

    def digests(self) -> dict[str, str]:
        return {a: h.hexdigest() for a, h in self.hashers.items()}


def hash_stream(
    src: BinaryIO, dst: BinaryIO | None, algorithms: Sequence[str]
) -> tuple[dict[str, str], int]:
    """Copy ``src`` to ``dst`` (if given) while hashing; return (hex digests, size)."""
    hashing = Hashing(algorithms)
    copy_hashed(src, dst, hashing, lambda n: None)
    return hashing.digests(), hashing.size


def copy_hashed(
    src: BinaryIO, dst: BinaryIO | None, hashing: Hashing, advance: Callable[[int], Any]
) -> None:
    """Copy ``src`` to ``dst`` (None: nowhere) in chunks, each hashed, ``advance(n)`` after each."""
    # one reusable buffer: no allocation per chunk (verify's speed is compared with md5sum)
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    while n := src.readinto(view):  # type: ignore[attr-defined]
        chunk = view[:n]
        hashing.update(chunk)
        if dst is not None:
            dst.write(chunk)
        advance(n)


def hash_file(path: Path, algorithms: Sequence[str] = HASHES) -> tuple[dict[str, str], int]:
    with path.open("rb", buffering=0) as fh:
        return hash_stream(fh, None, algorithms)  # type: ignore[arg-type]


def mismatched(expected: Mapping[str, str], actual: Mapping[str, str]) -> list[str]:
    """The algorithms whose expected digest ``actual`` does not have."""
    return [a for a in HASHES if a in expected and expected[a] != actual.get(a)]
