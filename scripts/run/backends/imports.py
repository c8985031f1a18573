"""The ``import`` backend: nothing runs; a system's runs are MLPerf result logs someone else
produced, read from its ``import_dir`` (scripts/run/published/ and rules/import.smk). The
folder is part of what makes its runs comparable. (The module is not ``import.py``: ``import``
is a Python keyword.)"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scripts.run.backends.base import Launch
from scripts.run.backends.errors import BackendError
from scripts.run.backends.local import LocalBackend

if TYPE_CHECKING:  # types only: not imported at run time
    from scripts.run.spec import RunSpec


class ImportBackend(LocalBackend):
    """No run executes: whether a system has runs of a benchmark depends on its folder
    (scripts/core/config.py: import_folder), not on the implementation."""

    name = "import"
    trains = False
    imports = True

    def can_run(self, implementation: Mapping[str, Any]) -> bool:
        return False

    def system_record(self, system: Mapping[str, Any]) -> dict[str, Any]:
        return {"import_dir": system["import_dir"]}

    def check_run(self, spec: RunSpec, image_stamp: Path | None, run_dir: Path) -> None:
        raise BackendError(
            f"{spec.system} has backend import: its runs are read from its import_dir, "
            "never trained"
        )

    def launch(
        self,
        spec: RunSpec,
        command: str,
        extra_env: Mapping[str, str],
        *,
        image_stamp: Path | None = None,
        user: str | None = None,
        gpu_devices: Sequence[str] = (),
    ) -> Launch:
        self.check_run(spec, image_stamp, Path())
        raise AssertionError("unreachable")


BACKEND = ImportBackend()
