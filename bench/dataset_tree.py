"""What the unpacked dataset's manifest costs: recording it at unpack time, and the cheap check
(size and mtime of every file, the hash only of a changed one) before each run and at load time.

    python bench/dataset_tree.py            # 10,000 files of 4 KiB and one of 256 MiB
    python bench/dataset_tree.py --quick    # 1,000 files and one of 16 MiB (CI)

Prints the seconds of: the manifest (hashing every byte, once per unpack), the check of an
intact tree (what every run and every invocation pays), restore_tree on an intact tree (the
load-time step), and the check after one small file was touched (its hash is computed).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.data.restore import restore_tree  # noqa: E402
from scripts.data.tree import tree_problem, write_tree_manifest  # noqa: E402


def best(fn, rounds: int) -> float:
    """The median of ``rounds`` timings (seconds) of ``fn()``."""
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def make_tree(tree: Path, files: int, big_mib: int) -> None:
    for i in range(files):
        folder = tree / f"part{i // 1000:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i:06d}.txt").write_bytes(os.urandom(4096))
    with (tree / "big.bin").open("wb") as fh:
        for _ in range(big_mib):
            fh.write(os.urandom(1 << 20))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--files", type=int, default=10_000)
    p.add_argument("--big-mib", type=int, default=256)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="1,000 files, 16 MiB, 3 rounds")
    args = p.parse_args()
    files, big_mib, rounds = (
        (1000, 16, 3) if args.quick else (args.files, args.big_mib, args.rounds)
    )
    with tempfile.TemporaryDirectory(prefix="bench-tree-") as tmp:
        root = Path(tmp) / "data" / "b"
        tree = root / "dataset"
        make_tree(tree, files, big_mib)
        (root / "manifest.json").write_text('{"files": []}')
        t = time.perf_counter()
        write_tree_manifest(tree)
        record_s = time.perf_counter() - t
        check_s = best(lambda: tree_problem(tree), rounds)
        assert tree_problem(tree) is None

        def restore() -> None:
            assert restore_tree(tree, [], root, lambda names: None) is None

        restore_s = best(restore, rounds)
        os.utime(tree / "part000" / "f000000.txt", ns=(1, 1))  # touched, same bytes
        touched_s = best(lambda: tree_problem(tree), rounds)
        print(f"tree: {files} files of 4 KiB + {big_mib} MiB")
        print(f"manifest at unpack time: {record_s:.3f} s")
        print(f"check of an intact tree (each run): {check_s * 1000:.1f} ms")
        print(f"restore_tree of an intact tree (each invocation): {restore_s * 1000:.1f} ms")
        print(f"check with one touched file (hashed): {touched_s * 1000:.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
