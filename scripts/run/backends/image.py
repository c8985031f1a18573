"""What a container image is made of, and the engine-free steps of building one.

An image is built once per (benchmark, system) by a container backend (scripts/run/backends/
container.py: docker, podman). Its build context is assembled in
``build/<benchmark>/<system>/context`` from the implementation's source or the workflow's own
files, host-downloaded wheels, and files generated from the system config such as NVIDIA's
``config_<SYSTEM>.sh``. :func:`image_spec` computes, before any build step, ``inputs``: what the
context is made of, and ``inputs_sha256``, its hash, which decides when the image is rebuilt.

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

from scripts.core import hashing
from scripts.core.config import ConfigError
from scripts.mlperf import nvidia_v06
from scripts.run.backends.errors import BackendError


class ImageError(BackendError):
    """An image step failed; the message says which and what to do."""


def _file_hashes(path: Path, dest: str) -> dict[str, str]:
    """sha256 of a file, or of each file below a folder, by its path in the build context (as
    stage_context copies them: without __pycache__ and .pyc files)."""
    if not path.is_dir():
        return {dest: hashing.file_sha256(path)}
    out: dict[str, str] = {}
    for f in sorted(path.rglob("*")):
        if f.is_dir() or "__pycache__" in f.parts or f.suffix == ".pyc":
            continue
        out[f"{dest}/{f.relative_to(path).as_posix()}"] = hashing.file_sha256(f)
    return out


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
    """Files generated from the system config into the build context before the build."""
    cont = container_config(config, benchmark)
    kind = cont.get("config_script")
    if not kind:
        return {}
    if kind == nvidia_v06.KIND:
        return nvidia_v06.config_files(config, benchmark, system)
    raise ValueError(f"unknown config_script {kind!r}")


def image_spec(
    config: Mapping[str, Any],
    benchmark: str,
    system: str,
    workflow_dir: Path,
    workdir: Path | None = None,
) -> ImageSpec:
    """The image of (benchmark, system), and the identity that decides when it is rebuilt.

    ``inputs`` holds everything the build context is made of, in a form known before any build
    step runs: the Dockerfile and context files of the workflow (by content), the source (a git
    URL and pinned commit, or the content of a folder the user gives), the wheel requirements
    and pins (by content), the generated files (by content), the build args and the tag.
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
    wheels_dir, requirements, wheels = _wheels(benchmark, cont, workflow_dir, workdir)
    inputs: dict[str, Any] = {
        "tag": tag,
        "build_args": args,
        "build_network": build_network,
        "generated": {
            name: hashing.canonical_sha256(text) for name, text in sorted(generated.items())
        },
        **context.inputs,
        "dockerfile": context.dockerfile,
        **wheels,
    }
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
    )


class _Context(NamedTuple):
    """Where a build context comes from: its Dockerfile (relative to the context), the source
    tree that becomes its root (or None), the files copied into it, and their identity."""

    dockerfile: str
    source_dir: str | None
    copies: list[tuple[str, str]]
    inputs: dict[str, Any]


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
        identity = {"path": str(src), "subdir": subdir, "tree": hashing.tree_sha256(root)}
    else:
        identity = {"git": source["git"], "commit": source["commit"], "subdir": subdir}
    source_dir = str(src / subdir) if subdir else str(src)
    return _Context(cont["dockerfile"], source_dir, [], {"source": identity})


def _workflow_context(benchmark: str, cont: Mapping[str, Any], workflow_dir: Path) -> _Context:
    """The workflow's own Dockerfile and context files (relative to the workflow folder),
    identified by the content of each file."""
    dockerfile = Path(cont["dockerfile"]).name
    copies = [(str(workflow_dir / cont["dockerfile"]), dockerfile)]
    copies += [(str(workflow_dir / rel), rel) for rel in cont.get("context") or []]
    files: dict[str, str] = {}
    for src_path, dest in copies:
        p = Path(src_path)
        if not p.exists():
            raise ConfigError(
                f"benchmarks.{benchmark}.implementation.container: {p} does not exist "
                "(the Dockerfile and context paths are relative to the workflow folder)"
            )
        files.update(_file_hashes(p, dest))
    return _Context(dockerfile, None, copies, {"files": files})


def _wheels(
    benchmark: str, cont: Mapping[str, Any], workflow_dir: Path, workdir: Path
) -> tuple[str | None, str | None, dict[str, Any]]:
    """(the wheels folder, the requirements file, their identity) of an image that installs
    host-downloaded wheels; (None, None, {}) for one that does not."""
    requirements = cont.get("wheels")
    if not requirements:
        return None, None, {}
    req = workflow_dir / requirements
    identity = {
        "requirements": hashing.file_sha256(req),
        "constraints": hashing.file_sha256(workflow_dir / "requirements.txt"),
    }
    return str(wheels_dir_for(benchmark, workdir)), str(req), {"wheels": identity}


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
