"""The finished runs on disk against the current config, dataset and environment: **reads the
disk**.

:func:`current_state` reads what finished runs are compared against (the comparability record
of :mod:`scripts.campaign.comparability`, the verified dataset's manifest, the unpacked tree's
digest, the environment digest); :func:`incomparable_runs` reads each finished run's
``run.json`` and says what differs. The load-time checks stop the workflow on any
(:mod:`scripts.campaign.preflight`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scripts.core import hashing, layout
from scripts.core.records import differences
from scripts.core.run_records import RunRecord
from scripts.data.tree import tree_digest_of
from scripts.data.verify import verified_manifest_sha256


def current_state(
    record: dict[str, Any],
    manifest: Path,
    environment: Path,
    dataset_tree: Path | None = None,
) -> dict[str, Any]:
    """What finished runs are compared against (see :func:`incomparable_runs`): the config's
    comparability record, and the dataset manifest, the unpacked tree's digest (from its
    manifest ``dataset_tree``) and the environment digest where they exist."""
    return {
        "comparability": record,
        "config_fingerprint": hashing.canonical_sha256(record),
        "dataset_manifest_sha256": (
            verified_manifest_sha256(manifest) if manifest.exists() else None
        ),
        "dataset_tree_sha256": tree_digest_of(dataset_tree) if dataset_tree else None,
        "environment_digest": (
            json.loads(environment.read_text()).get("digest") if environment.exists() else None
        ),
    }


def incomparable_runs(
    root: Path,
    benchmark: str,
    system: str,
    run_ids: Sequence[str],
    current: dict[str, Any],
) -> dict[str, list[str]]:
    """Finished runs of (benchmark, system) that differ from ``current``, with what differs,
    by run id.

    ``current`` has ``comparability`` (the config record) and its ``config_fingerprint``, and,
    where known, ``dataset_manifest_sha256``, ``dataset_tree_sha256`` and
    ``environment_digest``. A key that a run did not record (e.g. ``dataset_tree_sha256`` of a
    run made before the workflow recorded the unpacked tree) is "not recorded", never a
    difference.
    """
    found: dict[str, list[str]] = {}
    if not (root / "results" / benchmark / system).is_dir():
        return found  # no run of it yet (a fresh campaign: one stat, not one per run)
    for run_id in run_ids:
        meta_path = layout.run_dir(root, benchmark, system, run_id) / "run.json"
        if not meta_path.exists():
            continue
        try:
            meta = RunRecord.read(meta_path)
        except (OSError, ValueError):
            continue
        if meta.has("comparability"):
            diffs = differences(meta.comparability, current["comparability"])
        elif meta.config_fingerprint != current.get("config_fingerprint"):
            diffs = ["the configuration (fingerprint) changed"]
        else:
            diffs = []
        for key, label in (
            ("dataset_manifest_sha256", "the verified dataset (manifest.json)"),
            ("dataset_tree_sha256", "the unpacked dataset (dataset.manifest.json)"),
            ("environment_digest", "the environment (environment.json digest)"),
        ):
            recorded = getattr(meta, key)  # a field of RunRecord named as its key
            if current.get(key) and recorded and recorded != current[key]:
                diffs.append(f"{label} changed")
        if diffs:
            found[run_id] = diffs
    return found
