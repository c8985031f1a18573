"""What goes wrong with a dataset, and the one way its modules tell the user what they do.

:class:`DatasetError` is the error of every dataset step (fetch, verify, unpack, the tree's
check): its message says why, and the command line (:mod:`scripts.data.cli`) prints it as one
``error:`` line. :class:`SourceMissing` is the one error that the next source may cure.
:func:`note` writes one line to stderr.
"""

from __future__ import annotations

import sys


class DatasetError(RuntimeError):
    """A dataset file could not be fetched, verified or unpacked; the message says why."""


class SourceMissing(DatasetError):
    """A source does not have the file (HTTP 404/410, no such file): the next source is tried."""


def note(message: str) -> None:
    """One line to stderr, at once (a log shows it as it happens)."""
    print(message, file=sys.stderr, flush=True)
