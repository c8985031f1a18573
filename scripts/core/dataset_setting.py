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

__all__ = ["NO_DATASET", "dataset_section", "has_no_dataset"]

NO_DATASET = "none"  # the schema's one string value of a benchmark's dataset


def has_no_dataset(bench: Mapping[str, Any]) -> bool:
    """Whether the benchmark says ``dataset: none`` (a missing section is not that: an
    import-only benchmark has no dataset because it never trains)."""
    return bench.get("dataset") == NO_DATASET


def dataset_section(bench: Mapping[str, Any]) -> Mapping[str, Any]:
    """The benchmark's dataset section; ``{}`` for ``dataset: none`` or none given."""
    section = bench.get("dataset")
    return section if isinstance(section, Mapping) else {}
