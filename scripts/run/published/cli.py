"""``python -m scripts import``: import one published log as a run (the default), every run of
a batch plan (``batch``, what rules/import.smk runs), or write a round's config overlay
(``overlay``)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from scripts.run.published.batch import batch_main
from scripts.run.published.overlay import overlay_main
from scripts.run.published.run import run_main


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["overlay"]:
        return overlay_main(argv[1:])
    if argv[:1] == ["batch"]:
        return batch_main(argv[1:])
    return run_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
