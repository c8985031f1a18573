"""Verify a dataset's files against their configured checksums, and the verified manifest.

:func:`verify` checks every configured file of a folder (the downloads, or the script's output);
:func:`write_verified_manifest` records them in ``data/<benchmark>/manifest.json``, whose digest
runs record (:func:`verified_manifest_sha256`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from scripts.core import formats
from scripts.core.hashing import write_json
from scripts.data.checksums import HASHES, hash_file, mismatched
from scripts.data.errors import DatasetError


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
        bad = mismatched(expected, digests)
        if bad:
            problems.extend(
                f"{path}: {a} expected {expected[a]}, got {digests[a]} ({size} bytes)" for a in bad
            )
        entries.append({"name": f["name"], "size": size, **digests})
    if problems:
        raise DatasetError("dataset verification failed:\n  " + "\n  ".join(problems))
    return entries


def write_verified_manifest(path: Path, entries: Sequence[Mapping[str, Any]]) -> None:
    """data/<benchmark>/manifest.json: the verified files (name, size, checksums), versioned."""
    write_json(path, formats.stamped("manifest.json", {"files": list(entries)}))


def verified_manifest_sha256(path: Path) -> str:
    """The digest of a verified manifest that runs record (``dataset_manifest_sha256``): the
    sha256 of the file as it was written before manifests had a ``format_version``. A file
    without one is hashed as it is (every manifest of an existing campaign); a versioned one as
    the same files were written then, so that verifying the same files again after an update of
    the workflow gives the digest its finished runs recorded."""
    raw = path.read_bytes()
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if isinstance(data, dict) and formats.FORMAT_KEY in data:
        formats.check_version(data, path, "manifest.json")
        rest = {k: v for k, v in data.items() if k != formats.FORMAT_KEY}
        raw = (json.dumps(rest, indent=2) + "\n").encode()
    return hashlib.sha256(raw).hexdigest()
