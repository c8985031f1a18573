"""Capture the software and hardware environment of a system.

The JSON records Python, torch and key package versions, the CPU model and count, the host, any
GPUs, the OS, and the workflow's git commit. ``digest`` hashes the parts that make runs
comparable (versions, CPU model, GPUs): not the host name, the time or the git commit, so the
same software on an identical machine gives the same digest.

With the ``docker`` backend the software is the image's: Python and package versions are read
inside a container of the image (``--image-stamp``), the image's tag and id are recorded, and
the id is part of the digest, so a rebuilt image is a changed environment.
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

from scripts import formats, hashing

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


# Run inside an image by any Python from 3.6 on (NVIDIA's v0.6 images have 3.6): versions of
# the packages named in argv, as JSON.
_IMAGE_PROBE = r"""
import json, platform, sys
try:
    from importlib import metadata
    def version(name):
        try:
            return metadata.version(name)
        except Exception:
            return None
except ImportError:
    import pkg_resources
    def version(name):
        try:
            return pkg_resources.get_distribution(name).version
        except Exception:
            return None
print(json.dumps({"python": platform.python_version(),
                  "packages": {n: version(n) for n in sys.argv[1:]}}))
"""
IMAGE_PACKAGES = ("torch", "numpy", "sacrebleu", "mlperf-logging", "mlperf-compliance", "apex")


def image_software(image_id: str, python: str) -> dict[str, Any]:
    """Python and package versions inside ``image_id`` (a throw-away container, no network)."""
    argv = ["docker", "run", "--rm", "--network", "none", "--entrypoint", python, image_id]
    argv += ["-c", _IMAGE_PROBE, *IMAGE_PACKAGES]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise RuntimeError(f"cannot read the image's versions: {out.stderr.strip()[-500:]}")
    data: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return data


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
    if image_stamp is not None:
        stamp = formats.read_json(image_stamp, "image.json")
        env["image"] = {k: stamp.get(k) for k in ("tag", "image_id", "inputs_sha256")}
        software = image_software(stamp["image_id"], image_python)
        env["host_python"], env["host_packages"] = env["python"], env["packages"]
        env["python"], env["packages"] = software["python"], software["packages"]
        env["image_id"] = stamp["image_id"]
        comparable.append("image_id")
    blob = json.dumps({k: env[k] for k in comparable}, sort_keys=True).encode()
    env["digest"] = hashlib.sha256(blob).hexdigest()
    return env


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Capture a system's environment as JSON.")
    p.add_argument("--system", required=True)
    p.add_argument("--backend", required=True)
    p.add_argument("--workflow-dir", type=Path, required=True)
    p.add_argument("--output", type=Path, required=True)
    p.add_argument("--image-stamp", type=Path, default=None, help="docker: the image.json")
    p.add_argument("--image-python", default="python3", help="docker: the image's Python")
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
