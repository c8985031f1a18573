#!/usr/bin/env python3
"""One task per GPU without Slurm: start N copies of a command with the environment ``srun
--ntasks-per-node=N`` gives each task, and supervise them as one job.

NVIDIA's MLPerf Training v5.x ``run.sub`` starts its benchmark with ``srun -l
--ntasks-per-node=${DGXNGPU} ... slurm2pytorch ./run_and_time.sh``: ``run_and_time.sh`` runs
once per GPU and reads the task's Slurm variables, and mlperf-common's ``slurm2pytorch``
(client/slurm2pytorch) turns them into PyTorch's rendezvous variables before it ``exec``s the
script. In a container without Slurm this script plays both parts::

    python3 rank_launcher.py --ntasks 8 [--node-id 0 --nnodes 1 --master-addr 127.0.0.1
        --master-port 29500 --job-id ID --nodelist NAMES --rank-log-dir DIR --grace-s 10]
        -- ./run_and_time.sh

It is bind-mounted read-only into the container and run by the image's own Python, so it uses
the standard library only, imports nothing of the workflow, and runs on Python 3.6 and later.

**The environment of task i** (its global rank is ``node_id * ntasks + i``). Of what srun sets
for a task, the variables that something in the task reads:

- ``SLURM_PROCID`` (global rank), ``SLURM_LOCALID`` (i), ``SLURM_NODEID`` (node id),
  ``SLURM_NTASKS`` (ntasks * nnodes): read by RetinaNet's ``run_and_time.sh`` (v5.1,
  NVIDIA/benchmarks/retinanet/implementations/tyche_ngpu8_ngc25.04_pytorch: ``SLURM_LOCALID``
  for its local rank, ``SLURM_NODEID`` for its node rank, all four in its first line), by
  ``slurm2pytorch`` (RANK, LOCAL_RANK, WORLD_SIZE from PROCID, LOCALID, NTASKS) and by
  Lightning's ``SLURMEnvironment``, which NeMo's trainer (Llama 2 70B LoRA) uses when
  ``SLURM_NTASKS`` is set (global_rank, local_rank, node_rank, world_size);
- ``SLURM_JOB_ID`` and ``SLURM_JOBID`` (only with ``--job-id``): both ``run_and_time.sh``
  name their profiler outputs after ``SLURM_JOBID``; RetinaNet's prints ``SLURM_JOB_ID``;
- ``SLURM_NTASKS_PER_NODE`` (ntasks): ``slurm2pytorch`` sets ``OMP_NUM_THREADS=1`` when it is
  above 1, mlperf-common's ``dist_env.py`` (the same translation in Python) takes
  LOCAL_WORLD_SIZE from it, and Lightning refuses ``SLURM_NTASKS > 1`` without it;
  ``SLURM_TASKS_PER_NODE`` (``8``, or ``8(x2)`` on two nodes): ``dist_env.py``'s fallback;
- ``SLURM_NNODES`` and ``SLURM_JOB_NUM_NODES`` (nnodes): ``dist_env.py`` checks
  ``SLURM_NNODES * SLURM_NTASKS_PER_NODE == SLURM_NTASKS``;
- ``SLURM_STEP_NUM_TASKS`` and ``SLURM_STEP_NUM_NODES``: enroot's PyTorch hook
  (conf/hooks/extra/50-slurm-pytorch.sh) sets ``OMP_NUM_THREADS=1`` when tasks > nodes;
- ``SLURM_NODELIST``, ``SLURM_JOB_NODELIST``, ``SLURM_STEP_NODELIST`` (``--nodelist``, by
  default the master address): Lightning's ``SLURMEnvironment.main_address`` *overwrites*
  MASTER_ADDR with the first name of ``SLURM_NODELIST`` (127.0.0.1 when it is unset), and
  ``dist_env.py`` takes its address from the first of the three.

Not set, as nothing in the task reads them: ``SLURM_STEP_ID``, ``SLURM_GTIDS``,
``SLURM_JOB_NAME`` (Lightning reads it only to skip Slurm for a job named ``bash`` or
``interactive``), ``SLURMD_NODENAME``. Other variables of the launcher's environment pass
through unchanged; those above are always replaced, so an inherited value cannot give every
rank the same one.

Then what ``slurm2pytorch`` derives from them: ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``,
``LOCAL_WORLD_SIZE`` (ntasks, as ``dist_env.py``: ``LOCAL_WORLD_SIZE`` from
``SLURM_NTASKS_PER_NODE``), ``MASTER_ADDR``, ``MASTER_PORT`` (default as ``slurm2pytorch``:
``$MASTER_ADDR``, else ``$MLPERF_SLURM_FIRSTNODE``, else 127.0.0.1; ``$MASTER_PORT``, else
29500), and ``OMP_NUM_THREADS=1`` when ntasks > 1 and the environment has none (as
torch.distributed.run does). Llama's ``run_and_time.sh`` requires the six PyTorch names and
runs ``python -u train.py`` (not ``torchrun``) only when ``LOCAL_WORLD_SIZE > 1``.

**Output.** The first task of this launcher (global rank 0 on node 0, whose ``:::MLLOG`` lines
make the run's mlperf.log) writes to the launcher's stdout and stderr unchanged; task ``r``'s
stdout and stderr go to ``DIR/rank_<r>.log`` (``r`` the global rank, so launchers of several
nodes can share DIR), or to /dev/null without ``--rank-log-dir``. Only the first task reads
the launcher's stdin.

**Supervision**, as ``scripts/run/cluster.py``'s ``supervise_nodes`` does for nodes: every
task starts at once in a session and process group of its own; ``os.wait`` collects each
task's status exactly once, whatever order or instant they exit in; the first task to exit
non-zero stops the others: SIGTERM to every task's process group (a task's children too), then
SIGKILL to those groups after ``--grace-s`` seconds. The launcher prints one line naming the
task and its status and exits with that status (128 + N for a signal N, as a shell reports
it); 0 when every task exits 0. SIGTERM or SIGINT to the launcher is sent on to every task's
group the same way (a second one kills at once), and the launcher then exits 128 + that
signal. When the last task is gone, whatever is left in the tasks' groups is killed, as srun
ends a step. As PID 1 of a container it also reaps the orphans that the kernel gives it.
"""

import argparse
import os
import signal
import subprocess
import sys

PROG = "rank_launcher"
DEFAULT_PORT = 29500  # slurm2pytorch's and torch.distributed.run's
DEFAULT_ADDR = "127.0.0.1"  # slurm2pytorch's fallback, right for one node
DEFAULT_GRACE_S = 10.0
USAGE_STATUS = 2
# what a shell returns when a command cannot be found or run
NOT_FOUND_STATUS = 127
NOT_EXECUTABLE_STATUS = 126
LOG_FAILED_STATUS = 1  # a task's output file cannot be written: the task never starts


class UsageError(Exception):
    """The command line is wrong; the message says how."""


def parse(argv, environ):
    """The options and the command of ``argv`` (the script's arguments, without its name):
    ``(namespace, command)``. Raises UsageError."""
    if "--" not in argv:
        raise UsageError("the command must follow '--', e.g. -- ./run_and_time.sh")
    cut = argv.index("--")
    options, command = argv[:cut], argv[cut + 1 :]
    if not command:
        raise UsageError("no command after '--'")
    parser = argparse.ArgumentParser(prog=PROG, add_help=False)
    parser.error = _refuse  # argparse would print its own usage and exit
    parser.add_argument("--ntasks", type=int, required=True)
    parser.add_argument("--node-id", type=int, default=0)
    parser.add_argument("--nnodes", type=int, default=1)
    parser.add_argument("--master-addr", default=None)
    parser.add_argument("--master-port", type=int, default=None)
    parser.add_argument("--job-id", default=None)
    parser.add_argument("--nodelist", default=None)
    parser.add_argument("--rank-log-dir", default=None)
    parser.add_argument("--grace-s", type=float, default=DEFAULT_GRACE_S)
    args = parser.parse_args(options)
    _defaults(args, environ)
    _check(args)
    return args, command


def _refuse(message):
    raise UsageError(message)


def _defaults(args, environ):
    """slurm2pytorch's defaults for the rendezvous: the environment's, else its own."""
    if args.master_addr is None:
        args.master_addr = (
            environ.get("MASTER_ADDR") or environ.get("MLPERF_SLURM_FIRSTNODE") or DEFAULT_ADDR
        )
    if args.master_port is None:
        text = environ.get("MASTER_PORT") or str(DEFAULT_PORT)
        try:
            args.master_port = int(text)
        except ValueError:
            raise UsageError(f"MASTER_PORT={text!r} in the environment is not a port") from None
    if args.nodelist is None:
        args.nodelist = args.master_addr


def _check(args):
    if args.ntasks < 1:
        raise UsageError(f"--ntasks {args.ntasks}: at least 1 task is needed")
    if args.nnodes < 1:
        raise UsageError(f"--nnodes {args.nnodes}: at least 1 node is needed")
    if not 0 <= args.node_id < args.nnodes:
        raise UsageError(f"--node-id {args.node_id} is not in 0..{args.nnodes - 1} (--nnodes)")
    if not 1 <= args.master_port <= 65535:
        raise UsageError(f"--master-port {args.master_port} is not a port (1..65535)")
    if args.grace_s < 0:
        raise UsageError(f"--grace-s {args.grace_s} is negative")
    if not args.master_addr or not args.nodelist:
        raise UsageError("--master-addr and --nodelist must not be empty")


def tasks_per_node(ntasks, nnodes):
    """SLURM_TASKS_PER_NODE as srun writes it for the same count on every node: 8, 8(x2)."""
    return str(ntasks) if nnodes == 1 else f"{ntasks}(x{nnodes})"


def rank_env(args, local):
    """The variables of task ``local`` (0..ntasks-1) of this node: srun's and slurm2pytorch's
    (see the module's docstring for who reads each)."""
    world = args.ntasks * args.nnodes
    rank = args.node_id * args.ntasks + local
    env = {
        "SLURM_PROCID": rank,
        "SLURM_LOCALID": local,
        "SLURM_NODEID": args.node_id,
        "SLURM_NTASKS": world,
        "SLURM_NTASKS_PER_NODE": args.ntasks,
        "SLURM_TASKS_PER_NODE": tasks_per_node(args.ntasks, args.nnodes),
        "SLURM_NNODES": args.nnodes,
        "SLURM_JOB_NUM_NODES": args.nnodes,
        "SLURM_STEP_NUM_TASKS": world,
        "SLURM_STEP_NUM_NODES": args.nnodes,
        "SLURM_NODELIST": args.nodelist,
        "SLURM_JOB_NODELIST": args.nodelist,
        "SLURM_STEP_NODELIST": args.nodelist,
        "RANK": rank,
        "LOCAL_RANK": local,
        "WORLD_SIZE": world,
        "LOCAL_WORLD_SIZE": args.ntasks,
        "MASTER_ADDR": args.master_addr,
        "MASTER_PORT": args.master_port,
    }
    if args.job_id:
        env["SLURM_JOB_ID"] = args.job_id
        env["SLURM_JOBID"] = args.job_id
    return {name: str(value) for name, value in env.items()}


def child_env(base, args, local):
    """The whole environment of task ``local``: ``base`` with the task's variables."""
    env = dict(base)
    env.update(rank_env(args, local))
    if args.ntasks > 1 and not base.get("OMP_NUM_THREADS"):
        env["OMP_NUM_THREADS"] = "1"  # slurm2pytorch, as torch.distributed.run
    return env


def exit_status(wait_status):
    """A wait status as a shell reports it: the exit code, or 128 + N for a signal N."""
    if os.WIFSIGNALED(wait_status):
        return 128 + os.WTERMSIG(wait_status)
    return os.WEXITSTATUS(wait_status)


def signal_name(number):
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class Tasks:
    """The tasks of one launch: started at once, each in a process group of its own, waited
    for, and stopped together (SIGTERM, then SIGKILL after the grace period)."""

    def __init__(self, grace_s, err):
        self.grace_s = grace_s
        self.err = err
        # pid -> (global rank, Popen): the Popen is kept so that it is never collected while
        # its task runs (Popen.__del__, and every new Popen, poll the ones collected, and a
        # poll would reap a task whose status os.wait must see)
        self.running = {}
        self.groups = []  # the process group of every task started (its pid)
        self.stopping = None  # the signal the tasks were sent, once stopping
        self.killed = False
        self.status = None  # the launch's status, once a task failed or a signal came
        self.signalled = None  # the signal that stopped the launcher, if one did

    def say(self, message):
        self.err.write(f"{PROG}: {message}\n")
        self.err.flush()

    def start(self, rank, argv, env, stdout, first):
        """Start one task (its stdin the launcher's for the first one, /dev/null for the
        others); a task that cannot start is a failure of status 127 or 126, as in a shell."""
        stdin = None if first else subprocess.DEVNULL
        stderr = None if first else subprocess.STDOUT
        try:
            proc = subprocess.Popen(
                argv, env=env, stdin=stdin, stdout=stdout, stderr=stderr, start_new_session=True
            )
        except OSError as exc:
            missing = isinstance(exc, FileNotFoundError)
            status = NOT_FOUND_STATUS if missing else NOT_EXECUTABLE_STATUS
            why = f"could not start {argv[0]!r} ({exc.strerror or exc}): status {status}"
            self.fail(rank, status, why)
            return
        self.running[proc.pid] = (rank, proc)
        self.groups.append(proc.pid)
        if self.stopping is not None:  # a signal came while it started
            _signal_group(proc.pid, signal.SIGKILL if self.killed else self.stopping)

    def fail(self, rank, status, why):
        """A task failed: the first failure (or signal) decides the launch's status, and stops
        the other tasks."""
        if self.status is not None:
            return
        self.status = status
        others = len(self.running)
        self.say(f"rank {rank} {why}; stopping the other {others} ranks")
        self.stop(signal.SIGTERM)

    def on_signal(self, number, frame):
        """SIGTERM or SIGINT to the launcher: stop every task the same way; a second one
        kills them at once."""
        if self.signalled is not None:
            self.kill_now(number, frame)
            return
        self.signalled = number
        self.say(f"got {signal_name(number)}; stopping every rank")
        if self.status is None:
            self.status = 128 + number
        self.stop(number)

    def stop(self, number):
        if self.stopping is not None:
            return
        self.stopping = number
        for group in self.groups:
            _signal_group(group, number)
        if self.grace_s > 0:
            signal.setitimer(signal.ITIMER_REAL, self.grace_s)
        else:
            self.kill_now(None, None)

    def kill_now(self, number, frame):
        """SIGKILL to every task's group (the grace period is over)."""
        if self.killed:
            return
        self.killed = True
        if self.running:
            self.say(f"SIGKILL to {len(self.running)} ranks still running")
        for group in self.groups:
            _signal_group(group, signal.SIGKILL)

    def wait(self):
        """Wait for every task; the launch's status. Orphans reaped on the way are not ours."""
        while self.running:
            try:
                pid, wait_status = os.wait()
            except ChildProcessError:  # cannot happen while a task runs; do not spin
                break
            task = self.running.pop(pid, None)
            if task is None:
                continue
            rank, proc = task
            status = exit_status(wait_status)
            proc.returncode = status  # reaped here: Popen must not wait for it again
            if status != 0:
                self.fail(rank, status, f"exited with status {status}")
        signal.setitimer(signal.ITIMER_REAL, 0)
        for group in self.groups:  # what the tasks left in their groups, as srun ends a step
            _signal_group(group, signal.SIGKILL)
        return self.status or 0


def _signal_group(group, number):
    """Signal a task's process group; one that is gone already is no error."""
    try:
        os.killpg(group, number)
    except (ProcessLookupError, PermissionError):
        pass


def launch(args, command, environ, err):
    """Start ``args.ntasks`` copies of ``command`` and supervise them; the exit status."""
    tasks = Tasks(args.grace_s, err)
    signal.signal(signal.SIGTERM, tasks.on_signal)
    signal.signal(signal.SIGINT, tasks.on_signal)
    signal.signal(signal.SIGALRM, tasks.kill_now)
    for local in range(args.ntasks):
        if tasks.stopping is not None:
            break
        rank = args.node_id * args.ntasks + local
        env = child_env(environ, args, local)
        if local == 0:
            tasks.start(rank, command, env, None, first=True)
        elif args.rank_log_dir:
            path = os.path.join(args.rank_log_dir, f"rank_{rank}.log")
            try:
                os.makedirs(args.rank_log_dir, exist_ok=True)
                out = open(path, "wb")
            except OSError as exc:
                why = f"cannot write its output to {path} ({exc.strerror or exc})"
                tasks.fail(rank, LOG_FAILED_STATUS, f"{why}: status {LOG_FAILED_STATUS}")
                break
            with out:
                tasks.start(rank, command, env, out, first=False)
        else:
            tasks.start(rank, command, env, subprocess.DEVNULL, first=False)
    return tasks.wait()


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    try:
        args, command = parse(argv, os.environ)
    except UsageError as exc:
        sys.stderr.write(f"{PROG}: {exc}\n")
        return USAGE_STATUS
    return launch(args, command, dict(os.environ), sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
