"""Execute one training run (the ``local`` backend) and record what happened.

The trainer runs in its own process group with its combined stdout/stderr streamed to the
run's ``mlperf.log``. The run is a *crash* (exit status non-zero, so Snakemake removes the
outputs and the next invocation redoes it) when the trainer exits non-zero, dies from a signal,
exceeds the timeout, or ends without a ``run_stop`` event. A copy of the log of every failed
attempt is kept under ``logs/failed/`` with the attempt's timestamp; it is never overwritten.
A run that ends with ``run_stop`` status ``aborted`` (did not converge) is a result, not a crash.

If this process loses its parent (the Snakemake that started it was killed), it kills the
trainer's process group and exits, so no orphaned trainer keeps running or writing.

Before the first attempt the run gets its GPUs (:mod:`scripts.gpus`: disjoint devices for
concurrent local runs, or the cluster job's own) and, for a multi-node system, its launch across
the Slurm allocation (:mod:`scripts.cluster`: one ``srun`` per node). Both are recorded in
``run.json``: ``gpu_devices``, ``gpu_assignment``, ``slurm_job_id``, ``slurm_job_nodelist``,
``hosts``, ``nodes``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from scripts import cluster, gpus
from scripts.config import RunSpec, fingerprint
from scripts.mlperf_log import parse_file

GRACE_S = 10.0  # between SIGTERM and SIGKILL of the trainer's process group


class RunFailed(RuntimeError):
    pass


def _kill_group(proc: subprocess.Popen[bytes], grace_s: float = GRACE_S) -> None:
    """SIGTERM the trainer's process group, then SIGKILL whatever is left after ``grace_s``."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait_s)
            # the leader is gone; make sure no member of its group survives
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def _watch_parent(
    proc: subprocess.Popen[bytes],
    parent: int,
    stop: threading.Event,
    on_parent_death: Callable[[], None],
) -> None:
    while not stop.wait(1.0):
        if os.getppid() != parent:
            print("runner: parent process died; killing the trainer", file=sys.stderr, flush=True)
            _kill_group(proc, grace_s=2.0)
            on_parent_death()
            os._exit(137)


def running_marker(failed_dir: Path, spec: RunSpec) -> Path:
    """logs/running/<benchmark>/<system>/run_NN.json while a run's trainer is alive."""
    name = f"run_{spec.run:02d}.json"
    return failed_dir.parents[2] / "running" / spec.benchmark / spec.system / name


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def keep_failed_log(
    log: Path, failed_dir: Path, spec: RunSpec, reason: str, node_logs: Sequence[Path] = ()
) -> Path:
    """Copy the log of a failed attempt to ``failed_dir`` under a never-reused name (with the
    output of the other nodes of a multi-node run appended)."""
    failed_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    attempt = 1 + sum(1 for _ in failed_dir.glob(f"run_{spec.run:02d}.attempt*"))
    dest = failed_dir / f"run_{spec.run:02d}.attempt{attempt}.{stamp}.log"
    if log.exists():
        shutil.copyfile(log, dest)
    with dest.open("a") as fh:
        for node_log in node_logs:
            if node_log.exists():
                fh.write(f"\n# workflow: output of {node_log.name}:\n")
                fh.write(node_log.read_text(errors="replace"))
        fh.write(f"\n# workflow: attempt failed: {reason}\n")
    return dest


def execute(
    spec: RunSpec,
    log_path: Path,
    meta_path: Path,
    failed_dir: Path,
    dataset_manifest: Path,
    environment: Path,
) -> dict[str, Any]:
    """Run the trainer, again after a crash up to ``spec.retries`` times (each failed attempt's
    log is kept); write ``meta_path`` on success, raise RunFailed when every attempt crashed."""
    try:
        command, placement = cluster.launch_command(
            spec.command,
            spec.nodes,
            log_path.parent,
            os.environ,
            cpus_per_task=spec.cpus_per_node,
            gpus_per_node=spec.gpus,
        )
    except cluster.ClusterError as exc:
        raise RunFailed(str(exc)) from None
    node_logs = [cluster.node_log(log_path.parent, r) for r in range(1, spec.nodes)]
    try:
        with assign_gpus(spec) as assignment:
            return _attempts(
                spec,
                log_path,
                meta_path,
                failed_dir,
                dataset_manifest,
                environment,
                command=command,
                extra_env=gpus.cuda_env(assignment),
                placement={**placement, **assignment.to_meta(), "nodes": spec.nodes},
                node_logs=node_logs,
            )
    except gpus.GpuError as exc:
        raise RunFailed(str(exc)) from None


def assign_gpus(spec: RunSpec) -> contextlib.AbstractContextManager[gpus.Assignment]:
    """The run's GPUs for all its attempts. A multi-node run's GPUs are given to each node's
    srun step by Slurm (--gres), not to the runner on the first node."""
    if spec.nodes > 1:
        return contextlib.nullcontext(gpus.Assignment((), "per-node-step" if spec.gpus else "none"))
    parent = os.getppid()
    return gpus.assign(
        spec.gpus,
        mode=spec.gpu_assign,
        devices=spec.gpu_devices,
        lock_dir=Path(spec.gpu_lock_dir),
        stop_waiting=lambda: "its snakemake is gone" if os.getppid() != parent else None,
        log=lambda msg: print(f"runner: {msg}", flush=True),
    )


def _attempts(
    spec: RunSpec,
    log_path: Path,
    meta_path: Path,
    failed_dir: Path,
    dataset_manifest: Path,
    environment: Path,
    *,
    command: str,
    extra_env: dict[str, str],
    placement: dict[str, Any],
    node_logs: Sequence[Path],
) -> dict[str, Any]:
    for attempt in range(1, spec.retries + 2):
        try:
            started, elapsed_s, rc = _attempt(
                spec,
                log_path,
                failed_dir,
                command=command,
                extra_env=extra_env,
                node_logs=node_logs,
            )
        except RunFailed as exc:
            if attempt > spec.retries:
                raise
            print(f"runner: attempt {attempt} failed ({exc}); retrying", flush=True)
            continue
        meta = {
            "benchmark": spec.benchmark,
            "system": spec.system,
            "run": spec.run,
            "seed": spec.seed,
            "scale": spec.scale,
            "command": spec.command,
            "timeout_s": spec.timeout_s,
            "threads": spec.threads,
            "host": socket.gethostname(),
            "python": platform.python_version(),
            "exit_code": rc,
            "attempts": attempt,
            "started_utc": dt.datetime.fromtimestamp(started, dt.UTC).isoformat(),
            "wall_s": round(elapsed_s, 3),
            "config_fingerprint": spec.config_fingerprint,
            "comparability": spec.comparability,
            "dataset_manifest_sha256": file_digest(dataset_manifest),
            "environment_digest": json.loads(environment.read_text()).get("digest", ""),
            **placement,
        }
        meta["fingerprint"] = fingerprint(
            {
                k: meta[k]
                for k in ("config_fingerprint", "dataset_manifest_sha256", "environment_digest")
            }
        )
        tmp = meta_path.with_name(meta_path.name + ".tmp")
        tmp.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, meta_path)
        print(f"runner: finished in {elapsed_s:.1f} s", flush=True)
        return meta
    raise AssertionError("unreachable")


def _attempt(
    spec: RunSpec,
    log_path: Path,
    failed_dir: Path,
    *,
    command: str | None = None,
    extra_env: dict[str, str] | None = None,
    node_logs: Sequence[Path] = (),
) -> tuple[float, float, int]:
    """One attempt: (start time, seconds, exit status) of a run that ended with run_stop;
    raises RunFailed (its log kept) on a crash, a timeout or a log without run_stop.

    ``command`` (default: the spec's) is what runs, e.g. a multi-node launch script;
    ``extra_env`` (e.g. the assigned GPUs) is added to the trainer's environment."""
    command = spec.command if command is None else command
    env = dict(os.environ)
    env.update(spec.env)
    env.update(extra_env or {})
    env.setdefault("OMP_NUM_THREADS", str(spec.threads))
    env["MLPERF_WORKFLOW_SEED"] = str(spec.seed)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.time()
    t0 = time.monotonic()
    print(f"runner: {spec.benchmark}/{spec.system} run {spec.run} seed {spec.seed}", flush=True)
    print(f"runner: command: {spec.command}", flush=True)
    if command != spec.command:
        print(f"runner: launched as:\n{command}", flush=True)
    if extra_env:
        print(f"runner: environment: {extra_env}", flush=True)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            ["/bin/bash", "-c", command],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # its own process group: we can kill the whole tree
        )
    running = running_marker(failed_dir, spec)
    running.parent.mkdir(parents=True, exist_ok=True)
    running.write_text(
        json.dumps(
            {
                "pid": os.getpid(),
                "trainer_pid": proc.pid,
                "started_utc": dt.datetime.now(dt.UTC).isoformat(),
                "host": socket.gethostname(),
                "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
            }
        )
    )
    stop = threading.Event()
    watcher = threading.Thread(
        target=_watch_parent,
        args=(proc, os.getppid(), stop, lambda: running.unlink(missing_ok=True)),
        daemon=True,
    )
    watcher.start()

    def forward(signum: int, _frame: Any) -> None:
        _kill_group(proc, grace_s=5.0)
        running.unlink(missing_ok=True)
        keep_failed_log(log_path, failed_dir, spec, f"interrupted by signal {signum}", node_logs)
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    try:
        rc = proc.wait(timeout=spec.timeout_s)
        reason = ""
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        rc = proc.wait()
        reason = f"timed out after {spec.timeout_s} s; process group killed"
    finally:
        stop.set()
        running.unlink(missing_ok=True)
    elapsed = time.monotonic() - t0
    if not reason and rc != 0:
        reason = f"trainer killed by signal {-rc}" if rc < 0 else f"trainer exited with status {rc}"
    if not reason:
        parsed = parse_file(log_path)
        if parsed.last("run_stop") is None:
            reason = "trainer exited 0 but its log has no run_stop event"
        elif parsed.first("run_start") is None:
            reason = "trainer exited 0 but its log has no run_start event"
    if reason:
        kept = keep_failed_log(log_path, failed_dir, spec, reason, node_logs)
        raise RunFailed(f"{reason}; log kept as {kept}")
    return started, elapsed, rc


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Run one training run of the workflow.")
    p.add_argument("--spec", required=True, help="the run specification as JSON")
    p.add_argument("--log", type=Path, required=True, help="the run's mlperf.log to write")
    p.add_argument("--meta", type=Path, required=True, help="the run's run.json to write")
    p.add_argument("--failed-dir", type=Path, required=True, help="where failed logs are kept")
    p.add_argument("--dataset-manifest", type=Path, required=True)
    p.add_argument("--environment", type=Path, required=True)
    args = p.parse_args(argv)
    spec = RunSpec.from_json(args.spec)
    try:
        execute(spec, args.log, args.meta, args.failed_dir, args.dataset_manifest, args.environment)
    except RunFailed as exc:
        print(
            f"error: run {spec.run} of {spec.benchmark}/{spec.system} failed: {exc}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
