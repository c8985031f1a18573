"""Pure functions over the validated config and its records that the plan and the backends
share (the backends sit below the plan, so they cannot import it): a benchmark's
hyper-parameters on a system, and the differences between two records."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def hyperparameters(config: Mapping[str, Any], benchmark: str, system: str) -> dict[str, Any]:
    """The benchmark's hyper-parameters with the system's overrides applied."""
    hp = dict(config["benchmarks"][benchmark].get("implementation", {}).get("hyperparameters", {}))
    hp.update(config["systems"][system].get("hyperparameters", {}).get(benchmark, {}))
    return hp


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): data}


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """'key: old -> new' for every leaf that differs between two comparability records."""
    a, b = _flatten(old), _flatten(new)
    return [
        f"{k}: {json.dumps(a.get(k))} -> {json.dumps(b.get(k))}"
        for k in sorted(set(a) | set(b))
        if a.get(k) != b.get(k)
    ]
