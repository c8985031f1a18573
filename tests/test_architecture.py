"""The shape of the code under scripts/, checked by reading it (ast), without importing it.

- **Layers.** The packages under ``scripts/`` are layers, bottom first (:data:`LAYERS`):
  ``core < data < mlperf < run < campaign < analysis < submission < workflow``;
  ``scripts/__main__.py``, the command line, sits above them all. A module imports only from
  its own package or a package below it. ``scripts/gnmt/``, the embedded benchmark, is
  outside the layers: it imports only ``scripts.gnmt``, and no layer imports it. A failure
  names the module, the line and the package it reaches up to.
- **No import cycle** among the ``scripts.*`` modules. Every import counts: the ones inside
  functions (a function-level import that closes a cycle only hides it) and the ones under
  ``if TYPE_CHECKING:`` (a cycle of types is a cycle of concepts, and it breaks the day the
  annotation is evaluated). A failure names the cycle's path.
- **No module over 500 lines** (:data:`MAX_MODULE_LINES`): split it by concept. Exempt: the
  embedded benchmark (:data:`FINGERPRINTED`, below) and the generated data tables named in
  :data:`LONG_MODULES`, each with its reason.
- **The layer table of docs/ARCHITECTURE.md is true**: one row per package in layer order, its
  modules exactly those on disk, and the packages it imports from exactly those its modules
  import. A failure names the row and what differs.
- **No import inside a function without a reason.** An import statement in a function (a
  lazy import, e.g. for start-up speed: ``rules/common.smk`` imports many modules at every
  workflow load) needs a comment on its line or on the line above; the imports of a block
  directly under such a comment share it::

      # lazy: requests loads only when a download runs
      import requests
      import urllib3

- **No function over 60 lines without a reason.** A function or method longer than
  :data:`MAX_LINES` lines (from its ``def`` line to its last line, docstring included) must
  carry a ``# long: <why>`` comment in its head: on the ``def`` line, its signature, its
  docstring's lines or the line of its first statement::

      def main(argv):  # long: one option per line of the command line; nothing to split

  The embedded benchmark's code (:data:`FINGERPRINTED`) is exempt from this rule and the
  module size: it is copied into the benchmark's image and its bytes are in every container
  run's fingerprint, so an edit (even a comment) stops every finished docker or podman
  campaign as incomparable.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import NamedTuple

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
ARCHITECTURE_MD = SCRIPTS.parent / "docs" / "ARCHITECTURE.md"
MAX_LINES = 60
LONG_MARK = "# long:"
MAX_MODULE_LINES = 500
# the implementation of the embedded benchmark (config/benchmarks/gnmt.yaml container.context)
FINGERPRINTED = ("scripts/gnmt/",)
# modules that may be longer than MAX_MODULE_LINES: generated data tables only, each with why
# (a module of logic over the limit holds more than one concept: split it instead)
LONG_MODULES: dict[str, str] = {}

# the layer packages under scripts/, bottom first: each imports only from itself and those before
LAYERS = ("core", "data", "mlperf", "run", "campaign", "analysis", "submission", "workflow")
TOP = "scripts/"  # the command line (scripts/__main__.py), above every layer
OUTSIDE = "scripts/gnmt/"  # the embedded benchmark: imports only itself, imported by none
PACKAGES = (*(f"scripts/{name}/" for name in LAYERS), TOP, OUTSIDE)  # the table's rows, in order


def module_name(path: Path) -> str:
    parts = path.relative_to(SCRIPTS.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(SCRIPTS.rglob("*.py"))}
IDS = [str(p.relative_to(SCRIPTS.parent)) for p in MODULES.values()]


@cache
def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


@cache
def comment_lines(path: Path) -> dict[int, str]:
    """Line number -> the comment on that line."""
    tokens = tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
    return {t.start[0]: t.string for t in tokens if t.type == tokenize.COMMENT}


def all_imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement: at module level, inside functions, under ``if TYPE_CHECKING:``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node


def imported_modules(
    name: str, node: ast.Import | ast.ImportFrom, modules: dict[str, Path] | None = None
) -> set[str]:
    """The ``scripts.*`` modules (of ``modules``, by default those on disk) an import statement
    of module ``name`` loads."""
    modules = MODULES if modules is None else modules
    if isinstance(node, ast.Import):
        return {a.name for a in node.names if a.name in modules}
    base = node.module or ""
    if node.level:  # relative: from the package of ``name``
        package = name.split(".")
        if modules[name].name != "__init__.py":
            package = package[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join([*package, base] if base else package)
    found = {base} if base in modules else set()
    found |= {f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules}
    return found


def import_lines(modules: dict[str, Path] | None = None) -> dict[str, dict[str, int]]:
    """Module -> the ``scripts.*`` modules it imports -> the first line that imports each. The
    package roots' empty ``__init__`` modules (``scripts``, ``scripts.core``...) are left out:
    importing ``scripts.core.config`` loads them, and they hold nothing."""
    modules = MODULES if modules is None else modules
    empty = {m for m, path in modules.items() if path.name == "__init__.py" and is_empty(path)}
    graph: dict[str, dict[str, int]] = {}
    for name, path in modules.items():
        edges: dict[str, int] = {}
        for node in all_imports(parse(path)):
            for target in imported_modules(name, node, modules) - empty - {name}:
                edges[target] = min(edges.get(target, node.lineno), node.lineno)
        graph[name] = edges
    return graph


def import_graph(modules: dict[str, Path] | None = None) -> dict[str, set[str]]:
    return {name: set(edges) for name, edges in import_lines(modules).items()}


def is_empty(path: Path) -> bool:
    return not path.read_text().strip()


def find_cycles(graph: dict[str, set[str]]) -> list[tuple[list[str], set[str]]]:
    """Per strongly connected component of more than one module (Tarjan's algorithm): one
    cycle in it (a path that ends where it starts), and the component's modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [(_cycle_in(graph, c), c) for c in components]


def _cycle_in(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest cycle through the component's first module (breadth-first)."""
    start = min(component)
    paths = {start: [start]}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph[v] & component):
            if w == start:
                return [*paths[v], start]
            if w not in paths:
                paths[w] = [*paths[v], w]
                queue.append(w)
    raise AssertionError(f"no cycle in {component}")  # a component always has one


def row_of(path: Path) -> str:
    """The layer table's row of the module at ``path``: its package's folder under scripts/
    (``scripts/core/``...), or :data:`TOP` for a module directly under scripts/."""
    parts = path.relative_to(SCRIPTS).parts
    return TOP if len(parts) == 1 else f"scripts/{parts[0]}/"


def short(row: str) -> str:
    """A row's name in the table's "imports from" column: ``core``..., ``gnmt``, ``scripts``."""
    return row.rstrip("/").split("/")[-1]


ROWS = {name: row_of(path) for name, path in MODULES.items()}
RANK = {row: i for i, row in enumerate(PACKAGES) if row != OUTSIDE}  # TOP is above the layers


def layer_problems(lines: dict[str, dict[str, int]], rows: dict[str, str]) -> list[str]:
    """Every import (``lines``: module -> imported module -> line) that breaks the layers, and
    every module that is in no layer (``rows``: module -> its row)."""
    bad = [
        f"{m} is in {rows[m]}, which is not a layer (LAYERS: {', '.join(LAYERS)})"
        for m in sorted(lines)
        if rows[m] not in RANK and rows[m] != OUTSIDE
    ]
    for module, edges in sorted(lines.items()):
        a = rows[module]
        for target, line in sorted(edges.items()):
            b = rows[target]
            where = f"{module}:{line} imports {target}"
            if OUTSIDE in (a, b) and a != b:
                bad.append(
                    f"{where}: the embedded benchmark ({OUTSIDE}) imports only itself and no "
                    "layer imports it"
                )
            elif a in RANK and b in RANK and RANK[b] > RANK[a]:
                bad.append(f"{where}: {short(b)} is a layer above {short(a)}")
    return bad


class Row(NamedTuple):
    line: int  # in the page
    layer: str
    package: str
    modules: frozenset[str]
    imports: frozenset[str]


TABLE_HEADER = "| layer | package | what it holds | modules | imports from |"
_TICKED = re.compile(r"`([^`]+)`")


def parse_layer_table(text: str) -> list[Row]:
    """The rows of the table under :data:`TABLE_HEADER`. Only the backticked words of a cell
    count: ``modules`` holds module names relative to the package (``backends.base``), each
    with a gloss in parentheses (which may hold code: it is skipped); ``imports from`` holds
    package names (``core``)."""
    lines = text.splitlines()
    if TABLE_HEADER not in lines:
        return []
    rows = []
    for n, line in enumerate(lines[lines.index(TABLE_HEADER) + 2 :], lines.index(TABLE_HEADER) + 3):
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 5:
            rows.append(
                Row(n, "?", f"(a row of {len(cells)} cells, not 5)", frozenset(), frozenset())
            )
            continue
        layer, package, _, modules, imports = cells
        rows.append(
            Row(
                n,
                layer,
                "".join(_TICKED.findall(package)),
                frozenset(_TICKED.findall(outside_parentheses(modules))),
                frozenset(_TICKED.findall(imports)),
            )
        )
    return rows


def outside_parentheses(text: str) -> str:
    """``text`` without what is in (possibly nested) parentheses."""
    kept, depth = [], 0
    for char in text:
        depth += char == "("
        if depth == 0:
            kept.append(char)
        depth -= char == ")" and depth > 0
    return "".join(kept)


def layer_cell(row: str) -> str:
    return {TOP: "top", OUTSIDE: "outside"}.get(row, str(PACKAGES.index(row) + 1))


def expected_table(
    lines: dict[str, dict[str, int]], rows: dict[str, str], listed: set[str]
) -> dict[str, tuple[set[str], set[str]]]:
    """Row -> (its modules, relative to its package; the rows it imports from), from the
    modules on disk (``listed``: those the table lists) and their imports."""
    table: dict[str, tuple[set[str], set[str]]] = {row: (set(), set()) for row in PACKAGES}
    for module, edges in lines.items():
        row = rows[module]
        modules, imports = table.setdefault(row, (set(), set()))
        if module in listed:
            prefix = row.rstrip("/").replace("/", ".") + "."
            modules.add(module.removeprefix(prefix))
        imports |= {short(rows[t]) for t in edges if rows[t] != row}
    return table


def table_problems(
    found: list[Row], expected: dict[str, tuple[set[str], set[str]]], page: str
) -> list[str]:
    """What differs between the table's rows and the packages, modules and imports."""
    bad = []
    order = [r.package for r in found]
    if order != list(expected):
        bad.append(
            f"{page}: the layer table's rows are {order or 'missing'}; "
            f"the packages, bottom layer first, are {list(expected)}"
        )
    for r in found:
        if r.package not in expected:
            continue
        modules, imports = expected[r.package]
        at = f"{page}:{r.line} (row {r.package})"
        if r.layer != layer_cell(r.package):
            bad.append(f"{at}: layer is {r.layer!r}, should be {layer_cell(r.package)!r}")
        if r.modules - modules:
            bad.append(f"{at}: lists modules not on disk: {sorted(r.modules - modules)}")
        if modules - r.modules:
            bad.append(f"{at}: does not list the modules {sorted(modules - r.modules)}")
        if r.imports != imports:
            bad.append(
                f"{at}: imports from {sorted(r.imports) or 'nothing'}, but its modules "
                f"import from {sorted(imports) or 'nothing'}"
            )
    return bad


def functions(tree: ast.AST) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def unexplained_function_imports(path: Path) -> list[str]:
    comments = comment_lines(path)
    imports: dict[int, tuple[ast.Import | ast.ImportFrom, str]] = {}  # first line -> (node, def)
    for f in functions(parse(path)):  # outer functions first: the innermost one names it
        for node in ast.walk(f):
            if isinstance(node, ast.Import | ast.ImportFrom):
                imports[node.lineno] = (node, f.name)
    starts_by_end = {node.end_lineno: line for line, (node, _) in imports.items()}

    def explained(line: int) -> bool:
        if line in comments or line - 1 in comments:
            return True
        above = starts_by_end.get(line - 1)  # an import right above shares its comment
        return above is not None and explained(above)

    return [
        f"{path.name}:{line} in {name}(): {ast.unparse(node)}"
        for line, (node, name) in sorted(imports.items())
        if not explained(line)
    ]


def unexplained_long_functions(path: Path) -> list[str]:
    comments = comment_lines(path)
    bad = []
    for f in functions(parse(path)):
        length = f.end_lineno - f.lineno + 1  # type: ignore[operator]
        if length <= MAX_LINES:
            continue
        body = f.body
        first = body[1] if len(body) > 1 and ast.get_docstring(f) is not None else body[0]
        head = range(f.lineno, first.lineno + 1)
        if not any(comments.get(n, "").startswith(LONG_MARK) for n in head):
            bad.append(f"{path.name}:{f.lineno} {f.name}() is {length} lines")
    return bad


def test_the_scripts_modules_import_one_another_without_a_cycle() -> None:
    cycles = find_cycles(import_graph())
    assert not cycles, "import cycles: " + "; ".join(
        f"{' -> '.join(path)} (modules in cycles with these: {', '.join(sorted(c))})"
        for path, c in cycles
    )


def test_a_module_imports_only_from_its_own_package_or_a_layer_below() -> None:
    bad = layer_problems(import_lines(), ROWS)
    assert not bad, "imports against the layers (docs/ARCHITECTURE.md):\n" + "\n".join(bad)


def test_the_layer_table_names_every_package_and_module_and_its_imports() -> None:
    listed = {
        m for m, path in MODULES.items() if not (path.name == "__init__.py" and is_empty(path))
    }
    expected = expected_table(import_lines(), ROWS, listed)
    found = parse_layer_table(ARCHITECTURE_MD.read_text())
    bad = table_problems(found, expected, "docs/ARCHITECTURE.md")
    assert not bad, "the layer table differs from the code:\n" + "\n".join(bad)


@pytest.mark.parametrize("path", MODULES.values(), ids=IDS)
def test_an_import_inside_a_function_says_why(path: Path) -> None:
    bad = unexplained_function_imports(path)
    assert not bad, "imports inside functions without a comment: " + "; ".join(bad)


SIZED = {
    i: p for i, p in zip(IDS, MODULES.values(), strict=True) if not i.startswith(FINGERPRINTED)
}


@pytest.mark.parametrize("path", SIZED.values(), ids=SIZED.keys())
def test_a_function_over_60_lines_says_why(path: Path) -> None:
    bad = unexplained_long_functions(path)
    assert not bad, f"functions over {MAX_LINES} lines without a '{LONG_MARK}' comment: " + (
        "; ".join(bad)
    )


@pytest.mark.parametrize("path", SIZED.values(), ids=SIZED.keys())
def test_a_module_is_at_most_500_lines(path: Path) -> None:
    rel = str(path.relative_to(SCRIPTS.parent))
    n = len(path.read_text().splitlines())
    assert n <= MAX_MODULE_LINES or rel in LONG_MODULES, (
        f"{rel} is {n} lines, over {MAX_MODULE_LINES}: split it by concept (a generated data "
        "table may be named in LONG_MODULES, with why)"
    )


def test_every_long_module_exemption_is_a_long_module() -> None:
    stale = [
        rel
        for rel in LONG_MODULES
        if not (SCRIPTS.parent / rel).is_file()
        or len((SCRIPTS.parent / rel).read_text().splitlines()) <= MAX_MODULE_LINES
    ]
    assert not stale, f"LONG_MODULES names modules that are gone or short: {stale}"


def test_the_checks_find_what_they_look_for(tmp_path: Path) -> None:
    """The checkers themselves, on made-up code: a cycle is named by its path; a commented
    import block and a marked long function pass, their bare twins do not."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycles(graph) == [(["a", "b", "c", "a"], {"a", "b", "c"})]
    assert find_cycles({"a": {"b"}, "b": set()}) == []
    src = tmp_path / "m.py"
    filler = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES))
    src.write_text(
        "def f():\n    # lazy: slow to import\n    import json\n    import csv\n"
        "    return json, csv\n\n\n"
        "def g():\n    import json\n    return json\n\n\n"
        f'def long_ok():  # long: a table of values\n    """Doc."""\n{filler}\n\n\n'
        f"def long_bad():\n{filler}\n"
    )
    assert unexplained_function_imports(src) == ["m.py:9 in g(): import json"]
    nested = tmp_path / "n.py"
    nested.write_text(
        "def outer():\n    def inner():\n        # lazy: slow\n        from os import (\n"
        "            path,\n        )\n        import json\n\n        import csv\n"
        "        return path, json, csv\n    return inner\n"
    )
    assert unexplained_function_imports(nested) == ["n.py:9 in inner(): import csv"]
    assert unexplained_long_functions(src) == [
        f"m.py:{14 + MAX_LINES + 3} long_bad() is {MAX_LINES + 1} lines"
    ]


def test_the_layer_checks_find_what_they_look_for(tmp_path: Path) -> None:
    """On made-up code: a cycle closed under TYPE_CHECKING, an upward import, an import into or
    out of the embedded benchmark, and a layer table that is out of date are each named."""
    (tmp_path / "a.py").write_text(
        "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from scripts.b import B\n"
    )
    (tmp_path / "b.py").write_text(
        "def f():\n    # lazy: a cycle all the same\n    import scripts.a\n"
    )
    modules = {"scripts.a": tmp_path / "a.py", "scripts.b": tmp_path / "b.py"}
    assert find_cycles(import_graph(modules)) == [
        (["scripts.a", "scripts.b", "scripts.a"], {"scripts.a", "scripts.b"})
    ]
    lines = {
        "scripts.core.x": {"scripts.run.y": 7},
        "scripts.run.y": {"scripts.core.x": 3},
        "scripts.gnmt.m": {"scripts.core.x": 2},
        "scripts.analysis.z": {"scripts.gnmt.m": 9},
        "scripts.__main__": {"scripts.analysis.z": 4},
        "scripts.misc.w": {},
    }
    rows = {m: row_of(SCRIPTS.joinpath(*m.split(".")[1:]).with_suffix(".py")) for m in lines}
    assert layer_problems(lines, rows) == [
        "scripts.misc.w is in scripts/misc/, which is not a layer (LAYERS: "
        + ", ".join(LAYERS)
        + ")",
        "scripts.analysis.z:9 imports scripts.gnmt.m: the embedded benchmark (scripts/gnmt/) "
        "imports only itself and no layer imports it",
        "scripts.core.x:7 imports scripts.run.y: run is a layer above core",
        "scripts.gnmt.m:2 imports scripts.core.x: the embedded benchmark (scripts/gnmt/) "
        "imports only itself and no layer imports it",
    ]
    del lines["scripts.misc.w"], lines["scripts.core.x"]["scripts.run.y"]
    expected = expected_table(lines, rows, set(lines))
    assert expected["scripts/run/"] == ({"y"}, {"core"})
    assert expected["scripts/"] == ({"__main__"}, {"analysis"})
    page = "\n".join(
        [
            "text",
            TABLE_HEADER,
            "| --- | --- | --- | --- | --- |",
            "| 1 | `scripts/core/` | paths | `x` (a gloss, `f(a)` (b)), `gone` | - |",
            "| 4 | `scripts/run/` | runs | `y` | `core`, `data` |",
            "| 2 | `scripts/data/` | data | | |",
            "",
            "| not | the | table |",
        ]
    )
    found = parse_layer_table(page)
    assert [r.package for r in found] == ["scripts/core/", "scripts/run/", "scripts/data/"]
    bad = table_problems(found, expected, "p.md")
    assert bad[0].startswith("p.md: the layer table's rows are ['scripts/core/', 'scripts/run/'")
    assert bad[1:] == [
        "p.md:4 (row scripts/core/): lists modules not on disk: ['gone']",
        "p.md:5 (row scripts/run/): imports from ['core', 'data'], but its modules import "
        "from ['core']",
    ]
    assert table_problems(found[:1], expected, "p.md")[-1] == (
        "p.md:4 (row scripts/core/): lists modules not on disk: ['gone']"
    )
    wrong_layer = [found[0]._replace(layer="7", modules=frozenset({"x"}))]
    assert table_problems(wrong_layer, expected, "p.md")[1:] == [
        "p.md:4 (row scripts/core/): layer is '7', should be '1'"
    ]
