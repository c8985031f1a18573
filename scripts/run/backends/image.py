"""What a container image is made of, and the engine-free steps of building one.

An image is built once per (benchmark, system) by a container backend (scripts/run/backends/
container.py: docker, podman). Its build context is assembled in
``build/<benchmark>/<system>/context`` from the implementation's source or the workflow's own
files, host-downloaded wheels, and files generated from the system config such as NVIDIA's
``config_<SYSTEM>.sh``. :func:`image_spec` computes, before any build step, ``inputs``: what the
context is made of, and ``inputs_sha256``, its hash, which decides when the image is rebuilt.

What identifies an image is what it contains, not where its files are on the host: each file
by its path in the build context and its content digest (:mod:`scripts.run.backends.
input_digests`: a Python source by its tokens without comments), a source checkout by its
commit or tree, the wheels by the lines pip reads from their requirements files. The stamp
(image.json) records those inputs, and every container run's comparability record names them
(:func:`recorded_identity`). An image built before these rules (its inputs have no
``inputs_version``) keeps the identity it was built with while the bytes it was built from are
unchanged (``legacy_inputs``), so its finished campaign stays comparable and is not rebuilt.

The rules of rules/image.smk call :func:`main` to fetch a pinned source or the wheels:
``python -m scripts image fetch-source|fetch-wheels ...``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from scripts.core import formats, hashing
from scripts.core.config import ConfigError
from scripts.core.records import differences
from scripts.mlperf import config_sh
from scripts.run.backends.errors import BackendError
from scripts.run.backends.input_digests import (
    constraints_digest,
    file_digests,
    legacy_file_sha256,
    requirements_digest,
)

# how the inputs are identified, as image.json's inputs.inputs_version records it: 2, by
# content digests named by their path in the build context; images built before have none
INPUTS_VERSION = 2


class ImageError(BackendError):
    """An image step failed; the message says which and what to do."""


# ---------------------------------------------------------------------------------------------
# What an image is made of (computed at parse time, from the config and the workflow's files)


@dataclass(frozen=True)
class ImageSpec:
    """Everything needed to assemble a build context and build one image, as plain data."""

    benchmark: str
    system: str
    tag: str
    dockerfile: str  # relative to the build context
    build_args: dict[str, str]
    build_network: str
    # (absolute source path, path inside the context) copied into the context
    copies: list[tuple[str, str]] = field(default_factory=list)
    # the fetched or given source tree (its subdir becomes the context root), or None
    source_dir: str | None = None
    # host-downloaded wheels, copied to wheels/ in the context with requirements.txt
    wheels_dir: str | None = None
    requirements: str | None = None
    # files written into the context before the build: name -> content
    generated: dict[str, str] = field(default_factory=dict)
    # what the image is made of, and its hash (the identity that decides rebuilds)
    inputs: dict[str, Any] = field(default_factory=dict)
    inputs_sha256: str = ""
    # the same inputs as images built before INPUTS_VERSION 2 were identified (the sha256 of
    # each file's bytes, a source's git URL or host path): such an image is still this one
    # while its stamp's inputs_sha256 is this hash
    legacy_inputs: dict[str, Any] = field(default_factory=dict)
    legacy_inputs_sha256: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ImageSpec:
        data = json.loads(text)
        data["copies"] = [tuple(c) for c in data.get("copies", [])]
        return cls(**data)


def container_config(config: Mapping[str, Any], benchmark: str) -> dict[str, Any]:
    """The benchmark implementation's ``container`` section; a clear error when it has none."""
    cont = config["benchmarks"][benchmark].get("implementation", {}).get("container")
    if not cont:
        raise ConfigError(
            f"benchmarks.{benchmark}.implementation.container is not set, so {benchmark} cannot "
            "run on a system with a container backend (docker, podman); give it a container "
            "section (see config/benchmarks/gnmt.yaml) or use a system with backend 'local'"
        )
    return cont


def image_tag(benchmark: str, system: str, cont: Mapping[str, Any]) -> str:
    """``<repository>:<system>``: one tag per system, since each system's image differs (its
    build args and generated files)."""
    repository = (cont.get("repository") or f"mlperf-{benchmark}").lower()
    return f"{repository}:{system}"


def source_dir_for(benchmark: str, cont: Mapping[str, Any], workdir: Path) -> Path | None:
    """Where the implementation's source tree is: the user's path, or the fetched clone."""
    source = cont.get("source")
    if not source:
        return None
    if source.get("path"):
        return Path(source["path"]).expanduser()
    return workdir / "build" / benchmark / "source"


def wheels_dir_for(benchmark: str, workdir: Path) -> Path:
    return workdir / "build" / benchmark / "wheels"


def build_args(config: Mapping[str, Any], benchmark: str, system: str) -> dict[str, str]:
    """The benchmark's build args with the system's overrides."""
    cont = container_config(config, benchmark)
    args = {k: str(v) for k, v in (cont.get("build_args") or {}).items()}
    sys_cont = config["systems"][system].get("container") or {}
    args.update({k: str(v) for k, v in (sys_cont.get("build_args") or {}).items()})
    return args


def generated_files(config: Mapping[str, Any], benchmark: str, system: str) -> dict[str, str]:
    """Files generated from the system config into the build context before the build: the
    config_<SYSTEM>.sh of the benchmark's config_script (one generator, config_sh, for every
    layout); none without one."""
    container_config(config, benchmark)  # the clear error of a benchmark without a container
    return config_sh.config_files(config, benchmark, system)


def image_spec(
    config: Mapping[str, Any],
    benchmark: str,
    system: str,
    workflow_dir: Path,
    workdir: Path | None = None,
) -> ImageSpec:
    """The image of (benchmark, system), and the identity that decides when it is rebuilt.

    ``inputs`` holds everything the build context is made of, in a form known before any build
    step runs: the Dockerfile and context files (by their path in the context and their content
    digest), the source (its pinned commit, or the content of a folder the user gives), the
    wheel requirements and pins (the lines pip reads), the generated files (by content), the
    build args and the tag. ``legacy_inputs``: the same, as images were identified before.
    """
    workdir = workdir or Path.cwd()
    cont = container_config(config, benchmark)
    tag = image_tag(benchmark, system, cont)
    args = build_args(config, benchmark, system)
    generated = generated_files(config, benchmark, system)
    build_network = cont.get("build_network", "none")
    if cont.get("source"):
        context = _source_context(benchmark, cont, workdir)
    else:
        context = _workflow_context(benchmark, cont, workflow_dir)
    wheels_dir, requirements, wheels, legacy_wheels = _wheels(
        cont, workflow_dir, workdir, benchmark
    )
    common: dict[str, Any] = {
        "tag": tag,
        "build_args": args,
        "build_network": build_network,
        "generated": {
            name: hashing.canonical_sha256(text) for name, text in sorted(generated.items())
        },
        "dockerfile": context.dockerfile,
    }
    inputs = {"inputs_version": INPUTS_VERSION, **common, **context.inputs, **wheels}
    legacy = {**common, **context.legacy_inputs, **legacy_wheels}
    return ImageSpec(
        benchmark=benchmark,
        system=system,
        tag=tag,
        dockerfile=context.dockerfile,
        build_args=args,
        build_network=build_network,
        copies=context.copies,
        source_dir=context.source_dir,
        wheels_dir=wheels_dir,
        requirements=requirements,
        generated=generated,
        inputs=inputs,
        inputs_sha256=hashing.canonical_sha256(inputs),
        legacy_inputs=legacy,
        legacy_inputs_sha256=hashing.canonical_sha256(legacy),
    )


class _Context(NamedTuple):
    """Where a build context comes from: its Dockerfile (relative to the context), the source
    tree that becomes its root (or None), the files copied into it, and their identity (as
    now, and as images built before INPUTS_VERSION 2 were identified)."""

    dockerfile: str
    source_dir: str | None
    copies: list[tuple[str, str]]
    inputs: dict[str, Any]
    legacy_inputs: dict[str, Any]


def _source_context(benchmark: str, cont: Mapping[str, Any], workdir: Path) -> _Context:
    """The implementation's own source: a checkout the user gives (by content; it wins over
    git and commit) or a git URL at a pinned commit (fetched by the fetch_source rule)."""
    source = cont["source"]
    src = source_dir_for(benchmark, cont, workdir)
    assert src is not None
    subdir = source.get("subdir") or ""
    if source.get("path"):
        root = src / subdir
        if not root.is_dir():
            raise ConfigError(
                f"benchmarks.{benchmark}.implementation.container.source.path: {root} is "
                "not a folder (expected a checkout of the implementation's source)"
            )
        identity = {"subdir": subdir, "tree": hashing.tree_sha256(root)}
        legacy = {"path": str(src), **identity}
    else:  # the commit is the content's digest; the URL is only where it is fetched from
        identity = {"commit": source["commit"], "subdir": subdir}
        legacy = {"git": source["git"], **identity}
    source_dir = str(src / subdir) if subdir else str(src)
    return _Context(cont["dockerfile"], source_dir, [], {"source": identity}, {"source": legacy})


def context_entries(benchmark: str, cont: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(where on the host, where in the build context) of each ``context`` entry: a path (the
    same in both, relative to the workflow folder) or ``{from: host path, to: context path}``."""
    entries = []
    for entry in cont.get("context") or []:
        src, dest = (entry, entry) if isinstance(entry, str) else (entry["from"], entry["to"])
        parts = Path(dest).parts
        if Path(dest).is_absolute() or not parts or ".." in parts or dest in (".", "./"):
            raise ConfigError(
                f"benchmarks.{benchmark}.implementation.container.context: {dest!r} is not a "
                "path inside the build context (give a relative path without '..')"
            )
        entries.append((src, Path(dest).as_posix()))
    return entries


def _workflow_context(benchmark: str, cont: Mapping[str, Any], workflow_dir: Path) -> _Context:
    """The workflow's own Dockerfile and context files (relative to the workflow folder, or
    absolute), identified by their path in the build context and the content of each file."""
    dockerfile = Path(cont["dockerfile"]).name
    copies = [(str(workflow_dir / cont["dockerfile"]), dockerfile)]
    copies += [(str(workflow_dir / src), dest) for src, dest in context_entries(benchmark, cont)]
    files: dict[str, str] = {}
    legacy: dict[str, str] = {}
    for src_path, dest in copies:
        p = Path(src_path)
        if not p.exists():
            raise ConfigError(
                f"benchmarks.{benchmark}.implementation.container: {p} does not exist "
                "(the Dockerfile and context paths are relative to the workflow folder)"
            )
        files.update(file_digests(p, dest))
        legacy.update(file_digests(p, dest, legacy=True))
    return _Context(dockerfile, None, copies, {"files": files}, {"files": legacy})


def _wheels(
    cont: Mapping[str, Any], workflow_dir: Path, workdir: Path, benchmark: str
) -> tuple[str | None, str | None, dict[str, Any], dict[str, Any]]:
    """(the wheels folder, the requirements file, their identity now and as images built
    before INPUTS_VERSION 2 were identified) of an image that installs host-downloaded wheels;
    (None, None, {}, {}) for one that does not."""
    requirements = cont.get("wheels")
    if not requirements:
        return None, None, {}, {}
    req, constraints = workflow_dir / requirements, workflow_dir / "requirements.txt"
    identity = {
        "requirements": requirements_digest(req),
        "constraints": constraints_digest(constraints),
    }
    legacy = {
        "requirements": legacy_file_sha256(req),
        "constraints": legacy_file_sha256(constraints),
    }
    wheels = str(wheels_dir_for(benchmark, workdir))
    return wheels, str(req), {"wheels": identity}, {"wheels": legacy}


# ---------------------------------------------------------------------------------------------
# Which identity a built image has (its stamp, image.json)


def stamp_identity(record: Mapping[str, Any], spec: ImageSpec) -> tuple[dict[str, Any], str] | None:
    """The inputs and their hash by which the stamp ``record`` identifies the image of
    ``spec``, when it is that image: ``spec.inputs``, or for an image built before
    INPUTS_VERSION 2 whose files are unchanged, ``spec.legacy_inputs``. None when the stamp
    describes an image built from something else (it is rebuilt)."""
    recorded = record.get("inputs_sha256")
    if recorded and recorded == spec.inputs_sha256:
        return spec.inputs, spec.inputs_sha256
    if recorded and recorded == spec.legacy_inputs_sha256:
        return spec.legacy_inputs, spec.legacy_inputs_sha256
    return None


def stamp_differences(record: Mapping[str, Any], spec: ImageSpec) -> list[str]:
    """What differs between the inputs a stamp records and ``spec``'s, in the stamp's form
    (e.g. ``files.scripts/gnmt/model.py: "python-tokens:..." -> "python-tokens:..."``)."""
    recorded = record.get("inputs") or {}
    current = spec.inputs if "inputs_version" in recorded else spec.legacy_inputs
    return differences(dict(recorded), current)


_stamps: dict[tuple[str, int, int, int], Any] = {}


def recorded_identity(spec: ImageSpec, stamp: Path) -> tuple[dict[str, Any], str]:
    """The inputs and their hash that name ``spec``'s image in a run's comparability record:
    those its stamp identifies it by while the stamp is current (an image built before
    INPUTS_VERSION 2 keeps its old identity, so its finished runs stay comparable), else
    ``spec``'s own (the image is built, or rebuilt, with them)."""
    try:
        st = stamp.stat()
        key = (str(stamp), st.st_size, st.st_mtime_ns, st.st_ino)
        if key not in _stamps:  # asked once per run of the system: read it once
            _stamps[key] = formats.read_json(stamp, "image.json")
        record = _stamps[key]
    except (OSError, ValueError, formats.NewerFormat):
        record = None  # no image yet, or a stamp that the workflow's checks report
    found = stamp_identity(record, spec) if isinstance(record, dict) else None
    return found or (spec.inputs, spec.inputs_sha256)


# ---------------------------------------------------------------------------------------------
# Assembling a context, fetching a source and wheels


def stage_context(spec: ImageSpec, dest: Path) -> None:
    """Assemble the build context in ``dest`` (replaced): the source tree or the workflow's
    files, the wheels, then the generated files (so they win over files of the same name)."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    if spec.source_dir:
        src = Path(spec.source_dir)
        if not src.is_dir():
            raise ImageError(f"the implementation's source {src} is missing")
        shutil.copytree(
            src, dest, symlinks=True, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".git")
        )
    for src_path, rel in spec.copies:
        src, target = Path(src_path), dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, target)
    if spec.wheels_dir:
        wheels = Path(spec.wheels_dir)
        if not any(wheels.glob("*.whl")):
            raise ImageError(f"no wheels in {wheels}: the fetch_wheels step did not run")
        shutil.copytree(wheels, dest / "wheels")
        assert spec.requirements
        shutil.copy2(spec.requirements, dest / "wheels" / "requirements.txt")
    for name, content in spec.generated.items():
        path = dest / name
        path.write_text(content)
        path.chmod(0o755)
    if not (dest / spec.dockerfile).is_file():
        raise ImageError(f"the build context {dest} has no {spec.dockerfile}")


def fetch_source(git: str, commit: str, dest: Path, subdir: str = "") -> None:
    """A checkout of ``git`` at ``commit`` in ``dest`` (only ``subdir`` and top-level files when
    given): shallow, and verified to be exactly that commit."""
    tmp = dest.with_name(dest.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)

    def git_(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        print("fetch: git " + " ".join(args), flush=True)
        return subprocess.run(
            ["git", "-C", str(tmp), *args], text=True, check=check, stdin=subprocess.DEVNULL
        )

    git_("init", "-q")
    git_("remote", "add", "origin", git)
    if subdir:
        git_("sparse-checkout", "set", subdir)
    if git_("fetch", "-q", "--depth", "1", "origin", commit, check=False).returncode != 0:
        # a server that refuses fetches by commit id: fetch its branches, then check out
        git_("fetch", "-q", "origin")
        git_("checkout", "-q", "--detach", commit)
    else:
        git_("checkout", "-q", "--detach", "FETCH_HEAD")
    head = subprocess.run(
        ["git", "-C", str(tmp), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    if head != commit:
        raise ImageError(f"{git}: checked out {head}, expected the pinned commit {commit}")
    if subdir and not (tmp / subdir).is_dir():
        raise ImageError(f"{git} at {commit} has no folder {subdir}")
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(tmp, dest)


def fetch_wheels(requirements: Path, constraints: Path, dest: Path) -> list[str]:
    """``pip download`` of the wheels ``requirements`` names (pinned by ``constraints``) into
    ``dest``, with this Python's version and platform (the image's Python must match)."""
    tmp = dest.with_name(dest.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    argv = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--disable-pip-version-check",
        "--only-binary=:all:",
        "-r",
        str(requirements),
        "-c",
        str(constraints),
        "-d",
        str(tmp),
    ]
    print("wheels: " + " ".join(argv), flush=True)
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL)
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(tmp, dest)
    return sorted(p.name for p in dest.glob("*.whl"))


# ---------------------------------------------------------------------------------------------
# Entry point (the fetch rules of rules/image.smk call it)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m scripts image",
        description="Engine-free steps of an image: fetch a pinned source or the wheels it "
        "installs.",
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("fetch-source", help="check out a git repository at a pinned commit")
    s.add_argument("--git", required=True)
    s.add_argument("--commit", required=True)
    s.add_argument("--subdir", default="")
    s.add_argument("--dest", type=Path, required=True)
    w = sub.add_parser("fetch-wheels", help="pip download the wheels an image installs")
    w.add_argument("--requirements", type=Path, required=True)
    w.add_argument("--constraints", type=Path, required=True)
    w.add_argument("--dest", type=Path, required=True)
    args = p.parse_args(argv)
    try:
        if args.cmd == "fetch-source":
            fetch_source(args.git, args.commit, args.dest, args.subdir)
            print(f"fetch: {args.git} at {args.commit} is in {args.dest}")
        else:
            names = fetch_wheels(args.requirements, args.constraints, args.dest)
            print(f"wheels: {len(names)} wheels in {args.dest}")
    except (ImageError, subprocess.CalledProcessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
