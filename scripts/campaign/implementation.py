"""``python -m scripts implementation IMPL_DIR --config config_X.sh --system NAME --output
F.yaml``: a published MLPerf Training implementation folder (training_results_v5.x, NVIDIA's or
AMD's) as a benchmark implementation of the workflow, written as a config overlay.

The overlay names the benchmark ``<mlperf_name>-v<round>`` (from the folder's path in its
round's tree, else from its published logs, else ``--benchmark``) and fills its
``implementation``: the image's source (the folder, or a git URL and commit), its Dockerfile
and base-image build argument, the command (the generated ``config_{system}.sh`` sourced in
the container, then ``run_and_time.sh`` as the launcher starts it), the variables the launcher
gives each run, the data mounts (``config_mounts.sh`` as ``run.sub`` uses it, with the keys of
``expected-mounts.csv``) and how ranks start (``per_gpu`` where ``run.sub`` has srun start one
task per GPU, ``once`` where the implementation starts its own); and the benchmark's
``dataset.commands``, the README's invocations of the folder's data scripts (read, never run:
:mod:`scripts.campaign.implementation_data`). How the folder launches is learnt by running its
launcher with stand-ins (:mod:`scripts.campaign.implementation_launch`); the rest is read from
its files (:mod:`scripts.campaign.implementation_files`). Where the round
published results of the same implementation, their import system joins the campaign, so the
report shows the new system beside the published one.

What it could not find is one line of the overlay's head (and of the command's output); where
the files disagree, it follows what the launcher does at run time and says so in a note.
Before it writes, the overlay is loaded with the workflow's own loader
(:func:`scripts.campaign.config_checks.load_campaign`) together with the round's definitions
and a minimal docker system NAME; a problem there stops it with the loader's message.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from scripts.campaign import implementation_files as files
from scripts.campaign.config_checks import load_campaign
from scripts.campaign.implementation_data import DataCommands, Places, readme_commands
from scripts.campaign.implementation_run import RunFacts, run_facts
from scripts.core.config import WORKFLOW_DIR, ConfigError
from scripts.core.hashing import write_atomic
from scripts.data.mountcheck import Expected, MountCheckError, read_expected
from scripts.mlperf import rounds
from scripts.mlperf.config_sh import ConfigScriptError, read_exported
from scripts.run.published.folder import read_system_json, system_json
from scripts.run.published.overlay import describe_system
from scripts.run.published.tree import round_benchmarks, system_name

BASE_CONFIG = re.compile(r"config_[A-Za-z0-9_.-]+[.]sh\Z")  # the schema's base_config
BENCHMARK = re.compile(r"(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*)-v(?P<round>[0-9]+\.[0-9]+)\Z")
RUN_SCRIPT = "run_and_time.sh"
DATASET_MOUNT, SPARE_DATASET_MOUNT = "/data", "/mlperf-dataset"  # the schema's default, another


class ImplementationError(ValueError):
    """The folder or options cannot make an overlay; the message says why, in one line."""


def _config_name(impl: Path, config: str) -> str:
    """The base config's file name in the folder: ``--config`` as a name or a path in it."""
    name = Path(config).name
    known = sorted(p.name for p in impl.glob("config_*.sh"))
    if Path(config).parent not in (Path("."), impl) and Path(config).resolve().parent != impl:
        raise ImplementationError(f"--config {config}: not a file of {impl}")
    if name not in known or not BASE_CONFIG.match(name):
        raise ImplementationError(
            f"--config {config!r}: {impl} has no such config; its configs: "
            f"{', '.join(known) or 'none'}"
        )
    return name


def _benchmark(
    impl: Path, place: files.Place, benchmark: str | None, round_: str | None
) -> tuple[str, dict[str, Any], str]:
    """(name, definition, round) of the benchmark the folder implements."""
    if benchmark is not None:
        m = BENCHMARK.match(benchmark)
        if not m:
            raise ImplementationError(f"--benchmark {benchmark!r} is not <mlperf_name>-v<X.Y>")
        round_ = m["round"]
    round_ = round_ or place.round
    if round_ is None:
        raise ImplementationError(
            f"cannot tell the MLPerf round of {impl}: no training_results_v<X.Y> in its path; "
            "give --round X.Y or --benchmark <mlperf_name>-v<X.Y>"
        )
    try:
        round_ = rounds.known_round(round_)
    except ValueError as exc:
        raise ImplementationError(str(exc)) from None
    definitions = round_benchmarks(round_, WORKFLOW_DIR) or {}
    if benchmark is None:
        by_name = {d.get("mlperf_name"): b for b, d in definitions.items()}
        mlperf_name = place.folder_name if place.folder_name in by_name else None
        mlperf_name = mlperf_name or files.submission_benchmark(impl, place)
        if mlperf_name not in by_name:
            raise ImplementationError(
                f"cannot tell the benchmark of {impl}: it is not under <Vendor>/benchmarks/"
                f"<name>/implementations/ with a v{round_} benchmark's name and no published "
                f"results of it name one; give --benchmark <mlperf_name>-v{round_}"
            )
        benchmark = by_name[mlperf_name]
    if benchmark not in definitions:
        raise ImplementationError(
            f"--benchmark {benchmark!r} is not defined in config/benchmarks/mlperf-v{round_}"
            f".yaml; defined: {', '.join(sorted(definitions)) or 'none'}"
        )
    return benchmark, definitions[benchmark], round_


def _build_args(impl: Path, dockerfile: files.Dockerfile, missing: list[str]) -> dict[str, str]:
    """The base image's ARGs, and the ARGs a README names, with their Dockerfile defaults."""
    readmes = " ".join(
        p.read_text(encoding="utf-8", errors="replace") for p in sorted(impl.glob("README*.md"))
    )
    named = [a for a in dockerfile.args if re.search(rf"\b{re.escape(a)}\b", readmes)]
    out: dict[str, str] = {}
    for arg in dict.fromkeys([*dockerfile.base_args, *named]):
        default = dockerfile.args.get(arg)
        if default:
            out[arg] = default
        elif arg in dockerfile.base_args:
            missing.append(f"a default of the Dockerfile's base-image ARG {arg}")
    return out


def _escape(value: str) -> str:
    """A literal value in a command template (the workflow's placeholders use braces)."""
    return value.replace("{", "{{").replace("}", "}}")


def _container(
    impl: Path,
    config: str,
    facts: RunFacts,
    repository: str,
    expected_mounts: str | None,
    missing: list[str],
    notes: list[str],
) -> dict[str, Any]:
    """The implementation's container section (the schema's implementation_container)."""
    source, note = files.source_of(impl)
    notes += [note] if note else []
    dockerfile = files.Dockerfile({}, [], None)
    if (impl / "Dockerfile").is_file():
        dockerfile = files.read_dockerfile(impl / "Dockerfile")
    else:
        missing.append("Dockerfile")
    workdir = facts.workdir or dockerfile.workdir
    if facts.workdir and dockerfile.workdir and facts.workdir != dockerfile.workdir:
        notes.append(
            f"the launcher runs in {facts.workdir}, the Dockerfile's WORKDIR is "
            f"{dockerfile.workdir}: the overlay uses the launcher's"
        )
    container: dict[str, Any] = {
        "source": source,
        "dockerfile": "Dockerfile",
        "build_args": _build_args(impl, dockerfile, missing),
        "build_network": "default",
        "repository": repository,
        "config_script": "config-sh",
        "base_config": config,
        "python": "python",
    }
    if workdir:
        container["workdir"] = workdir
    taken = [m["mount"] for m in facts.data] + [facts.run_mount]
    if any(_overlaps(DATASET_MOUNT, t) for t in taken):  # nemo's and AMD's /data
        container["dataset_mount"] = SPARE_DATASET_MOUNT
    container["run_mount"] = facts.run_mount
    container["launch"] = facts.launch
    container["data_mounts"] = facts.data
    if expected_mounts:
        container["expected_mounts"] = expected_mounts
    return container


def _overlaps(a: str, b: str) -> bool:
    """Whether two mount points are the same folder or one holds the other."""
    a, b = a.rstrip("/") + "/", b.rstrip("/") + "/"
    return a.startswith(b) or b.startswith(a)


def _imports(
    impl: Path, place: files.Place, definition: dict[str, Any], config: str, round_: str
) -> dict[str, dict[str, Any]]:
    """The import systems of the round's published results of this implementation: those
    whose README names ``config``, else all."""
    published = files.published_systems(impl, place, definition, config)
    chosen = [p for p in published if p.names_config] or published
    out = {}
    for pub in chosen:
        desc = None
        try:
            desc = read_system_json(system_json(pub.folder))
        except (OSError, ValueError):
            pass
        vendor = place.vendor or pub.folder.parents[1].name
        out[system_name(vendor, pub.folder.name)] = {
            "backend": "import",
            "description": describe_system(vendor, pub.folder.name, desc, round_),
            "import_dir": str(pub.folder.resolve()),
        }
    return out


def build_overlay(
    impl: Path,
    config: str,
    system: str,
    *,
    benchmark: str | None = None,
    round_: str | None = None,
) -> tuple[dict[str, Any], list[str], list[str], list[str]]:
    """(overlay, not found, notes, comments) for the implementation in ``impl`` configured by
    ``config``, run on ``system``. ImplementationError says why there is none."""
    impl = Path(impl).resolve()
    if not impl.is_dir():
        raise ImplementationError(f"{impl}: no such folder")
    config = _config_name(impl, config)
    place = files.place_of(impl)
    bench, definition, round_ = _benchmark(impl, place, benchmark, round_)
    try:
        exports = read_exported(impl / config)
    except ConfigScriptError as exc:
        raise ImplementationError(f"cannot read the config: {exc}") from None
    missing: list[str] = []
    notes: list[str] = []
    rows = _expected_rows(impl, missing)
    keys = list(dict.fromkeys(r.key for r in rows))
    facts = run_facts(impl, config, exports, keys, missing, notes)
    if not (impl / RUN_SCRIPT).is_file():
        missing.append(RUN_SCRIPT)
    # each run's seed, recorded by the workflow (run.sub of retinanet gives none: given anyway)
    env = {"SEED": "{seed}"}
    env.update({k: _escape(v) for k, v in facts.env.items()})
    repository = _repository(place.vendor, str(definition["mlperf_name"]))
    expected = "expected-mounts.csv" if keys else None
    implementation: dict[str, Any] = {
        # a folder launched by run.sub (Slurm + Pyxis) runs on a pyxis system too
        "backends": ["docker", "podman", *(["pyxis"] if facts.script == "run.sub" else [])],
        "command": f"source ./config_{{system}}.sh && {shlex.join(facts.command)}",
        "env": env,
        "container": _container(impl, config, facts, repository, expected, missing, notes),
    }
    imports = _imports(impl, place, definition, config, round_)
    if not imports:
        missing.append(f"published results of this implementation in v{round_}")
    if system in imports:
        raise ImplementationError(f"--system {system!r} is the name of the published system")
    data = _data_commands(impl, facts, rows, missing, notes)
    dataset = {"dataset": {"commands": data.commands}} if data.commands else {}
    overlay: dict[str, Any] = {
        "campaign": {
            "benchmarks": [bench],
            "systems": [system, *imports],
            "reference_system": next(iter(imports), system),
        },
        "benchmarks": {bench: {"implementation": implementation, **dataset}},
    }
    if imports:
        overlay["systems"] = imports
    comments = _comments(facts, round_, data)
    _validate(overlay, round_, system, exports)
    return overlay, missing, notes, comments


def _expected_rows(impl: Path, missing: list[str]) -> list[Expected]:
    """The rows of expected-mounts.csv (none without the file)."""
    path = impl / "expected-mounts.csv"
    if not path.is_file():
        missing.append("expected-mounts.csv (the data is not checked before a run)")
        return []
    try:
        return read_expected(path)
    except MountCheckError as exc:
        raise ImplementationError(str(exc)) from None


def _data_commands(
    impl: Path, facts: RunFacts, rows: list[Expected], missing: list[str], notes: list[str]
) -> DataCommands:
    """The README's invocations of the folder's data scripts as ``dataset.commands``: read,
    never run; what it could not use goes to ``missing`` and ``notes``."""
    data = readme_commands(impl, files.data_commands(impl), Places(facts.data, facts.verify, rows))
    missing += data.missing
    notes += data.notes
    return data


def _repository(vendor: str | None, mlperf_name: str) -> str:
    name = f"mlperf-{vendor}-{mlperf_name}" if vendor else f"mlperf-{mlperf_name}"
    return re.sub(r"[^a-z0-9_./-]+", "-", name.lower())


def _comments(facts: RunFacts, round_: str, data: DataCommands) -> list[str]:
    """The overlay's head lines: how to use it, how the folder launches, its data."""
    lines = [
        f"use: snakemake --configfile config/benchmarks/mlperf-v{round_}.yaml <your system's "
        "yaml> THIS_FILE (the system: backend docker or podman, gpus, topology)",
        f"launcher: {facts.launcher}",
    ]
    if not facts.seeded:
        lines.append("SEED: the launcher gives a run none; the overlay gives the workflow's")
    if data.used:
        lines.append(
            f"dataset.commands: the README's invocations of {', '.join(data.used)}, run once "
            "per data folder in the image by the workflow, never by this command: read them "
            "first; data you have already: replace dataset with {folders: {NAME: HOST_PATH}} "
            "(docs/datasets.md)"
        )
    return lines


def _validate(overlay: Mapping[str, Any], round_: str, system: str, exports: Mapping[str, str]):
    """Load the overlay as a campaign would: the round's definitions, a docker system
    ``system`` shaped like the config (GPUs, topology), then the overlay."""

    def number(name: str) -> int:
        value = exports.get(name, "")
        return int(value) if value.isdigit() and int(value) > 0 else 1

    system_yaml = {
        "systems": {
            system: {
                "backend": "docker",
                "gpus": number("DGXNGPU"),
                "topology": {
                    "sockets": number("DGXNSOCKET"),
                    "cores_per_socket": number("DGXSOCKETCORES"),
                    "threads_per_core": number("DGXHT"),
                },
            }
        }
    }
    round_file = WORKFLOW_DIR / "config" / "benchmarks" / f"mlperf-v{round_}.yaml"
    with tempfile.TemporaryDirectory(prefix="mlperf-implementation-") as tmp:
        sys_file, ov_file = Path(tmp) / "system.yaml", Path(tmp) / "overlay.yaml"
        sys_file.write_text(yaml.safe_dump(system_yaml, sort_keys=False))
        ov_file.write_text(yaml.safe_dump(dict(overlay), sort_keys=False))
        try:
            load_campaign([round_file, sys_file, ov_file])
        except ConfigError as exc:
            message = " ".join(str(exc).split())
            raise ImplementationError(f"the overlay does not validate: {message}") from None


def render(
    overlay: Mapping[str, Any],
    command: str,
    impl: Path,
    missing: Sequence[str],
    notes: Sequence[str],
    comments: Sequence[str],
) -> str:
    """The overlay's text: the head comments, then the YAML."""
    head = [
        f"# Generated by `{command}` from {impl}",
        f"# not found: {'; '.join(missing) or 'nothing'}",
        *[f"# note: {n}" for n in notes],
        *[f"# {c}" for c in comments],
    ]
    return "\n".join(head) + "\n" + yaml.safe_dump(dict(overlay), sort_keys=False)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(
        prog="python -m scripts implementation",
        description="Write a config overlay that runs a published MLPerf Training "
        "implementation folder (training_results_v5.x) on a docker or podman system, with the "
        "published results of the same implementation beside it where the round has them. "
        "Reading the folder runs its config and its launcher (run.sub, run_with_docker.sh) "
        "with stand-ins for srun, docker, sudo and the like.",
    )
    p.add_argument("impl_dir", type=Path, help="the implementation folder")
    p.add_argument("--config", required=True, help="its config_<name>.sh to start from")
    p.add_argument("--system", required=True, help="the name of your system (its yaml is yours)")
    p.add_argument("--output", type=Path, required=True, help="the overlay YAML to write")
    p.add_argument("--benchmark", help="<mlperf_name>-v<X.Y>, when the path does not say")
    p.add_argument("--round", dest="round_", help="the round X.Y, when the path does not say")
    p.add_argument("--force", action="store_true", help="replace an existing --output")
    args = p.parse_args(argv)
    if args.output.exists() and not args.force:
        print(f"error: {args.output} exists; give --force to replace it", file=sys.stderr)
        return 1
    try:
        overlay, missing, notes, comments = build_overlay(
            args.impl_dir, args.config, args.system, benchmark=args.benchmark, round_=args.round_
        )
    except (ImplementationError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    command = shlex.join(["python", "-m", "scripts", "implementation", *argv])
    text = render(overlay, command, args.impl_dir.resolve(), missing, notes, comments)
    write_atomic(args.output, text)
    print(f"not found: {'; '.join(missing) or 'nothing'}", file=sys.stderr)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    bench = overlay["campaign"]["benchmarks"][0]
    print(f"{args.output}: {bench} on {', '.join(overlay['campaign']['systems'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
