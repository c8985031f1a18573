"""Shared test helpers: the repository root, a temporary copy of the workflow, snakemake runs."""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts.data.unpack import prepare

REPO = Path(__file__).resolve().parents[1]
PUBLISHED = REPO / "tests" / "data" / "published"  # the archives; see its README.md
WORKFLOW_PARTS = (
    "Snakefile",
    "rules",
    "config",
    "scripts",
    "envs",
    "resources",
    "profiles",
    "report",
    "requirements.txt",  # pins the wheels of the embedded benchmark's image
)


def copy_workflow(dest: Path) -> Path:
    """A fresh copy of the workflow (no results, no data) in ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for part in WORKFLOW_PARTS:
        src = REPO / part
        if src.is_dir():
            shutil.copytree(src, dest / part, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            shutil.copy2(src, dest / part)
    return dest


def snakemake(workdir: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Run snakemake in ``workdir`` (targets first, then options) and capture its output."""
    cmd = [sys.executable, "-m", "snakemake", *args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAKEMAKE")}
    return subprocess.run(
        cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout, env=env
    )


@pytest.fixture
def workflow_copy(tmp_path: Path) -> Path:
    return copy_workflow(tmp_path / "wf")


_published_root: list[Path] = []  # the unpacked tree, once per test session


def published() -> Path:
    """The root of the published MLPerf logs the tests read (tests/data/published/*.tar.xz:
    mlperf-v0.6-nvidia/, mlperf-v5.0-nvidia/, mlperf-more/,
    mlperf-v5.1-implementations/), unpacked on the first call into a
    temporary folder that is removed when the session ends. Safe to call at import time. The
    tree is shared by every test of the session: a test that changes a log changes a copy."""
    if not _published_root:
        root = Path(tempfile.mkdtemp(prefix="mlperf-published-"))
        atexit.register(_remove, root, os.getpid())
        for archive in sorted(PUBLISHED.glob("*.tar.xz")):
            with tarfile.open(archive) as tar:
                if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4
                    tar.extractall(root, filter="data")
                else:
                    tar.extractall(root)
        _published_root.append(root)
    return _published_root[0]


need_fixtures = published  # the name from when the tests read ../shared/fixtures


def _remove(root: Path, pid: int) -> None:
    if os.getpid() == pid:  # not in a forked child that exits normally
        shutil.rmtree(root, ignore_errors=True)


def set_faults(wf: Path, faults: dict[str, Any]) -> None:
    """What tests/fake_trainer.py does wrong, per run (see its docstring)."""
    (wf / "faults.json").write_text(json.dumps(faults))


def fake_campaign(
    wf: Path, runs: int = 3, faults: dict[str, Any] | None = None, timeout_s: float = 60
) -> Path:
    """A benchmark 'fake' whose trainer is tests/fake_trainer.py; returns the overlay path."""
    shutil.copy2(REPO / "tests" / "fake_trainer.py", wf / "fake_trainer.py")
    set_faults(wf, faults or {})
    data = wf / "tiny.txt"
    data.write_text("a tiny dataset\n")
    overlay = {
        "campaign": {"benchmarks": ["fake"]},
        "benchmarks": {
            "fake": {
                "description": "fake trainer for tests",
                "scale": "test",
                "runs": runs,
                "timeout_s": timeout_s,
                "quality": {"metric": "acc", "target": 0.9},
                "dataset": {
                    "files": [
                        {
                            "name": "tiny.txt",
                            "url": "file://{workflow_dir}/tiny.txt",
                            "sha256": hashlib.sha256(data.read_bytes()).hexdigest(),
                        }
                    ]
                },
                "implementation": {
                    "command": "{python} fake_trainer.py --seed {seed} --run {run} "
                    "--target {target}",
                },
            }
        },
    }
    path = wf / "fake.yaml"
    path.write_text(yaml.safe_dump(overlay))
    return path


# The embedded GNMT trainer at a size that meets its BLEU target (90) in 2-3 epochs of about
# 1.5 s, where config/benchmarks/gnmt.yaml's values take 4-7 epochs of about 2.5 s: for the
# tests whose subject is where and how the runs go (containers, Slurm), not the trainer. Two
# LSTM layers a side instead of three, no dropout, and weights drawn from [-0.3, 0.3] (the
# attention stops being uniform sooner). Measured on 2 cores with the seeds of runs 1-10:
# BLEU 85-93 after epoch 2 and 99-100 after epoch 3; runs 1-3 took 24 s together, 70 s with
# the benchmark's values. tests/test_workflow.py's embedded campaign keeps the benchmark's.
QUICK_GNMT = {"enc_layers": 2, "dec_layers": 2, "dropout": 0.0, "init_range": 0.3}


def quick_gnmt(runs: int = 3) -> dict[str, Any]:
    """An overlay's ``benchmarks.gnmt`` entry: ``runs`` runs of the trainer at QUICK_GNMT."""
    return {"runs": runs, "implementation": {"hyperparameters": dict(QUICK_GNMT)}}


def jobs_run(output: str) -> list[str]:
    """'rule wildcards' of every job a snakemake invocation ran, from its log."""
    jobs = []
    for block in re.split(r"\n(?=\[\w{3} \w{3} )", output):
        rule = re.search(r"^\s*(?:local)?rule (\w+):", block, re.M)
        if rule:
            wc = re.search(r"wildcards: (.*)", block)
            jobs.append(f"{rule.group(1)} {wc.group(1) if wc else ''}".strip())
    return jobs


def snapshot(root: Path) -> dict[str, tuple[str, int]]:
    """sha256 and mtime (ns) of every file under results/."""
    return {
        str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted((root / "results").rglob("*"))
        if p.is_file()
    }


def need_docker() -> str:
    """A Docker engine that answers, and the name of the local base image the docker tests
    build on (MLPERF_CI_BASE_IMAGE, made by .ci/docker-up.sh). Missing is a failure under CI,
    a skip elsewhere."""
    return need_engine("docker", 'eval "$(.ci/docker-up.sh)"')


def need_podman() -> str:
    """Podman that works (its containers.conf and store from .ci/podman-up.sh, in
    CONTAINERS_CONF and CONTAINERS_STORAGE_CONF), and the local base image in its store.
    Missing is a failure under CI, a skip elsewhere."""
    return need_engine("podman", 'eval "$(.ci/podman-up.sh)"')


def need_engine(cli: str, start: str) -> str:
    """The base image of the container tests of engine ``cli``, or a failure (under CI) or a
    skip naming what is missing and ``start``, the command that provides it."""
    require_kind("services")
    base = os.environ.get("MLPERF_CI_BASE_IMAGE", "mlperf-ci/debian-python:bookworm")
    problem = None
    try:
        out = subprocess.run(
            [cli, "image", "inspect", "--format", "{{.Id}}", base],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if out.returncode != 0:
            problem = f"{cli} cannot use the base image {base}: {out.stderr.strip()}"
    except (OSError, subprocess.TimeoutExpired) as exc:
        problem = f"no {cli} engine: {exc}"
    if problem is None:
        return base
    hint = f"; start one with: {start}"
    if os.environ.get("CI") == "true":
        pytest.fail(problem + hint)
    pytest.skip(problem + hint)


def containers_labelled(
    label: str = "org.mlperf-workflow.container", cli: str = "docker"
) -> list[str]:
    """Names of the containers (running or not) that the workflow started, in the engine
    ``cli``."""
    out = subprocess.run(
        [cli, "ps", "--all", "--filter", f"label={label}", "--format", "{{.Names}}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return out.stdout.split()


@pytest.fixture
def paths(tmp_path: Path) -> dict[str, Path]:
    """The files scripts.run.runner.execute takes, for a run made in ``tmp_path``."""
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"files": []}))
    # the unpacked tree beside it, and its manifest: the runner checks them before each run
    prepare([], tmp_path, tmp_path / "dataset", tmp_path / "dataset.manifest.json")
    environment = tmp_path / "environment.json"
    environment.write_text(json.dumps({"digest": "envdigest"}))
    return {
        "log_path": tmp_path / "run_01" / "mlperf.log",
        "meta_path": tmp_path / "run_01" / "run.json",
        "failed_dir": tmp_path / "logs" / "failed" / "b" / "s",
        "dataset_manifest": manifest,
        "environment": environment,
    }


# Tests by kind (docs/development.md, "Tests by kind"; the markers are in pyproject.toml):
# - workflow: runs snakemake on a temporary copy of the workflow (slow);
# - services: needs a real Docker engine, podman, Slurm or Chromium (skips without one, fails
#   under CI=true);
# - neither: a unit test. `pytest -m "not workflow and not services"` runs these only.
# A file named here is of these kinds as a whole; a file that mixes kinds marks its own tests
# (@pytest.mark.workflow). A test that starts snakemake unmarked fails (_audit, _Watcher), so the
# fast command never runs one by mistake; need_docker and need_podman fail a test not marked
# services.
FILE_KINDS: dict[str, tuple[str, ...]] = {
    "test_concurrency.py": ("workflow",),
    "test_data_folders_workflow.py": ("workflow",),
    "test_data_commands_workflow.py": ("workflow", "services"),
    "test_docker_engine.py": ("services",),
    "test_docker_workflow.py": ("workflow", "services"),
    "test_faults.py": ("workflow",),
    "test_implementations_workflow.py": ("workflow", "services"),
    "test_locks_workflow.py": ("workflow",),
    "test_podman_workflow.py": ("workflow", "services"),
    "test_slurm.py": ("workflow", "services"),
    "test_workflow.py": ("workflow",),
}
KINDS = ("workflow", "services")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for kind in FILE_KINDS.get(item.path.name, ()):
            item.add_marker(kind)


_running: list[pytest.Item] = []  # the test whose setup, call or teardown runs now
_unmarked: dict[str, list[str]] = {}  # test id -> the snakemake command lines it ran unmarked
_failed_call = pytest.StashKey[bool]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item):
    _running.append(item)
    _Watcher.test_started()
    try:
        yield
    finally:
        _running.remove(item)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    outcome = yield
    if call.when == "call":
        item.stash[_failed_call] = outcome.get_result().failed


_SNAKEMAKE_WORD = re.compile(r"(?:^|[\s/])snakemake(?:\s|$)")


def runs_snakemake(args: Any) -> bool:
    """Whether a command line (a string or a sequence of words) starts snakemake: a word that
    is ``snakemake`` or a path ending in it (``python -m snakemake``, ``/usr/bin/snakemake``, a
    shell command that names it)."""
    words = [args] if isinstance(args, str | bytes | os.PathLike) else list(args)
    return any(_SNAKEMAKE_WORD.search(os.fsdecode(word)) for word in words)


def _unmarked_test() -> pytest.Item | None:
    """The running test, if it is not marked workflow."""
    item = _running[-1] if _running else None
    return item if item is not None and item.get_closest_marker("workflow") is None else None


def _found(item: pytest.Item, command: str) -> str:
    _unmarked.setdefault(item.nodeid, []).append(command)
    return (
        f"{item.nodeid} runs snakemake ({command[:200]}) but is not marked workflow: add "
        "@pytest.mark.workflow to it, or its file to FILE_KINDS in tests/conftest.py"
    )


_SPAWNS = ("subprocess.Popen", "os.system", "os.posix_spawn", "os.spawn", "os.exec")


def _audit(event: str, args: tuple[Any, ...]) -> None:
    """A test not marked workflow that starts snakemake itself fails at once (event
    subprocess.Popen: executable, args, cwd, env); one that starts any other process is watched
    (a script it runs may start snakemake)."""
    if event not in _SPAWNS:
        return
    item = _unmarked_test()
    if item is None:
        return
    if event == "subprocess.Popen" and runs_snakemake(args[1]):
        pytest.fail(_found(item, " ".join(map(os.fsdecode, args[1]))), pytrace=False)
    _Watcher.start(item)


class _Watcher:
    """A thread that looks, every 0.2 s, for a snakemake among the processes this one started
    (and theirs) while a test not marked workflow runs, and records it for that test: a bench
    or shell script the test runs may start snakemake where :func:`_audit` cannot see it. It
    runs only from a test's first child process to the test's end; processes older than the
    test are not its."""

    thread: Any = None
    item: pytest.Item | None = None
    since: float = 0.0  # clock ticks since boot, as /proc/<pid>/stat's start time
    TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    @classmethod
    def test_started(cls) -> None:
        cls.item = None
        cls.since = cls._now()

    @classmethod
    def start(cls, item: pytest.Item) -> None:
        if not Path("/proc/self/stat").exists():
            return  # not Linux: the direct check (_audit) only
        cls.item = item
        if cls.thread is None:
            # lazy: the watch thread starts with the first process an unmarked test starts
            import threading

            cls.thread = threading.Thread(target=cls._watch, name="snakemake-watch", daemon=True)
            cls.thread.start()

    @classmethod
    def _now(cls) -> float:
        try:
            return float(Path("/proc/uptime").read_text().split()[0]) * cls.TICKS - 1
        except OSError:
            return 0.0

    @classmethod
    def _watch(cls) -> None:
        # lazy: only the watch thread sleeps
        import time

        seen: set[int] = set()
        while True:
            time.sleep(0.2)
            item = cls.item
            if item is None or not _running or _running[-1] is not item:
                continue
            for pid, command in cls._descendants(cls.since):
                if pid not in seen and runs_snakemake(command.split()):
                    seen.add(pid)
                    _found(item, command)

    @staticmethod
    def _descendants(since: float) -> list[tuple[int, str]]:
        """(pid, command line) of every process below this one started after ``since``."""
        parents: dict[int, tuple[int, int]] = {}
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    stat = Path(f"/proc/{entry.name}/stat").read_bytes()
                except OSError:
                    continue
                fields = stat[stat.rindex(b")") + 2 :].split()  # state ppid ... starttime
                parents[int(entry.name)] = (int(fields[1]), int(fields[19]))
        below = {os.getpid()}
        grew = True
        while grew:
            new = {p for p, (pp, _) in parents.items() if pp in below and p not in below}
            below |= new
            grew = bool(new)
        found = []
        for pid in below - {os.getpid()}:
            if parents[pid][1] < since:
                continue
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            found.append((pid, " ".join(os.fsdecode(a) for a in argv if a)))
        return found


sys.addaudithook(_audit)  # once: tests/__init__.py makes this module load once per session


@pytest.fixture(autouse=True)
def _snakemake_only_in_workflow_tests(request: pytest.FixtureRequest):
    """A test that ran snakemake unmarked fails, also where the failure raised at its Popen was
    caught, or where a script it ran started snakemake (seen by _Watcher)."""
    yield
    commands = _unmarked.pop(request.node.nodeid, None)
    if commands and not request.node.stash.get(_failed_call, False):
        pytest.fail(
            f"{request.node.nodeid} runs snakemake but is not marked workflow: {commands[0]}"
            " (add @pytest.mark.workflow to it, or its file to FILE_KINDS in tests/conftest.py)",
            pytrace=False,
        )


def require_kind(kind: str) -> None:
    """Fails the running test unless it is marked ``kind`` (the need_* helpers call this)."""
    item = _running[-1] if _running else None
    if item is not None and item.get_closest_marker(kind) is None:
        pytest.fail(
            f"{item.nodeid} needs a service but is not marked {kind}: add "
            f"@pytest.mark.{kind} to it, or its file to FILE_KINDS in tests/conftest.py",
            pytrace=False,
        )
