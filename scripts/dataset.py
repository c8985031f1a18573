"""Dataset files: fetch with the checksum computed in the same pass, verify, unpack safely.

Every byte goes to a temporary file next to the destination; only a file whose checksums match
is renamed into place. A mismatch keeps the bad bytes as ``<file>.corrupt`` for inspection and
raises :class:`DatasetError` naming the file, URL, expected and actual hash and size.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tarfile
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

CHUNK = 1 << 20
HASHES = ("sha256", "md5")


class DatasetError(RuntimeError):
    """A dataset file could not be fetched, verified or unpacked; the message says why."""


def expand_url(url: str, workflow_dir: str | Path) -> str:
    return url.replace("{workflow_dir}", str(Path(workflow_dir).resolve()))


def _open_source(url: str) -> Any:
    parsed = urlparse(url)
    if parsed.scheme != "file":
        raise DatasetError(f"unsupported URL scheme {parsed.scheme!r} in {url}; use file://")
    path = Path(unquote(parsed.path))
    try:
        return path.open("rb")
    except OSError as exc:
        raise DatasetError(f"cannot read {url}: {exc.strerror} ({path})") from None


def hash_stream(src: Any, dst: Any | None, algorithms: Sequence[str]) -> tuple[dict[str, str], int]:
    """Copy ``src`` to ``dst`` (if given) while hashing; return (hex digests, size)."""
    hashers = {a: hashlib.new(a) for a in algorithms}
    size = 0
    while chunk := src.read(CHUNK):
        for h in hashers.values():
            h.update(chunk)
        if dst is not None:
            dst.write(chunk)
        size += len(chunk)
    return {a: h.hexdigest() for a, h in hashers.items()}, size


def hash_file(path: Path, algorithms: Sequence[str] = HASHES) -> tuple[dict[str, str], int]:
    with path.open("rb") as fh:
        return hash_stream(fh, None, algorithms)


def _mismatch(expected: Mapping[str, str], actual: Mapping[str, str]) -> list[str]:
    return [a for a in HASHES if a in expected and expected[a] != actual.get(a)]


def fetch(url: str, dest: Path, expected: Mapping[str, str]) -> dict[str, Any]:
    """Fetch ``url`` to ``dest`` atomically, checking the expected checksums on the way."""
    algorithms = [a for a in HASHES if a in expected] or ["sha256"]
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    with _open_source(url) as src, tmp.open("wb") as out:
        digests, size = hash_stream(src, out, algorithms)
    bad = _mismatch(expected, digests)
    if bad:
        corrupt = dest.with_name(dest.name + ".corrupt")
        os.replace(tmp, corrupt)
        details = "; ".join(f"{a} expected {expected[a]}, got {digests[a]}" for a in bad)
        raise DatasetError(
            f"checksum mismatch for {dest.name} from {url}: {details}; size {size} bytes. "
            f"The bytes are kept as {corrupt} for inspection. Check the URL, or the "
            "checksum in the benchmark config, then run again."
        )
    os.replace(tmp, dest)
    entry = {"name": dest.name, "size": size, **digests}
    checksums_path(dest).write_text(json.dumps(entry) + "\n")
    return entry


def checksums_path(dest: Path) -> Path:
    """Where fetch() records the checksums of a downloaded file (read without re-hashing)."""
    return dest.with_name(f".{dest.name}.checksums.json")


def outdated_download(dest: Path, expected: Mapping[str, str]) -> str | None:
    """Why a downloaded file no longer matches the configured checksums, or None."""
    try:
        recorded = json.loads(checksums_path(dest).read_text())
    except (OSError, ValueError):
        return None
    changed = [a for a in HASHES if a in expected and recorded.get(a) not in (None, expected[a])]
    return f"the configured {' and '.join(changed)} changed" if changed else None


def verify(files: Sequence[Mapping[str, Any]], directory: Path) -> list[dict[str, Any]]:
    """Check every configured file in ``directory``; return manifest entries or raise."""
    entries, problems = [], []
    for f in files:
        path = directory / f["name"]
        expected = {a: f[a] for a in HASHES if a in f}
        if not path.is_file():
            problems.append(f"{path}: missing")
            continue
        digests, size = hash_file(path, list(expected))
        bad = _mismatch(expected, digests)
        if bad:
            problems.extend(f"{path}: {a} expected {expected[a]}, got {digests[a]}" for a in bad)
        entries.append({"name": f["name"], "size": size, **digests})
    if problems:
        raise DatasetError("dataset verification failed:\n  " + "\n  ".join(problems))
    return entries


def _inside(base: Path, target: Path) -> bool:
    base, target = base.resolve(), target.resolve()
    return target == base or base in target.parents


def safe_unpack(archive: Path, dest: Path) -> list[str]:
    """Unpack a .tar, .tar.gz or .zip into ``dest``; refuse members that would escape it."""
    dest.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            names = zf.namelist()
            for name in names:
                if name.startswith("/") or not _inside(dest, dest / name):
                    raise DatasetError(
                        f"{archive}: member {name!r} would be written outside {dest}"
                    )
            zf.extractall(dest)
            return names
    try:
        tar = tarfile.open(archive)
    except tarfile.TarError as exc:
        raise DatasetError(f"{archive}: not a .tar, .tar.gz or .zip archive ({exc})") from None
    with tar:
        members = tar.getmembers()
        for m in members:
            if m.name.startswith("/") or not _inside(dest, dest / m.name):
                raise DatasetError(f"{archive}: member {m.name!r} would be written outside {dest}")
            if (m.issym() or m.islnk()) and not _inside(dest, (dest / m.name).parent / m.linkname):
                raise DatasetError(f"{archive}: link {m.name!r} -> {m.linkname!r} escapes {dest}")
        tar.extractall(dest, filter="data")
        return [m.name for m in members]


def prepare(files: Sequence[Mapping[str, Any]], download_dir: Path, dest: Path) -> None:
    """Make ``dest``: archives unpacked, other files hard-linked (copied across devices)."""
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for f in files:
        src = download_dir / f["name"]
        if f.get("unpack"):
            safe_unpack(src, tmp)
        else:
            try:
                os.link(src, tmp / f["name"])
            except OSError:
                shutil.copy2(src, tmp / f["name"])
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Fetch, verify and unpack dataset files.")
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fetch", help="fetch one file to a path, checking its checksums")
    f.add_argument("--url", required=True)
    f.add_argument("--dest", type=Path, required=True)
    f.add_argument("--sha256")
    f.add_argument("--md5")
    v = sub.add_parser("verify", help="verify every file of a dataset, write its manifest")
    v.add_argument("--files-json", required=True, help="the benchmark's dataset.files as JSON")
    v.add_argument("--dir", type=Path, required=True, help="folder holding the downloads")
    v.add_argument("--manifest", type=Path, required=True, help="manifest JSON to write")
    u = sub.add_parser("unpack", help="unpack archives and link plain files into a folder")
    u.add_argument("--files-json", required=True)
    u.add_argument("--dir", type=Path, required=True)
    u.add_argument("--dest", type=Path, required=True)
    args = p.parse_args(argv)
    try:
        if args.cmd == "fetch":
            expected = {a: getattr(args, a) for a in HASHES if getattr(args, a)}
            entry = fetch(args.url, args.dest, expected)
            print(f"fetched {entry['name']}: {entry['size']} bytes, checksums match")
        elif args.cmd == "verify":
            entries = verify(json.loads(args.files_json), args.dir)
            args.manifest.write_text(json.dumps({"files": entries}, indent=2) + "\n")
            print(f"verified {len(entries)} files -> {args.manifest}")
        else:
            prepare(json.loads(args.files_json), args.dir, args.dest)
            print(f"prepared {args.dest}")
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
