"""What one training run is, as plain data: :class:`RunSpec` (made by the campaign's plan,
passed to the runner and the backends as JSON), and which later fingerprint keys a system's
finished runs were made with.

It is its own module so that the runner and the backends (run layer) do not import the plan
(campaign layer) that makes it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path
from typing import Any

from scripts.core import layout
from scripts.core.run_records import RunRecord
from scripts.mlperf.log_validity import DEFAULT_MAX_LOG_BYTES

# RunSpec.to_json's place for the comparability record it splices in (NUL: no config has it)
_SPLICE = "\0comparability\0"
# the variable of NVIDIA's v5.x launch scripts (run.sub, config_mounts.sh, run_and_time.sh)
# that makes a run train on generated data: a synthetic run's environment has it set to 1
SYNTHETIC_ENV = "USE_SYNTHETIC_DATA"


@dataclass(frozen=True, slots=True)
class RunSpec:
    """Everything one training run needs, as plain data (passed to the runner as JSON)."""

    benchmark: str
    system: str
    # the run's number (1-based), an int everywhere; run_id below is the text of its paths
    run: int
    seed: int
    command: str
    env: dict[str, str]
    timeout_s: float | None
    threads: int
    scale: str
    config_fingerprint: str
    comparability: dict[str, Any]
    retries: int = 0
    # GPUs per run (per node), the devices local runs may take, where their locks live, and who
    # assigns them: "local" (scripts/run/gpus.py locks) or "scheduler" (a cluster job's own GPUs)
    gpus: int = 0
    gpu_devices: tuple[str, ...] = ()
    gpu_lock_dir: str = "/tmp/mlperf-workflow-gpu-locks"
    gpu_assign: str = "local"
    # nodes per run (> 1: one srun per node inside a Slurm allocation) and CPUs per node
    nodes: int = 1
    cpus_per_node: int = 1
    # the name of its backend (scripts/run/backends/); for a container backend, how the container
    # runs (scripts/run/backends/container.py: run_options) plus the host paths of the dataset, run
    # and prepared-data folders
    backend: str = "local"
    container: dict[str, Any] = dc_field(default_factory=dict)
    # regular expressions: a log line that matches one makes the run a crash (e.g. NVIDIA's
    # "Unknown system, assuming DGX1": the container did not find its config_<SYSTEM>.sh)
    fail_patterns: list[str] = dc_field(default_factory=list)
    # the run's id (scripts/core/layout.py): its folder, marker and failed logs are run_<run_id>;
    # empty: the id of a campaign of at most 99 runs
    run_id: str = ""
    # the page cache before each attempt (scripts/data/pagecache.py): "cold" evicts the dataset's
    # files, "warm" leaves them; drop_caches: also the machine's whole clean cache (root)
    cache: str = "cold"
    drop_caches: bool = False
    # what the run's log must name in submission_benchmark (the benchmark's mlperf_name and
    # folder_aliases; empty: not checked), and its largest size (max_log_bytes): a log that
    # breaks either is not a valid log of this run (scripts/mlperf/log_validity.py: OwnRun)
    mlperf_names: list[str] = dc_field(default_factory=list)
    max_log_bytes: int = DEFAULT_MAX_LOG_BYTES
    # the system's power setting (source, interval_s, conversion_eff, command, timeout_s:
    # scripts/run/power_sampler.py); empty or source none: no power is measured
    power: dict[str, Any] = dc_field(default_factory=dict)

    @property
    def synthetic(self) -> bool:
        """A smoke run on the implementation's generated data (``implementation.synthetic``):
        its comparability record says so (not a field of its own, so the spec of every other
        run, a rule's param, is unchanged)."""
        return bool(self.comparability.get("synthetic"))

    def __post_init__(self) -> None:
        if not self.run_id:
            object.__setattr__(self, "run_id", layout.run_id(self.run, self.run))

    def to_json(self, *, comparability_json: str | None = None) -> str:
        """The spec as JSON, keys sorted. ``comparability_json``: ``json.dumps(comparability,
        sort_keys=True)``, encoded once by a caller that makes many specs sharing it; spliced
        in, the text is the same."""
        fields = {f: getattr(self, f) for f in self.__dataclass_fields__}
        if not fields["power"]:  # no power measured: the spec's text is what it was before it
            del fields["power"]
        if comparability_json is None:
            return json.dumps(fields, sort_keys=True)
        fields["comparability"] = _SPLICE
        text = json.dumps(fields, sort_keys=True)
        token = json.dumps(_SPLICE)
        if text.count(token) != 1:  # a value equal to the marker: encode it all
            fields["comparability"] = self.comparability
            return json.dumps(fields, sort_keys=True)
        return text.replace(token, comparability_json)

    @classmethod
    def from_json(cls, text: str) -> RunSpec:
        data = json.loads(text)
        if "gpu_devices" in data:
            data["gpu_devices"] = tuple(data["gpu_devices"])
        return cls(**data)


# Keys that joined the run fingerprint after campaigns had started. A system whose finished
# runs were fingerprinted without one goes on without it, so that its runs stay one group
# (tables.py refuses to mix fingerprints) until it is archived; the run still records it.
LATER_FINGERPRINT_KEYS = ("dataset_tree_sha256",)


def later_fingerprint_keys(system_dir: Path, this_run: Path) -> list[str]:
    """The keys of LATER_FINGERPRINT_KEYS that the finished runs in ``system_dir`` (other than
    ``this_run``) were fingerprinted with: all of them when there is none. The runs of a system
    agree (each new one follows those before it), so the first readable run.json decides; one
    without ``fingerprint_keys`` was made before any of them. O(1): this runs after every run."""
    for meta_path in sorted(system_dir.glob("run_*/run.json")):
        if meta_path.parent == this_run:
            continue
        try:
            used = RunRecord.read(meta_path).fingerprint_keys or []
        except (OSError, ValueError):  # CorruptFile, NotAnObject: the next one decides
            continue
        return [k for k in LATER_FINGERPRINT_KEYS if k in used]
    return list(LATER_FINGERPRINT_KEYS)
