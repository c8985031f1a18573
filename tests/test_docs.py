"""Every page of the documentation (README.md, docs/, config/README.md and the other READMEs)
says what is true of the repository:

- each test a page names (the fault and bad-input tables name the test that proves each row)
  exists;
- each link to a file or folder resolves, and each link to a heading (``page.md#anchor``,
  ``#anchor``) names a heading of that page, as GitHub makes its anchors;
- each ``python -m scripts <verb>`` names a verb of the command line (scripts/__main__.py
  ``VERBS``), and each ``python -m scripts.<module>`` names a module that runs as a command.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from scripts.__main__ import VERBS
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


def doc_pages() -> list[Path]:
    """README.md and every Markdown page under the folders that hold documentation (not
    results/ or data/: those are outputs)."""
    pages = set(REPO.glob("*.md"))
    for folder in ("docs", "config", "envs", "bench", "rules", "report", "profiles", "tests"):
        pages |= set((REPO / folder).rglob("*.md"))
    return sorted(pages)


DOC_PAGES = doc_pages()
IDS = [str(p.relative_to(REPO)) for p in DOC_PAGES]


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


def prose_and_code(text: str) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """(line number, line) of the text outside fenced code blocks, and of the text in them."""
    prose: list[tuple[int, str]] = []
    code: list[tuple[int, str]] = []
    fence = None
    for n, line in enumerate(text.splitlines(), 1):
        stripped = line.lstrip()
        if fence is None and stripped.startswith(("```", "~~~")):
            fence = stripped[:3]
        elif fence is not None and stripped.startswith(fence):
            fence = None
        else:
            (prose if fence is None else code).append((n, line))
    return prose, code


_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")
_LINK_TEXT = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_HTML_ID = re.compile(r"""<a\s+(?:id|name)=["']([^"']+)["']""")


def anchors(text: str) -> set[str]:
    """The anchors GitHub makes for a page's headings (lower case, punctuation dropped, spaces
    to hyphens, ``-1``, ``-2``... after a repeated one), and its ``<a id=...>``s."""
    found: set[str] = set(_HTML_ID.findall(text))
    seen: dict[str, int] = {}
    for _, line in prose_and_code(text)[0]:
        m = _HEADING.match(line)
        if not m:
            continue
        title = _LINK_TEXT.sub(r"\1", m.group(1)).strip().lower()
        slug = re.sub(r"[^\w\- ]", "", title).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        found.add(slug if n == 0 else f"{slug}-{n}")
    return found


_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^\s*\[[^\]]+\]:\s*(\S+)", re.M)


def broken_links(page: Path, root: Path = REPO) -> list[str]:
    """Each link of ``page`` (outside code blocks) to a file, folder or anchor that is not
    there, as ``page:line: target (why)``, the page named relative to ``root``."""
    text = page.read_text()
    bad = []
    for n, line in prose_and_code(text)[0]:
        targets = _LINK.findall(line) + _REFERENCE.findall(line)
        for target in targets:
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:...
                continue
            path_part, _, anchor = target.partition("#")
            path = (page.parent / path_part).resolve() if path_part else page
            where = f"{page.relative_to(root)}:{n}: {target}"
            if not path.exists():
                bad.append(f"{where} (no such file)")
            elif root not in path.parents and path != root:
                bad.append(f"{where} (outside the repository)")
            elif anchor and path.suffix == ".md" and anchor not in anchors(path.read_text()):
                bad.append(f"{where} (no heading with that anchor)")
    return bad


_VERB = re.compile(r"python3? -m scripts\s+([^\s`'\"]+)")
_MODULE = re.compile(r"-m (scripts(?:\.[\w<>]+)+)")


def runnable_modules() -> set[str]:
    """The ``scripts.*`` modules that do something when run with ``python -m``: a module with
    an ``if __name__ == "__main__":`` block, or a package with a ``__main__.py``."""
    found = set()
    for path in (REPO / "scripts").rglob("*.py"):
        name = ".".join(path.relative_to(REPO).with_suffix("").parts)
        if path.name == "__main__.py":
            found.add(name.removesuffix(".__main__"))
        elif '__name__ == "__main__"' in path.read_text():
            found.add(name)
    return found


def wrong_commands(page: Path, runnable: set[str], root: Path = REPO) -> list[str]:
    """Each ``python -m scripts <verb>`` whose verb is not in VERBS, and each
    ``-m scripts.<module>`` that names no runnable module; ``<...>`` stands for any."""
    bad = []
    for n, line in enumerate(page.read_text().splitlines(), 1):
        where = f"{page.relative_to(root)}:{n}"
        for verb in _VERB.findall(line):
            if verb.startswith(("<", "-", "{")) or verb in VERBS:
                continue
            bad.append(f"{where}: python -m scripts {verb} (no such verb)")
        for module in _MODULE.findall(line):
            if "<" in module or module in runnable:
                continue
            bad.append(f"{where}: python -m {module} (no module that runs as a command)")
    return bad


_CODE_PATH = re.compile(r"`((?:scripts|tests|bench|rules)/[\w./-]*)[^`]*`")
# pages that may name code that is gone: a record of past measurements names the code it measured
HISTORY = {"docs/PERFORMANCE.md"}


def missing_code_paths(page: Path, root: Path = REPO) -> list[str]:
    """Each backticked path under scripts/, tests/, bench/ or rules/ that is not there
    (``tests/test_x.py::test_y`` and ``path:line`` name the file; ``<...>`` stands for any)."""
    bad = []
    for n, line in enumerate(page.read_text().splitlines(), 1):
        for m in _CODE_PATH.finditer(line):
            if "<" in m.group(0) or "*" in m.group(0) or "{" in m.group(0):
                continue
            if not (root / m.group(1)).exists():
                bad.append(f"{page.relative_to(root)}:{n}: {m.group(1)}")
    return bad


CURRENT = [(p, i) for p, i in zip(DOC_PAGES, IDS, strict=True) if i not in HISTORY]


@pytest.mark.parametrize("page", [p for p, _ in CURRENT], ids=[i for _, i in CURRENT])
def test_every_code_path_a_page_names_exists(page: Path) -> None:
    bad = missing_code_paths(page)
    assert not bad, "paths that are not in the repository:\n" + "\n".join(bad)


@pytest.mark.parametrize("page", DOC_PAGES, ids=IDS)
def test_every_link_of_a_page_resolves(page: Path) -> None:
    bad = broken_links(page)
    assert not bad, "links to nothing:\n" + "\n".join(bad)


@pytest.mark.parametrize("page", DOC_PAGES, ids=IDS)
def test_every_command_a_page_names_exists(page: Path) -> None:
    bad = wrong_commands(page, runnable_modules())
    assert not bad, f"commands that do not exist (verbs: {', '.join(VERBS)}):\n" + "\n".join(bad)


def test_config_readme_says_what_every_file_under_config_is() -> None:
    """config/README.md (what the Snakemake workflow catalog shows of the configuration) names
    each file under config/, by its path or a pattern (``mlperf-v<round>.yaml``)."""
    text = (REPO / "config" / "README.md").read_text()
    patterns = [
        re.compile("[^/]+".join(map(re.escape, re.split(r"<[^>]+>", named))))
        for named in re.findall(r"`(config/[^`\s]+)`", text)
    ]
    files = [
        str(p.relative_to(REPO))
        for p in sorted((REPO / "config").rglob("*"))
        if p.is_file() and p.name != "README.md"
    ]
    unnamed = [f for f in files if not any(pattern.fullmatch(f) for pattern in patterns)]
    assert files and not unnamed, f"config/README.md does not say what these are: {unnamed}"


def test_the_pages_include_the_readmes_a_newcomer_opens() -> None:
    names = set(IDS)
    assert {"README.md", "config/README.md", "docs/ARCHITECTURE.md", "docs/development.md"} <= names


def test_the_link_and_command_checks_find_what_they_look_for(tmp_path: Path) -> None:
    """On a made-up page: a heading's anchor, a link into a code block (ignored), a missing
    file, a missing anchor, an unknown verb and a module that does not run."""
    (tmp_path / "README.md").write_text("# Read me\n")
    (tmp_path / "docs").mkdir()
    page = tmp_path / "docs" / "x.md"  # a page's links are relative to its folder
    text = (
        "# The `one` page: a title\n\n## Again\n\n## Again\n\n"
        "[ok](#the-one-page-a-title) [ok](#again-1) [ok](../README.md) [web](https://x.org/y)\n"
        "[gone](nothing.md) [no anchor](#nowhere)\n"
        "```\n# not a heading\n[in code](nothing-either.md)\npython -m scripts statuss\n```\n"
        "`python -m scripts status`, `python -m scripts <verb>`, `python -m scripts.no.such`\n"
    )
    assert anchors(text) == {"the-one-page-a-title", "again", "again-1"}
    page.write_text(text)
    assert broken_links(page, tmp_path) == [
        "docs/x.md:8: nothing.md (no such file)",
        "docs/x.md:8: #nowhere (no heading with that anchor)",
    ]
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "here.py").touch()
    page.write_text(
        "`scripts/here.py:12`, `scripts/<package>/x.py`, `scripts/gone.py`, "
        "`tests/test_x.py::test_y`\n"
    )
    assert missing_code_paths(page, tmp_path) == [
        "docs/x.md:1: scripts/gone.py",
        "docs/x.md:1: tests/test_x.py",
    ]
    page.write_text(text)
    assert wrong_commands(page, {"scripts.core.config"}, tmp_path) == [
        "docs/x.md:12: python -m scripts statuss (no such verb)",
        "docs/x.md:14: python -m scripts.no.such (no module that runs as a command)",
    ]
