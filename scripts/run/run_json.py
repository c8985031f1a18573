"""The run.json of a run made here: what ran, how it ended, where, and its fingerprint over
what makes runs comparable (an imported run's is written by :mod:`scripts.run.published.run`).
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import socket
from pathlib import Path
from typing import Any

from scripts.core import hashing
from scripts.core.run_records import RunRecord
from scripts.data.tree import tree_digest_of, tree_manifest_path
from scripts.data.verify import verified_manifest_sha256
from scripts.run import hostload
from scripts.run.backends.base import Launch
from scripts.run.spec import RunSpec, later_fingerprint_keys


def run_meta(
    spec: RunSpec,
    launch: Launch,
    meta_path: Path,
    dataset_manifest: Path | None,
    environment: Path,
    tree: Path | None,
    *,
    placement: dict[str, Any],
    outcome: dict[str, Any],
    started: float,
    elapsed_s: float,
) -> RunRecord:
    """run.json of a finished run (before its seal): what ran, how it ended (``outcome``:
    exit code and attempts), where, and its fingerprint over what makes runs comparable,
    with what the backend's launch records (e.g. the image and the engine's command line).
    ``dataset_manifest`` and ``tree`` None (``dataset: none``): no dataset digests (None)."""
    meta = {
        "benchmark": spec.benchmark,
        "system": spec.system,
        "run": spec.run,
        "seed": spec.seed,
        "scale": spec.scale,
        "command": spec.command,
        "timeout_s": spec.timeout_s,
        "threads": spec.threads,
        "host": socket.gethostname(),
        "python": platform.python_version(),
        **outcome,
        "started_utc": dt.datetime.fromtimestamp(started, dt.UTC).isoformat(),
        "wall_s": round(elapsed_s, 3),
        "config_fingerprint": spec.config_fingerprint,
        "comparability": spec.comparability,
        "dataset_manifest_sha256": (
            verified_manifest_sha256(dataset_manifest) if dataset_manifest is not None else None
        ),
        "dataset_tree_sha256": (
            tree_digest_of(tree_manifest_path(tree)) if tree is not None else None
        ),
        "environment_digest": json.loads(environment.read_text()).get("digest", ""),
        **placement,
    }
    fingerprinted = ["config_fingerprint", "dataset_manifest_sha256", "environment_digest"]
    meta.update(launch.record)  # e.g. the image and the engine's command line
    fingerprinted += launch.fingerprinted
    fingerprinted += later_fingerprint_keys(meta_path.parent.parent, meta_path.parent)
    meta["fingerprint_keys"] = sorted(fingerprinted)
    meta["fingerprint"] = hashing.canonical_sha256({k: meta[k] for k in fingerprinted})
    return RunRecord.of(**meta)


def host_load_record(load: hostload.HostLoad, launch: Launch) -> dict[str, Any]:
    """run.json's ``host_load``: what else used the machine during the attempt. A container's
    processes are not the runner's children, so their CPU cannot be told from the others':
    ``host_busy`` is then None (the load average is still recorded)."""
    record = load.to_meta()
    if launch.engine is not None:
        record.update(
            host_busy=None, run_cpu_s=None, busy_note="a container's CPU is not the runner's"
        )
    return record
