"""The environment capture asks the system's backend what the runs see: for a local system
this Python's software, unchanged by the backend interface (a container backend's probe runs in
its image: tests/test_docker_workflow.py, tests/test_podman_workflow.py)."""

from __future__ import annotations

import json
import platform

from scripts.run import environment
from tests.conftest import REPO


def test_a_local_systems_environment_is_this_pythons_and_its_digest_is_stable(tmp_path) -> None:
    first = environment.capture("local", "local", REPO)
    assert first["python"] == platform.python_version() and first["backend"] == "local"
    assert "image_id" not in first and "host_python" not in first
    assert environment.capture("local", "local", REPO)["digest"] == first["digest"]
    out = tmp_path / "environment.json"
    argv = ["--system", "local", "--backend", "local", "--workflow-dir", str(REPO)]
    assert environment.main([*argv, "--output", str(out)]) == 0
    assert json.loads(out.read_text())["digest"] == first["digest"]


def test_an_import_system_probes_nothing_either() -> None:
    captured = environment.capture("published", "import", REPO)
    assert "image_id" not in captured and captured["backend"] == "import"
