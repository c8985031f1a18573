"""Configuration: reading the config files, merging them, and validating the result.

The workflow's config is ``config/config.yaml`` merged with benchmark and system overlays
(``config/benchmarks/*.yaml``, ``config/systems/*.yaml`` and any ``--configfile``). It is checked
against ``config/schemas/config.schema.yaml`` (JSON Schema draft 2020-12) before any job runs. A
bad config raises :class:`ConfigError` whose message names the file that set the offending key,
the key's path, what was found and what was expected.

This module imports nothing else from the package (tests/test_plan.py checks it), so every
other module can import it. What the config means for a campaign (which systems run which
benchmark, the cross-checks between names, seeds, commands, fingerprints) is in
``scripts/campaign/`` (topology, config_checks, command, run_specs, comparability);
``config_checks.load_campaign`` reads, validates and cross-checks in one call.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from scripts.core.dataset_setting import drop_null_kinds
from scripts.core.window_setting import window_problems

if TYPE_CHECKING:
    import jsonschema

WORKFLOW_DIR = Path(__file__).resolve().parents[2]
SCHEMA_PATH = WORKFLOW_DIR / "config" / "schemas" / "config.schema.yaml"
# the config files the Snakefile loads, in merge order (overlays come after them)
DEFAULT_CONFIGFILES = (
    "config/config.yaml",
    "config/benchmarks/gnmt.yaml",
    "config/systems/local.yaml",
    "config/benchmarks/mlperf-v0.6.yaml",
)
MAX_ERRORS = 10
# libyaml's safe loader where PyYAML has it (the same data, 10x faster: every snakemake
# invocation reads each config file three times, a round's overlay is 2,000 lines); the
# pure-Python one words a syntax error
FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# the largest config file read, in bytes: a file over it is refused before it is parsed (the
# largest shipped, the schema, is 29 KiB, a round's definitions 5.4 KiB; an overlay of a whole
# published round, one import system per system folder, takes about 180 bytes per system)
MAX_CONFIG_BYTES = 1 << 20
READ_BLOCK = 64 << 10
MERGE_TAG = "tag:yaml.org,2002:merge"


class ConfigError(ValueError):
    """A configuration problem, with a message meant for the user."""


def yaml_error_message(path: str | Path, exc: yaml.YAMLError) -> str:
    """'<file>, line L, column C: YAML syntax error: <what is wrong>' (1-based, as editors
    count), with where the construct that it breaks began."""
    problem = getattr(exc, "problem", None)
    mark = getattr(exc, "problem_mark", None)
    if problem is None or mark is None:
        return f"{path}: YAML syntax error: {' '.join(str(exc).split())}"
    msg = f"{path}, line {mark.line + 1}, column {mark.column + 1}: YAML syntax error: {problem}"
    context, start = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context and start is not None and (start.line, start.column) != (mark.line, mark.column):
        msg += f" ({context} at line {start.line + 1}, column {start.column + 1})"
    elif context:
        msg += f" ({context})"
    return msg


class _AliasUsed(Exception):
    """A YAML alias (``*name``) in a config file: refused (see :func:`_strict_load`)."""


class _DuplicateKey(Exception):
    """A key given twice in one mapping of a config file: (key, first line, second line)."""

    def __init__(self, key: Any, first: int, second: int) -> None:
        super().__init__(key, first, second)
        self.key, self.first, self.second = key, first, second


class _StrictConstructor:
    """The safe loader's constructor, refusing a key given twice in one mapping (PyYAML keeps
    the last silently). The keys of a merge (``<<``) may be given again: that is what it is
    for."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if not isinstance(node, yaml.MappingNode):  # the base class words this error
            return super().construct_mapping(node, deep=deep)
        own = sum(1 for key, _ in node.value if key.tag != MERGE_TAG)
        self.flatten_mapping(node)
        merged = len(node.value) - own
        mapping: dict[Any, Any] = {}
        lines: dict[Any, int] = {}
        for i, (key_node, value_node) in enumerate(node.value):
            key = self.construct_object(key_node, deep=deep)
            try:
                hash(key)
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    "found unhashable key", key_node.start_mark,
                ) from None  # fmt: skip
            if i >= merged:  # one of the mapping's own keys
                line = key_node.start_mark.line + 1
                if key in lines:
                    raise _DuplicateKey(key, lines[key], line)
                lines[key] = line
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping


class _FastStrictLoader(_StrictConstructor, FAST_LOADER):
    pass


class _StrictLoader(_StrictConstructor, yaml.SafeLoader):
    pass


def _no_alias(root: yaml.Node | None) -> None:
    """_AliasUsed when a node of the composed document is reached twice: an alias (or a merge
    of one) names a node again, and each use would be a copy for whoever walks the data (the
    schema check, Snakemake): 9 lines of 9 aliases each are 387,420,489 strings."""
    seen: set[int] = set()
    stack = [root] if root is not None else []
    while stack:
        node = stack.pop()
        if id(node) in seen:
            raise _AliasUsed
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            stack.extend(n for pair in node.value for n in pair)


def _strict_load(text: str, loader_class: type) -> Any:
    """The document in ``text``, read by ``loader_class``: no aliases, no key twice in a
    mapping."""
    loader = loader_class(text)
    try:
        root = loader.get_single_node()
        _no_alias(root)
        return None if root is None else loader.construct_document(root)
    finally:
        loader.dispose()


def _first_alias(text: str) -> str:
    """'line L, column C: YAML alias *name' of the first alias in ``text``."""
    for event in yaml.parse(text, Loader=FAST_LOADER):
        if isinstance(event, yaml.AliasEvent):
            mark = event.start_mark
            return f"line {mark.line + 1}, column {mark.column + 1}: YAML alias *{event.anchor}"
    return "YAML alias"  # a merge key's alias is an alias event too; a guard


def _reject_json_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key, 0, 0)
        out[key] = value
    return out


def _read_bounded(p: Path, path: str | Path, given_as: str) -> str:
    """The text of config file ``p``, refused in one line (ConfigError) when it is over
    MAX_CONFIG_BYTES (before any of it is parsed), unreadable or not UTF-8."""
    limit = f"a config file may have at most {MAX_CONFIG_BYTES} bytes (1 MiB); not read"
    try:
        size = p.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path} ({given_as}) is {size} bytes: {limit}")
        chunks: list[bytes] = []
        read = 0
        with p.open("rb") as fh:  # never past the limit, whatever the size said (/dev/zero)
            while chunk := fh.read(READ_BLOCK):
                chunks.append(chunk)
                read += len(chunk)
                if read > MAX_CONFIG_BYTES:
                    raise ConfigError(
                        f"{path} ({given_as}) is over {MAX_CONFIG_BYTES} bytes: {limit}"
                    )
        return b"".join(chunks).decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} ({given_as}) cannot be read: {exc}") from None


def read_config_file(path: str | Path, given_as: str = "a config file") -> Any:
    """The data of a JSON or YAML config file (JSON first, as Snakemake reads them); a missing
    file, a folder, an unreadable file, a file over MAX_CONFIG_BYTES, a syntax error, a YAML
    alias (``*name``: refused, so an alias bomb costs nothing) or a key given twice in one
    mapping raise ConfigError in one line."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{path} ({given_as}) does not exist")
    if p.is_dir():
        raise ConfigError(f"{path} ({given_as}) is a folder, not a YAML file")
    text = _read_bounded(p, path, given_as)
    try:
        try:
            return json.loads(text, object_pairs_hook=_reject_json_duplicates)
        except (ValueError, _DuplicateKey):  # a key twice: YAML names the lines
            pass
        try:
            return _strict_load(text, _FastStrictLoader)
        except yaml.YAMLError:
            pass
        try:  # the pure-Python loader for the message: its context and position
            return _strict_load(text, _StrictLoader)
        except yaml.YAMLError as exc:
            raise ConfigError(yaml_error_message(path, exc)) from None
    except _AliasUsed:
        raise ConfigError(
            f"{path}, {_first_alias(text)}: anchors and aliases are not accepted in config "
            "files (an alias bomb would expand to billions of values); write the value out"
        ) from None
    except _DuplicateKey as exc:
        raise ConfigError(
            f"{path}: key {exc.key!r} is given twice in one mapping, at line {exc.first} and "
            f"line {exc.second} (YAML would keep the second silently); keep one"
        ) from None
    except RecursionError:
        raise ConfigError(f"{path} ({given_as}): values nested too deeply to read") from None


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


def config_sources(overlays: Sequence[str | Path] = ()) -> list[tuple[str, Any]]:
    """(file, data) of the default config files and then ``overlays``, in merge order (an
    empty file is an empty mapping)."""
    files = [WORKFLOW_DIR / f for f in DEFAULT_CONFIGFILES] + [Path(f) for f in overlays]
    return [(str(f), load_yaml(f) or {}) for f in files]


def merge_sources(sources: Sequence[tuple[str, Any]]) -> dict[str, Any]:
    """The data of ``sources`` merged in order, as Snakemake merges its config files."""
    merged: dict[str, Any] = {}
    for _, data in sources:
        merge(merged, data)
    return merged


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


def _where(path: Sequence[Any], sources: Sequence[tuple[str, Any]]) -> str:
    return source_of(path, sources) if sources else "the configuration"


def source_of(path: Sequence[Any], sources: Sequence[tuple[str, Any]]) -> str:
    """The last of ``sources`` (name, data), in merge order, that sets ``path``."""
    for name, data in reversed(sources):
        if _has_path(data, path):
            return name
    return "the merged configuration"


def _describe(error: jsonschema.ValidationError, sources: Sequence[tuple[str, Any]]) -> str:
    path = list(error.absolute_path)
    where = source_of(path, sources) if sources else "the configuration"
    expected = error.schema.get("description") if isinstance(error.schema, dict) else None
    if error.validator == "additionalProperties" and isinstance(error.schema, dict):
        allowed = sorted(error.schema.get("properties", {}))
        unknown = (
            sorted(set(error.instance) - set(allowed)) if isinstance(error.instance, dict) else []
        )
        if unknown:
            path_u = path + [unknown[0]]
            where = source_of(path_u, sources) if sources else where
            return (
                f"{where}: unknown key {_key_path(path_u)!r}; "
                f"allowed keys here: {', '.join(allowed)}"
            )
    if error.validator == "not" and isinstance(error.validator_value, dict):
        refused = error.validator_value.get("description", "a value the schema refuses")
        return f"{where}: {_key_path(path)}: {error.instance!r} is refused: {refused}"
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
    passed: Path | None = None,
) -> None:
    """Raise ConfigError listing every schema violation, each with the file that set it.

    ``passed``: a file that names the last configuration that passed (the workflow's:
    scripts/core/layout.py VALID_CONFIG); the same configuration under the same schema is not
    checked against the schema again (jsonschema's import and check are about 45 ms of every
    snakemake start). The other checks run every time."""
    schema = schema or load_schema()
    key = _passed_key(config, schema) if passed else ""
    errors: list[jsonschema.ValidationError] = []
    if not key or _read_passed(passed) != key:
        import jsonschema  # lazy, for start-up speed: the profile and every runner import this

        validator = jsonschema.Draft202012Validator(schema)
        errors = sorted(
            validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path))
        )
    lines = non_finite_numbers(config, sources) + [_describe(e, sources) for e in errors]
    lines += mlperf_problems(config, sources)
    lines += window_problems(config, lambda path: f"{_where(path, sources)}: {_key_path(path)}")
    if lines:
        if len(lines) > MAX_ERRORS:
            lines[MAX_ERRORS:] = [f"... and {len(lines) - MAX_ERRORS} more"]
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines))
    if key and passed:
        _write_passed(passed, key)


# part of what names a configuration that passed the schema check: a change to what passes
# validate's schema check, other than the schema's own, changes it
PASSED_VERSION = 1


def _passed_key(config: Mapping[str, Any], schema: Mapping[str, Any]) -> str:
    """The configuration and the schema, named by their values' text (repr tells 1 from "1",
    1.0, True and a date), with :data:`PASSED_VERSION`."""
    text = repr((PASSED_VERSION, schema, config))
    return hashlib.sha256(text.encode("utf-8", "backslashreplace")).hexdigest()


def _read_passed(path: Path | None) -> str:
    try:
        return path.read_text(encoding="utf-8").strip() if path else ""
    except (OSError, UnicodeDecodeError):  # none yet (or unreadable): check
        return ""


def _write_passed(path: Path, key: str) -> None:
    """Name the configuration that passed, whole or not at all (a rename)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(key + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError:  # a folder we cannot write: the check runs every time
        with contextlib.suppress(OSError):
            tmp.unlink()


YAML_SPELLING = {math.inf: ".inf", -math.inf: "-.inf"}


def non_finite_numbers(config: Any, sources: Sequence[tuple[str, Any]] = ()) -> list[str]:
    """One line per infinite or NaN number anywhere in the config (YAML's .inf and .nan): a
    schema's minimum and maximum let them through, and no setting means them."""
    found: list[str] = []

    def walk(value: Any, path: list[Any]) -> None:
        if isinstance(value, float) and not math.isfinite(value):
            where = source_of(path, sources) if sources else "the configuration"
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


def mlperf_problems(
    config: Mapping[str, Any], sources: Sequence[tuple[str, Any]] = ()
) -> list[str]:
    """One line per benchmark whose keys of an MLPerf round disagree in ways a schema cannot
    say: max_nonconverged above mlperf.olympic_drop (the summarizer drops no more), or an
    also_directions key that is not one of also_targets."""
    found: list[str] = []
    benchmarks = config.get("benchmarks")
    for name, bench in benchmarks.items() if isinstance(benchmarks, Mapping) else []:
        if not isinstance(bench, Mapping):
            continue
        mlperf, dropped = bench.get("mlperf"), bench.get("max_nonconverged", 1)
        drop = mlperf.get("olympic_drop") if isinstance(mlperf, Mapping) else None
        if isinstance(drop, int) and isinstance(dropped, int) and dropped > drop:
            path = ["benchmarks", name, "max_nonconverged"]
            where = source_of(path, sources) if sources else "the configuration"
            found.append(
                f"{where}: {_key_path(path)}: {dropped} non-converged runs cannot be dropped "
                f"when the result summarizer drops {drop} at each end (mlperf.olympic_drop)"
            )
        quality = bench.get("quality")
        quality = quality if isinstance(quality, Mapping) else {}
        extra = set(quality.get("also_directions") or {}) - set(quality.get("also_targets") or {})
        if extra:
            path = ["benchmarks", name, "quality", "also_directions"]
            where = source_of(path, sources) if sources else "the configuration"
            found.append(
                f"{where}: {_key_path(path)}: {', '.join(sorted(map(str, extra)))} "
                "not in also_targets (a direction needs a target)"
            )
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


def load_and_validate(
    config: Mapping[str, Any],
    sources: Sequence[tuple[str, Any]] = (),
    passed: Path | None = None,
) -> dict[str, Any]:
    """Validate the merged config against the schema; return it with defaults filled in. The
    cross-checks between names come after this, in ``config_checks.check_campaign``.
    ``passed``: as :func:`validate`'s."""
    schema = load_schema()
    validate(config, sources, schema, passed)
    filled: dict[str, Any] = fill_defaults(dict(config), schema, schema)
    if isinstance(filled.get("benchmarks"), Mapping):
        filled["benchmarks"] = drop_null_kinds(filled["benchmarks"])
    return filled
