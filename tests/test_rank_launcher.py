"""scripts/run/rank_launcher.py: one task per GPU with srun's and slurm2pytorch's variables,
supervised as one job. Run as a script by the host's Python (and by an old one where this
machine has one), on small shell and Python commands; nothing is mocked."""

from __future__ import annotations

import ast
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from scripts.run import rank_launcher

LAUNCHER = Path(rank_launcher.__file__).resolve()
WAIT_S = 120.0  # the longest any condition is waited for (a loaded machine is slow, never this)
# what the tests set themselves: an inherited value would change what the ranks see
SCRUBBED = ("OMP_NUM_THREADS", "MASTER_ADDR", "MASTER_PORT", "MLPERF_SLURM_FIRSTNODE")

DUMP_ENV = (
    "import json, os, sys; "
    "names = [n for n in os.environ if n.startswith('SLURM_')] + "
    "['RANK', 'LOCAL_RANK', 'WORLD_SIZE', 'LOCAL_WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT', "
    "'OMP_NUM_THREADS', 'KEPT']; "
    "env = {n: os.environ.get(n) for n in names}; "
    "open(os.path.join(sys.argv[1], 'env_' + os.environ['RANK'] + '.json'), 'w')"
    ".write(json.dumps(env))"
)


MARK = "RANK_LAUNCHER_TEST"  # in every rank's environment: which processes a test started


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED and not k.startswith("SLURM_")}
    env[MARK] = f"{os.getpid()}"
    env.update(extra)
    return env


def run(
    args: Sequence[str], *, env: dict[str, str] | None = None, python: str = sys.executable
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [python, str(LAUNCHER), *args],
        capture_output=True,
        text=True,
        timeout=WAIT_S,
        env=base_env() if env is None else env,
        stdin=subprocess.DEVNULL,
    )


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def alive(pid: int) -> bool:
    """Whether ``pid`` is a running process (a zombie is not: it has exited)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def pids(folder: Path, pattern: str) -> list[int]:
    return [int(p.read_text()) for p in sorted(folder.glob(pattern)) if p.read_text().strip()]


def record(folder: Path, name: str, value: str = "$$") -> str:
    """Shell that writes ``value`` (by default the shell's pid) to folder/name atomically, so
    that a reader never sees a partial file (the hidden temporary does not match ``pid_*``)."""
    return f'echo {value} > "{folder}/.{name}" && mv "{folder}/.{name}" "{folder}/{name}"'


@pytest.fixture(autouse=True)
def _no_rank_left(tmp_path: Path) -> Iterator[None]:
    """Whatever a failing test leaves of the ranks it recorded is killed, so that a failure
    does not leave sleeping processes on the machine."""
    yield
    mark = f"{MARK}={os.getpid()}".encode()
    for pid in pids(tmp_path, "pid_*") + pids(tmp_path, "child_*"):
        try:  # only a process this test started (the pid may be another's by now)
            ours = mark in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if ours and alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


# ---------------------------------------------------------------------------------------------
# the environment of each rank


def test_each_rank_sees_srun_s_and_slurm2pytorch_s_variables(tmp_path: Path) -> None:
    result = run(
        ["--ntasks", "4", "--job-id", "4242", "--master-port", "29611", "--"]
        + [sys.executable, "-c", DUMP_ENV, str(tmp_path)],
        env=base_env(KEPT="yes"),
    )
    assert result.returncode == 0, result.stderr
    for rank in range(4):
        env = json.loads((tmp_path / f"env_{rank}.json").read_text())
        assert env == {
            "SLURM_PROCID": str(rank),
            "SLURM_LOCALID": str(rank),
            "SLURM_NODEID": "0",
            "SLURM_NTASKS": "4",
            "SLURM_NTASKS_PER_NODE": "4",
            "SLURM_TASKS_PER_NODE": "4",
            "SLURM_NNODES": "1",
            "SLURM_JOB_NUM_NODES": "1",
            "SLURM_STEP_NUM_TASKS": "4",
            "SLURM_STEP_NUM_NODES": "1",
            "SLURM_NODELIST": "127.0.0.1",
            "SLURM_JOB_NODELIST": "127.0.0.1",
            "SLURM_STEP_NODELIST": "127.0.0.1",
            "SLURM_JOB_ID": "4242",
            "SLURM_JOBID": "4242",
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": "4",
            "LOCAL_WORLD_SIZE": "4",
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": "29611",
            "OMP_NUM_THREADS": "1",  # slurm2pytorch: more than one task per node
            "KEPT": "yes",  # the rest of the environment passes through
        }


def test_a_node_of_several_counts_its_ranks_from_its_node_id(tmp_path: Path) -> None:
    result = run(
        ["--ntasks", "2", "--node-id", "1", "--nnodes", "3", "--master-addr", "node0"]
        + ["--rank-log-dir", str(tmp_path / "logs"), "--"]
        + [sys.executable, "-c", DUMP_ENV, str(tmp_path)]
    )
    assert result.returncode == 0, result.stderr
    for local, rank in ((0, 2), (1, 3)):
        env = json.loads((tmp_path / f"env_{rank}.json").read_text())
        assert (env["SLURM_PROCID"], env["RANK"]) == (str(rank), str(rank))
        assert (env["SLURM_LOCALID"], env["LOCAL_RANK"]) == (str(local), str(local))
        assert env["SLURM_NODEID"] == "1"
        assert env["SLURM_NTASKS"] == env["WORLD_SIZE"] == env["SLURM_STEP_NUM_TASKS"] == "6"
        assert env["SLURM_NNODES"] == env["SLURM_JOB_NUM_NODES"] == "3"
        assert env["SLURM_TASKS_PER_NODE"] == "2(x3)"  # as srun writes it
        assert env["LOCAL_WORLD_SIZE"] == env["SLURM_NTASKS_PER_NODE"] == "2"
        assert env["MASTER_ADDR"] == env["SLURM_NODELIST"] == "node0"
        assert "SLURM_JOB_ID" not in env  # only with --job-id
    # the node's first task writes to the launcher's output; files are named by global rank
    assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == ["rank_3.log"]


def test_the_rendezvous_defaults_are_slurm2pytorch_s(tmp_path: Path) -> None:
    command = ["--", sys.executable, "-c", DUMP_ENV, str(tmp_path)]
    assert run(["--ntasks", "1", *command]).returncode == 0
    env = json.loads((tmp_path / "env_0.json").read_text())
    assert (env["MASTER_ADDR"], env["MASTER_PORT"]) == ("127.0.0.1", "29500")
    assert env["OMP_NUM_THREADS"] is None  # one task per node: slurm2pytorch sets none
    assert (env["WORLD_SIZE"], env["LOCAL_WORLD_SIZE"], env["RANK"]) == ("1", "1", "0")

    first = base_env(MLPERF_SLURM_FIRSTNODE="first", MASTER_PORT="24000", OMP_NUM_THREADS="7")
    assert run(["--ntasks", "2", *command], env=first).returncode == 0
    env = json.loads((tmp_path / "env_1.json").read_text())
    assert (env["MASTER_ADDR"], env["MASTER_PORT"]) == ("first", "24000")
    assert env["OMP_NUM_THREADS"] == "7"  # the environment's own value is kept
    both = base_env(MASTER_ADDR="10.1.2.3", MLPERF_SLURM_FIRSTNODE="first")
    assert run(["--ntasks", "1", *command], env=both).returncode == 0
    assert json.loads((tmp_path / "env_0.json").read_text())["MASTER_ADDR"] == "10.1.2.3"


def test_an_inherited_slurm_variable_cannot_give_every_rank_the_same_value(
    tmp_path: Path,
) -> None:
    env = base_env(SLURM_PROCID="5", RANK="5", LOCAL_RANK="5", SLURM_NTASKS="99")
    result = run(["--ntasks", "2", "--", sys.executable, "-c", DUMP_ENV, str(tmp_path)], env=env)
    assert result.returncode == 0, result.stderr
    for rank in range(2):
        seen = json.loads((tmp_path / f"env_{rank}.json").read_text())
        assert seen["SLURM_PROCID"] == seen["RANK"] == seen["LOCAL_RANK"] == str(rank)
        assert seen["SLURM_NTASKS"] == "2"


TORCH_RENDEZVOUS = (
    "import os, torch, torch.distributed as dist; "
    "dist.init_process_group('gloo'); "  # env://: RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT
    "total = torch.tensor([int(os.environ['LOCAL_RANK']) + 1]); dist.all_reduce(total); "
    "print(dist.get_rank(), dist.get_world_size(), int(total.item()), flush=True); "
    "dist.destroy_process_group()"
)


def test_the_ranks_meet_in_torch_distributed_with_these_variables(tmp_path: Path) -> None:
    pytest.importorskip("torch.distributed")
    with socket.socket() as probe:  # a port free now (nothing else should take it meanwhile)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    logs = tmp_path / "logs"
    args = ["--ntasks", "3", "--master-port", str(port), "--rank-log-dir", str(logs)]
    result = run([*args, "--", sys.executable, "-c", TORCH_RENDEZVOUS])
    assert result.returncode == 0, result.stderr
    assert result.stdout == "0 3 6\n"  # 1 + 2 + 3, summed over the three ranks
    for rank in (1, 2):
        assert f"{rank} 3 6" in (logs / f"rank_{rank}.log").read_text().splitlines()


# ---------------------------------------------------------------------------------------------
# output


def test_rank_0_writes_to_the_launcher_s_output_and_the_others_to_their_files(
    tmp_path: Path,
) -> None:
    logs = tmp_path / "logs"
    command = ["sh", "-c", 'echo "out $SLURM_PROCID"; echo "err $SLURM_PROCID" >&2']
    result = run(["--ntasks", "3", "--rank-log-dir", str(logs), "--", *command])
    assert result.returncode == 0, result.stderr
    assert result.stdout == "out 0\n"
    assert result.stderr == "err 0\n"  # and nothing of the launcher's own when all goes well
    assert sorted(p.name for p in logs.iterdir()) == ["rank_1.log", "rank_2.log"]
    for rank in (1, 2):
        lines = (logs / f"rank_{rank}.log").read_text().splitlines()
        assert sorted(lines) == [f"err {rank}", f"out {rank}"]


def test_without_a_log_folder_the_other_ranks_output_is_discarded(tmp_path: Path) -> None:
    command = ["sh", "-c", 'echo "out $SLURM_PROCID"; echo "err $SLURM_PROCID" >&2']
    result = run(["--ntasks", "3", "--", *command])
    assert (result.returncode, result.stdout, result.stderr) == (0, "out 0\n", "err 0\n")


# ---------------------------------------------------------------------------------------------
# supervision


def test_the_first_failing_rank_stops_the_others_and_gives_its_status(tmp_path: Path) -> None:
    # ranks 0, 1 and 3 sleep forever (one with a child in its process group); rank 2 fails
    # with 3 once they all run
    others = " && ".join(f'[ -s "{tmp_path}/pid_{r}" ]' for r in (0, 1, 3))
    script = (
        f'if [ "$SLURM_PROCID" = 2 ]; then until {others} && [ -s "{tmp_path}/child_1" ]; '
        "do sleep 0.02; done; exit 3; fi; "
        f'if [ "$SLURM_PROCID" = 1 ]; then sleep 1000 & {record(tmp_path, "child_1", "$!")}; fi; '
        f"{record(tmp_path, 'pid_$SLURM_PROCID')}; exec sleep 1000"
    )
    result = run(["--ntasks", "4", "--", "sh", "-c", script])
    assert result.returncode == 3, result.stderr
    assert "rank 2 exited with status 3; stopping the other 3 ranks" in result.stderr
    left = pids(tmp_path, "pid_*") + pids(tmp_path, "child_1")
    assert len(left) == 4
    wait_until(lambda: not any(alive(pid) for pid in left), f"ranks {left} to be gone")


def test_a_rank_that_ignores_sigterm_is_killed_after_the_grace_period(tmp_path: Path) -> None:
    script = (
        'if [ "$SLURM_PROCID" = 1 ]; then '
        f'until [ -s "{tmp_path}/pid_0" ]; do sleep 0.02; done; exit 5; fi; '
        f"trap '' TERM; {record(tmp_path, 'pid_0')}; while :; do sleep 0.05; done"
    )
    result = run(["--ntasks", "2", "--grace-s", "0.5", "--", "sh", "-c", script])
    assert result.returncode == 5, result.stderr
    assert "SIGKILL to 1 ranks still running" in result.stderr
    pid = pids(tmp_path, "pid_0")[0]
    wait_until(lambda: not alive(pid), "rank 0 to be gone")


def test_a_rank_killed_by_a_signal_gives_128_plus_the_signal(tmp_path: Path) -> None:
    script = 'if [ "$SLURM_PROCID" = 1 ]; then kill -9 $$; fi; exec sleep 1000'
    result = run(["--ntasks", "2", "--", "sh", "-c", script])
    assert result.returncode == 128 + signal.SIGKILL, result.stderr
    assert "rank 1 exited with status 137" in result.stderr


def test_a_command_that_cannot_start_fails_as_in_a_shell(tmp_path: Path) -> None:
    result = run(["--ntasks", "2", "--", str(tmp_path / "no-such-command")])
    assert result.returncode == 127
    assert "rank 0 could not start" in result.stderr and "status 127" in result.stderr


def test_a_log_that_cannot_be_written_stops_the_launch(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    args = ["--ntasks", "2", "--rank-log-dir", str(not_a_folder), "--", "sleep", "1000"]
    result = run(args)  # returns: rank 0's sleep was stopped
    assert result.returncode == 1
    assert f"rank 1 cannot write its output to {not_a_folder}/rank_1.log" in result.stderr


def test_one_task_just_runs_the_command_with_its_variables(tmp_path: Path) -> None:
    script = 'echo "$RANK $WORLD_SIZE $SLURM_NTASKS $LOCAL_WORLD_SIZE"; exit 4'
    result = run(["--ntasks", "1", "--", "sh", "-c", script])
    assert (result.returncode, result.stdout) == (4, "0 1 1 1\n")
    assert "rank 0 exited with status 4; stopping the other 0 ranks" in result.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_the_launcher_leaves_no_rank_behind(tmp_path: Path, sig: int) -> None:
    script = (
        f"sleep 1000 & {record(tmp_path, 'child_$SLURM_PROCID', '$!')}; "
        f"{record(tmp_path, 'pid_$SLURM_PROCID')}; wait"
    )
    proc = subprocess.Popen(
        [sys.executable, str(LAUNCHER), "--ntasks", "3", "--", "sh", "-c", script],
        env=base_env(),
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: len(pids(tmp_path, "pid_*")) == 3, "three ranks to start")
        wait_until(lambda: len(pids(tmp_path, "child_*")) == 3, "their children to start")
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=WAIT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + sig, err
    assert f"got {signal.Signals(sig).name}; stopping every rank" in err
    left = pids(tmp_path, "pid_*") + pids(tmp_path, "child_*")
    wait_until(lambda: not any(alive(pid) for pid in left), f"ranks {left} to be gone")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ntasks", "2", "true"], "the command must follow '--'"),
        (["--ntasks", "2", "--"], "no command after '--'"),
        (["--", "true"], "--ntasks"),
        (["--ntasks", "0", "--", "true"], "--ntasks 0: at least 1 task is needed"),
        (["--ntasks", "2", "--node-id", "2", "--nnodes", "2", "--", "true"], "--node-id 2"),
        (["--ntasks", "2", "--master-port", "70000", "--", "true"], "--master-port 70000"),
        (["--ntasks", "two", "--", "true"], "invalid int value: 'two'"),
    ],
)
def test_a_wrong_command_line_is_refused_in_one_line(args: list[str], message: str) -> None:
    result = run(args)
    assert result.returncode == rank_launcher.USAGE_STATUS
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


# ---------------------------------------------------------------------------------------------
# runs in the image's Python


# annotations that Python 3.6 evaluates without harm: builtin names only
SIMPLE_ANNOTATIONS = {"int", "str", "float", "bool", "bytes", "None"}
# f"{x=}" (3.8+): an expression followed by "=" (not "==", "<=", ...) before the closing brace
FSTRING_EQUALS = re.compile(r"\{[^{}]*[^=!<>]=\s*(![rsa])?(:[^{}]*)?\}")


def _simple(annotation: ast.expr | None) -> bool:
    if annotation is None:
        return True
    if isinstance(annotation, ast.Constant) and annotation.value is None:
        return True
    return isinstance(annotation, ast.Name) and annotation.id in SIMPLE_ANNOTATIONS


def test_the_launcher_is_python_3_6_standard_library_code() -> None:
    source = LAUNCHER.read_text()
    tree = ast.parse(source, feature_version=(3, 6))  # no walrus, no positional-only, ...
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "a relative import needs the package"
            imported.add((node.module or "").split(".")[0])
            names = {alias.name for alias in node.names}
            # 3.7+: 3.6 refuses it when it compiles, which feature_version does not check
            assert not (node.module == "__future__" and "annotations" in names)
        elif isinstance(node, ast.AnnAssign):
            assert _simple(node.annotation), f"line {node.lineno}: 3.6 evaluates annotations"
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            arguments = [*node.args.args, *node.args.kwonlyargs]
            annotations = [a.annotation for a in arguments] + [node.returns]
            assert all(_simple(a) for a in annotations), f"{node.name}: 3.6 evaluates these"
    assert imported <= set(sys.stdlib_module_names), imported - set(sys.stdlib_module_names)
    assert not imported & {"dataclasses", "scripts", "contextvars"}, imported
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            text = ast.get_source_segment(source, node) or ""
            assert not FSTRING_EQUALS.search(text), f"line {node.lineno}: 3.8+ f-string {text}"


def _old_python() -> str | None:
    """An interpreter older than 3.8 that runs here, or None."""
    for name in ("python3.6", "python3.7"):
        path = shutil.which(name)
        if path and subprocess.run([path, "-c", ""], capture_output=True).returncode == 0:
            return path
    return None


@pytest.mark.skipif(_old_python() is None, reason="no Python 3.6 or 3.7 runs on this machine")
def test_an_old_python_runs_the_launcher(tmp_path: Path) -> None:
    python = _old_python()
    assert python is not None
    script = (  # rank 1 fails once the others have written their line
        f'if [ "$RANK" = 1 ]; then until [ -s "{tmp_path}/pid_0" ] && [ -s "{tmp_path}/pid_2" ]; '
        'do sleep 0.02; done; exit 6; fi; echo "rank $RANK of $WORLD_SIZE"; '
        f"{record(tmp_path, 'pid_$RANK')}; exec sleep 1000"
    )
    logs = tmp_path / "logs"
    result = run(
        ["--ntasks", "3", "--rank-log-dir", str(logs), "--", "sh", "-c", script], python=python
    )
    assert result.returncode == 6, result.stderr
    assert result.stdout == "rank 0 of 3\n"
    assert (logs / "rank_2.log").read_text() == "rank 2 of 3\n"
