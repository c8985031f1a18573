"""The page cache of a run's dataset: evicted without root, residency read with mincore."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from scripts.data import pagecache

MIB = 1024 * 1024
SIZE = 8 * MIB + 123  # not a whole number of pages


def warm_file(path: Path, size: int = SIZE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))
    os.sync()  # clean pages: DONTNEED drops clean pages only (a dataset's files are read-only)
    path.read_bytes()  # in the page cache now
    return path


def fs_type(path: Path) -> str:
    """The file system type of ``path`` (the longest mount point above it in /proc/mounts)."""
    best, kind = "", ""
    for line in Path("/proc/mounts").read_text().splitlines():
        _, mount, fstype = line.split()[:3]
        inside = (str(path.resolve()) + "/").startswith(mount.rstrip("/") + "/")
        if inside and len(mount) > len(best):
            best, kind = mount, fstype
    return kind


@pytest.fixture
def tmp_path(tmp_path: Path, request) -> Path:
    """A folder on a disk-backed file system: tmpfs pages are the files themselves, nothing
    evicts them (then a folder beside the tests, removed afterwards)."""
    if fs_type(tmp_path) not in ("tmpfs", "ramfs"):
        return tmp_path
    here = Path(tempfile.mkdtemp(prefix=".pagecache-", dir=Path(__file__).parent))
    request.addfinalizer(lambda: shutil.rmtree(here))
    return here


def test_a_warm_file_is_cold_after_evict(tmp_path):
    f = warm_file(tmp_path / "data" / "train.bin")
    before = pagecache.residency([f])
    assert before.bytes == SIZE and before.files == 1
    assert before.fraction > 0.9, before  # just read: resident
    assert pagecache.evict([f]) == 1
    after = pagecache.residency([f])
    assert after.fraction < 0.05, after
    # reading the residency did not bring it back
    assert pagecache.residency([f]).fraction < 0.05


def test_a_file_written_just_now_is_cold_after_evict_too(tmp_path):
    """A dataset unpacked just before the first run: its pages are still dirty (no sync),
    and DONTNEED alone keeps dirty pages; evict writes them back first."""
    f = tmp_path / "data" / "fresh.bin"
    f.parent.mkdir(parents=True)
    f.write_bytes(os.urandom(SIZE))  # no os.sync(): dirty for up to 30 s
    assert pagecache.residency([f]).fraction > 0.9
    pagecache.evict([f])
    assert pagecache.residency([f]).fraction < 0.05


def test_residency_of_a_tree_counts_every_file_and_partial_reads(tmp_path):
    a = warm_file(tmp_path / "d" / "a.bin")
    b = warm_file(tmp_path / "d" / "sub" / "b.bin", 16 * MIB)
    (tmp_path / "d" / "empty").write_bytes(b"")
    files = pagecache.files_of(tmp_path / "d")
    assert files == sorted([a, b, tmp_path / "d" / "empty"])
    pagecache.evict(files)
    with b.open("rb") as fh:
        fh.read(2 * MIB)  # an eighth of b
    r = pagecache.residency(files)
    assert r.files == 3 and r.bytes == SIZE + 16 * MIB
    # what was read, plus what the kernel read ahead (a few MiB at most), and nothing of a
    assert 2 * MIB <= r.resident_bytes <= 8 * MIB, r
    assert pagecache.residency([a]).resident_bytes == 0
    meta = r.to_meta()
    assert meta["bytes"] == r.bytes and 0 < meta["fraction"] < 1


def test_an_empty_or_missing_file(tmp_path):
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert pagecache.residency([empty]).fraction == 0.0
    with pytest.raises(pagecache.PageCacheError, match="missing"):
        pagecache.residency([tmp_path / "missing"])
    with pytest.raises(pagecache.PageCacheError, match="cannot open .*missing to evict"):
        pagecache.evict([tmp_path / "missing"])


def test_drop_caches_without_the_right_says_what_to_use_instead(tmp_path):
    # (root may write anywhere here: a path that cannot be opened stands for /proc's refusal)
    with pytest.raises(pagecache.PageCacheError, match="needs root on the host.*use cache: cold"):
        pagecache.drop_caches(tmp_path / "no" / "drop_caches")


# --- the runner: cache cold | warm, recorded in run.json --------------------------------------


def _runner_spec(cache: str, drop_caches: bool = False):
    from scripts.run.spec import RunSpec

    return RunSpec(
        benchmark="b", system="s", run=1, seed=7, command="true", env={}, timeout_s=30,
        threads=1, scale="test", config_fingerprint="cfp", comparability={},
        cache=cache, drop_caches=drop_caches,
    )  # fmt: skip


def test_the_runner_evicts_a_cold_run_s_dataset_and_records_its_residency(tmp_path):
    from scripts.run.runner import prepare_cache

    tree = tmp_path / "dataset"
    warm_file(tree / "a" / "train.bin")
    warm_file(tree / "val.bin", MIB)
    cold = prepare_cache(_runner_spec("cold"), tree)
    assert cold["cache"] == "cold" and cold["drop_caches"] is False
    res = cold["dataset_residency"]
    assert res["files"] == 2 and res["bytes"] == SIZE + MIB
    assert res["fraction"] < 0.05, res
    # warm: left as it is (read again: resident), and recorded as such
    for f in (tree / "a" / "train.bin", tree / "val.bin"):
        f.read_bytes()
    warm = prepare_cache(_runner_spec("warm"), tree)
    assert warm["cache"] == "warm" and warm["dataset_residency"]["fraction"] > 0.9, warm


def test_drop_caches_without_root_fails_the_run_with_its_reason(tmp_path, monkeypatch):
    from scripts.run.failure import RunFailed
    from scripts.run.runner import prepare_cache

    def not_root(proc=None):
        raise pagecache.PageCacheError("cannot drop the page cache (...: Permission denied)")

    monkeypatch.setattr(pagecache, "drop_caches", not_root)
    with pytest.raises(RunFailed, match="cannot drop the page cache"):
        prepare_cache(_runner_spec("cold", drop_caches=True), tmp_path)


@pytest.mark.skipif(os.geteuid() != 0, reason="drop_caches needs root")
def test_drop_caches_as_root_leaves_the_dataset_cold(tmp_path):
    from scripts.run.runner import prepare_cache

    warm_file(tmp_path / "dataset" / "x.bin")
    rec = prepare_cache(_runner_spec("warm", drop_caches=True), tmp_path / "dataset")
    assert rec["drop_caches"] is True and rec["dataset_residency"]["fraction"] < 0.05, rec
