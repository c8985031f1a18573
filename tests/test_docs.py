"""The README and the pages under docs/ name the tests that prove each fault and bad input:
every one must exist."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.conftest import REPO

# `tests/test_x.py::test_name`, `tests/test_x.py::test_name[param]`; a following `::other` in the
# same table cell is a test of the same file
_FULL = re.compile(r"tests/(test_[a-z0-9_]+\.py)::([A-Za-z0-9_]+)")
_SHORT = re.compile(r"(?<![\w/.])::([A-Za-z_][A-Za-z0-9_]*)")


def _test_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test")
    }


def referenced_tests(text: str) -> list[tuple[str, str]]:
    """(file, test) of every test the text names; a bare ``::name`` belongs to the file named
    last before it on the same line."""
    found = []
    for line in text.splitlines():
        current = None
        pos = 0
        while True:
            full = _FULL.search(line, pos)
            short = _SHORT.search(line, pos)
            if full is None and short is None:
                break
            if full is not None and (short is None or full.start() <= short.start()):
                current = full.group(1)
                found.append((current, full.group(2)))
                pos = full.end()
            else:
                assert short is not None
                if current is not None:
                    found.append((current, short.group(1)))
                pos = short.end()
    return found


DOC_PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def test_every_test_the_readme_names_exists() -> None:
    refs = [ref for page in DOC_PAGES for ref in referenced_tests(page.read_text())]
    assert len(refs) > 100  # the fault and bad-input tables (docs/bad-inputs.md)
    missing = []
    names: dict[str, set[str]] = {}
    for file, test in refs:
        path = REPO / "tests" / file
        if file not in names:
            names[file] = _test_names(path) if path.exists() else set()
        if test not in names[file]:
            missing.append(f"tests/{file}::{test}")
    assert not missing, f"the README names tests that do not exist: {sorted(set(missing))}"


def test_the_reference_parser_reads_short_names_against_the_last_file() -> None:
    refs = referenced_tests("`tests/test_a.py::test_x[p]`, `::test_y`; `tests/test_b.py::test_z`")
    assert refs == [("test_a.py", "test_x"), ("test_a.py", "test_y"), ("test_b.py", "test_z")]
