"""Tests by kind (tests/conftest.py, docs/development.md "Tests by kind"): every test that runs
snakemake is marked ``workflow``, every test that needs a service is marked ``services``, so
``pytest -m "not workflow and not services"`` runs the unit tests only."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from tests import conftest
from tests.conftest import FILE_KINDS, KINDS, REPO, require_kind, runs_snakemake


def test_a_command_line_that_starts_snakemake_is_known_as_one() -> None:
    assert runs_snakemake([sys.executable, "-m", "snakemake", "--cores", "1"])
    assert runs_snakemake(["/usr/local/bin/snakemake", "-n"])
    assert runs_snakemake(["/bin/sh", "-c", "cd wf && snakemake --cores 1 all"])
    assert not runs_snakemake(["cat", ".snakemake/locks/0.input.lock"])
    assert not runs_snakemake([sys.executable, "-c", "locks.acquire(root, ['snakemake'])"])
    assert not runs_snakemake([sys.executable, "-m", "scripts", "status"])


def test_an_unmarked_test_that_starts_snakemake_fails_with_what_to_do(
    request: pytest.FixtureRequest,
) -> None:
    with pytest.raises(pytest.fail.Exception, match="runs snakemake .* not marked workflow"):
        subprocess.run([sys.executable, "-m", "snakemake", "--version"], capture_output=True)
    # caught here on purpose: the check at the end of this test would fail it too
    assert conftest._unmarked.pop(request.node.nodeid)[0].endswith("-m snakemake --version")


def test_an_unmarked_test_whose_script_starts_snakemake_fails_too(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """A snakemake that a script starts (as bench/ scripts do) is not on the test's own command
    line: the watcher finds it among the test's processes."""
    if not Path("/proc/self/stat").exists():
        pytest.skip("the watcher reads /proc (Linux)")
    fake = tmp_path / "snakemake"  # a stand-in: what is watched is the command line
    done = tmp_path / "done"  # the stand-in lives until the watcher has seen it
    fake.write_text(f"#!/bin/sh\nwhile [ ! -e {done} ]; do sleep 0.05; done\n")
    fake.chmod(0o755)
    script = "import os, subprocess; subprocess.run([os.environ['FAKE']])"
    env = {**os.environ, "FAKE": str(fake)}
    with subprocess.Popen([sys.executable, "-c", script], env=env) as proc:
        deadline = time.monotonic() + 60
        while request.node.nodeid not in conftest._unmarked and time.monotonic() < deadline:
            time.sleep(0.05)
        done.touch()
        assert proc.wait(timeout=60) == 0
    found = conftest._unmarked.pop(request.node.nodeid)  # else this test would fail at its end
    assert found == [f"/bin/sh {fake}"]


def test_an_unmarked_test_that_needs_a_service_fails_with_what_to_do() -> None:
    with pytest.raises(pytest.fail.Exception, match="needs a service but is not marked services"):
        require_kind("services")


@pytest.mark.services
def test_a_marked_test_may_need_a_service() -> None:
    require_kind("services")


def test_the_kinds_are_registered_and_the_old_marker_is_gone() -> None:
    options = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]
    registered = {line.split(":")[0] for line in options["ini_options"]["markers"]}
    assert registered == set(KINDS)
    assert "--strict-markers" in options["ini_options"]["addopts"]  # a misspelt mark fails
    tests = sorted((REPO / "tests").glob("test_*.py"))
    assert set(FILE_KINDS) <= {p.name for p in tests}
    assert {kind for kinds in FILE_KINDS.values() for kind in kinds} <= set(KINDS)
    old = [p.name for p in tests if re.search(r"pytest\.mark\.integration\b", p.read_text())]
    assert not old, f"the integration marker is now workflow: {old}"
