"""Rebuild the archives of this folder: the published MLPerf Training logs the tests read.

    python tests/data/published/pack.py                   # from ../shared/fixtures
    python tests/data/published/pack.py --fixtures DIR    # from another folder of that layout
    python tests/data/published/pack.py --checkouts v0.6=DIR v5.0=DIR v4.1=DIR v5.1=DIR

Every file SHA256SUMS names is taken (from the fixtures folder, or from the mlcommons
training_results_vX.Y checkouts at the commits README.md names; the expected*.tsv files, the
result summarizer's output, are in no checkout and come from the current archives), the v0.6
GNMT logs are cut to their excerpt (:func:`excerpt_v06`), every file is checked against
SHA256SUMS, and only then are the archives written: one tar.xz per top folder, files in name
order, owner 0, mode 0644, a fixed mtime, so that the same files give the same archive.
``--update-sums`` takes every file of the fixtures folders instead (README.md files left out)
and rewrites SHA256SUMS: for a deliberate change of what the tests read.

tests/conftest.py unpacks the archives once per test session (``published()``).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import lzma
import re
import sys
import tarfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
FOLDERS = ("mlperf-v0.6-nvidia", "mlperf-v5.0-nvidia", "mlperf-more", "mlperf-v5.1-implementations")
# of the v5.1 implementations, the launch, config, mount and data files and the published results
# of RetinaNet and AMD's Llama 2 70B LoRA; not the licence text (README.md names it) nor the nemo
# results no test reads
LEFT_OUT = (
    "mlperf-v5.1-implementations/NVIDIA/results/tyche_ngpu8_ngc25.09_nemo/",
    "mlperf-v5.1-implementations/NVIDIA/benchmarks/retinanet/implementations/"
    "tyche_ngpu8_ngc25.04_pytorch/LICENSE",
)
SUMS = HERE / "SHA256SUMS"  # the files as the tests read them
ORIGINALS = HERE / "ORIGINALS.sha256"  # the published bytes of the logs cut to an excerpt
MTIME = 1749000000  # 2025-06-04, a fixed time: the archives do not change when nothing else does
TRAIN_STEP = re.compile(rb"^\d+: TRAIN \[\d+\]\[(\d+)/")

# fixture path prefix -> (checkout, its path prefix)
CHECKOUT_PREFIXES = (
    ("mlperf-v0.6-nvidia/", "v0.6", "NVIDIA/results/"),
    ("mlperf-v5.0-nvidia/results/", "v5.0", "NVIDIA/results/"),
    ("mlperf-v5.0-nvidia/systems/", "v5.0", "NVIDIA/systems/"),
    ("mlperf-more/training_results_v5.0/", "v5.0", ""),
    ("mlperf-more/training_results_v4.1/", "v4.1", ""),
    ("mlperf-v5.1-implementations/", "v5.1", ""),
)


def excerpt_v06(data: bytes) -> bytes:
    """A v0.6 GNMT log without the trainer's progress lines that no test and no parser reads:
    the ``N: TRAIN [epoch][step/steps]`` lines (one every 10 steps) but the first of each epoch
    (step 0), and the ``Gradient overflow.`` lines but the first. Every other line, the
    :::MLL events, the host and launch lines and the RESULT line among them, stays as it is."""
    out: list[bytes] = []
    overflow_seen = False
    for line in data.split(b"\n"):
        step = TRAIN_STEP.match(line)
        if step and step.group(1) != b"0":
            continue
        if line.startswith(b"Gradient overflow."):
            if overflow_seen:
                continue
            overflow_seen = True
        out.append(line)
    return b"\n".join(out)


def is_v06_log(rel: str) -> bool:
    return rel.startswith("mlperf-v0.6-nvidia/") and Path(rel).name.startswith("result_")


def taken(folder: str, rel: str) -> bool:
    """A file of the fixtures folder that the archives hold: not a folder's README.md (an
    implementation's own README.md of the v5.1 folder is taken) and not one of LEFT_OUT."""
    if rel == f"{folder}/README.md" or rel.startswith(LEFT_OUT):
        return False
    return folder == "mlperf-v5.1-implementations" or Path(rel).name != "README.md"


def read_sums(path: Path) -> dict[str, str]:
    sums = {}
    for line in path.read_text().splitlines():
        digest, rel = line.split("  ", 1)
        sums[rel] = digest
    return sums


def from_fixtures(root: Path, rels: list[str]) -> dict[str, bytes]:
    return {rel: (root / rel).read_bytes() for rel in rels}


def from_checkouts(checkouts: dict[str, Path], rels: list[str]) -> dict[str, bytes]:
    """Each file from its checkout; the expected*.tsv files from the current archives."""
    current = unpacked_archives()
    files = {}
    for rel in rels:
        if Path(rel).name.startswith("expected"):
            files[rel] = current[rel]
            continue
        prefix, name, inner = next(p for p in CHECKOUT_PREFIXES if rel.startswith(p[0]))
        files[rel] = (checkouts[name] / (inner + rel[len(prefix) :])).read_bytes()
    return files


def unpacked_archives() -> dict[str, bytes]:
    files = {}
    for folder in FOLDERS:
        with tarfile.open(HERE / f"{folder}.tar.xz") as tar:
            for member in tar.getmembers():
                if member.isfile():
                    files[member.name] = tar.extractfile(member).read()  # type: ignore[union-attr]
    return files


def write_archive(folder: str, files: dict[str, bytes]) -> int:
    """``folder``.tar.xz of the files under ``folder``/; its size in bytes."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel in sorted(r for r in files if r.startswith(folder + "/")):
            info = tarfile.TarInfo(rel)
            info.size, info.mtime, info.mode = len(files[rel]), MTIME, 0o644
            tar.addfile(info, io.BytesIO(files[rel]))
    data = lzma.compress(raw.getvalue(), preset=9 | lzma.PRESET_EXTREME)
    (HERE / f"{folder}.tar.xz").write_bytes(data)
    return len(data)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    default = HERE.parents[3] / "shared" / "fixtures"
    p.add_argument("--fixtures", type=Path, default=default, help=f"default: {default}")
    p.add_argument(
        "--checkouts", nargs=4, metavar="ROUND=DIR", help="v0.6=, v5.0=, v4.1= and v5.1="
    )
    p.add_argument("--update-sums", action="store_true", help="take every file, rewrite SHA256SUMS")
    args = p.parse_args(argv)
    if args.update_sums:
        rels = sorted(
            rel
            for folder in FOLDERS
            for f in (args.fixtures / folder).rglob("*")
            if f.is_file() and taken(folder, rel := str(f.relative_to(args.fixtures)))
        )
    else:
        rels = sorted(read_sums(SUMS))
    if args.checkouts:
        checkouts = {k: Path(v) for k, _, v in (c.partition("=") for c in args.checkouts)}
        files = from_checkouts(checkouts, rels)
    else:
        files = from_fixtures(args.fixtures, rels)
    cut = [rel for rel in rels if is_v06_log(rel)]
    originals = {rel: hashlib.sha256(files[rel]).hexdigest() for rel in cut}
    files = {rel: excerpt_v06(b) if rel in originals else b for rel, b in files.items()}
    sums = {rel: hashlib.sha256(b).hexdigest() for rel, b in files.items()}
    if args.update_sums:
        SUMS.write_text("".join(f"{sums[rel]}  {rel}\n" for rel in rels))
        ORIGINALS.write_text("".join(f"{originals[rel]}  {rel}\n" for rel in cut))
    for path, have in ((ORIGINALS, originals), (SUMS, sums)):
        wrong = [rel for rel, digest in read_sums(path).items() if have.get(rel) != digest]
        if wrong:
            print(f"error: not the bytes {path.name} names: {', '.join(wrong)}", file=sys.stderr)
            return 1
    for folder in FOLDERS:
        n = sum(r.startswith(folder + "/") for r in files)
        print(f"{folder}.tar.xz: {n} files, {write_archive(folder, files)} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
