"""scripts/mlperf/fast_checker.py: the compliance checker with its two hot spots replaced gives the
same verdicts, messages and parses as mlperf-logging's own code."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st
from mlperf_logging.compliance_checker import mlp_parser

from scripts.mlperf import fast_checker
from scripts.run.published.tree import detect_round
from tests.conftest import REPO, need_fixtures

PARSER_DIR = Path(mlp_parser.__file__).parent


def pristine(module: str) -> Any:
    """A fresh, unpatched copy of one of mlperf-logging's parser modules."""
    spec = importlib.util.spec_from_file_location(f"pristine_{module}", PARSER_DIR / f"{module}.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


ORIGINAL_500 = pristine("ruleset_500")
ORIGINAL_060 = pristine("ruleset_060")


def text_lines(text: str) -> list[str]:
    """The lines a text file of ``text`` gives when read as the parser reads it (latin-1,
    universal newlines)."""
    return list(io.TextIOWrapper(io.BytesIO(text.encode("latin-1")), encoding="latin-1"))


PIECES = st.sampled_from([":::MLLOG ", ":::MLL", ":::MLLOG", "x", " ", "{}", "\n", "\r", "\r\n"])
LINES = st.lists(st.one_of(PIECES, st.text(alphabet="ab:{} \x85\t", max_size=5)), max_size=30)


@settings(derandomize=True, max_examples=300, deadline=None)
@given(LINES)
@example([":::MLLOG a :::MLLOG b\n", "junk :::MLLOG c\r", ":::MLLOG "])
def test_strip_and_dedup_is_the_parsers_own(pieces: list[str]) -> None:
    lines = text_lines("".join(pieces))
    for original, token in ((ORIGINAL_500, ":::MLLOG "), (ORIGINAL_060, ":::MLL")):
        assert fast_checker.fast_strip_and_dedup(token)(lines) == original.strip_and_dedup(lines)
    # a line with a newline inside (never read from a file) takes the original's path
    odd = ["a :::MLLOG b\nc :::MLLOG d\n"]
    assert fast_checker.fast_strip_and_dedup(":::MLLOG ")(odd) == ORIGINAL_500.strip_and_dedup(odd)


def test_cached_rule_files_equal_a_fresh_parse_and_are_copies() -> None:
    cached = fast_checker._CachedYaml()
    path = PARSER_DIR.parent / "training_5.0.0" / "common.yaml"
    with path.open() as f:
        first = cached.load(f, Loader=yaml.BaseLoader)
    with path.open() as f:
        assert first == yaml.load(f, Loader=yaml.BaseLoader)  # noqa: S506
    first.append("changed by a check")
    with path.open() as f:
        assert cached.load(f, Loader=yaml.BaseLoader)[-1] != "changed by a check"


def published_logs() -> list[Path]:
    """Every published log the tests carry: NVIDIA's v5.0 and v0.6 logs and the mlperf-more
    folders (offline Stable Diffusion, power BERT, datestamped names)."""
    root = need_fixtures()
    logs = sorted((root / "mlperf-v5.0-nvidia").rglob("result_*.txt"))
    logs += sorted((root / "mlperf-more").rglob("result_*.txt"))
    logs += sorted((root / "mlperf-v0.6-nvidia").rglob("result_*.txt"))[:4]
    return [p for p in logs if p.is_file() and "power" not in p.parts]


CHECK = """
import json, sys
from scripts.mlperf import compliance, fast_checker
if sys.argv[1] == "unpatched":
    fast_checker.install = lambda module: None  # mlperf-logging's checker as it ships
out = [compliance._run_checker(p, "training", r) for p, r in json.loads(sys.stdin.read())]
print(json.dumps(out))
"""


def test_verdicts_and_messages_equal_the_unpatched_checkers(tmp_path: Path) -> None:
    jobs: list[tuple[str, str]] = []
    for log in published_logs():
        round_ = "0.6" if "v0.6" in str(log) else "5.0"
        if "training_results_v" in str(log):
            round_ = detect_round(log)
        jobs.append((str(log), f"{round_}.0"))
    # logs that fail: a missing key, a parse error, no MLPerf line at all
    good = Path(jobs[0][0]).read_text(encoding="latin-1")
    bad = {
        "no_run_stop.txt": "".join(x for x in good.splitlines(True) if '"run_stop"' not in x),
        "parse_error.txt": good + ':::MLLOG {"key": broken\n',
        "empty.txt": "no events\n",
    }
    for name, text in bad.items():
        (tmp_path / name).write_text(text, encoding="latin-1")
        jobs.append((str(tmp_path / name), "5.0.0"))
    # both in a child with one hash seed: the checker's "(+N more)" count of an invalid log
    # varies with the seed (it ships so: 13 or 14 for a log without events)
    env = {**os.environ, "PYTHONHASHSEED": "0"}

    def verdicts(mode: str) -> list[tuple[bool, str]]:
        proc = subprocess.run(
            [sys.executable, "-c", CHECK, mode], input=json.dumps(jobs), cwd=REPO, env=env,
            capture_output=True, text=True, timeout=600, check=True,
        )  # fmt: skip
        return [tuple(x) for x in json.loads(proc.stdout)]

    unpatched, patched = verdicts("unpatched"), verdicts("patched")
    assert patched == unpatched
    assert sum(ok for ok, _ in patched) >= len(jobs) - 4  # most published logs pass
