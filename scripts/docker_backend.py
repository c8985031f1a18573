"""The ``docker`` backend: image builds as file targets, training runs in containers.

An image is built once per (benchmark, system): its build context is assembled in
``build/<benchmark>/<system>/context`` (the implementation's source or the workflow's own files,
host-downloaded wheels, and files generated from the system config such as NVIDIA's
``config_<SYSTEM>.sh``), then ``docker build`` runs and the stamp
``results/<benchmark>/<system>/image.json`` records the image id, the tag, the build args, a hash
of the build context (Dockerfile included) and ``inputs_sha256``, a hash of everything the
context is made from that can be computed *before* the build (see :func:`image_spec`).
The workflow compares ``inputs_sha256`` with the current config on every invocation: the image is
rebuilt when it differs (or when the image is gone from the engine), and never otherwise.

Runs use ``docker run`` with the dataset mounted read-only, the run directory writable, the
caller's uid:gid, ``--network none`` unless the benchmark says otherwise, the system's GPU, IPC,
shared memory, ulimit, CPU and memory settings and environment, and never ``--privileged``
(:func:`run_argv`). The runner (``scripts/run_training.py``) streams the container's output into
the run's log as it comes, stops and removes the container on a timeout, on a signal and when
Snakemake dies, and removes a container left behind by a runner that was itself killed.

Why the docker CLI and not the Python SDK: the recipe this workflow replaces *is* a
``docker build`` and a ``docker run`` command line, and users check and rerun those by hand. With
the CLI the exact argument lists are built by two functions (:func:`build_argv`,
:func:`run_argv`), unit-tested, recorded in ``image.json`` and ``run.json``, and can be pasted
into a shell; the container's output goes straight to the log file through the CLI, so nothing
has to pump a log stream; and the workflow needs no extra Python package, only the ``docker``
command that every Docker installation has.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from scripts import formats, hashing
from scripts.config import ConfigError

DOCKER = "docker"
# labels on everything the workflow creates, so a test (or a person) can find leftovers
LABEL = "org.mlperf-workflow"
STOP_GRACE_S = 10.0


class DockerError(RuntimeError):
    """A docker step failed; the message says which and what to do."""


# ---------------------------------------------------------------------------------------------
# Hashes


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
            "run on a system with backend 'docker'; give it a container section (see "
            "config/benchmarks/gnmt.yaml) or use a system with backend 'local'"
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
    if kind == "nvidia-v0.6":
        # here, not at the top: nvidia_v06 and plan import this module (a cycle that the
        # backend interface of scripts/backends/ removes)
        from scripts import nvidia_v06
        from scripts.plan import hyperparameters

        bench = config["benchmarks"][benchmark]
        timeout = config["systems"][system].get("timeout_s") or bench.get("timeout_s")
        return {
            nvidia_v06.config_filename(system): nvidia_v06.config_sh(
                system,
                config["systems"][system],
                hyperparameters(config, benchmark, system),
                target=bench["quality"]["target"],
                timeout_s=timeout,
            )
        }
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
    source = cont.get("source")
    copies: list[tuple[str, str]] = []
    inputs: dict[str, Any] = {
        "tag": tag,
        "build_args": args,
        "build_network": cont.get("build_network", "none"),
        "generated": {
            name: hashing.canonical_sha256(text) for name, text in sorted(generated.items())
        },
    }
    if source:
        src = source_dir_for(benchmark, cont, workdir)
        assert src is not None
        subdir = source.get("subdir") or ""
        dockerfile = cont["dockerfile"]
        if source.get("path"):  # a checkout the user gives wins over git and commit
            root = src / subdir
            if not root.is_dir():
                raise ConfigError(
                    f"benchmarks.{benchmark}.implementation.container.source.path: {root} is "
                    "not a folder (expected a checkout of the implementation's source)"
                )
            inputs["source"] = {
                "path": str(src),
                "subdir": subdir,
                "tree": hashing.tree_sha256(root),
            }
        else:
            inputs["source"] = {"git": source["git"], "commit": source["commit"], "subdir": subdir}
        inputs["dockerfile"] = dockerfile
        source_dir: str | None = str(src / subdir) if subdir else str(src)
    else:
        source_dir = None
        dockerfile_path = workflow_dir / cont["dockerfile"]
        dockerfile = Path(cont["dockerfile"]).name
        copies.append((str(dockerfile_path), dockerfile))
        for rel in cont.get("context") or []:
            copies.append((str(workflow_dir / rel), rel))
        files: dict[str, str] = {}
        for src_path, dest in copies:
            p = Path(src_path)
            if not p.exists():
                raise ConfigError(
                    f"benchmarks.{benchmark}.implementation.container: {p} does not exist "
                    "(the Dockerfile and context paths are relative to the workflow folder)"
                )
            files.update(_file_hashes(p, dest))
        inputs["files"] = files
        inputs["dockerfile"] = dockerfile
    requirements = cont.get("wheels")
    wheels_dir = None
    if requirements:
        req = workflow_dir / requirements
        inputs["wheels"] = {
            "requirements": hashing.file_sha256(req),
            "constraints": hashing.file_sha256(workflow_dir / "requirements.txt"),
        }
        wheels_dir = str(wheels_dir_for(benchmark, workdir))
        requirements = str(req)
    return ImageSpec(
        benchmark=benchmark,
        system=system,
        tag=tag,
        dockerfile=dockerfile,
        build_args=args,
        build_network=cont.get("build_network", "none"),
        copies=copies,
        source_dir=source_dir,
        wheels_dir=wheels_dir,
        requirements=requirements,
        generated=generated,
        inputs=inputs,
        inputs_sha256=hashing.canonical_sha256(inputs),
    )


# ---------------------------------------------------------------------------------------------
# Building


def stage_context(spec: ImageSpec, dest: Path) -> None:
    """Assemble the build context in ``dest`` (replaced): the source tree or the workflow's
    files, the wheels, then the generated files (so they win over files of the same name)."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    if spec.source_dir:
        src = Path(spec.source_dir)
        if not src.is_dir():
            raise DockerError(f"the implementation's source {src} is missing")
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
            raise DockerError(f"no wheels in {wheels}: the fetch_wheels step did not run")
        shutil.copytree(wheels, dest / "wheels")
        assert spec.requirements
        shutil.copy2(spec.requirements, dest / "wheels" / "requirements.txt")
    for name, content in spec.generated.items():
        path = dest / name
        path.write_text(content)
        path.chmod(0o755)
    if not (dest / spec.dockerfile).is_file():
        raise DockerError(f"the build context {dest} has no {spec.dockerfile}")


def build_argv(spec: ImageSpec, context: Path, iidfile: Path) -> list[str]:
    """The exact ``docker build`` command line (recorded in the stamp)."""
    argv = [DOCKER, "build", "--file", str(context / spec.dockerfile), "--tag", spec.tag]
    argv += ["--iidfile", str(iidfile)]
    argv += ["--network", spec.build_network] if spec.build_network != "default" else []
    for key in sorted(spec.build_args):
        argv += ["--build-arg", f"{key}={spec.build_args[key]}"]
    argv += ["--label", f"{LABEL}.benchmark={spec.benchmark}"]
    argv += ["--label", f"{LABEL}.system={spec.system}"]
    argv += ["--label", f"{LABEL}.inputs={spec.inputs_sha256}"]
    argv.append(str(context))
    return argv


def docker_json(args: Sequence[str], timeout: float = 60) -> Any:
    out = subprocess.run(
        [DOCKER, *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    if out.returncode != 0:
        raise DockerError(f"`docker {' '.join(args)}` failed: {out.stderr.strip()}")
    return json.loads(out.stdout)


def engine_version() -> dict[str, Any]:
    data = docker_json(["version", "--format", "{{json .}}"])
    return {
        "client": (data.get("Client") or {}).get("Version"),
        "server": (data.get("Server") or {}).get("Version"),
    }


def image_exists(image: str) -> bool:
    out = subprocess.run(
        [DOCKER, "image", "inspect", "--format", "{{.Id}}", image],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    return out.returncode == 0


def build(spec: ImageSpec, stamp: Path, context: Path) -> dict[str, Any]:
    """Stage the context, ``docker build`` it (output streamed to stdout), write the stamp."""
    stage_context(spec, context)
    context_sha = hashing.tree_sha256(context)
    iidfile = context.parent / "image.iid"
    iidfile.unlink(missing_ok=True)
    argv = build_argv(spec, context, iidfile)
    print("build: " + shlex.join(argv), flush=True)
    t0 = time.monotonic()
    rc = subprocess.call(argv, stdin=subprocess.DEVNULL)
    if rc != 0:
        raise DockerError(f"docker build of {spec.tag} failed (exit {rc}); its output is above")
    image_id = iidfile.read_text().strip()
    record = {
        "benchmark": spec.benchmark,
        "system": spec.system,
        "tag": spec.tag,
        "image_id": image_id,
        "build_args": spec.build_args,
        "dockerfile": spec.dockerfile,
        "dockerfile_sha256": hashing.file_sha256(context / spec.dockerfile),
        "context_sha256": context_sha,
        "generated": sorted(spec.generated),
        "inputs": spec.inputs,
        "inputs_sha256": spec.inputs_sha256,
        "docker_build_argv": argv,
        "engine": engine_version(),
        "built_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "build_s": round(time.monotonic() - t0, 2),
    }
    record = formats.stamped("image.json", record)  # what the stamp holds is what is returned
    hashing.write_json(stamp, record, sort_keys=True)
    print(f"build: {spec.tag} is {image_id} ({record['build_s']} s)", flush=True)
    return record


def stale_reason(stamp: Path, spec: ImageSpec, check_engine: bool = True) -> str | None:
    """Why an existing stamp no longer describes the image to use, or None if it does."""
    try:
        record = formats.read_json(stamp, "image.json")  # a newer one: NewerFormat, not stale
    except (OSError, ValueError):
        return "it cannot be read"
    if record.get("inputs_sha256") != spec.inputs_sha256:
        from scripts.plan import differences  # here: plan imports this module (see above)

        diffs = differences(record.get("inputs", {}), spec.inputs)
        return "what the image is built from changed: " + "; ".join(diffs[:5] or ["inputs"])
    if check_engine:
        try:
            present = image_exists(record.get("image_id", ""))
        except (OSError, subprocess.TimeoutExpired):
            return None  # no engine to ask; the build or run step reports it
        if not present:
            return f"its image {record.get('image_id')} is no longer in the Docker engine"
    return None


# ---------------------------------------------------------------------------------------------
# Sources and wheels


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
        raise DockerError(f"{git}: checked out {head}, expected the pinned commit {commit}")
    if subdir and not (tmp / subdir).is_dir():
        raise DockerError(f"{git} at {commit} has no folder {subdir}")
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
# Running


def run_options(config: Mapping[str, Any], benchmark: str, system: str) -> dict[str, Any]:
    """How (benchmark, system) runs in a container: the benchmark's mounts, working folder and
    network with the system's GPU, IPC, memory and CPU settings. Plain data for the RunSpec."""
    cont = container_config(config, benchmark)
    sys_ = config["systems"][system]
    sc = sys_.get("container") or {}
    prepare = cont.get("prepare")
    return {
        "tag": image_tag(benchmark, system, cont),
        "python": cont.get("python", "python3"),
        "workdir": cont.get("workdir"),
        "dataset_mount": cont.get("dataset_mount", "/data"),
        "run_mount": cont.get("run_mount", "/results"),
        "prepared_mount": prepare["mount"] if prepare else None,
        "network": cont.get("network", "none"),
        "gpus": sc.get("gpus", "auto"),
        "gpu_count": sys_.get("gpus", 0),
        "ipc": sc.get("ipc"),
        "shm_size": sc.get("shm_size"),
        "ulimits": dict(sc.get("ulimits") or {}),
        "cpus": sc.get("cpus"),
        "memory": sc.get("memory"),
        "devices": list(sc.get("devices") or []),
        "security_opt": list(sc.get("security_opt") or []),
        "init": sc.get("init", True),
        "stop_grace_s": sc.get("stop_grace_s", STOP_GRACE_S),
    }


def gpu_flags(gpus: Any, gpu_count: int, assigned: Sequence[str] = ()) -> list[str]:
    """``--gpus`` from the system config: 'auto' (the devices assigned to the run; all when
    none were assigned but the system has GPUs), 'none', 'all', a count, or a list of device
    ids."""
    if gpus == "auto":
        if assigned:
            from scripts.gpus import docker_gpus_arg

            return docker_gpus_arg(assigned)
        return ["--gpus", "all"] if gpu_count > 0 else []
    if gpus in (None, "none", 0):
        return []
    if gpus == "all":
        return ["--gpus", "all"]
    if isinstance(gpus, int):
        return ["--gpus", str(gpus)]
    ids = ",".join(str(g) for g in gpus)
    return ["--gpus", f'"device={ids}"']  # the quotes keep the comma list one value


def container_name(benchmark: str, system: str, run: int | str, run_dir: Path) -> str:
    """Deterministic per run and workflow folder, so a leftover of a killed runner is found."""
    digest = hashlib.sha256(str(run_dir.resolve()).encode()).hexdigest()[:8]
    return f"mlperf-{benchmark}-{system}-run{run}-{digest}"


def caller_user() -> str:
    return f"{os.getuid()}:{os.getgid()}"


def run_argv(
    options: Mapping[str, Any],
    *,
    image: str,
    name: str,
    command: str,
    env: Mapping[str, str],
    dataset_dir: Path,
    run_dir: Path | None,
    prepared_dir: Path | None = None,
    prepared_writable: bool = False,
    user: str | None = None,
    gpu_devices: Sequence[str] = (),
) -> list[str]:
    """The exact ``docker run`` command line of one container.

    The dataset (and prepared data) are mounted read-only, the run directory writable; the
    container runs as ``user`` (default: the caller), is removed when it ends, and gets no
    network unless the benchmark asks for one. ``--privileged`` is never used. With the
    system's ``gpus: auto`` the container gets exactly ``gpu_devices``, the GPUs assigned to
    the run (scripts/gpus.py), so concurrent runs never share one.
    """
    argv = [DOCKER, "run", "--rm", "--name", name, "--label", f"{LABEL}.container={name}"]
    if options.get("init", True):
        argv.append("--init")  # a real PID 1: signals reach the trainer, zombies are reaped
    argv += ["--network", options.get("network") or "none"]
    argv += ["--user", user or caller_user()]
    if options.get("workdir"):
        argv += ["--workdir", options["workdir"]]
    argv += ["--mount", _bind(dataset_dir, options["dataset_mount"], readonly=True)]
    if run_dir is not None:
        argv += ["--mount", _bind(run_dir, options["run_mount"], readonly=False)]
    if prepared_dir is not None and options.get("prepared_mount"):
        argv += [
            "--mount",
            _bind(prepared_dir, options["prepared_mount"], readonly=not prepared_writable),
        ]
    argv += gpu_flags(options.get("gpus", "auto"), int(options.get("gpu_count") or 0), gpu_devices)
    if options.get("ipc"):
        argv += ["--ipc", options["ipc"]]
    if options.get("shm_size"):
        argv += ["--shm-size", str(options["shm_size"])]
    for key in sorted(options.get("ulimits") or {}):
        argv += ["--ulimit", f"{key}={options['ulimits'][key]}"]
    if options.get("cpus"):
        argv += ["--cpus", str(options["cpus"])]
    if options.get("memory"):
        argv += ["--memory", str(options["memory"])]
    for device in options.get("devices") or []:
        argv += ["--device", device]
    for opt in options.get("security_opt") or []:
        argv += ["--security-opt", opt]
    for key in sorted(env):
        argv += ["--env", f"{key}={env[key]}"]
    argv += [image, "/bin/bash", "-c", command]
    assert "--privileged" not in argv
    return argv


def _bind(source: Path, target: str, readonly: bool) -> str:
    spec = f"type=bind,source={source.resolve()},target={target}"
    return spec + (",readonly" if readonly else "")


def _docker_quietly(args: Sequence[str], timeout: float) -> None:
    """A docker command whose failure is not an error (the container may be gone already);
    an engine that does not answer is reported, not raised, so the caller can go on
    cleaning up."""
    try:
        subprocess.run(
            [DOCKER, *args], capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        print(f"docker {' '.join(args)}: {exc}", file=sys.stderr, flush=True)


def stop_container(name: str, grace_s: float) -> None:
    """SIGTERM the container's init, SIGKILL after ``grace_s``, then remove it. Quiet when the
    container is already gone."""
    _docker_quietly(["stop", "--time", str(int(max(grace_s, 0))), name], grace_s + 60)
    remove_container(name)


def remove_container(name: str) -> None:
    _docker_quietly(["rm", "--force", name], 60)


def containers_named(name: str) -> list[str]:
    out = subprocess.run(
        [DOCKER, "ps", "--all", "--quiet", "--filter", f"name=^/?{name}$"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    return out.stdout.split()


def read_stamp(stamp: Path) -> dict[str, Any]:
    try:
        record = formats.read_json(stamp, "image.json")
    except (OSError, ValueError) as exc:
        raise DockerError(f"cannot read the image stamp {stamp}: {exc}") from None
    except formats.NewerFormat as exc:
        raise DockerError(str(exc)) from None
    if not record.get("image_id"):
        raise DockerError(f"{stamp} records no image id; delete it to rebuild the image")
    return record


def prepare_data(
    options: Mapping[str, Any],
    stamp: Path,
    command: str,
    env: Mapping[str, str],
    dataset_dir: Path,
    output: Path,
    name: str,
) -> int:
    """Run the implementation's one-time data preparation (e.g. NVIDIA's preprocess_data.py)
    in its image, writing into ``output`` (mounted writable); the output streams to stdout."""
    image = read_stamp(stamp)["image_id"]
    output.mkdir(parents=True, exist_ok=True)
    argv = run_argv(
        options,
        image=image,
        name=name,
        command=command,
        env=env,
        dataset_dir=dataset_dir,
        run_dir=None,
        prepared_dir=output,
        prepared_writable=True,
    )
    print("prepare: " + shlex.join(argv), flush=True)
    remove_container(name)
    try:
        return subprocess.call(argv, stdin=subprocess.DEVNULL)
    finally:
        remove_container(name)


# ---------------------------------------------------------------------------------------------
# Entry point (the rules of rules/image.smk call it)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m scripts.docker_backend",
        description="Docker steps of the workflow: fetch a source or wheels, build an image, "
        "prepare data in a container.",
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
    b = sub.add_parser("build", help="assemble the build context, docker build, write the stamp")
    b.add_argument("--spec", required=True, help="the ImageSpec as JSON")
    b.add_argument("--context", type=Path, required=True, help="where to assemble the context")
    b.add_argument("--stamp", type=Path, required=True, help="the image.json to write")
    r = sub.add_parser("prepare", help="run the data preparation command in the image")
    r.add_argument("--options", required=True, help="the run options as JSON")
    r.add_argument("--stamp", type=Path, required=True)
    r.add_argument("--command", required=True)
    r.add_argument("--env-json", default="{}")
    r.add_argument("--dataset-dir", type=Path, required=True)
    r.add_argument("--output", type=Path, required=True)
    r.add_argument("--name", required=True)
    args = p.parse_args(argv)
    try:
        if args.cmd == "fetch-source":
            fetch_source(args.git, args.commit, args.dest, args.subdir)
            print(f"fetch: {args.git} at {args.commit} is in {args.dest}")
        elif args.cmd == "fetch-wheels":
            names = fetch_wheels(args.requirements, args.constraints, args.dest)
            print(f"wheels: {len(names)} wheels in {args.dest}")
        elif args.cmd == "build":
            build(ImageSpec.from_json(args.spec), args.stamp, args.context)
        else:
            rc = prepare_data(
                json.loads(args.options),
                args.stamp,
                args.command,
                json.loads(args.env_json),
                args.dataset_dir,
                args.output,
                args.name,
            )
            if rc != 0:
                print(f"error: the preparation command exited with status {rc}", file=sys.stderr)
                return 1
    except (DockerError, subprocess.CalledProcessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
