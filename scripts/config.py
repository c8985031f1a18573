"""Configuration: validation with a clear message, defaults, and the derived run specifications.

The workflow's config is ``config/config.yaml`` merged with benchmark and system overlays
(``config/benchmarks/*.yaml``, ``config/systems/*.yaml`` and any ``--configfile``). It is checked
against ``config/schemas/config.schema.yaml`` (JSON Schema draft 2020-12) before any job runs. A
bad config raises :class:`ConfigError` whose message names the file that set the offending key,
the key's path, what was found and what was expected.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import shlex
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scripts import hashing, layout
from scripts.cluster import check_slurm_config
from scripts.config_files import ConfigError, read_config_file
from scripts.dataset import check_dataset
from scripts.gpus import declared_devices

if TYPE_CHECKING:
    import jsonschema

    from scripts.backends import Backend

WORKFLOW_DIR = Path(__file__).resolve().parents[1]
SCHEMA_PATH = WORKFLOW_DIR / "config" / "schemas" / "config.schema.yaml"
# the config files the Snakefile loads, in merge order (overlays come after them)
DEFAULT_CONFIGFILES = (
    "config/config.yaml",
    "config/benchmarks/gnmt.yaml",
    "config/systems/local.yaml",
    "config/benchmarks/mlperf-v0.6.yaml",
)
MAX_ERRORS = 10


def load_yaml(path: str | Path) -> Any:
    """A YAML (or JSON) file's data; ConfigError naming the file (and the line and column of a
    syntax error) when it is missing, a folder or not YAML."""
    return read_config_file(path)


def check_config_files(workflow_dir: str | Path, files: Sequence[str | Path]) -> None:
    """Read each config file (relative to ``workflow_dir``): the Snakefile calls this before
    its ``configfile:`` lines, whose own error names neither the file nor the line."""
    for f in files:
        read_config_file(Path(workflow_dir, f), "a config file of the workflow")


def load_schema(path: Path = SCHEMA_PATH) -> dict[str, Any]:
    schema = load_yaml(path)
    if "$schema" not in schema:
        raise ConfigError(f"{path}: a JSON schema needs a '$schema' key")
    return schema


def merge(base: dict[str, Any], new: Mapping[str, Any]) -> None:
    """Snakemake's config merge: mappings merge key by key, anything else is replaced."""
    for key, value in new.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)


def load_files(overlays: Sequence[str | Path] = ()) -> dict[str, Any]:
    """The defaults merged with ``overlays`` as Snakemake merges them, validated, with defaults
    filled in (for tools that read a campaign without running snakemake)."""
    files = [WORKFLOW_DIR / f for f in DEFAULT_CONFIGFILES] + [Path(f) for f in overlays]
    sources = [(str(f), load_yaml(f) or {}) for f in files]
    merged: dict[str, Any] = {}
    for _, data in sources:
        merge(merged, data)
    return load_and_validate(merged, sources)


def _key_path(path: Iterable[Any]) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def _has_path(data: Any, path: Sequence[Any]) -> bool:
    for part in path:
        if isinstance(data, Mapping) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
        else:
            return False
    return True


def _source_of(path: Sequence[Any], sources: Sequence[tuple[str, Any]]) -> str:
    """The last of ``sources`` (name, data), in merge order, that sets ``path``."""
    for name, data in reversed(sources):
        if _has_path(data, path):
            return name
    return "the merged configuration"


def _describe(error: jsonschema.ValidationError, sources: Sequence[tuple[str, Any]]) -> str:
    path = list(error.absolute_path)
    where = _source_of(path, sources) if sources else "the configuration"
    expected = error.schema.get("description") if isinstance(error.schema, dict) else None
    if error.validator == "additionalProperties" and isinstance(error.schema, dict):
        allowed = sorted(error.schema.get("properties", {}))
        unknown = (
            sorted(set(error.instance) - set(allowed)) if isinstance(error.instance, dict) else []
        )
        if unknown:
            path_u = path + [unknown[0]]
            where = _source_of(path_u, sources) if sources else where
            return (
                f"{where}: unknown key {_key_path(path_u)!r}; "
                f"allowed keys here: {', '.join(allowed)}"
            )
    found = json.dumps(error.instance, default=str)
    if len(found) > 80:
        found = found[:77] + "..."
    msg = f"{where}: {_key_path(path)}: {error.message}"
    if expected and error.validator not in ("required",):
        msg += f" (found {found}; expected {expected})"
    return msg


def validate(
    config: Mapping[str, Any],
    sources: Sequence[tuple[str, Any]] = (),
    schema: Mapping[str, Any] | None = None,
) -> None:
    """Raise ConfigError listing every schema violation, each with the file that set it."""
    schema = schema or load_schema()
    import jsonschema  # here: the runner of every training run imports this module

    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    lines = non_finite_numbers(config, sources) + [_describe(e, sources) for e in errors]
    if lines:
        if len(lines) > MAX_ERRORS:
            lines[MAX_ERRORS:] = [f"... and {len(lines) - MAX_ERRORS} more"]
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines))


YAML_SPELLING = {math.inf: ".inf", -math.inf: "-.inf"}


def non_finite_numbers(config: Any, sources: Sequence[tuple[str, Any]] = ()) -> list[str]:
    """One line per infinite or NaN number anywhere in the config (YAML's .inf and .nan): a
    schema's minimum and maximum let them through, and no setting means them."""
    found: list[str] = []

    def walk(value: Any, path: list[Any]) -> None:
        if isinstance(value, float) and not math.isfinite(value):
            where = _source_of(path, sources) if sources else "the configuration"
            spelled = YAML_SPELLING.get(value, ".nan")
            found.append(
                f"{where}: {_key_path(path)}: {spelled} is not a finite number "
                "(give a number, or null where the key allows it)"
            )
        elif isinstance(value, Mapping):
            for key, item in value.items():
                walk(item, [*path, key])
        elif isinstance(value, list):
            for i, item in enumerate(value):
                walk(item, [*path, i])

    walk(config, [])
    return found


def fill_defaults(instance: Any, schema: Mapping[str, Any], root: Mapping[str, Any]) -> Any:
    """Return a copy of ``instance`` with the schema's ``default`` values filled in."""
    if "$ref" in schema:
        ref = schema["$ref"]
        assert ref.startswith("#/"), ref
        target: Any = root
        for part in ref[2:].split("/"):
            target = target[part]
        return fill_defaults(instance, target, root)
    if not isinstance(instance, dict):
        return instance
    out = dict(instance)
    props: Mapping[str, Any] = schema.get("properties", {})
    for key, sub in props.items():
        if key not in out and "default" in sub:
            out[key] = json.loads(json.dumps(sub["default"]))
        if key in out:
            out[key] = fill_defaults(out[key], sub, root)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for key in out:
            if key not in props:
                out[key] = fill_defaults(out[key], extra, root)
    return out


def check_references(
    config: Mapping[str, Any], sources: Sequence[tuple[str, Any]] = ()
) -> None:
    """Cross-checks a schema cannot express: names that refer to definitions."""
    problems: list[str] = []
    campaign = config["campaign"]
    for name in campaign["benchmarks"]:
        if name not in config["benchmarks"]:
            problems.append(
                f"campaign.benchmarks names {name!r}, which is not defined; "
                f"defined benchmarks: {', '.join(sorted(config['benchmarks']))}"
            )
    for name in campaign.get("systems") or []:
        if name not in config["systems"]:
            problems.append(
                f"campaign.systems names {name!r}, which is not defined; "
                f"defined systems: {', '.join(sorted(config['systems']))}"
            )
    ref = campaign.get("reference_system")
    if ref is not None and ref not in config["systems"]:
        problems.append(f"campaign.reference_system {ref!r} is not a defined system")
    for bname, bench in config["benchmarks"].items():
        seeds = bench.get("seeds")
        if seeds is not None and len(seeds) < bench["runs"]:
            problems.append(
                f"benchmarks.{bname}.seeds has {len(seeds)} seeds for {bench['runs']} runs; "
                "give one seed per run or null"
            )
        if "dataset" in bench:
            problems += [f"benchmarks.{bname}.{p}" for p in check_dataset(bench["dataset"])]
        if "implementation" not in bench:
            continue
        try:
            render_command(bench["implementation"]["command"], _dummy_context(bench))
        except ConfigError as exc:
            problems.append(f"benchmarks.{bname}.implementation.command: {exc}")
        for key, value in bench["implementation"].get("env", {}).items():
            try:
                render_command(str(value), _dummy_context(bench), shell=False)
            except ConfigError as exc:
                problems.append(f"benchmarks.{bname}.implementation.env.{key}: {exc}")
    for sname, system in config["systems"].items():
        devices = system.get("gpu_devices")
        if devices is not None and system["gpus"] > len(devices):
            problems.append(
                f"systems.{sname}.gpus is {system['gpus']} but gpu_devices lists only "
                f"{len(devices)} GPU(s) ({devices}); a run could never start"
            )
        problems += check_slurm_config(sname, system)
        for bname in system.get("hyperparameters", {}):
            if bname not in config["benchmarks"]:
                problems.append(
                    f"systems.{sname}.hyperparameters names benchmark {bname!r}, "
                    "which is not defined"
                )
        problems += _backend(system["backend"]).config_problems(config, sname)
    if not problems:  # names resolve: the import checks can look the systems up
        problems += _import_problems(config, sources)
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))


def _import_problems(
    config: Mapping[str, Any], sources: Sequence[tuple[str, Any]] = ()
) -> list[str]:
    """An import system whose folder is missing or holds no benchmark's results, and a
    campaign benchmark that no system of the campaign can run or import."""
    problems: list[str] = []
    importable = {
        b: v["mlperf_name"] for b, v in config["benchmarks"].items() if "mlperf_name" in v
    }
    for sname in campaign_systems(config):
        system = config["systems"][sname]
        if system["backend"] != "import":
            continue
        folder = import_dir(system)
        where = f"{_source_of(['systems', sname, 'import_dir'], sources)}: " if sources else ""
        if not folder.is_dir():
            problems.append(
                f"{where}systems.{sname}.import_dir: folder {folder} does not exist (expected "
                "a folder of published results with one sub-folder per benchmark, e.g. "
                "training_results_v0.6/NVIDIA/results/dgx1_ngc19.05_pytorch from "
                "https://github.com/mlcommons/training_results_v0.6)"
            )
        elif not any(import_folder(config, b, sname) for b in importable):
            looked = ", ".join(sorted({f"{n}/result_*.txt" for n in importable.values()}))
            problems.append(
                f"{where}systems.{sname}.import_dir: {folder} holds no results of a defined "
                f"benchmark (looked for {looked or 'nothing: no benchmark defines mlperf_name'})"
            )
    if problems:
        return problems
    for bname in config["campaign"]["benchmarks"]:
        if bname in config["benchmarks"] and not benchmark_systems(config, bname):
            problems.append(
                f"campaign.benchmarks: no system of the campaign can run or import {bname!r} "
                "(it needs an implementation for a local system, or an import system with "
                f"a folder of its results)"
            )
    return problems


def load_and_validate(
    config: Mapping[str, Any], sources: Sequence[tuple[str, Any]] = ()
) -> dict[str, Any]:
    """Validate the merged config; return it with defaults filled in."""
    schema = load_schema()
    validate(config, sources, schema)
    full = fill_defaults(dict(config), schema, schema)
    check_references(full, sources)
    return full


# ---------------------------------------------------------------------------------------------
# Derived values: systems of the campaign, seeds, commands, fingerprints.


def campaign_systems(config: Mapping[str, Any]) -> list[str]:
    """The systems a campaign runs: ``campaign.systems`` or every defined system."""
    return list(config["campaign"].get("systems") or config["systems"])


def import_dir(system: Mapping[str, Any]) -> Path:
    """An import system's folder, '{workflow_dir}' replaced (relative to the working dir)."""
    return Path(system["import_dir"].replace("{workflow_dir}", str(WORKFLOW_DIR)))


def import_folder(config: Mapping[str, Any], benchmark: str, system: str) -> Path | None:
    """The folder of result_*.txt that an import system has for a benchmark, or None (not an
    import system, a benchmark without mlperf_name, or no such folder with results)."""
    from scripts.import_logs import result_files

    sys_, bench = config["systems"][system], config["benchmarks"][benchmark]
    if sys_["backend"] != "import" or "mlperf_name" not in bench:
        return None
    folder = import_dir(sys_) / bench["mlperf_name"]
    return folder if folder.is_dir() and result_files(folder) else None


def can_produce(config: Mapping[str, Any], benchmark: str, system: str) -> bool:
    """Whether a system has runs of a benchmark: an import system when it has a folder of
    the benchmark's results, any other system when the benchmark has an implementation."""
    backend = config["systems"][system]["backend"]
    if backend == "import":
        return import_folder(config, benchmark, system) is not None
    implementation = config["benchmarks"][benchmark].get("implementation")
    if implementation is None:
        return False
    backends = implementation.get("backends")
    if backends and backend not in backends:
        return False  # e.g. an implementation that only runs in its container
    return _backend(backend).can_run(implementation)


def benchmark_systems(config: Mapping[str, Any], benchmark: str) -> list[str]:
    """The systems of the campaign that have runs of ``benchmark``."""
    return [s for s in campaign_systems(config) if can_produce(config, benchmark, s)]


def system_run_ids(config: Mapping[str, Any], benchmark: str, system: str) -> list[str]:
    """The run directory suffixes of (benchmark, system): one per configured run, or for an
    import system one per result file in its folder (run NN is the NN-th file by number)."""
    folder = import_folder(config, benchmark, system)
    if folder is not None:
        from scripts.import_logs import result_files

        return run_ids(len(result_files(folder)))
    return run_ids(config["benchmarks"][benchmark]["runs"])


def run_ids(runs: int) -> list[str]:
    """Run directory suffixes ``01``, ``02``, ... (scripts/layout.py: the one run-id format)."""
    return layout.run_ids(runs)


def derive_seed(benchmark: str, run: int) -> int:
    """The seed of run ``run`` when none is configured: a hash of benchmark and run index.

    The same run index gets the same seed on every system, so systems are compared on the
    same seeds; different indices get unrelated seeds (not 1, 2, 3...).
    """
    digest = hashlib.sha256(f"mlperf-workflow:{benchmark}:{run}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def seed_for(bench: Mapping[str, Any], benchmark: str, run: int) -> int:
    seeds = bench.get("seeds")
    return int(seeds[run - 1]) if seeds else derive_seed(benchmark, run)


def hyperparameters(config: Mapping[str, Any], benchmark: str, system: str) -> dict[str, Any]:
    """The benchmark's hyper-parameters with the system's overrides applied."""
    hp = dict(config["benchmarks"][benchmark].get("implementation", {}).get("hyperparameters", {}))
    hp.update(config["systems"][system].get("hyperparameters", {}).get(benchmark, {}))
    return hp


def hp_args(hp: Mapping[str, Any]) -> list[str]:
    """``--name value`` for each hyper-parameter (``_`` in names becomes ``-``), as words:
    ``{hp_args}`` puts each one into a command as one shell word."""
    return [w for k, v in hp.items() for w in (f"--{k.replace('_', '-')}", str(v))]


def _dummy_context(bench: Mapping[str, Any]) -> dict[str, Any]:
    hp = bench["implementation"].get("hyperparameters", {})
    return {
        "python": "python",
        "dataset_dir": "d",
        "run_dir": "r",
        "seed": 1,
        "run": 1,
        "target": 1.0,
        "threads": 1,
        "gpus": 0,
        "system": "s",
        "port": run_port(1),
        "hp": dict(hp),
        "hp_args": hp_args(hp),
    }


def run_port(run: int) -> int:
    """{port}: a TCP port for a run's distributed launcher (NVIDIA's run.sub passes
    ``--master_port=$((4242 + RANDOM % 1000))``); distinct per run index, in the same range."""
    return 4242 + run % 1000


class _Fill(string.Formatter):
    """str.format with every substituted value made one shell word (``shell``) or plain text.

    A value that is a list (``{hp_args}``) is a list of words. The context holds raw values:
    quoting is done here, once, the same way for every placeholder."""

    def __init__(self, shell: bool) -> None:
        self.shell = shell

    def format_field(self, value: Any, format_spec: str) -> str:
        if isinstance(value, list | tuple):
            words = [format(v, format_spec) for v in value]
            return shlex.join(words) if self.shell else " ".join(words)
        text = format(value, format_spec)
        return shlex.quote(text) if self.shell else text


def render_command(template: str, context: Mapping[str, Any], *, shell: bool = True) -> str:
    """Fill a command template: each placeholder's value becomes one shell word (a value with
    spaces or ``;`` stays one argument and never runs as code). ``shell=False``: plain text,
    for environment values. A clear error for unknown placeholders."""
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
        for field in fields:
            root = field.split("[")[0].split(".")[0]
            if root not in context:
                raise ConfigError(
                    f"unknown placeholder {{{field}}}; known: "
                    + ", ".join("{" + k + "}" for k in sorted(context))
                )
        return _Fill(shell).format(template, **context)
    except ConfigError:
        raise
    except (KeyError, IndexError) as exc:
        raise ConfigError(f"placeholder {exc} has no value in {template!r}") from None
    except ValueError as exc:  # a bad format spec or a lone brace
        raise ConfigError(f"{exc} in {template!r} (write {{{{ for a literal brace)") from None


def fingerprint(parts: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of ``parts`` (sorted keys, no whitespace)."""
    return hashing.canonical_sha256(parts)


@dataclass(frozen=True, slots=True)
class RunSpec:
    """Everything one training run needs, as plain data (passed to the runner as JSON)."""

    benchmark: str
    system: str
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
    # assigns them: "local" (scripts/gpus.py locks) or "scheduler" (a cluster job's own GPUs)
    gpus: int = 0
    gpu_devices: tuple[str, ...] = ()
    gpu_lock_dir: str = "/tmp/mlperf-workflow-gpu-locks"
    gpu_assign: str = "local"
    # nodes per run (> 1: one srun per node inside a Slurm allocation) and CPUs per node
    nodes: int = 1
    cpus_per_node: int = 1
    # the name of its backend (scripts/backends/); for a container backend, how the container
    # runs (scripts/backends/container.py: run_options) plus the host paths of the dataset, run
    # and prepared-data folders
    backend: str = "local"
    container: dict[str, Any] = dc_field(default_factory=dict)
    # regular expressions: a log line that matches one makes the run a crash (e.g. NVIDIA's
    # "Unknown system, assuming DGX1": the container did not find its config_<SYSTEM>.sh)
    fail_patterns: list[str] = dc_field(default_factory=list)
    # the run's id (scripts/layout.py): its folder, marker and failed logs are run_<run_id>;
    # empty: the id of a campaign of at most 99 runs
    run_id: str = ""

    def __post_init__(self) -> None:
        if not self.run_id:
            object.__setattr__(self, "run_id", layout.run_id(self.run, self.run))

    def to_json(self) -> str:
        return json.dumps({f: getattr(self, f) for f in self.__dataclass_fields__}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RunSpec:
        data = json.loads(text)
        if "gpu_devices" in data:
            data["gpu_devices"] = tuple(data["gpu_devices"])
        return cls(**data)


def comparability(config: Mapping[str, Any], benchmark: str, system: str) -> dict[str, Any]:
    """What makes two runs of (benchmark, system) comparable, as configured."""
    bench, sys_ = config["benchmarks"][benchmark], config["systems"][system]
    implementation = bench.get("implementation", {})
    record = {
        "benchmark": benchmark,
        "quality": bench["quality"],
        "dataset": [
            {k: f.get(k) for k in ("name", "sha256", "md5", "unpack")}
            for f in bench.get("dataset", {}).get("files", [])
        ],
        "command": implementation.get("command"),
        "implementation_env": implementation.get("env", {}),
        "hyperparameters": hyperparameters(config, benchmark, system),
        "system": {k: sys_.get(k) for k in ("backend", "threads", "gpus", "env")},
        **_backend(sys_["backend"]).fingerprint_record(config, benchmark, system),
    }
    record["system"].update(_backend(sys_["backend"]).system_record(sys_))
    nodes = (sys_.get("slurm") or {}).get("nodes", 1)
    if nodes != 1:  # only then, so single-node runs keep the record they were made with
        record["system"]["nodes"] = nodes
    return record


def _backend(name: str) -> Backend:
    """The backend of a system (scripts/backends/)."""
    # here, not at the top: the backends import this module (hyperparameters, ConfigError);
    # scripts/plan.py takes over these calls, and then this import goes
    from scripts import backends

    return backends.get(name)


def run_spec(
    config: Mapping[str, Any],
    benchmark: str,
    system: str,
    run: int,
    *,
    python: str,
    dataset_dir: str,
    run_dir: str,
    gpu_assign: str = "local",
    prepared_dir: str | None = None,
) -> RunSpec:
    """``gpu_assign``: "scheduler" when the run executes as a cluster job (its GPUs are the
    job's), "local" otherwise (scripts/gpus.py assigns them)."""
    bench, sys_ = config["benchmarks"][benchmark], config["systems"][system]
    seed = seed_for(bench, benchmark, run)
    hp = hyperparameters(config, benchmark, system)
    # e.g. in a container: the image's python and the mount points
    container, paths = _backend(sys_["backend"]).run_setup(
        config,
        benchmark,
        system,
        python=python,
        dataset_dir=dataset_dir,
        run_dir=run_dir,
        prepared_dir=prepared_dir,
    )
    context = {
        **paths,
        "seed": seed,
        "run": run,
        "target": bench["quality"]["target"],
        "threads": sys_["threads"],
        "gpus": sys_["gpus"],
        "system": system,
        "port": run_port(run),
        "hp": hp,
        "hp_args": hp_args(hp),
    }
    # env values may use the command's placeholders (e.g. NVIDIA's LR: "{hp[LR]}")
    env = {
        k: render_command(str(v), context, shell=False)
        for k, v in bench["implementation"].get("env", {}).items()
    }
    env.update({k: str(v) for k, v in sys_.get("env", {}).items()})
    timeout = sys_.get("timeout_s") or bench.get("timeout_s")
    record = comparability(config, benchmark, system)
    return RunSpec(
        benchmark=benchmark,
        system=system,
        run=run,
        seed=seed,
        command=render_command(bench["implementation"]["command"], context),
        env=env,
        timeout_s=timeout,
        threads=sys_["threads"],
        scale=bench["scale"],
        config_fingerprint=fingerprint(record),
        comparability=record,
        retries=sys_["retries"],
        gpus=sys_["gpus"],
        gpu_devices=declared_devices(sys_["gpus"], sys_.get("gpu_devices")),
        gpu_lock_dir=sys_["gpu_lock_dir"],
        gpu_assign=gpu_assign,
        nodes=sys_["slurm"]["nodes"],
        cpus_per_node=sys_["slurm"]["cpus_per_task"] or sys_["threads"],
        backend=sys_["backend"],
        container=container,
        fail_patterns=list(bench["implementation"].get("fail_patterns", [])),
        run_id=layout.run_id(run, bench["runs"]),
    )
