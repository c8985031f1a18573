"""Capture the software and hardware environment of a system.

The JSON records Python, torch and key package versions, the CPU model and count, the host, any
GPUs, the OS, and the workflow's git commit. ``digest`` hashes the parts that make runs
comparable (versions, CPU model, GPUs): not the host name, the time or the git commit, so the
same software on an identical machine gives the same digest.

Where the system's backend runs the trainer elsewhere (a container backend: docker, podman),
the backend probes what the runs see (:meth:`scripts.run.backends.base.Backend.probe`): Python and
package versions are read inside a container of the image (``--image-stamp``), the image's tag
and id are recorded, and the id is part of the digest, so a rebuilt image is a changed
environment. This Python's versions are kept as ``host_python`` and ``host_packages``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import shutil
import socket
import subprocess
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from scripts.core import hashing
from scripts.run import backends

PACKAGES = ("torch", "numpy", "sacrebleu", "mlperf-logging", "snakemake", "pandas")
COMPARABLE = ("python", "packages", "cpu_model", "cpu_count", "gpus", "os")


def _run(argv: Sequence[str], cwd: str | Path | None = None) -> str | None:
    try:
        out = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpus() -> list[str]:
    """GPU names from nvidia-smi, if there is one; an empty list otherwise."""
    if shutil.which("nvidia-smi") is None:
        return []
    out = _run(
        ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"]
    )
    return [line.strip() for line in out.splitlines() if line.strip()] if out else []


def package_versions(names: Sequence[str] = PACKAGES) -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_commit(workflow_dir: Path) -> dict[str, Any]:
    commit = _run(["git", "rev-parse", "HEAD"], cwd=workflow_dir)
    dirty = _run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=workflow_dir)
    return {"commit": commit, "dirty": bool(dirty) if dirty is not None else None}


def capture(
    system: str,
    backend: str,
    workflow_dir: Path,
    image_stamp: Path | None = None,
    image_python: str = "python3",
) -> dict[str, Any]:
    env: dict[str, Any] = {
        "system": system,
        "backend": backend,
        "captured_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "python": platform.python_version(),
        "packages": package_versions(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "gpus": gpus(),
        "os": f"{platform.system()} {platform.release()}",
        "workflow_git": git_commit(workflow_dir),
    }
    comparable = list(COMPARABLE)
    probed = backends.get(backend).probe(image_stamp, image_python)
    if probed is not None:
        env["image"] = probed["image"]
        env["host_python"], env["host_packages"] = env["python"], env["packages"]
        env["python"], env["packages"] = probed["python"], probed["packages"]
        env["image_id"] = probed["image_id"]
        comparable.append("image_id")
    blob = json.dumps({k: env[k] for k in comparable}, sort_keys=True).encode()
    env["digest"] = hashlib.sha256(blob).hexdigest()
    return env


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m scripts environment", description="Capture a system's environment as JSON."
    )
    p.add_argument("--system", required=True)
    p.add_argument("--backend", required=True)
    p.add_argument("--workflow-dir", type=Path, required=True)
    p.add_argument("--output", type=Path, required=True)
    p.add_argument("--image-stamp", type=Path, default=None, help="containers: the image.json")
    p.add_argument("--image-python", default="python3", help="containers: the image's Python")
    args = p.parse_args(argv)
    env = capture(args.system, args.backend, args.workflow_dir, args.image_stamp, args.image_python)
    hashing.write_json(args.output, env)
    print(
        f"{args.system}: python {env['python']}, torch {env['packages']['torch']}, "
        f"{env['cpu_count']} x {env['cpu_model']}, {len(env['gpus'])} GPUs"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
