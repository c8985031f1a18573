"""An image's stamp, ``results/<benchmark>/<system>/image.json`` (written by a container
backend's build): where it is, reading it, and the check a run makes with it (the system's
finished runs used the same image).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from scripts.core import formats
from scripts.core.run_records import RunRecord
from scripts.run.backends.errors import ContainerError

if TYPE_CHECKING:  # types only: not imported at run time
    from scripts.run.spec import RunSpec


def image_stamp(benchmark: str, system: str) -> str:
    """The image's stamp, relative to the working directory: a file target of build_image."""
    return f"results/{benchmark}/{system}/image.json"


def read_stamp(stamp: Path) -> dict[str, Any]:
    """The image.json of a built image; ContainerError when it cannot be used."""
    try:
        record = formats.read_json(stamp, "image.json")
    except (OSError, ValueError) as exc:
        raise ContainerError(f"cannot read the image stamp {stamp}: {exc}") from None
    except formats.NewerFormat as exc:
        raise ContainerError(str(exc)) from None
    if not record.get("image_id"):
        raise ContainerError(f"{stamp} records no image id; delete it to rebuild the image")
    return record


def check_same_image(spec: RunSpec, run_dir: Path, image_id: str) -> None:
    """Refuse to run when finished runs of the same system used another image: they would
    no longer be comparable (the workflow's comparability check names what to do)."""
    for meta_path in sorted(run_dir.parent.glob("run_*/run.json")):
        if meta_path.parent == run_dir:
            continue
        try:
            other = (RunRecord.read(meta_path).image or {}).get("image_id")
        except (OSError, ValueError):
            continue
        if other and other != image_id:
            raise ContainerError(
                f"{meta_path.parent.name} ran in image {other}, but the image of "
                f"{spec.benchmark}/{spec.system} is now {image_id}; runs of two images are not "
                "comparable. Archive the old runs (python -m scripts archive "
                f"{run_dir.parent}) or rebuild the old image"
            )
