"""The shape of the code under scripts/, checked by reading it (ast), without importing it.

- **No import cycle** among the ``scripts.*`` modules. Every import counts, the ones inside
  functions too (a function-level import that closes a cycle only hides it); imports under
  ``if TYPE_CHECKING:`` do not (they never run). A failure names the cycle's path.
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
"""

from __future__ import annotations

import ast
import io
import tokenize
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
MAX_LINES = 60
LONG_MARK = "# long:"


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


def _type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def runtime_imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement that can run (not those under ``if TYPE_CHECKING:``)."""
    for node in ast.iter_child_nodes(tree):
        if _type_checking_only(node):
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        yield from runtime_imports(node)


def imported_modules(name: str, node: ast.Import | ast.ImportFrom) -> set[str]:
    """The ``scripts.*`` modules an import statement of module ``name`` loads."""
    if isinstance(node, ast.Import):
        return {a.name for a in node.names if a.name in MODULES}
    base = node.module or ""
    if node.level:  # relative: from the package of ``name``
        package = name.split(".")
        if MODULES[name].name != "__init__.py":
            package = package[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join([*package, base] if base else package)
    found = {base} if base in MODULES else set()
    found |= {f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES}
    return found


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        edges: set[str] = set()
        for node in runtime_imports(parse(path)):
            edges |= imported_modules(name, node)
        edges.discard("scripts")  # the package's empty __init__
        edges.discard(name)
        graph[name] = edges
    return graph


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


@pytest.mark.parametrize("path", MODULES.values(), ids=IDS)
def test_an_import_inside_a_function_says_why(path: Path) -> None:
    bad = unexplained_function_imports(path)
    assert not bad, "imports inside functions without a comment: " + "; ".join(bad)


@pytest.mark.parametrize("path", MODULES.values(), ids=IDS)
def test_a_function_over_60_lines_says_why(path: Path) -> None:
    bad = unexplained_long_functions(path)
    assert not bad, f"functions over {MAX_LINES} lines without a '{LONG_MARK}' comment: " + (
        "; ".join(bad)
    )


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
