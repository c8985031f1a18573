"""Two hot spots of mlperf-logging's compliance checker, replaced in this process by exact
equivalents, so that checking a log costs a third of the time and gives the same verdict.

Profiling the checker on NVIDIA's 68 v5.0 logs (5.8 s) showed where its time goes:

- **Its rule files are parsed again for every log.** ``CCChecker.configured_checks`` reads
  ``training_<ruleset>/common.yaml``, ``closed_common.yaml`` and ``closed_<benchmark>.yaml``
  with PyYAML's pure-Python ``BaseLoader`` each time: 2.5 s of the 5.8. :class:`_CachedYaml`
  loads each file once per process (keyed by path, size and mtime, with the same loader) and
  hands every check a deep copy, so no check can see another's changes.
- **Its parser's ``strip_and_dedup`` runs ``re.sub(".*" + TOKEN, TOKEN, line)`` on every log
  line**: after the one real match, the regex engine retries ``.*`` from every later position
  of the line, quadratic in its length: 1.3 s. :func:`fast_strip_and_dedup` keeps the line
  from the last TOKEN on, which is what that substitution leaves for a line read from a text
  file (one ``\\n``, at its end; ``.`` matches everything else), and falls back to the
  original ``re.sub`` for any other line.

Only the checker that :mod:`scripts.mlperf.compliance` runs is changed (:func:`install`, once, when
it
first imports the checker); the result summarizer that ``scripts.analysis.verify`` and the benches
time
as the baseline is not, unless they run in a process that checked a log first. Tests compare
verdicts and parses with and without (tests/test_fast_checker.py).
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Callable, Iterable
from typing import Any

import yaml

INSTALLED_ATTR = "_scripts_fast_checker"


def fast_strip_and_dedup(token: str) -> Callable[[Iterable[str]], list[str]]:
    """The parser's ``strip_and_dedup`` for ``token`` (``:::MLLOG `` or v0.6's ``:::MLL``),
    without the quadratic regex."""
    pattern = ".*" + token

    def strip_and_dedup(gen: Iterable[str]) -> list[str]:
        lines = []
        for line in gen:
            if token not in line:
                continue
            newline = line.find("\n")
            if newline == -1 or newline == len(line) - 1:
                lines.append(line[line.rfind(token) :])
            else:  # a line with a newline inside: the original, whatever it does
                lines.append(re.sub(pattern, token, line))
        return lines

    return strip_and_dedup


class _CachedYaml:
    """Stands in for the ``yaml`` module inside ``mlp_compliance``: ``load`` of a rule file
    parses it once (with the loader asked for) and returns a deep copy each time."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str, int, int], Any] = {}

    def load(self, stream: Any, Loader: Any) -> Any:  # noqa: N803 (PyYAML's own name)
        name = getattr(stream, "name", None)
        if not isinstance(name, str):
            return yaml.load(stream, Loader=Loader)  # noqa: S506 (the checker's own call)
        st = os.fstat(stream.fileno())
        key = (name, Loader.__name__, st.st_size, st.st_mtime_ns)
        if key not in self._cache:
            self._cache[key] = yaml.load(stream, Loader=Loader)  # noqa: S506
        return copy.deepcopy(self._cache[key])

    def __getattr__(self, name: str) -> Any:
        return getattr(yaml, name)


def _token_is_literal(token: str) -> bool:
    """Whether ``".*" + token`` matches ``token`` literally (no regex metacharacter in it)."""
    return not any(c in token for c in ".^$*+?{}[]\\|()")


def install(mlp_compliance: Any) -> None:
    """Put both equivalents into the checker module and its parser's ruleset modules (once;
    a parser module whose TOKEN or function is not the one this replaces is left as it is)."""
    if getattr(mlp_compliance, INSTALLED_ATTR, False):
        return
    # lazy: the parser package loads with the checker, never at this module's import
    from mlperf_logging.compliance_checker import mlp_parser

    for name in dir(mlp_parser):
        module = getattr(mlp_parser, name)
        if not name.startswith("ruleset_") or not hasattr(module, "strip_and_dedup"):
            continue
        token = getattr(module, "TOKEN", None)
        if isinstance(token, str) and _token_is_literal(token):
            module.strip_and_dedup = fast_strip_and_dedup(token)
    mlp_compliance.yaml = _CachedYaml()
    setattr(mlp_compliance, INSTALLED_ATTR, True)
