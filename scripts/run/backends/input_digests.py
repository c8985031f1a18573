"""How the build inputs of an image are identified: one content digest per file, by rules that
ignore what cannot change the image's behaviour and nothing else.

- A Python source (``*.py``) is identified by its tokens without comments, with the spellings
  that cannot change the program made one (``python-tokens:<sha256>``,
  :mod:`scripts.run.backends.python_tokens`): comments, blank lines, the layout of lines,
  quotes, redundant trailing commas and parentheses around a whole assigned value do not
  count; every name, operator, value and the block structure do. A file that does not
  tokenize as Python is identified by its bytes.
- A pip requirements file (the wheels an image installs and their pins) is identified by the
  lines pip reads from it (``pip-lines:<sha256>``): backslash continuations joined, comments
  and surrounding spaces removed, blank lines dropped, as pip's own reader does; their order
  counts. The constraints file (requirements.txt, :func:`constraints_digest`) leaves out the
  pins of :data:`HOST_ONLY_PACKAGES`, which only the host imports and no image installs, so
  that pinning one does not make every built image a stranger.
- Any other file (a Dockerfile, a shell script, data) is identified by its bytes
  (``sha256:<sha256>``).
- An executable file's digest ends with ``+x``.

A file's digest does not depend on where the file is on the host: an image's inputs are named
by their path in the build context (:mod:`scripts.run.backends.image`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path

from scripts.run.backends.python_tokens import python_tokens_sha256

# pip's comment rule (pip/_internal/req/req_file.py): '#' at the start or after a space
_PIP_COMMENT = re.compile(r"(^|\s+)#.*$")

# packages only the host's own processes import (the runner's NVML power source), which no
# image's requirements install or depend on: their pins in the constraints file
# (requirements.txt) are not part of an image's identity (tests/test_image_identity.py)
HOST_ONLY_PACKAGES = frozenset({"nvidia-ml-py"})
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

# digests of files already read by this process, by path and stat: a campaign asks for the
# image's identity once per run, the files do not change meanwhile
_memo: dict[tuple[str, str, int, int, int, int], str] = {}


def pip_lines(text: str) -> list[str]:
    """The lines pip reads from a requirements file (pip's join_lines, then ignore_comments)."""
    joined: list[str] = []
    pending: list[str] = []
    for line in text.splitlines():
        if not line.endswith("\\") or _PIP_COMMENT.match(line):
            if _PIP_COMMENT.match(line):
                line = " " + line  # so that the comment is removed below
            if pending:
                joined.append("".join([*pending, line]))
                pending = []
            else:
                joined.append(line)
        else:
            pending.append(line.strip("\\"))
    if pending:
        joined.append("".join(pending))
    stripped = (_PIP_COMMENT.sub("", line).strip() for line in joined)
    return [line for line in stripped if line]


def requirements_digest(path: Path) -> str:
    """``pip-lines:<sha256>`` of a requirements file (see :func:`pip_lines`)."""
    return _memoized(path, "pip", _requirements_digest)


def _requirements_digest(path: Path, data: bytes) -> str:
    return _pip_lines_digest(pip_lines(data.decode("utf-8", errors="surrogateescape")))


def constraints_digest(path: Path) -> str:
    """:func:`requirements_digest` of the constraints file without the pins of
    :data:`HOST_ONLY_PACKAGES`: the same digest as before one was pinned."""
    return _memoized(path, "constraints", _constraints_digest)


def _constraints_digest(path: Path, data: bytes) -> str:
    lines = pip_lines(data.decode("utf-8", errors="surrogateescape"))
    return _pip_lines_digest([line for line in lines if _package(line) not in HOST_ONLY_PACKAGES])


def _package(line: str) -> str:
    """The normalized project name a requirement line names (PEP 503), or "" (an option)."""
    found = _NAME.match(line)
    return re.sub(r"[-_.]+", "-", found.group(0)).lower() if found else ""


def _pip_lines_digest(lines: list[str]) -> str:
    digest = hashlib.sha256(json.dumps(lines).encode("utf-8", "surrogateescape")).hexdigest()
    return f"pip-lines:{digest}"


def file_digest(path: Path) -> str:
    """The digest of one build input (see the module docstring)."""
    return _memoized(path, "file", _file_digest)


def _file_digest(path: Path, data: bytes) -> str:
    tokens = python_tokens_sha256(data) if path.suffix == ".py" else None
    digest = f"python-tokens:{tokens}" if tokens else f"sha256:{hashlib.sha256(data).hexdigest()}"
    return digest + ("+x" if os.stat(path).st_mode & stat.S_IXUSR else "")


def _memoized(path: Path, kind: str, digest: Callable[[Path, bytes], str]) -> str:
    st = os.stat(path)
    key = (str(path), kind, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
    if key not in _memo:
        _memo[key] = digest(path, path.read_bytes())
    return _memo[key]


def file_digests(path: Path, dest: str, legacy: bool = False) -> dict[str, str]:
    """The digest of a file, or of each file below a folder, by its path in the build context
    (as the context is staged: without __pycache__ and .pyc files). ``legacy``: the plain
    sha256 of the bytes, as images were identified before these rules."""
    files = [(path, dest)]
    if path.is_dir():
        files = [
            (f, f"{dest}/{f.relative_to(path).as_posix()}")
            for f in sorted(path.rglob("*"))
            if not (f.is_dir() or "__pycache__" in f.parts or f.suffix == ".pyc")
        ]
    if legacy:
        return {name: _memoized(f, "sha256", _bytes_sha256) for f, name in files}
    return {name: file_digest(f) for f, name in files}


def _bytes_sha256(path: Path, data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def legacy_file_sha256(path: Path) -> str:
    """The plain sha256 of a file (how images were identified before these rules)."""
    return _memoized(path, "sha256", _bytes_sha256)
