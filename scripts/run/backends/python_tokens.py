"""The digest of a Python source by what it means to Python, not how it is laid out: its tokens
without comments, with the few spellings that cannot change the program made one.

What does not count (tidying, e.g. ``ruff format`` at any line length, or comments added):

- comments, blank lines, the spaces between tokens, line breaks inside brackets, backslash
  continuations and the width of an indentation (the block structure counts: each new line,
  indent and dedent is a token);
- how a string literal is spelled (``'a'``, ``"a"``, ``'\\x61'``, ``r'a'``): its value counts, and
  whether it is ``str`` or ``bytes``. An f-string counts by its source;
- a trailing comma that cannot change the meaning: in a call or a ``def``'s parameters, in a
  ``{...}`` display, in a ``[...]`` list, and in any bracket that holds another comma at its top
  level (then it is a tuple, a list of arguments or of subscripts either way). It counts in
  ``(a,)``, ``x[a,]``, after a soft keyword (``match``, ``case``, ``type``, ``_``) and next to a
  ``lambda``, where it makes a tuple;
- parentheses around the whole value of an assignment, a ``return`` or a ``yield`` (``x = (a,
  b)`` is ``x = a, b``), around the names of a ``from ... import``, the whole list of a
  ``with`` (``with (a as b, c as d):``) and the whole condition of an ``if``, ``elif`` or
  ``while``, as a formatter adds them to split a long line;
- line numbers (a traceback or an MLPerf log line's ``metadata.lineno`` may name another line).

Everything else counts: a changed name, number, operator, string value or docstring, a
statement moved into or out of a block, any other parenthesis. A shebang line counts. The
digest is the same on Python 3.11 and later (3.12 splits an f-string into tokens: it is put back
together as the one token 3.11 gives).
"""

from __future__ import annotations

import ast
import hashlib
import io
import json
import keyword
import tokenize
import warnings

_SKIPPED = {tokenize.ENCODING, tokenize.COMMENT, tokenize.NL, tokenize.ENDMARKER}
_MARKERS = {tokenize.NEWLINE: "<newline>", tokenize.INDENT: "<indent>", tokenize.DEDENT: "<dedent>"}
_FSTRING_START = getattr(tokenize, "FSTRING_START", None)
_FSTRING_END = getattr(tokenize, "FSTRING_END", None)
_OPEN = {"(": ")", "[": "]", "{": "}"}
# every version's soft keywords, so the digest does not depend on the Python that computes it
_SOFT_KEYWORDS = frozenset({"_", "case", "match", "type"})
_HARD_KEYWORDS = frozenset(keyword.kwlist)
_ASSIGN = frozenset("= += -= *= /= //= %= @= &= |= ^= >>= <<= **=".split())
_BEFORE_A_VALUE = frozenset((tokenize.NAME, name) for name in ("return", "yield", "import"))
_BEFORE_A_BLOCK = frozenset((tokenize.NAME, name) for name in ("with", "if", "elif", "while"))

Token = tuple[int, str]  # (token type, text)


def python_tokens_sha256(data: bytes) -> str | None:
    """sha256 of the meaningful tokens of a Python source (see the module docstring), or None
    when ``data`` does not tokenize as Python."""
    tokens = significant_tokens(data)
    if tokens is None:
        return None
    return hashlib.sha256(json.dumps(normalized(tokens)).encode()).hexdigest()


def significant_tokens(data: bytes) -> list[Token] | None:
    """The tokens of ``data`` without comments (a shebang kept), non-logical line breaks and the
    encoding; each f-string one STRING token of its source; None when it does not tokenize."""
    try:
        tokens = list(tokenize.tokenize(io.BytesIO(data).readline))
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        lines = data.decode(encoding).splitlines(keepends=True)
    except (SyntaxError, tokenize.TokenError, UnicodeDecodeError, LookupError, ValueError):
        return None
    text, starts = "".join(lines), [0]
    for line in lines:
        starts.append(starts[-1] + len(line))

    def offset(pos: tuple[int, int]) -> int:  # (row from 1, column) -> index in text
        return starts[min(pos[0] - 1, len(lines))] + pos[1]

    out: list[Token] = []
    fstring_depth, fstring_from = 0, (0, 0)
    for tok in tokens:
        if _FSTRING_START is not None and tok.type == _FSTRING_START:
            fstring_depth += 1
            if fstring_depth == 1:
                fstring_from = tok.start
            continue
        if fstring_depth:
            if tok.type == _FSTRING_END:
                fstring_depth -= 1
                if not fstring_depth:  # the f-string's source, as 3.11's STRING token
                    out.append((tokenize.STRING, text[offset(fstring_from) : offset(tok.end)]))
            continue
        if tok.type == tokenize.COMMENT and tok.start == (1, 0) and tok.string.startswith("#!"):
            out.append((tokenize.COMMENT, tok.string))  # a shebang says what runs the file
        elif tok.type not in _SKIPPED:
            out.append((tok.type, tok.string))
    return out


def normalized(tokens: list[Token]) -> list[str]:
    """The texts of ``tokens`` that count: string literals by their value, block structure
    by markers, without the trailing commas and wrapping parentheses that cannot change the
    program (see the module docstring)."""
    match = _brackets(tokens)
    drop: set[int] = set()
    for start, end in match.items():
        if end - 1 > start and tokens[end - 1] == (tokenize.OP, ","):
            if _comma_is_redundant(tokens, match, start, end):
                drop.add(end - 1)
        if _wraps_a_whole_value(tokens, start, end):
            drop.update((start, end))
    with warnings.catch_warnings():  # e.g. "invalid escape sequence": the value is the same
        warnings.simplefilter("ignore")
        return [_text(tok) for i, tok in enumerate(tokens) if i not in drop]


def _text(tok: Token) -> str:
    kind, text = tok
    if kind in _MARKERS:
        return _MARKERS[kind]
    if kind == tokenize.STRING:
        try:
            value = ast.literal_eval(text)  # an f-string is not a literal: it stays its source
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return text
        return f"<{type(value).__name__}>{value!r}"
    return text


def _brackets(tokens: list[Token]) -> dict[int, int]:
    """Where each bracket closes: {index of the opening token: index of the closing one};
    empty when they do not match (the source is then taken as it is)."""
    match: dict[int, int] = {}
    stack: list[int] = []
    for i, (kind, text) in enumerate(tokens):
        if kind != tokenize.OP:
            continue
        if text in _OPEN:
            stack.append(i)
        elif text in (")", "]", "}"):
            if not stack or _OPEN[tokens[stack[-1]][1]] != text:
                return {}
            match[stack.pop()] = i
    return match if not stack else {}


def _after(tokens: list[Token], start: int) -> str:
    """What the bracket at ``start`` follows: 'trailer' (a call or a subscript: an expression
    ends before it), 'ambiguous' (a soft keyword) or 'display' (anything else)."""
    if start == 0:
        return "display"
    kind, text = tokens[start - 1]
    if kind == tokenize.NAME:
        if text in _SOFT_KEYWORDS:
            return "ambiguous"
        return "display" if text in _HARD_KEYWORDS else "trailer"
    if kind in (tokenize.NUMBER, tokenize.STRING) or (kind, text) in (
        (tokenize.OP, ")"),
        (tokenize.OP, "]"),
        (tokenize.OP, "}"),
    ):
        return "trailer"
    return "display"


def _comma_is_redundant(tokens: list[Token], match: dict[int, int], start: int, end: int) -> bool:
    """Whether the comma just before the bracket closing at ``end`` cannot change the program."""
    opener, after = tokens[start][1], _after(tokens, start)
    if opener == "{" or (opener, after) in (("(", "trailer"), ("[", "display")):
        return True  # a set or dict, a call's or def's arguments, a list
    commas, i = 0, start + 1
    while i < end - 1:  # the top level of the bracket, without its trailing comma
        kind, text = tokens[i]
        if kind == tokenize.NAME and text == "lambda":
            return False  # its parameters' commas are not the bracket's
        if kind == tokenize.OP and text in _OPEN:
            i = match[i]
        elif (kind, text) == (tokenize.OP, ","):
            commas += 1
        i += 1
    return commas > 0  # a tuple, or several subscripts, with or without it


def _wraps_a_whole_value(tokens: list[Token], start: int, end: int) -> bool:
    """Whether the parentheses at ``start`` and ``end`` hold the whole value of an assignment,
    a return or a yield, or the names of a ``from ... import``, ending their statement
    (``x = ( ... )``, ``return ( ... )``, ``import ( ... )``), or the whole list of a
    ``with`` or condition of an ``if``, ``elif`` or ``while`` (``if ( ... ):``); never
    empty ones."""
    if tokens[start][1] != "(" or end == start + 1 or start == 0:
        return False
    before = tokens[start - 1]
    after = tokens[end + 1] if end + 1 < len(tokens) else (tokenize.NEWLINE, "")
    if before in _BEFORE_A_BLOCK:  # with (...):, if (...):, elif (...):, while (...):
        return after == (tokenize.OP, ":")
    if before in _BEFORE_A_VALUE or (before[0] == tokenize.OP and before[1] in _ASSIGN):
        return after[0] == tokenize.NEWLINE or after == (tokenize.OP, ";")
    return False
