"""The records of a run's two JSON files, and their format versions: ``run.json``
(:class:`RunRecord`: what ran, how it ended, where, its fingerprint and its log's seal) and
``result.json`` (:class:`ResultRecord`: what the log says, with the run.json facts beside it).

Every module reads and writes those files through these records (as pyperf's ``Run`` holds a
run): :meth:`~RunRecord.read` (a file, checked as :func:`scripts.core.formats.read_json`
checks it: a corrupt file is a :class:`~scripts.core.formats.CorruptFile` naming it, a newer
version a one-line :class:`~scripts.core.formats.NewerFormat`), :meth:`~RunRecord.from_json`
(a parsed file), :meth:`~RunRecord.of` (a writer's new record), :meth:`~RunRecord.to_json` and
:meth:`~RunRecord.write`. Each key a writer writes is a field, named as the key, with its type
and what it holds; a reader asks ``record.seed``, never ``data["seed"]``.

A round trip keeps a file's bytes: a record remembers which keys its file had, in their order
(``key_order``), and keeps the keys this version does not know (``extra``), so
``from_json(data).to_json() == data`` for every file any version of the workflow wrote (a key
the file lacks reads as its field's default and is not written back). Frozen: a change is a
new record (:meth:`~RunRecord.updated`); the JSON values inside (lists, mappings) are kept as
read, not copied.

Format versions (``format_version``, first in result.json; run.json's keys are sorted):

- run.json 1: every run.json so far, also those without ``format_version`` (written before
  versions existed, read as version 1). Keys were only added since (``log_seal``,
  ``fingerprint_keys``, ``dataset_tree_sha256``, ``cache``, ``host_load``, ``containment``,
  ``power_sampling``, ``launch`` ...); a file without one reads as the field's default.
- result.json 1: likewise (later keys: ``log_problems``, ``valid_log``, ``log_sha256``,
  ``cache``, ``host_busy``, ``energy_j``, ``compliance``, ``synthetic``, ``power_source``
  ...).

Adding a key that an older reader may ignore needs no new version: a field with the default
an old file means. A change that an older workflow would misread (a key renamed, a unit or a
meaning changed) is version 2: add ``2: "<what changed>"`` to the history below
(:data:`RUN_JSON_VERSIONS` or :data:`RESULT_JSON_VERSIONS`), convert a version-1 file's keys
in ``from_json`` (old files stay readable), and add a file of each version to
``tests/data/records/``. An older workflow then refuses the new files in one line instead of
misreading them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

from scripts.core import formats, hashing

# What each format version of the two files is; the highest is the one this workflow writes
# (and the highest it reads).
RUN_JSON_VERSIONS: dict[int, str] = {
    1: "every run.json so far, with format_version 1 or none (written before versions)",
}
RESULT_JSON_VERSIONS: dict[int, str] = {
    1: "every result.json so far, with format_version 1 or none (written before versions)",
}


class NotAnObject(formats.CorruptFile):
    """A run.json or result.json that is valid JSON but not an object (a list, a number)."""


class _Record:
    """What both records share: reading, writing and the bookkeeping of a file's keys.

    A subclass is a frozen dataclass whose fields are the file's keys (in the order its writer
    writes them), then ``extra`` and ``key_order``; it sets the class attributes below."""

    KIND: ClassVar[str]  # the file's name, as the messages and formats name it
    VERSION: ClassVar[int]  # the format version written (and the highest read)
    SORTED: ClassVar[bool]  # whether the file's keys are written sorted
    # on-disk keys held by a mapping field rather than a field each: (key suffix, field name)
    MAPPED: ClassVar[tuple[tuple[str, str], ...]] = ()
    KEYS: ClassVar[frozenset[str]]  # the keys that are fields (set by _keys_of)
    ORDER: ClassVar[tuple[str, ...]]  # those keys in the order the writer writes them
    DEFAULTS: ClassVar[dict[str, Any]]  # each field's default, but those of a factory
    FACTORIES: ClassVar[tuple[tuple[str, Any], ...]]  # (field, default_factory)

    extra: Mapping[str, Any]
    key_order: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.key_order:  # made by hand: every field, then the mapped and unknown keys
            mapped = [k for _, name in self.MAPPED for k in getattr(self, name)]
            order = (*self.ORDER, *mapped, *self.extra)
            object.__setattr__(self, "key_order", order)

    @classmethod
    def from_json(cls, data: Any, path: Path | str | None = None) -> Self:
        """The record of a parsed file (``path``: where it was read, for the messages).
        Raises NotAnObject (a CorruptFile) for JSON that is not an object, CorruptFile for a
        ``format_version`` that is no version number, NewerFormat for a newer one."""
        where = path if path is not None else f"a {cls.KIND}"
        if not isinstance(data, dict):
            raise NotAnObject(f"{where} is not a JSON object")
        formats.check_version(data, where, cls.KIND, highest=cls.VERSION)
        # made without __init__ (a frozen dataclass sets its 50 fields one call each): the
        # load-time checks read every finished run's run.json at each invocation
        record = object.__new__(cls)
        values = record.__dict__
        values.update(cls.DEFAULTS)
        for name, factory in cls.FACTORIES:
            values[name] = factory()
        extra = values["extra"]
        keys = cls.KEYS
        for key, value in data.items():
            if key in keys:
                values[key] = value
                continue
            name = next((n for suffix, n in cls.MAPPED if key.endswith(suffix)), None)
            (values[name] if name is not None else extra)[key] = value
        values["key_order"] = tuple(data)
        return record

    @classmethod
    def of(cls, **values: Any) -> Self:
        """A new record as a writer makes it: ``format_version`` first, then ``values`` in
        their order (a key that is no field is kept in ``extra``; tests check that the
        writers write none)."""
        return cls.from_json({formats.FORMAT_KEY: cls.VERSION, **values})

    @classmethod
    def read(cls, path: Path | str) -> Self:
        """The record of the file at ``path``; CorruptFile (naming it) when it is not valid
        JSON or not an object, NewerFormat for a newer version, OSError as it is."""
        return cls.from_json(formats.read_json(path), path)

    def to_json(self) -> dict[str, Any]:
        """The file's keys and values, in its order: those it was read with (or made with),
        and the keys added by :meth:`updated` after them."""
        out: dict[str, Any] = {}
        for key in self.key_order:
            if key in self.KEYS:
                out[key] = getattr(self, key)
            elif key in self.extra:
                out[key] = self.extra[key]
            else:
                out[key] = next(
                    getattr(self, name)[key]
                    for suffix, name in self.MAPPED
                    if key.endswith(suffix) and key in getattr(self, name)
                )
        return out

    def write(self, path: Path) -> None:
        """Write the file atomically: :meth:`to_json` as its writer always wrote it (indented
        by 2, a newline at the end; run.json's keys sorted)."""
        hashing.write_json(path, self.to_json(), sort_keys=self.SORTED)

    def has(self, key: str) -> bool:
        """Whether the file has ``key`` (a field of a key it lacks reads as its default)."""
        return key in self.key_order

    def updated(self, **changes: Any) -> Self:
        """This record with ``changes`` (fields), a key the file lacked added at the end."""
        new = tuple(k for k in changes if k not in self.key_order)
        return dataclasses.replace(self, **changes, key_order=self.key_order + new)


def _keys_of(cls: type[_Record]) -> type[_Record]:
    """Set KEYS, ORDER, DEFAULTS and FACTORIES of a record class from its fields."""
    bookkeeping = {"extra", "key_order", *(name for _, name in cls.MAPPED)}
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    cls.ORDER = tuple(f.name for f in fields if f.name not in bookkeeping)
    cls.KEYS = frozenset(cls.ORDER)
    cls.DEFAULTS = {f.name: f.default for f in fields if f.default is not dataclasses.MISSING}
    cls.FACTORIES = tuple(
        (f.name, f.default_factory) for f in fields if f.default_factory is not dataclasses.MISSING
    )
    return cls


@_keys_of
@dataclass(frozen=True, kw_only=True)
class RunRecord(_Record):
    """A run's ``run.json``: what ran, how it ended, where, its fingerprint over what makes
    runs comparable, and its log's seal. Written by the runner (:mod:`scripts.run.run_json`)
    or by an import (:mod:`scripts.run.published.run`), sealed by :mod:`scripts.run.seals`;
    its keys are written sorted. The fields are in the order the runner makes them; most are
    None where a file lacks them (a key of a later version, or one its writer does not write:
    an imported run has no ``exit_code``, a run made here no ``source``)."""

    KIND = "run.json"
    VERSION = max(RUN_JSON_VERSIONS)
    SORTED = True
    # a container backend's engine command line: docker_argv, podman_argv (<engine>_argv),
    # held in ``engine_argv`` since its key names the engine
    MAPPED = (("_argv", "engine_argv"),)

    format_version: int = 1  # 1 where the file has none (written before versions)
    benchmark: str = ""  # the workflow's benchmark name (always written)
    system: str = ""  # the system's name (always written)
    run: int = 0  # the run's number, from 1 (always written; run_NN is its folder)
    seed: int | None = None  # the seed it ran with (an import: its log's, or None)
    scale: str | None = None  # the benchmark's scale (test, MLPerf, published ...)
    command: str | None = None  # the trainer's command line (None: an imported run)
    timeout_s: float | None = None  # the run's timeout
    threads: int | None = None  # the system's threads per run
    host: str | None = None  # the host the runner ran on (an import: the log's node, if named)
    python: str | None = None  # the runner's Python version
    exit_code: int | None = None  # the trainer's exit status in the attempt that counted
    attempts: int | None = None  # attempts made (1 + retries used)
    cache: str | None = None  # the page cache before the start: cold | warm
    drop_caches: bool | None = None  # whether the kernel's caches were dropped first
    # the dataset's residency in the page cache just before the start (scripts/data/pagecache:
    # files, bytes, resident_bytes, fraction)
    dataset_residency: Mapping[str, Any] | None = None
    # what else used the machine (scripts/run/hostload: seconds, cpus, busy_cpu_s, run_cpu_s,
    # host_busy, load_1m_start, load_1m_end; a container's: host_busy None and busy_note)
    host_load: Mapping[str, Any] | None = None
    containment: str | None = None  # what held the trainer: cgroup | subreaper | none
    containment_killed: int | None = None  # processes the trainer left, killed after it
    started_utc: str | None = None  # ISO start time (an import: the log's run_start)
    wall_s: float | None = None  # the runner's wall time of the trainer (None: an import)
    config_fingerprint: str | None = None  # sha256 of the comparability record
    comparability: Mapping[str, Any] | None = None  # the record (scripts/campaign/comparability)
    dataset_manifest_sha256: str | None = None  # the verified dataset's manifest.json
    dataset_tree_sha256: str | None = None  # the unpacked tree (dataset.manifest.json)
    environment_digest: str | None = None  # environment.json's digest
    slurm_job_id: str | None = None  # the Slurm job it ran in (None outside Slurm)
    slurm_job_nodelist: str | None = None
    slurm_nnodes: int | None = None
    hosts: list[str] | None = None  # every node of the run (None: written before nodes)
    gpu_devices: list[str] = field(default_factory=list)  # its GPUs ([] where none recorded)
    gpu_assignment: str | None = None  # who assigned them (scripts/run/gpus)
    gpu_wait_s: float | None = None  # how long it waited for them
    nodes: int = 1  # nodes it ran on (1 where none recorded)
    backend: str | None = None  # the backend where it records one: import, docker, podman
    # which way a container run's tasks started (backends/implementation_runs.launch_record:
    # mode per_gpu | once, by rank_launcher | srun | docker | podman, tasks_per_node, tasks);
    # None: a local run, an import, or written before the key
    launch: Mapping[str, Any] | None = None
    # a container backend's image: tag, image_id, inputs_sha256, context_sha256
    image: Mapping[str, Any] | None = None
    image_id: str | None = None  # the same image id, a fingerprinted key of its own
    fingerprint_keys: list[str] | None = None  # the keys fingerprinted (None: before the list)
    fingerprint: str | None = None  # sha256 of those keys' values: runs that share it compare
    log_seal: Mapping[str, Any] | None = None  # the log's size, sha256, mtime_ns (seals.py)
    # an imported run (scripts/run/published/run.py)
    source: str | None = None  # the published log's path
    source_sha256: str | None = None  # its sha256 (None: it could not be read)
    submission: Mapping[str, Any] = field(default_factory=dict)  # the log's submission_* events
    rcp_scaling_factor: float = 1.0  # the folder's scaling.json factor (1.0 without one)
    olympic_drop: int = 1  # runs the olympic mean drops at each end
    mlperf: Mapping[str, Any] | None = None  # the benchmark's mlperf section (round, ruleset)
    system_json: Mapping[str, Any] | None = None  # the published systems/<system>.json's facts
    # the power result: a published one (scripts/mlperf/power), or one measured here, in the
    # same shape (scripts/mlperf/own_power: power/node_0.txt's facts, problems, scorable)
    power: Mapping[str, Any] | None = None
    # how a run made here was measured (scripts/run/power_sampler): source, what it measures,
    # interval_s, conversion_eff, file, samples, readings, failed, gaps (each: from_s, to_s,
    # samples, until_stop, the first error), gap_s, problem (a source that could not start);
    # nvml: gpus, gpu_telemetry, gpu_throttled_s, gpu_energy_counter_j. None: not measured
    power_sampling: Mapping[str, Any] | None = None
    import_problems: list[str] | None = None  # why the log has no result (another benchmark's)
    import_notes: list[str] | None = None  # notes on its folder (e.g. its number of logs)

    engine_argv: Mapping[str, list[str]] = field(default_factory=dict)  # <engine>_argv keys
    extra: Mapping[str, Any] = field(default_factory=dict)  # keys this version does not know
    # the file's keys in its order (see the module docstring); not compared: two records of the
    # same facts are equal, whatever the order of the file they were read from
    key_order: tuple[str, ...] = field(default=(), compare=False, repr=False)

    def argv_of(self, engine: str | None) -> list[str] | None:
        """The command line of ``engine`` (``<engine>_argv``: a container run's), or None."""
        return self.engine_argv.get(f"{engine}_argv")


@_keys_of
@dataclass(frozen=True, kw_only=True)
class ResultRecord(_Record):
    """A run's ``result.json``: its log's outcome (:mod:`scripts.mlperf.outcome`), the
    compliance checker's verdict and the run.json facts the tables need. Written by the run's
    own job (:mod:`scripts.run.result_json`) or ``python -m scripts tables parse``, in the
    order of the fields; most are None where a file lacks them (written before the key)."""

    KIND = "result.json"
    VERSION = max(RESULT_JSON_VERSIONS)
    SORTED = False

    format_version: int = 1  # 1 where the file has none (written before versions)
    benchmark: str = ""  # the workflow's benchmark name (always written)
    system: str = ""  # the system's name (always written)
    run: int = 0  # the run's number, from 1 (always written)
    seed: int | None = None  # the log's seed (None: the log names none)
    scale: str | None = None  # run.json's scale
    quality_metric: str | None = None  # the benchmark's quality metric (e.g. bleu)
    run_start_s: float | None = None  # the log's run_start (epoch seconds)
    run_stop_s: float | None = None  # its run_stop
    time_to_train_s: float | None = None  # the time to train (None: no result)
    status: str | None = None  # run_stop's status (success, aborted ...)
    converged: bool | None = None  # whether it reached the quality target (always written)
    final_quality: float | None = None  # the last evaluation's quality
    quality_target: float | None = None  # the target it was held to
    quality_direction: str | None = None  # higher | lower
    epochs: int | None = None  # epochs run
    epochs_to_converge: int | None = None  # the epoch that reached the target
    time_per_epoch_s: float | None = None
    result_line_wall_s: float | None = None  # v0.6's RESULT line's wall time
    eval_history: list[list[Any]] | None = None  # [epoch, quality, seconds since run_start]
    final_components: Mapping[str, Any] | None = None  # the last evaluation's parts
    log_problems: list[str] | None = None  # why the log is no valid log of a finished run
    valid_log: bool | None = None  # whether it is one
    submission_benchmark: str | None = None  # the log's own benchmark name (e.g. gnmt)
    # run.json's facts (scripts/run/result_json.py: run_place, run_conditions)
    started_utc: str | None = None
    runner_wall_s: float | None = None  # run.json's wall_s
    host: str | None = None
    hosts: list[str | None] | None = None  # run.json's hosts, or [host]
    nodes: int | None = None
    gpu_devices: list[str] | None = None
    gpu_assignment: str | None = None
    slurm_job_id: str | None = None
    slurm_job_nodelist: str | None = None
    cache: str | None = None  # cold | warm
    dataset_resident: float | None = None  # the fraction of the dataset in the page cache
    host_busy: float | None = None  # the others' CPU per second of the run, in cores
    load_1m: float | None = None  # the higher 1-minute load average, at start or end
    log: str | None = None  # the mlperf.log it was parsed from
    malformed_lines: int | None = None  # :::MLLOG lines that were not JSON
    problems: list[str] | None = None  # everything worth a warning (notes start "note: ")
    energy_j: float | None = None  # the power result's energy (scripts/mlperf/power)
    power_problems: list[str] | None = None  # why that energy is missing or off the rules
    # what measured it: published (a published power result), command or nvml (the GPUs only:
    # run.json's power_sampling); None without a power result
    power_source: str | None = None
    gpu_throttled_s: float | None = None  # nvml: seconds with a GPU's clocks held down
    compliance: str | None = None  # pass | fail | not applicable (None: before the checker)
    compliance_detail: str | None = None  # the checker's first failing rule, or why n/a
    compliance_ruleset: str | None = None  # the training ruleset it was checked against
    compliance_checker: str | None = None  # the checker (mlperf-logging's version)
    fingerprint: str | None = None  # run.json's fingerprint
    config_fingerprint: str | None = None  # run.json's config_fingerprint
    # a smoke run on the implementation's generated data (USE_SYNTHETIC_DATA=1: run.json's
    # comparability says so), never scored; False where the file has none (written before)
    synthetic: bool = False
    log_sha256: str | None = None  # the sha256 of the log parsed (None: tables parse)

    extra: Mapping[str, Any] = field(default_factory=dict)  # keys this version does not know
    # the file's keys in its order (see the module docstring); not compared: two records of the
    # same facts are equal, whatever the order of the file they were read from
    key_order: tuple[str, ...] = field(default=(), compare=False, repr=False)
