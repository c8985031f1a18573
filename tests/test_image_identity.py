"""What identifies an image (docs/containers.md, "What identifies an image"): its build inputs'
content digests, named by their path in the build context. A Python source counts by its
tokens without comments (scripts/run/backends/python_tokens.py), so the embedded benchmark's
code can move to another host folder and be tidied (comments, a formatter) without another
image, while any real change is another image; an image built before these rules keeps the
identity it was built with while its files are unchanged (commit ef74108 computes it here)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts.campaign.comparability import comparability
from scripts.campaign.config_checks import load_campaign
from scripts.core.config import ConfigError
from scripts.run.backends import docker, input_digests
from scripts.run.backends import image as images
from scripts.run.backends.python_tokens import python_tokens_sha256
from tests.conftest import REPO
from tests.test_formats_workflow import old_workflow

# main before the package move: the last workflow that identified images by their bytes
BEFORE_CONTENT_DIGESTS = "ef74108"

# ---------------------------------------------------------------------------------------------
# A Python source's digest


def digest(source: str) -> str | None:
    return python_tokens_sha256(source.encode())


SAME = [  # (source, the same program tidied)
    ("x = 1\n", "# a comment\nx = 1  # another\n\n\n"),
    ("x = 1 + 2\n", "x = 1 + \\\n    2\n"),
    ("if a:\n    b()\n", "if a:\n  b()\n"),
    ("f(a, b)\n", "f(\n    a,\n    b,\n)\n"),
    ("def f(a, b):\n    pass\n", "def f(\n    a,\n    b,\n):\n    pass\n"),
    ("x = [1]\n", "x = [1,]\n"),
    ("x = {1: 2}\n", "x = {\n    1: 2,\n}\n"),
    ("x = (1, 2)\n", "x = (1, 2,)\n"),
    ("x[a, b]\n", "x[a, b,]\n"),
    ("x = a, b\n", "x = (\n    a,\n    b,\n)\n"),
    ("def f():\n    return a + b\n", "def f():\n    return (\n        a + b\n    )\n"),
    ("def g():\n    yield a, b\n", "def g():\n    yield (a, b)\n"),
    ("from m import a, b\n", "from m import (\n    a,\n    b,\n)\n"),
    ("with a as b, c as d:\n    pass\n", "with (\n    a as b,\n    c as d,\n):\n    pass\n"),
    ("if a and b:\n    pass\n", "if (\n    a\n    and b\n):\n    pass\n"),
    ("x = 'a'\n", 'x = "a"\n'),
    ("x = '\\x61'\n", 'x = "a"\n'),
    ("x = r'\\d'\n", 'x = "\\\\d"\n'),
    ("def f():\n    '''Doc.'''\n", 'def f():\n    """Doc."""\n'),
]

DIFFERENT = [  # (source, another program); the last ones are the same program, taken as not
    ("x = (a,)\n", "x = (a)\n"),  # a tuple
    ("x = a,\n", "x = a\n"),
    ("x[a,]\n", "x[a]\n"),  # a subscript by a tuple
    ("x[a:b,]\n", "x[a:b]\n"),
    ("print((a,))\n", "print((a))\n"),
    ("y = (lambda a, b: 1,)\n", "y = (lambda a, b: 1)\n"),  # a tuple of a lambda
    ("match x:\n    case (a,):\n        pass\n", "match x:\n    case (a):\n        pass\n"),
    ("try:\n    pass\nexcept (A,):\n    pass\n", "try:\n    pass\nexcept A:\n    pass\n"),
    ("if a:\n    b()\nc()\n", "if a:\n    b()\n    c()\n"),  # a statement into a block
    ("x = -a ** b\n", "x = (-a) ** b\n"),
    ("x = (a + b) * c\n", "x = a + b * c\n"),
    ("x = 1\n", "x = 2\n"),
    ("x = y\n", "x = z\n"),
    ("x = 'a'\n", "x = b'a'\n"),
    ("x = 'a'\n", "x = 'a '\n"),
    ("def f():\n    '''Doc.'''\n", "def f():\n    '''Doc!'''\n"),
    ("#!/usr/bin/env python3\nx = 1\n", "#!/usr/bin/python2\nx = 1\n"),
    ("x = 'a'\n", "x = f'a'\n"),  # an f-string counts by its source
    ("x = f'{a}'\n", 'x = f"{a}"\n'),
    ("type(a,)\n", "type(a)\n"),  # a soft keyword
    ("for (a, b) in c:\n    pass\n", "for a, b in c:\n    pass\n"),
]


@pytest.mark.parametrize(("source", "tidied"), SAME)
def test_a_python_sources_digest_does_not_change_when_it_is_tidied(
    source: str, tidied: str
) -> None:
    compile(source, "a", "exec"), compile(tidied, "b", "exec")  # both are Python
    assert digest(source) is not None and digest(source) == digest(tidied)


@pytest.mark.parametrize(("source", "other"), DIFFERENT)
def test_a_python_sources_digest_changes_with_what_the_code_says(source: str, other: str) -> None:
    compile(source, "a", "exec"), compile(other, "b", "exec")
    assert digest(source) != digest(other)


SAMPLE = '''#!/usr/bin/env python3
"""A sample of what the digest reads."""
import os  # a comment
from a import (b, c,)

def f(x, *, y=(1, 2), **kw) -> dict[str, int]:
    if (x and y):
        return {f"{k!r:>{w}}": v for k, v in kw.items() if v}
    match x:
        case [a, *rest] if a > 0:
            pass
        case _:
            type(x,)
    with (open(x) as g, open(y) as h,):
        yield (g, h)
    return b"\\x00" + r'\\d' + 'caf\\u00e9' + f"""{x=}""" f'{f"{y}"}'
'''
# computed on Python 3.11, 3.12 and 3.13 (3.12 tokenizes f-strings differently): a change of
# this value changes every image's identity and stops every finished container campaign
SAMPLE_DIGEST = "caf5df9a047d9ab09908fdd60f0a83cd36f42a475f3aa08b78b4124923331078"


def test_the_python_digest_is_the_same_on_every_python_version() -> None:
    assert digest(SAMPLE) == SAMPLE_DIGEST
    module = REPO / "scripts/run/backends/python_tokens.py"  # stdlib only: any Python loads it
    script = (
        "import importlib.util, sys; "
        f"s = importlib.util.spec_from_file_location('t', {str(module)!r}); "
        "m = importlib.util.module_from_spec(s); s.loader.exec_module(m); "
        "print(m.python_tokens_sha256(sys.stdin.buffer.read()))"
    )
    for name in ("python3.12", "python3.13", "python3.14"):  # those this machine has
        other = shutil.which(name)
        if not other or subprocess.run([other, "-c", "pass"], capture_output=True).returncode:
            continue  # none, or a shim of a version that is not installed
        out = subprocess.run(
            [other, "-c", script], input=SAMPLE.encode(), capture_output=True, check=True
        )
        assert out.stdout.decode().strip() == SAMPLE_DIGEST, name


def test_a_file_is_identified_by_its_bytes_unless_it_is_python_and_its_mode_counts(
    tmp_path: Path,
) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("x = '''never closed\n")
    assert python_tokens_sha256(broken.read_bytes()) is None
    assert input_digests.file_digest(broken).startswith("sha256:")
    script = tmp_path / "run.sh"
    script.write_text("echo hi\n")
    plain = input_digests.file_digest(script)
    assert plain.startswith("sha256:") and not plain.endswith("+x")
    script.chmod(0o755)
    assert input_digests.file_digest(script) == plain + "+x"
    script.write_text("echo  hi\n")  # a shell script counts by its bytes
    assert input_digests.file_digest(script) != plain + "+x"


def test_pip_reads_the_same_requirements_whatever_their_comments(tmp_path: Path) -> None:
    assert input_digests.pip_lines(
        "# the trainer\ntorch==2.13.0  # CPU build\n\n  numpy==2.4.6\nurl#egg=x\n"
        "sacrebleu==2.6.0 \\\n    --hash=sha256:00\n"
    ) == ["torch==2.13.0", "numpy==2.4.6", "url#egg=x", "sacrebleu==2.6.0     --hash=sha256:00"]
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("torch==2.13.0\nnumpy==2.4.6\n")
    b.write_text("# pins\ntorch==2.13.0   # the CPU build\n\nnumpy==2.4.6\n")
    assert input_digests.requirements_digest(a) == input_digests.requirements_digest(b)
    b.write_text("torch==2.13.1\nnumpy==2.4.6\n")
    assert input_digests.requirements_digest(a) != input_digests.requirements_digest(b)


# ---------------------------------------------------------------------------------------------
# The embedded benchmark's image, in a copy of the workflow


def workflow(tmp_path: Path) -> Path:
    """The parts of the workflow an image of the embedded benchmark is made from."""
    wf = tmp_path / "wf"
    for part in ("config", "envs", "scripts/__init__.py", "scripts/gnmt", "requirements.txt"):
        src, dest = REPO / part, wf / part
        dest.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest)
    return wf


def docker_cpu(tmp_path: Path, context: list[Any] | None = None) -> dict[str, Any]:
    overlay: dict[str, Any] = {"campaign": {"systems": ["docker-cpu"]}}
    if context is not None:
        container = {"context": context}
        overlay["benchmarks"] = {"gnmt": {"implementation": {"container": container}}}
    path = tmp_path / "overlay.yaml"
    path.write_text(yaml.safe_dump(overlay))
    return load_campaign([REPO / "config/systems/docker-cpu.yaml", path])


def test_the_embedded_benchmark_moved_and_tidied_is_the_same_image_and_a_change_is_not(
    tmp_path: Path,
) -> None:
    wf = workflow(tmp_path)
    before = images.image_spec(docker_cpu(tmp_path), "gnmt", "docker-cpu", wf, tmp_path)
    assert before.inputs["inputs_version"] == images.INPUTS_VERSION
    assert before.inputs["files"]["scripts/gnmt/model.py"].startswith("python-tokens:")
    stamp = tmp_path / "image.json"
    stamp.write_text(
        json.dumps(
            {
                "format_version": 1,
                "image_id": "sha256:1",
                "inputs": before.inputs,
                "inputs_sha256": before.inputs_sha256,
            }
        )
    )
    # moved: the trainer's code in another host folder, at the same place in the image
    (wf / "benchmarks").mkdir()
    (wf / "scripts/gnmt").rename(wf / "benchmarks/gnmt")
    moved = [
        "scripts/__init__.py",
        {"from": "benchmarks/gnmt", "to": "scripts/gnmt"},
    ]
    # tidied: formatted at another line length, and comments added
    subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--quiet", "--no-cache", "--line-length", "60"]
        + [str(wf / "benchmarks/gnmt")],
        check=True,
    )
    model = wf / "benchmarks/gnmt/model.py"
    tidied = model.read_text().replace("\ndef ", "\n# tidied\n\n\ndef ")
    assert tidied != (REPO / "scripts/gnmt/model.py").read_text()
    model.write_text(tidied)
    config = docker_cpu(tmp_path, moved)
    after = images.image_spec(config, "gnmt", "docker-cpu", wf, tmp_path)
    assert after.inputs == before.inputs and after.inputs_sha256 == before.inputs_sha256
    assert docker.stale_reason(stamp, after, check_engine=False) is None
    wheels = tmp_path / "build/gnmt/wheels"  # (what fetch_wheels downloads)
    wheels.mkdir(parents=True)
    (wheels / "torch-2.13.0-py3-none-any.whl").write_bytes(b"")
    images.stage_context(after, tmp_path / "context")  # the image gets it where it was
    assert (tmp_path / "context/scripts/gnmt/model.py").read_text() == tidied

    # a real change: another image, named by its path in the image
    model.write_text(tidied.replace("dropout", "dropout * 2", 1))
    changed = images.image_spec(config, "gnmt", "docker-cpu", wf, tmp_path)
    assert changed.inputs_sha256 != before.inputs_sha256
    why = docker.stale_reason(stamp, changed, check_engine=False)
    assert why is not None and "files.scripts/gnmt/model.py: " in why
    assert "benchmarks/gnmt" not in why


def test_a_context_entry_goes_to_a_path_inside_the_build_context(tmp_path: Path) -> None:
    wf = workflow(tmp_path)
    for to in ("../gnmt", "/abs/gnmt", "."):
        config = docker_cpu(tmp_path, [{"from": "scripts/gnmt", "to": to}])
        with pytest.raises(ConfigError, match="is not a path inside the build context"):
            images.image_spec(config, "gnmt", "docker-cpu", wf, tmp_path)
    with pytest.raises(ConfigError, match=r"context\.0"):
        docker_cpu(tmp_path, [{"from": "scripts/gnmt"}])


# ---------------------------------------------------------------------------------------------
# Images built before these rules


def old_records(tmp_path: Path) -> dict[str, Any]:
    """What the workflow at BEFORE_CONTENT_DIGESTS computes for gnmt on docker-cpu: the run's
    comparability record and the stamp's inputs."""
    old = old_workflow(tmp_path / "old", BEFORE_CONTENT_DIGESTS)
    # its files as they are now (an image keeps its identity while they do): requirements.txt
    # has gained pins since, which an old image's plain sha256 of the file cannot leave out
    shutil.copy2(REPO / "requirements.txt", old / "requirements.txt")
    script = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from scripts import formats, plan\n"
        "from scripts.backends import image as images\n"
        "config = plan.load_campaign(['config/systems/docker-cpu.yaml'])\n"
        "spec = images.image_spec(config, 'gnmt', 'docker-cpu', Path.cwd())\n"
        "stamp = formats.stamped('image.json', {'image_id': 'sha256:old',\n"
        "    'inputs': spec.inputs, 'inputs_sha256': spec.inputs_sha256})\n"
        "print(json.dumps({'record': plan.comparability(config, 'gnmt', 'docker-cpu'),\n"
        "    'stamp': stamp}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(old)}
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=old, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout))


def test_an_image_built_before_content_digests_keeps_its_identity_while_its_files_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = old_records(tmp_path)
    assert "inputs_version" not in old["stamp"]["inputs"]
    config = load_campaign([REPO / "config/systems/docker-cpu.yaml"])
    campaign = tmp_path / "campaign"
    stamp = campaign / "results/gnmt/docker-cpu/image.json"
    stamp.parent.mkdir(parents=True)
    monkeypatch.chdir(campaign)
    # before the image is built, a campaign is identified by the content digests
    fresh = comparability(config, "gnmt", "docker-cpu")
    assert fresh["container"]["image"]["inputs_version"] == images.INPUTS_VERSION
    assert fresh != old["record"]
    # the old image's stamp: its runs' records compare equal, the image is not rebuilt
    stamp.write_text(json.dumps(old["stamp"], indent=2))
    assert comparability(config, "gnmt", "docker-cpu") == old["record"]
    spec = images.image_spec(config, "gnmt", "docker-cpu", REPO, campaign)
    assert spec.legacy_inputs_sha256 == old["stamp"]["inputs_sha256"]
    assert docker.stale_reason(stamp, spec, check_engine=False) is None

    # its files moved on the host: still the same image
    wf = workflow(tmp_path)
    (wf / "scripts/gnmt").rename(wf / "gnmt")
    moved = docker_cpu(tmp_path, ["scripts/__init__.py", {"from": "gnmt", "to": "scripts/gnmt"}])
    spec = images.image_spec(moved, "gnmt", "docker-cpu", wf, campaign)
    assert docker.stale_reason(stamp, spec, check_engine=False) is None
    # tidied: its stamp has no content digests to show that it is the same code, so it is
    # another image (rebuilt, or, with finished runs, the workflow stops and names the file)
    model = wf / "gnmt/model.py"
    model.write_text(model.read_text() + "# tidied\n")
    spec = images.image_spec(moved, "gnmt", "docker-cpu", wf, campaign)
    why = docker.stale_reason(stamp, spec, check_engine=False)
    assert why is not None and "files.scripts/gnmt/model.py: " in why


def test_an_unreadable_stamp_leaves_the_identity_to_the_content_digests(
    tmp_path: Path,
) -> None:
    config = docker_cpu(tmp_path)
    spec = images.image_spec(config, "gnmt", "docker-cpu", REPO, tmp_path)
    stamp = tmp_path / "image.json"
    for text in ("{half", json.dumps({"format_version": 99}), "[]"):
        stamp.write_text(text)
        assert images.recorded_identity(spec, stamp) == (spec.inputs, spec.inputs_sha256)
    assert images.recorded_identity(spec, tmp_path / "none.json")[1] == spec.inputs_sha256


def test_a_host_only_pin_in_requirements_txt_is_not_part_of_an_image_s_identity(
    tmp_path: Path,
) -> None:
    """requirements.txt is the constraints file of every image's wheels; a pin of a package
    only the host imports (nvidia-ml-py, the runner's NVML source) leaves the identity of
    every built image as it was, and any other pin changes it."""
    from scripts.run.backends.input_digests import (
        HOST_ONLY_PACKAGES,
        constraints_digest,
        requirements_digest,
    )

    assert HOST_ONLY_PACKAGES == {"nvidia-ml-py"}
    current = (REPO / "requirements.txt").read_text()
    assert "\nnvidia-ml-py==" in current
    without = tmp_path / "without.txt"
    without.write_text(
        "".join(line for line in current.splitlines(True) if "nvidia-ml-py" not in line)
    )
    assert constraints_digest(REPO / "requirements.txt") == requirements_digest(without)
    assert requirements_digest(REPO / "requirements.txt") != requirements_digest(without)
    for spelling in ("nvidia_ml_py==1.0", "NVIDIA-ML-PY >= 1", "nvidia.ml.py==2  # why"):
        other = tmp_path / "other.txt"
        other.write_text(without.read_text() + spelling + "\n")
        assert constraints_digest(other) == requirements_digest(without), spelling
    other.write_text(without.read_text() + "nvidia-ml-py3==7.352.0\n")  # another package
    assert constraints_digest(other) != requirements_digest(without)
