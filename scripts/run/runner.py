"""Execute one training run and record what happened.

The run's backend (:mod:`scripts.run.backends`, by the spec's ``backend``) says how an attempt
starts and stops: ``local``, the trainer in its own process group here; ``docker`` and
``podman``, the trainer in a container of the system's image, whose output reaches the log
through the engine's CLI as it comes, and which is stopped (SIGTERM, then SIGKILL after the
grace period) and removed, so no container outlives its run; a container left by a runner that
was itself killed (kill -9) has the same deterministic name and is removed before the run
starts again. Whatever the backend, the trainer's combined stdout/stderr streams to the run's
``mlperf.log``, and this runner owns the timeout, the retries and the watch on its parent.

When an attempt is a *crash* (the run is retried, and fails when every attempt crashed), what
is kept of it and what the job's output shows: :mod:`scripts.run.failure`. The run.json of a
finished run: :mod:`scripts.run.run_json`.

If this process loses its parent (the Snakemake that started it was killed), it kills the
trainer's process group and exits, so no orphaned trainer keeps running or writing.

Nothing the trainer starts outlives its attempt (:mod:`scripts.run.containment`): the trainer runs
in a cgroup of its own where the machine allows it (else the runner is its subreaper), and when
it exits, for whatever reason, everything it left (e.g. a ``setsid`` grandchild, out of its
process group) is killed and reaped before the log is checked and sealed. ``run.json`` records
``containment`` (cgroup, subreaper or none) and ``containment_killed``.

Before the first attempt the run gets its GPUs (:mod:`scripts.run.gpus`: disjoint devices for
concurrent local runs, or the cluster job's own) and, for a multi-node system, its launch across
the Slurm allocation (:mod:`scripts.run.cluster`: one ``srun`` per node). Both are recorded in
``run.json``: ``gpu_devices``, ``gpu_assignment``, ``slurm_job_id``, ``slurm_job_nodelist``,
``hosts``, ``nodes``. A container run gets its GPUs the same way, as the engine's flags.

A system's ``power`` source is sampled beside the trainer, scored from its run_start to run_stop
(:mod:`scripts.run.power_sampler`: ``power/node_0.txt``, run.json's ``power_sampling``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from scripts.core import hashing, layout
from scripts.core.config_files import disk_full_problem
from scripts.core.run_records import RunRecord
from scripts.data import pagecache
from scripts.data.folders import run_problem
from scripts.data.tree import tree_problem, unpacked_tree
from scripts.mlperf.log_validity import OwnRun
from scripts.run import backends, cluster, containment, gpus, hostload, power_sampler, seals
from scripts.run.backends.base import GRACE_S, Launch
from scripts.run.failure import RunFailed, crash_report, failure_reason, keep_failed_log, log_facts
from scripts.run.result_json import add_result_arguments, write_result_if_asked
from scripts.run.run_json import host_load_record, run_meta
from scripts.run.spec import RunSpec


def _watch_parent(
    kill: Callable[[float], None],
    parent: int,
    stop: threading.Event,
    on_parent_death: Callable[[], None],
) -> None:
    while not stop.wait(1.0):
        if os.getppid() != parent:
            print("runner: parent process died; killing the trainer", file=sys.stderr, flush=True)
            kill(2.0)
            on_parent_death()
            os._exit(137)


def running_marker(failed_dir: Path, spec: RunSpec) -> Path:
    """logs/running/<benchmark>/<system>/run_<id>.json while a run's trainer is alive."""
    root = failed_dir.parents[3]  # failed_dir is <root>/logs/failed/<benchmark>/<system>
    return layout.running_marker(root, spec.benchmark, spec.system, spec.run_id)


def execute(
    spec: RunSpec,
    log_path: Path,
    meta_path: Path,
    failed_dir: Path,
    dataset_manifest: Path | None,
    environment: Path,
    image_stamp: Path | None = None,
    user: str | None = None,
) -> RunRecord:
    """Run the trainer, again after a crash up to ``spec.retries`` times (each failed attempt's
    log is kept); write ``meta_path`` on success, raise RunFailed when every attempt crashed.

    ``dataset_manifest`` None: dataset: none. ``image_stamp`` (a container backend's image.json)
    and ``user`` (``uid:gid`` in the container; default: the caller's): container backends."""
    try:
        backends.get(spec.backend).check_run(spec, image_stamp, log_path.parent)
    except backends.BackendError as exc:
        raise RunFailed(str(exc)) from None
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
                image_stamp=image_stamp,
                user=user,
                gpu_devices=assignment.devices,
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
    dataset_manifest: Path | None,
    environment: Path,
    *,
    command: str,
    extra_env: dict[str, str],
    placement: dict[str, Any],
    node_logs: Sequence[Path],
    image_stamp: Path | None = None,
    user: str | None = None,
    gpu_devices: Sequence[str] = (),
) -> RunRecord:  # long: the retry loop (launch, attempt, record, seal), each step a call
    tree = unpacked_tree(dataset_manifest) if dataset_manifest is not None else None
    for attempt in range(1, spec.retries + 2):
        # the trainer reads the dataset only as unpacked (scripts/data/tree.py: tree_problem)
        if tree and (problem := tree_problem(tree) or run_problem(spec.container, tree)):
            raise RunFailed(problem)
        launch = backends.get(spec.backend).launch(
            spec,
            command,
            extra_env,
            image_stamp=image_stamp,
            user=user,
            gpu_devices=gpu_devices,
        )
        cache = prepare_cache(spec, tree)  # cold: the dataset is read from disk, as run.sub
        try:
            started, elapsed_s, rc, facts = _attempt(
                spec, log_path, failed_dir, launch, node_logs=node_logs, gpu_devices=gpu_devices
            )
        except RunFailed as exc:
            if attempt > spec.retries:
                raise
            print(f"runner: {exc.report or exc}", flush=True)
            print(f"runner: retrying: attempt {attempt + 1} of {spec.retries + 1}", flush=True)
            continue
        meta = run_meta(
            spec,
            launch,
            meta_path,
            dataset_manifest,
            environment,
            tree,
            placement=placement,
            outcome={"exit_code": rc, "attempts": attempt, **cache, **facts},
            started=started,
            elapsed_s=elapsed_s,
        )
        try:
            meta = seals.add_seal(meta, log_path)  # the log is final: seal it (run/seals.py)
        except seals.SealError as exc:  # e.g. the log changed while it was hashed
            reason = f"its log could not be sealed ({exc})"
            kept = keep_failed_log(log_path, failed_dir, spec, reason)
            report = crash_report(spec, reason, kept)
            raise RunFailed(f"{reason}; log kept as {kept}", report) from None
        meta.write(meta_path)
        print(f"runner: finished in {elapsed_s:.1f} s", flush=True)
        return meta
    raise AssertionError("unreachable")


def prepare_cache(spec: RunSpec, tree: Path | None) -> dict[str, Any]:
    """The page cache before an attempt, as the spec asks (scripts/data/pagecache.py), and the
    dataset's residency just before the trainer starts: run.json's ``cache``,
    ``drop_caches`` and ``dataset_residency`` (of no files without a dataset: ``tree`` None)."""
    files = pagecache.files_of(tree) if tree is not None else []
    try:
        if spec.drop_caches:
            pagecache.drop_caches()
    except pagecache.PageCacheError as exc:
        raise RunFailed(str(exc)) from None
    if spec.cache == "cold":
        pagecache.evict(files)
    residency = pagecache.residency(files)
    return {
        "cache": spec.cache,
        "drop_caches": spec.drop_caches,
        "dataset_residency": residency.to_meta(),
    }


def _attempt(
    spec: RunSpec,
    log_path: Path,
    failed_dir: Path,
    launch: Launch,
    *,
    node_logs: Sequence[Path] = (),
    gpu_devices: Sequence[str] = (),
) -> tuple[float, float, int, dict[str, Any]]:
    """One attempt: (start time, seconds, exit status, host load, power) of a run that ended with
    run_stop; raises RunFailed (its log kept) on a crash, a timeout or a log without run_stop.

    ``launch`` (the backend's :meth:`~scripts.run.backends.base.Backend.launch`) is what runs:
    e.g. the spec's command here, a multi-node launch script (GPUs in its env), a docker run."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    _announce(spec, launch)
    marker = running_marker(failed_dir, spec)  # the power sampler sees the runs beside it
    with (
        containment.hold(log_path.parent) as held,
        power_sampler.RunPower.of(spec, log_path, gpu_devices, marker) as power,  # stops on exit
    ):
        started, t0 = time.time(), time.monotonic()
        meter = hostload.HostMeter()  # two /proc reads, nothing while it trains
        with log_path.open("wb") as log:
            proc = held.popen(
                launch.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=launch.env,
                start_new_session=True,  # its own process group: we can kill the whole tree
            )

        def kill(grace_s: float) -> None:
            launch.kill(proc, grace_s)
            held.kill_all()  # and what left the group (setsid)
            held.close()  # the runner may exit now (its parent died, a signal)

        rc, timed_out = _wait(
            spec, launch, proc, held, kill, failed_dir, log_path, node_logs, power.trainer_ended
        )
        elapsed = time.monotonic() - power.stop_s - t0  # the sampler's stop left out
    host = host_load_record(meter.finish(), launch)
    _raise_if_failed(spec, launch, log_path, failed_dir, node_logs, rc, timed_out, elapsed)
    held_by = {"containment": held.mechanism, "containment_killed": len(held.killed)}
    return started, elapsed, rc, {"host_load": host, **held_by, **power.facts}


def _wait(
    spec: RunSpec,
    launch: Launch,
    proc: subprocess.Popen[bytes],
    held: containment.Held,
    kill: Callable[[float], None],
    failed_dir: Path,
    log_path: Path,
    node_logs: Sequence[Path],
    trainer_ended: Callable[[], None] = lambda: None,
) -> tuple[int, bool]:
    """Wait for the trainer (killed at the timeout), guarded (:func:`_guard`); then call
    ``trainer_ended`` (the power sampler stops), stop the backend's and kill all the trainer
    left (:mod:`scripts.run.containment`): the log is final when checked. (rc, timed out)."""
    running = _write_running_marker(failed_dir, spec, proc.pid)
    stop = _guard(
        kill,
        running,
        lambda signum: keep_failed_log(
            log_path, failed_dir, spec, f"interrupted by signal {signum}", node_logs
        ),
    )
    timed_out = False
    try:
        rc = proc.wait(timeout=spec.timeout_s)
    except subprocess.TimeoutExpired:
        kill(GRACE_S)
        rc = proc.wait()
        timed_out = True
    finally:
        trainer_ended()  # before the sweep below: the sampler's own commands are no strays
        stop.set()
        running.unlink(missing_ok=True)
        launch.cleanup()
        if left := held.kill_all():
            print(
                f"runner: the trainer left {left} process{'es' if left != 1 else ''} running; "
                f"killed before its log was checked and sealed (containment: {held.mechanism})",
                flush=True,
            )
    return rc, timed_out


def _raise_if_failed(
    spec: RunSpec,
    launch: Launch,
    log_path: Path,
    failed_dir: Path,
    node_logs: Sequence[Path],
    rc: int,
    timed_out: bool,
    elapsed_s: float | None = None,
) -> None:
    """Raise RunFailed, the log kept, when the attempt failed (:func:`failure_reason`; a full
    disk is named first, as the likely cause). ``elapsed_s``: the runner's wall time of the
    trainer, which the log's time to train cannot exceed."""
    clean_exit = rc == 0 and not timed_out  # only then does the log decide
    own = OwnRun(spec.benchmark, tuple(spec.mlperf_names), elapsed_s, spec.max_log_bytes)
    invalid_log, fail_match = (
        log_facts(log_path, spec.fail_patterns, own) if clean_exit else ("", None)
    )
    reason = failure_reason(
        rc,
        timed_out=timed_out,
        timeout_s=spec.timeout_s,
        container=launch.engine is not None,
        engine=launch.engine or "",
        start_failures=launch.start_failures,
        invalid_log=invalid_log,
        fail_match=fail_match,
    )
    if reason and (full := disk_full_problem(log_path.parent)):
        reason = f"{full} while writing {log_path}; {reason}"
    if reason:
        kept = keep_failed_log(log_path, failed_dir, spec, reason, node_logs)
        raise RunFailed(f"{reason}; log kept as {kept}", crash_report(spec, reason, kept))


def _guard(
    kill: Callable[[float], None], running: Path, keep_log: Callable[[int], Any]
) -> threading.Event:
    """Kill the trainer when the runner's parent (snakemake) dies, or when the runner gets
    SIGTERM or SIGINT (then its log is kept by ``keep_log(signum)`` and the runner exits
    128 + signum); the running marker goes either way. Set the returned event to end the
    watch of the parent."""
    stop = threading.Event()
    watcher = threading.Thread(
        target=_watch_parent,
        args=(kill, os.getppid(), stop, lambda: running.unlink(missing_ok=True)),
        daemon=True,
    )
    watcher.start()

    def forward(signum: int, _frame: Any) -> None:
        kill(5.0)
        running.unlink(missing_ok=True)
        keep_log(signum)
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    return stop


def _announce(spec: RunSpec, launch: Launch) -> None:
    """The runner's first lines in the job log: the run, its command, how it is launched."""
    print(f"runner: {spec.benchmark}/{spec.system} run {spec.run} seed {spec.seed}", flush=True)
    print(f"runner: command: {spec.command}", flush=True)
    if launch.shown_as is not None:
        print(f"runner: {launch.shown_as}", flush=True)
    elif launch.argv[-1] != spec.command:
        print(f"runner: launched as:\n{launch.argv[-1]}", flush=True)
    if launch.added_env:
        print(f"runner: environment: {launch.added_env}", flush=True)


def _write_running_marker(failed_dir: Path, spec: RunSpec, trainer_pid: int) -> Path:
    """The marker of a run in progress (scripts/campaign/status.py reads it while the run goes
    on)."""
    running = running_marker(failed_dir, spec)
    hashing.write_atomic(
        running,
        json.dumps(
            {
                "pid": os.getpid(),
                "trainer_pid": trainer_pid,
                "started_utc": dt.datetime.now(dt.UTC).isoformat(),
                "host": socket.gethostname(),
                "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
            }
        ),
    )
    return running


def print_first(text: str) -> None:
    """Print ``text`` (and a newline) at the top of the job's log, so the log (and the console
    that shows it, with show-failed-logs) starts with it: when stdout and stderr are one regular
    file (the rule's ``> {log} 2>&1``), what the runner wrote before moves below it. Anywhere
    else (a terminal, a pipe) ``text`` is printed to stderr."""
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        out, err = os.fstat(1), os.fstat(2)
        one_file = stat.S_ISREG(out.st_mode) and (out.st_dev, out.st_ino) == (
            err.st_dev,
            err.st_ino,
        )
        if one_file and out.st_size <= 1 << 20:
            with open("/proc/self/fd/1", "rb") as fh:  # the same file, opened for reading
                before = fh.read()
            data = (text + "\n").encode()
            if before.strip():
                data += b"\nrunner: its output before that:\n" + before
            # longer than what it replaces: writing from byte 0 leaves nothing of the old order
            os.lseek(1, 0, os.SEEK_SET)
            view = memoryview(data)
            while view:
                view = view[os.write(1, view) :]
            return
    except OSError:
        pass
    print(text, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m scripts train", description="Run one training run of the workflow."
    )
    p.add_argument("--spec", required=True, help="the run specification as JSON")
    p.add_argument("--log", type=Path, required=True, help="the run's mlperf.log to write")
    p.add_argument("--meta", type=Path, required=True, help="the run's run.json to write")
    p.add_argument("--failed-dir", type=Path, required=True, help="where failed logs are kept")
    p.add_argument("--dataset-manifest", type=Path, default=None)  # none: dataset: none
    p.add_argument("--environment", type=Path, required=True)
    p.add_argument(
        "--image-stamp", type=Path, default=None, help="container backends: the image.json"
    )
    add_result_arguments(p)
    args = p.parse_args(argv)
    spec = RunSpec.from_json(args.spec)
    try:
        execute(
            spec,
            args.log,
            args.meta,
            args.failed_dir,
            args.dataset_manifest,
            args.environment,
            image_stamp=args.image_stamp,
        )
    except (RunFailed, seals.SealError) as exc:
        # the reason, the kept log and its tail first, whatever the runner printed before
        report = getattr(exc, "report", None)
        print_first(
            f"error: {report}"
            if report
            else f"error: run {spec.run} of {spec.benchmark}/{spec.system} failed: {exc}"
        )
        return 1
    # the result in the same job: a run is one job, not a training job and a parse job
    try:
        write_result_if_asked(args, args.log, args.meta)
    except Exception as exc:  # noqa: BLE001 (the job fails; its log must not be lost with it)
        reason = f"its result could not be parsed ({type(exc).__name__}: {exc})"
        kept = keep_failed_log(args.log, args.failed_dir, spec, reason)
        print_first(f"error: {crash_report(spec, reason, kept)}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
