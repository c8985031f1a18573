"""A benchmark's ``dataset`` setting: a section (files to fetch, folders the user has, or the
implementation's data commands: what the dataset rules make, rules/dataset.smk), or the word
``none``: the implementation brings its own data (issue 24: "A benchmark whose implementation
brings its own data may say ``dataset: none``"). A benchmark with ``dataset: none`` has no
dataset job, no ``<data_dir>/<benchmark>`` folder, and its runs take no dataset input.

Every reader of the setting asks here, so that the word and a missing section (a benchmark that
is only imported) read the same: :func:`dataset_section` is ``{}`` for both.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["DATA_KINDS", "NO_DATASET", "dataset_section", "drop_null_kinds", "has_no_dataset"]

NO_DATASET = "none"  # the schema's one string value of a benchmark's dataset
# where a dataset's data comes from: exactly one of them (scripts/data/sources.py checks)
DATA_KINDS = ("files", "folders", "commands")


def has_no_dataset(bench: Mapping[str, Any]) -> bool:
    """Whether the benchmark says ``dataset: none`` (a missing section is not that: an
    import-only benchmark has no dataset because it never trains)."""
    return bench.get("dataset") == NO_DATASET


def dataset_section(bench: Mapping[str, Any]) -> Mapping[str, Any]:
    """The benchmark's dataset section; ``{}`` for ``dataset: none`` or none given."""
    section = bench.get("dataset")
    return section if isinstance(section, Mapping) else {}


def drop_null_kinds(benchmarks: Mapping[str, Any]) -> dict[str, Any]:
    """``benchmarks`` with each dataset's ``files``, ``folders`` or ``commands`` set to null
    left out: a later config file's way to drop an earlier one's choice, since Snakemake merges
    mappings key by key and a key, once given, cannot be removed (e.g. the data commands of a
    generated implementation overlay, for a user who already has the folders)."""
    out = dict(benchmarks)
    for name, bench in benchmarks.items():
        section = bench.get("dataset") if isinstance(bench, Mapping) else None
        if isinstance(section, Mapping) and any(
            k in section and section[k] is None for k in DATA_KINDS
        ):
            kept = {k: v for k, v in section.items() if not (k in DATA_KINDS and v is None)}
            out[name] = {**bench, "dataset": kept}
    return out
