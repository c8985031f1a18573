"""A fast, controllable stand-in for a trainer, used only by tests.

It writes a valid MLPerf log (``:::MLLOG`` lines through mlperf-logging) to stdout, like a real
trainer, in a fraction of a second. Faults are read at start from ``faults.json`` in the working
directory (so a test can change them between invocations without changing the configured
command): a mapping of fault name to the list of run numbers it applies to:

- ``no_converge``: the run ends with run_stop status aborted (a result, not a crash);
- ``crash``: exit status 3 after the first epoch;
- ``crash_node1``: the same, only on node 1 of a multi-node run (``MLPERF_NODE_RANK=1``);
- ``signal``: the trainer kills itself with SIGKILL after the first epoch;
- ``hang``: sleeps forever after the first epoch (for timeouts and kill -9 of snakemake);
- ``garbage``: prints malformed and truncated MLPerf lines between valid ones;
- ``truncate``: exits 0 in the middle of the log, without run_stop;
- ``long_line``: prints a line of 100,000 characters after the first epoch (e.g. a tensor dump).
- ``clock_back``: the clock steps back 59 s before the end: run_stop is logged before run_start
  (exit 0; the log is not a valid MLPerf log);
- ``dup_run_start``: a second run_start, 378 s after the first, before the first epoch (exit 0);
- ``deep_json``: a line with JSON nested 100,000 deep after the first epoch (a malformed line:
  the run is still a result);
- ``infinity``: an eval_accuracy line whose time_ms is ``Infinity`` (a log problem: exit 0,
  but the run is a crash).
- ``gate``: after the first epoch, touches ``<gate_file>.waiting.<N>`` (its log is flushed) and
  waits until the file ``gate_file`` (a string) exists, then goes on: a test checks what it
  needs while the run is alive, then lets the campaign finish. ``{run}`` in ``gate_file`` is
  the run's number (a gate per run).
- ``edit_dataset``: appends a line to every file of ``data/fake/dataset`` (the fake campaign's
  unpacked dataset, relative to the working directory), as a trainer that writes into its input.
- ``stray``: at its start, starts a grandchild in a session of its own (``setsid``: out of the
  trainer's process group) that keeps writing to the inherited stdout (the log) and forks a
  ``sleep`` every 10 ms, records its pid in ``<stray_dir>/run_<N>.pid`` (``stray_dir``: a
  string, default ``strays``), waits until it runs, and then goes on as a trainer: exit 0 with
  the grandchild still running.
- ``other_benchmark``: logs ``submission_benchmark`` ``bert``, not ``fake`` (exit 0).
- ``future_stop``: run_stop is logged at 2100-01-01 (a time to train of years; exit 0).

``marker_dir`` (a string) makes it touch ``<marker_dir>/run_<N>.<pid>`` when it starts, so a test
can count which runs were executed. ``env_dir`` (a string) makes it record, in
``<env_dir>/run_<N>.<pid>.json``, the environment it was given (GPUs, Slurm job, multi-node rank)
with its start and end times. ``epoch_s`` (a number) sets the seconds per epoch.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from mlperf_logging import mllog
from mlperf_logging.mllog import constants as C


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--run", type=int, required=True)
    p.add_argument("--target", type=float, default=0.9)
    p.add_argument("--epoch-s", type=float, default=0.01, help="seconds per epoch")
    args = p.parse_args(argv)
    faults_file = Path("faults.json")
    faults = json.loads(faults_file.read_text()) if faults_file.exists() else {}

    def has(fault: str) -> bool:
        return args.run in faults.get(fault, [])

    if faults.get("marker_dir"):
        os.makedirs(faults["marker_dir"], exist_ok=True)
        Path(faults["marker_dir"], f"run_{args.run}.{os.getpid()}").touch()
    record = record_env(faults.get("env_dir"), args.run)
    if has("stray"):
        start_stray(Path(faults.get("stray_dir", "strays")), args.run)
    if has("edit_dataset"):
        for path in sorted(Path("data/fake/dataset").rglob("*")):
            if path.is_file() and not path.name.startswith("."):
                with path.open("a") as fh:
                    fh.write(f"written by run {args.run}\n")
    epoch_s = float(faults.get("epoch_s", args.epoch_s))
    log = mllog.get_mllogger()
    mllog.config(default_stack_offset=1)
    log.event(key=C.SUBMISSION_BENCHMARK, value="bert" if has("other_benchmark") else "fake")
    log.event(key=C.SEED, value=args.seed)
    start_ms = int(time.time() * 1000)
    log.start(key=C.RUN_START, time_ms=start_ms)
    if has("dup_run_start"):
        log.start(key=C.RUN_START, time_ms=start_ms + 378_000)
    epochs = 2 + args.seed % 3
    for epoch in range(1, epochs + 1):
        log.start(key=C.EPOCH_START, metadata={C.EPOCH_NUM: epoch})
        time.sleep(epoch_s)
        if has("garbage"):
            print(':::MLLOG {"key": "eval_accuracy", "value": 0.', flush=True)
            print(":::MLL 12.5 broken: {not json", flush=True)
            print("\x00\x01 binary junk", flush=True)
        log.end(key=C.EPOCH_STOP, metadata={C.EPOCH_NUM: epoch})
        if has("long_line") and epoch == 1:
            print("tensor(" + "0.1234, " * 12_500 + ")", flush=True)
        if has("crash") or (has("crash_node1") and os.environ.get("MLPERF_NODE_RANK") == "1"):
            print("fake trainer: crashing on purpose", file=sys.stderr, flush=True)
            return 3
        if has("signal"):
            os.kill(os.getpid(), signal.SIGKILL)
        if has("gate") and epoch == 1:
            wait_for_gate(Path(str(faults["gate_file"]).replace("{run}", str(args.run))), args.run)
        if has("hang"):
            while True:
                time.sleep(3600)
        if has("truncate"):
            sys.stdout.write(':::MLLOG {"namespace": "", "time_ms": 1')
            return 0
        if has("deep_json") and epoch == 1:
            print(":::MLLOG " + "[" * 100_000 + "]" * 100_000, flush=True)
        if has("infinity") and epoch == 1:
            print(
                ':::MLLOG {"namespace": "", "time_ms": Infinity, "event_type": "POINT_IN_TIME", '
                '"key": "eval_accuracy", "value": Infinity, "metadata": {"epoch_num": 1}}',
                flush=True,
            )
        quality = args.target * (epoch / epochs if not has("no_converge") else 0.5)
        log.event(key=C.EVAL_ACCURACY, value=round(quality, 4), metadata={C.EPOCH_NUM: epoch})
    status = C.ABORTED if has("no_converge") else C.SUCCESS
    stop_ms = start_ms - 59_000 if has("clock_back") else None  # None: now
    stop_ms = 4_102_444_800_000 if has("future_stop") else stop_ms  # 2100-01-01
    log.end(key=C.RUN_STOP, metadata={C.STATUS: status}, time_ms=stop_ms)
    record(end=time.time())
    return 0


def start_stray(folder: Path, run: int) -> None:
    """A grandchild that leaves the trainer's process group and session and keeps writing to
    the log; returns once it has written (its pid is in ``<folder>/run_<run>.pid``)."""
    folder.mkdir(parents=True, exist_ok=True)
    pidfile = folder / f"run_{run}.pid"
    script = (  # it has written once when its pid file appears
        'echo stray: still writing; echo $$ > "$0.tmp" && mv "$0.tmp" "$0"; '
        "while :; do echo stray: still writing; sleep 0.01; done"
    )
    subprocess.Popen(["/bin/sh", "-c", script, str(pidfile)], start_new_session=True)
    while not pidfile.exists():
        time.sleep(0.01)


def wait_for_gate(gate: Path, run: int) -> None:
    sys.stdout.flush()
    Path(f"{gate}.waiting.{run}").touch()
    while not gate.exists():
        time.sleep(0.05)


RECORDED_ENV = (
    "CUDA_VISIBLE_DEVICES",
    "SLURM_JOB_ID",
    "SLURM_JOB_NODELIST",
    "SLURM_STEP_ID",
    "SLURMD_NODENAME",
    "MLPERF_NNODES",
    "MLPERF_NODE_RANK",
    "MLPERF_MASTER_ADDR",
    "MLPERF_MASTER_PORT",
    "MULTI_NODE",
    "OMP_NUM_THREADS",
)


def record_env(env_dir: str | None, run: int):
    """Write what this process was given to ``<env_dir>/run_<run>.<pid>.json`` now, and return
    a function that adds fields (e.g. the end time) to it."""
    data = {
        "run": run,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "cwd": os.getcwd(),
        "start": time.time(),
        "env": {k: os.environ.get(k) for k in RECORDED_ENV},
    }
    path = Path(env_dir, f"run_{run}.{os.getpid()}.json") if env_dir else None

    def update(**fields: object) -> None:
        data.update(fields)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(data, indent=1))

    update()
    return update


if __name__ == "__main__":
    raise SystemExit(main())
