"""An implementation's README, read as data: the shell commands its fenced code blocks and
inline code spans give, the absolute paths its prose names, in document order and by section.

A README is untrusted text from a published folder: it is read, never run or evaluated. Only
regular files are read (never a symlink, a FIFO or a device), at most :data:`MAX_README_BYTES`
of each and :data:`MAX_READMES` of them, decoded as UTF-8 with replacement characters. A code
line is split into words by :mod:`shlex` as bash would split it (``\\`` continuations joined, a
``#`` comment dropped where bash drops it, quotes removed) and into simple commands at ``&&``
and ``;``; a command with any other shell syntax (a pipe, ``||``, ``&``, a subshell or command
substitution, a redirection, backquotes), a variable (``$X``) or a placeholder the reader must
replace (``</path/to/data>``, ``<>``) is kept with the reason it cannot be used as it is, so a
caller never copies more than plain words (:func:`shell_text` quotes them again).

The markdown is CommonMark's as far as these READMEs use it: a fence is three or more backquotes
or tildes indented by at most three spaces, closed by a fence of the same character at least as
long (an unclosed one runs to the end of the file); an ATX heading (``#`` to ``######``) outside
a code block starts a section; an inline code span is text between single backquotes on one
line.
"""

from __future__ import annotations

import os
import re
import shlex
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

MAX_README_BYTES = 256 * 1024  # of each README read; the rest is not read (a note says so)
MAX_READMES = 16  # README*.md files read, README.md first
FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")
HEADING = re.compile(r" {0,3}#{1,6}(?:[ \t]|$)")
INLINE_CODE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
ABSOLUTE_PATH = re.compile(r"/[A-Za-z0-9_.+@%=/-]*")
PLACEHOLDER = re.compile(r"<[^<>]*>")
ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
SEPARATORS = ("&&", ";")
ENGINES = ("docker", "podman", "nvidia-docker")
VOLUME_FLAGS = ("-v", "--volume")


@dataclass(frozen=True)
class Step:
    """One simple command of the README: its words, where it is (the code block's number, -1
    for an inline code span of prose; the section; the order in the document) and why it
    cannot be used as it is (None: it can)."""

    words: tuple[str, ...]
    block: int
    section: int
    order: int
    problem: str | None = None

    @property
    def command(self) -> tuple[str, ...]:
        """The words after the leading ``NAME=VALUE`` assignments."""
        i = 0
        while i < len(self.words) and ASSIGNMENT.match(self.words[i]):
            i += 1
        return self.words[i:]


@dataclass(frozen=True)
class ProsePath:
    """An absolute path the prose names in an inline code span (``/data/model``)."""

    path: str
    section: int
    order: int


@dataclass
class Readme:
    """What the READMEs of a folder say, in document order (one README after the other)."""

    steps: list[Step]
    paths: list[ProsePath]
    notes: list[str]

    def volumes(self, before: int) -> list[tuple[str, str]]:
        """(host, container) of the ``-v``/``--volume`` options of the last ``docker run`` (or
        podman's) before ``order``."""
        runs = [s for s in self.steps if s.order < before and _engine_run(s.command)]
        return volumes(runs[-1].command) if runs else []

    def all_volumes(self) -> list[tuple[str, str]]:
        """The volumes of every ``docker run`` of the README."""
        return [v for s in self.steps if _engine_run(s.command) for v in volumes(s.command)]

    def assignments(self) -> list[tuple[str, str]]:
        """(NAME, VALUE) of every ``export NAME=VALUE`` and leading ``NAME=VALUE`` word."""
        out = []
        for step in self.steps:
            words = list(step.words)
            if words[:1] == ["export"]:
                words = words[1:]
            for word in words:
                if not ASSIGNMENT.match(word):
                    break
                name, _, value = word.partition("=")
                out.append((name, value))
        return out


def _engine_run(words: Sequence[str]) -> bool:
    return len(words) >= 2 and words[0] in ENGINES and words[1] == "run"


def volumes(words: Sequence[str]) -> list[tuple[str, str]]:
    """(host, container) of an engine's ``-v HOST:CONT[:opts]``, ``-vHOST:CONT``,
    ``--volume HOST:CONT`` and ``--volume=HOST:CONT`` words."""
    found = []
    for i, word in enumerate(words):
        spec = None
        if word in VOLUME_FLAGS and i + 1 < len(words):
            spec = words[i + 1]
        elif word.startswith("--volume="):
            spec = word[len("--volume=") :]
        elif word.startswith("-v") and len(word) > 2 and not word.startswith("--"):
            spec = word[2:]
        parts = spec.split(":") if spec else []
        if len(parts) >= 2 and parts[0] and parts[1].startswith("/"):
            found.append((parts[0], parts[1]))
    return found


def read_readmes(folder: Path) -> Readme:
    """The README*.md files of ``folder`` (README.md first), read as data (the module's
    docstring says how much)."""
    names = sorted(p.name for p in folder.glob("README*.md"))
    names.sort(key=lambda n: n != "README.md")
    readme = Readme([], [], [])
    for name in names[:MAX_READMES]:
        text, note = _read_bounded(folder / name)
        if note:
            readme.notes.append(note)
        if text is not None:
            _parse(text, readme)
    if len(names) > MAX_READMES:
        readme.notes.append(
            f"{folder}: {len(names)} README*.md files; read the first {MAX_READMES}"
        )
    return readme


def _read_bounded(path: Path) -> tuple[str | None, str | None]:
    """The text of a regular file (not a link), at most MAX_README_BYTES; a note when it was
    not read or not read whole."""
    try:
        info = os.lstat(path)
    except OSError as exc:
        return None, f"{path} could not be read: {exc.strerror or exc}"
    if not stat.S_ISREG(info.st_mode):
        return None, f"{path} is not a regular file (a link, a FIFO ...): not read"
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
        with os.fdopen(fd, "rb") as fh:
            data = fh.read(MAX_README_BYTES + 1)
    except OSError as exc:
        return None, f"{path} could not be read: {exc.strerror or exc}"
    note = None
    if len(data) > MAX_README_BYTES:
        data = data[:MAX_README_BYTES]
        note = (
            f"{path} is over {MAX_README_BYTES} bytes: only its first {MAX_README_BYTES} were read"
        )
    return data.decode("utf-8", errors="replace").replace("\0", "\ufffd"), note


def _parse(text: str, readme: Readme) -> None:
    """Add the steps and prose paths of one README's text to ``readme``."""
    order = len(readme.steps) + len(readme.paths)
    section = max([0, *(s.section for s in readme.steps), *(p.section for p in readme.paths)]) + 1
    block = max([-1, *(s.block for s in readme.steps)]) + 1
    fence: str | None = None
    code: list[str] = []
    for line in text.splitlines():
        if fence is not None:
            m = FENCE.match(line)
            if (
                m
                and m[1][0] == fence[0]
                and len(m[1]) >= len(fence)
                and not line[m.end() :].strip()
            ):
                for step in _steps(code, block, section, order):
                    readme.steps.append(step)
                    order += 1
                block, fence, code = block + 1, None, []
            else:
                code.append(line)
            continue
        m = FENCE.match(line)
        if m and not (m[1][0] == "`" and "`" in line[m.end() :]):
            fence = m[1]
            continue
        if HEADING.match(line):
            section += 1
            continue
        for span in INLINE_CODE.findall(line):
            span = span.strip()
            if ABSOLUTE_PATH.fullmatch(span):
                readme.paths.append(ProsePath(span.rstrip("/") or "/", section, order))
                order += 1
            else:
                for step in _steps([span], -1, section, order):
                    readme.steps.append(step)
                    order += 1
    if fence is not None:  # an unclosed fence runs to the end of the file
        readme.steps.extend(_steps(code, block, section, order))


def _logical_lines(lines: Sequence[str]) -> Iterator[str]:
    """The lines with ``\\`` continuations joined, as bash joins them."""
    pending = ""
    for line in lines:
        if line.endswith("\\") and not line.endswith("\\\\"):
            pending += line[:-1] + " "
            continue
        yield pending + line
        pending = ""
    if pending:
        yield pending


def _drop_comment(line: str) -> str:
    """The line without a ``#`` comment: a ``#`` that starts a word outside quotes."""
    quote, escaped = "", False
    for i, ch in enumerate(line):
        if escaped:
            escaped = False
        elif ch == "\\" and quote != "'":
            escaped = True
        elif quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def _steps(lines: Sequence[str], block: int, section: int, order: int) -> list[Step]:
    """The simple commands of some lines of code."""
    out = []
    for line in _logical_lines(lines):
        for words, problem in split_commands(line):
            out.append(Step(tuple(words), block, section, order + len(out), problem))
    return out


def split_commands(line: str) -> list[tuple[list[str], str | None]]:
    """The simple commands of one line (its comment dropped, split at ``&&`` and ``;``), each
    with why it cannot be used as it is (None: it can); a line with other shell syntax is one
    command with that reason."""
    line = _drop_comment(line)
    lex = shlex.shlex(line, posix=True, punctuation_chars=";&|()")
    lex.whitespace_split = True
    lex.commenters = ""
    try:
        tokens = list(lex)
    except ValueError as exc:  # an unclosed quote: the blank-separated words, to say which
        return [(line.split(), f"it cannot be split into words ({exc})")] if line.strip() else []
    other = [t for t in tokens if t and t[0] in ";&|()" and t not in SEPARATORS]
    if other:
        return [(tokens, f"it uses the shell's {other[0]!r}")]
    commands: list[list[str]] = [[]]
    for token in tokens:
        if token in SEPARATORS:
            commands.append([])
        else:
            commands[-1].append(token)
    return [(words, word_problem(words)) for words in commands if words]


def word_problem(words: Sequence[str]) -> str | None:
    """Why plain words cannot be copied into a command as they are: a variable, backquotes, a
    redirection or a placeholder (None: they can)."""
    for word in words:
        if "$" in word or "`" in word:
            return f"{word!r} needs the shell (a variable or a command)"
        rest = PLACEHOLDER.sub("", word)
        if "<" in rest or ">" in rest:
            return f"{word!r} is a redirection"
        if rest != word:
            return f"{word!r} is a placeholder of the README (a value of yours)"
    return None


def shell_text(words: Sequence[str]) -> str:
    """Words as one shell command line, each quoted where it needs it."""
    return shlex.join(words)
