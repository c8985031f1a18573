"""What a published implementation folder says about itself, beyond how it launches: where
it lies in its round's tree, its Dockerfile, its source (a folder, or a git commit), its data
commands, and the published results of the same implementation.

The tree is mlcommons' ``training_results_v<X.Y>``: ``<Vendor>/benchmarks/<name>/
implementations/<impl>/`` holds the code, ``<Vendor>/results/<system>/<name>/result_*.txt`` a
system's logs, ``<Vendor>/systems/<system>.json`` its description. A system's launch notes are
``README-<system>.md``, in the implementation folder (retinanet's ``tyche_ngpu8_ngc25.04_pytorch``
is both) or in a folder of its own beside it that points at the shared one (nemo's
``tyche_ngpu8_ngc25.09_nemo/README-tyche_ngpu8_ngc25.09_nemo.md`` names
``implementations/nemo/config_GB200_2x4x2xtp1pp1cp2_fp4.sh``).

A Dockerfile is not shell: its ``ARG`` and ``WORKDIR`` instructions are read line by line.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from scripts.core.layout import benchmark_folder, result_files
from scripts.mlperf.log_parser import parse_file
from scripts.run.published.tree import OverlayError, detect_round

# the scripts that fetch and prepare an implementation's data, run in its image (by hand)
DATA_COMMANDS = (
    "public-scripts/download_*.sh",
    "scripts/download_*.sh",
    "scripts/download_*.py",
    "scripts/download*.sub",
    "scripts/prepare_data_and_model.sh",
)
GIT_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Place:
    """Where the folder lies in a round's tree: the vendor's folder, the benchmark folder's
    name and the round (each None when the path does not say)."""

    vendor_dir: Path | None
    folder_name: str | None
    round: str | None

    @property
    def vendor(self) -> str | None:
        return self.vendor_dir.name if self.vendor_dir else None


def place_of(impl: Path) -> Place:
    """The folder's place from its path: ``<Vendor>/benchmarks/<name>/implementations/<impl>``
    and a ``training_results_v<X.Y>`` (or ``mlperf-v<X.Y>...``) folder above it."""
    impl = impl.resolve()
    vendor_dir = name = None
    up = impl.parents
    if len(up) > 3 and up[0].name == "implementations" and up[2].name == "benchmarks":
        name, vendor_dir = impl.parents[1].name, impl.parents[3]
    try:
        round_ = detect_round(impl)
    except OverlayError:
        round_ = None
    return Place(vendor_dir, name, round_)


# --- the Dockerfile ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Dockerfile:
    """The Dockerfile's global ARG defaults, the ARGs its FROM lines use, and the working
    folder of its last stage (None: it sets none)."""

    args: dict[str, str | None]
    base_args: list[str]
    workdir: str | None


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, rest) of each instruction: comments dropped, ``\\`` continuations
    joined (Docker's default escape character)."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in [*text.splitlines(), ""]:
        line = raw.strip()
        if line.startswith("#") or (not line and pending and raw):
            continue  # a comment, also inside a continuation (Docker drops those lines)
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = (pending + line).strip(), ""
        if line:
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def read_dockerfile(path: Path) -> Dockerfile:
    """The global ARGs (before the first FROM) with their defaults, the ones a FROM uses
    (``FROM ${FROM_IMAGE_NAME}``), and the last stage's WORKDIR, inherited from the stage it
    is built FROM when it sets none; a relative WORKDIR joins the one before it."""
    args: dict[str, str | None] = {}
    base: list[str] = []
    workdirs: dict[str, str | None] = {}
    stage_workdir: str | None = None
    current = ""  # the stage being read, by its lower-case name
    seen_from = False
    for word, rest in _instructions(path.read_text(encoding="utf-8", errors="replace")):
        if word == "ARG" and not seen_from:
            name, sep, value = rest.partition("=")
            args[name.strip()] = _unquote(value.strip()) if sep else None
        elif word == "FROM":
            seen_from = True
            parts = rest.split()
            image = next((p for p in parts if not p.startswith("--")), "")
            base += [a for a in args if f"${{{a}}}" in image or f"${a}" == image]
            stage_workdir = workdirs.get(image.lower())  # FROM <an earlier stage>
            if len(parts) >= 3 and parts[-2].upper() == "AS":
                workdirs[parts[-1].lower()] = stage_workdir
                current = parts[-1].lower()
            else:
                current = ""
        elif word == "WORKDIR":
            value = _unquote(rest)
            if not value.startswith("/") and stage_workdir:
                value = f"{stage_workdir.rstrip('/')}/{value}"
            stage_workdir = value
            workdirs[current] = value
    return Dockerfile(args, list(dict.fromkeys(base)), stage_workdir)


# --- the source: a folder or a commit ---------------------------------------------------------


def _git(folder: Path, *args: str) -> str | None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    try:
        proc = subprocess.run(
            ["git", "-C", str(folder), *args],
            capture_output=True,
            text=True,
            env=env,
            stdin=subprocess.DEVNULL,
            timeout=GIT_TIMEOUT_S,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def source_of(impl: Path) -> tuple[dict[str, str], str | None]:
    """The image's source: ``{git, commit, subdir}`` when the folder is in a git checkout
    whose HEAD holds it unchanged (nothing modified or untracked under it), else
    ``{path}``; and a note when a checkout was found but is not clean."""
    impl = impl.resolve()
    top = _git(impl, "rev-parse", "--show-toplevel")
    commit = _git(impl, "rev-parse", "--verify", "HEAD^{commit}") if top else None
    if not top or not commit:
        return {"path": str(impl)}, None
    subdir = os.path.relpath(impl, Path(top).resolve())
    changes = _git(Path(top), "status", "--porcelain", "--untracked-files=all", "--", subdir)
    if changes is None or changes:
        return {"path": str(impl)}, (
            f"{impl} is in the git checkout {top}, but its files differ from HEAD "
            f"(git status): the overlay builds from the folder, not from commit {commit[:12]}"
        )
    url = _git(Path(top), "remote", "get-url", "origin") or top
    return {"git": url, "commit": commit, "subdir": "" if subdir == "." else subdir}, None


def data_commands(impl: Path) -> list[str]:
    """The folder's data download and preparation scripts (relative paths, sorted)."""
    found = {str(p.relative_to(impl)) for g in DATA_COMMANDS for p in impl.glob(g) if p.is_file()}
    return sorted(found)


# --- the published results of the same implementation ----------------------------------------


@dataclass(frozen=True)
class Published:
    """A results system of the implementation: its folder and whether its README names the
    config the overlay was made from."""

    folder: Path
    names_config: bool


def _readme_systems(impl: Path) -> dict[str, str]:
    """System -> README text of the launch notes that concern this implementation: its own
    ``README-<system>.md`` files and those of the folders beside it that name
    ``implementations/<impl>/``."""
    found: dict[str, str] = {}
    siblings = sorted(p for p in impl.parent.iterdir() if p.is_dir())
    for folder in [impl, *[s for s in siblings if s != impl]]:
        for readme in sorted(folder.glob("README-*.md")):
            text = readme.read_text(encoding="utf-8", errors="replace")
            if folder == impl or f"implementations/{impl.name}/" in text:
                found[readme.name[len("README-") : -len(".md")]] = text
    return found


def published_systems(
    impl: Path, place: Place, definition: dict[str, object] | None, config: str
) -> list[Published]:
    """The vendor's results folders of this implementation (the system named like the
    folder, and the systems whose README concerns it) that hold results of the benchmark;
    those whose README names ``config`` first."""
    if place.vendor_dir is None:
        return []
    readmes = _readme_systems(impl.resolve())
    found = []
    for system in sorted({impl.resolve().name, *readmes}):
        folder = place.vendor_dir / "results" / system
        if not folder.is_dir() or folder.is_symlink():
            continue
        if definition is not None and benchmark_folder(folder, definition) is None:
            continue
        found.append(Published(folder, config in readmes.get(system, "")))
    return sorted(found, key=lambda p: (not p.names_config, p.folder.name))


def submission_benchmark(impl: Path, place: Place) -> str | None:
    """The ``submission_benchmark`` of a published log of this implementation (the
    benchmark's MLPerf name when the folder's name is not one)."""
    for pub in published_systems(impl, place, None, ""):
        for sub in sorted(pub.folder.iterdir()):
            for log in result_files(sub)[:1]:
                try:
                    event = parse_file(log).first("submission_benchmark")
                except OSError:
                    continue
                if event is not None and isinstance(event.value, str):
                    return event.value
    return None
