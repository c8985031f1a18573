"""scripts/core/hashing.py: the digests are pinned (every recorded fingerprint depends on them) and
the atomic writes leave the old file or the new one, never a half-written one or a temp file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from scripts.core import hashing
from scripts.data.tree import tree_digest

# Computed with the code before scripts/core/hashing.py existed (config.fingerprint and
# docker_backend._canonical_sha256 at 73864c0): if one of these changes, every campaign's
# fingerprints and image digests change with it.
SAMPLE = {"b": [1, 2.5, None, True], "a": {"z": "é", "y": Path("/x")}, "c": "text"}
SAMPLE_SHA256 = "c1866863247cc295a423fd9953d3c4691e7f2708800a0a7df3b86cc9e28f3a0b"
TEXT_SHA256 = "84a341face2fd4910665fa930937c2b3eacbb9d032690f68e90fd6fe05069fad"  # "abc\n"
TREE_SHA256 = "56a760e674a357502e5e002d131d1c92ab4492c4de10aaaa00f81509a8a53010"
HELLO_SHA256 = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"  # "hello\n"
DATASET_TREE_DIGEST = "431f79865078bf84137d5145376b88458a77d9e50a8d0dc7edc083ec7f7b7154"


def test_canonical_digest_is_the_one_recorded_before() -> None:
    assert hashing.canonical_sha256(SAMPLE) == SAMPLE_SHA256
    assert hashing.canonical_sha256("abc\n") == TEXT_SHA256
    assert hashing.canonical_json({"b": 1, "a": [1, 2]}) == '{"a":[1,2],"b":1}'
    # key order does not matter
    assert hashing.canonical_sha256(dict(reversed(list(SAMPLE.items())))) == SAMPLE_SHA256


def test_dataset_tree_digest_is_the_one_recorded_before() -> None:
    entries = [
        {"path": "b", "size": 3, "sha256": "ab", "mtime_ns": 5},
        {"path": "a", "symlink": "b", "size": 0},
    ]
    assert tree_digest(entries) == DATASET_TREE_DIGEST


def test_file_and_tree_sha256(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("hello\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub/x.sh").write_text("#!/bin/sh\n")
    os.chmod(tmp_path / "sub/x.sh", 0o755)
    os.symlink("a", tmp_path / "link")
    assert hashing.file_sha256(tmp_path / "a") == HELLO_SHA256
    assert hashing.tree_sha256(tmp_path) == TREE_SHA256
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("x")
    assert hashing.tree_sha256(tmp_path) == TREE_SHA256  # .git is excluded


def test_file_sha256_streams_in_blocks(tmp_path: Path) -> None:
    """A file larger than a block, and a block size that does not divide it."""
    import hashlib

    data = os.urandom(3 * 1024 + 17)
    (tmp_path / "f").write_bytes(data)
    expected = hashlib.sha256(data).hexdigest()
    assert hashing.file_sha256(tmp_path / "f", block=1000) == expected
    assert hashing.file_sha256(tmp_path / "f") == expected


def test_write_atomic_replaces_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "new" / "folder" / "run.json"
    hashing.write_atomic(target, "one\n")
    hashing.write_atomic(target, "two\n", fsync=True)
    assert target.read_text() == "two\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["run.json"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask  # as a plain write


def test_write_atomic_failure_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "result.json"
    target.write_text("old\n")
    with pytest.raises(UnicodeEncodeError):
        hashing.write_atomic(target, "bad \udcff surrogate")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_write_json_is_the_old_format(tmp_path: Path) -> None:
    hashing.write_json(tmp_path / "a.json", {"b": 1, "a": [1]})
    assert (tmp_path / "a.json").read_text() == '{\n  "b": 1,\n  "a": [\n    1\n  ]\n}\n'
    hashing.write_json(tmp_path / "b.json", {"b": 1, "a": 2}, sort_keys=True, indent=1)
    assert (tmp_path / "b.json").read_text() == '{\n "a": 2,\n "b": 1\n}\n'
