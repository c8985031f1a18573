"""Dataset verification throughput against md5sum, and proof that a download reads its bytes once.

    python bench/dataset_verify.py            # 1 GiB file, 3 rounds (issue goal: >= 0.9x md5sum)
    python bench/dataset_verify.py --quick    # 64 MiB, 1 round (CI: keeps the script working)

Both tools hash the same file in alternating order, in one run (this machine is shared and
noisy: the ratio holds better than the seconds). The file is written first, so both read it from
the page cache: this measures hashing, not the disk. Then a file:// download of the same file is
measured with /proc/self/io: the bytes it reads (rchar) against the file's size.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.data.download_policy import Policy  # noqa: E402
from scripts.data.fetch import fetch  # noqa: E402
from scripts.data.verify import verify  # noqa: E402


def make_file(path: Path, size: int) -> str:
    block = hashlib.sha256(b"bench").digest() * (1 << 15)  # 1 MiB of varied bytes
    md5 = hashlib.md5()
    with path.open("wb") as fh:
        for i in range(size // len(block)):
            chunk = block[i % 997 :] + block[: i % 997]
            fh.write(chunk)
            md5.update(chunk)
    return md5.hexdigest()


def time_verify(path: Path, md5: str) -> float:
    t = time.perf_counter()
    verify([{"name": path.name, "md5": md5}], path.parent)
    return time.perf_counter() - t


def time_md5sum(path: Path, md5: str) -> float:
    t = time.perf_counter()
    out = subprocess.run(["md5sum", str(path)], capture_output=True, text=True, check=True).stdout
    elapsed = time.perf_counter() - t
    assert out.split()[0] == md5, out
    return elapsed


def rchar() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise RuntimeError("no rchar in /proc/self/io")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--size-mib", type=int, default=1024, help="file size in MiB (default 1024)")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    p.add_argument("--quick", action="store_true", help="64 MiB, 1 round")
    args = p.parse_args()
    size_mib, rounds = (64, 1) if args.quick else (args.size_mib, args.rounds)
    with tempfile.TemporaryDirectory(prefix="bench-verify-") as tmp:
        path = Path(tmp) / "data.bin"
        md5 = make_file(path, size_mib << 20)
        ours: list[float] = []
        theirs: list[float] = []
        for i in range(rounds):
            if i % 2:
                ours.append(time_verify(path, md5))
                theirs.append(time_md5sum(path, md5))
            else:
                theirs.append(time_md5sum(path, md5))
                ours.append(time_verify(path, md5))
        before = rchar()
        t = time.perf_counter()
        dest = Path(tmp) / "fetched.bin"
        fetch(path.as_uri(), dest, {"md5": md5}, Policy(progress=False))
        fetch_s = time.perf_counter() - t
        read = rchar() - before
        size = size_mib << 20
        mib = size / (1 << 20)
        ours_m, theirs_m = statistics.median(ours), statistics.median(theirs)
        print(f"file: {size_mib} MiB in the page cache, {rounds} alternating round(s), md5")
        print(f"{'tool':<34}{'median s':>10}{'MiB/s':>10}")
        print(f"{'md5sum (coreutils)':<34}{theirs_m:>10.3f}{mib / theirs_m:>10.0f}")
        print(f"{'scripts.data.verify':<34}{ours_m:>10.3f}{mib / ours_m:>10.0f}")
        print(f"{'fetch file:// (copy + md5)':<34}{fetch_s:>10.3f}{mib / fetch_s:>10.0f}")
        print(f"throughput ratio verify / md5sum: {theirs_m / ours_m:.2f}x (goal >= 0.90x)")
        print(
            f"fetch read {read} bytes for a {size}-byte file: {read / size:.3f} reads per byte "
            "(the checksum is computed in the same pass)"
        )
        os.unlink(dest)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
