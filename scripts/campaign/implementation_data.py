"""The overlay's ``dataset.commands``: the implementation's data scripts as its README invokes
them, each run once in the image to make one data folder (issue 23;
:mod:`scripts.run.backends.data_commands` runs them, never this module).

For each data script of the folder (:func:`scripts.campaign.implementation_files.data_commands`)
the README's first invocation that can be used is taken (:mod:`scripts.campaign.
implementation_readme` reads the README as data): a simple command of a code block, or of an
inline code span, whose words run the script (``./public-scripts/download_backbone.sh``,
``python scripts/download_dataset.py --data_dir /data/gov_report``, ``bash ./scripts/...``).
One run by ``sbatch``/``srun`` starts on the host, not in the image, and is not used.

Where it writes, in the container: its absolute arguments (``-d /workspace/ssd_dataset/
open-images-v6``); without any, the absolute paths the prose of its section names after it
("The weights will be saved to ``/workspace/ssd_dataset/torch-home/hub/checkpoints``"); without
those, the container side of the volumes of the README's last ``docker run`` before it. Such a
path P is the place of one data folder (the top folder of a ``data_mounts`` path, e.g.
``DATADIR``) by the first of these that names one:

1. the README's own variables: ``export DATADIR="</path/to/dataset>/gov_report"`` with
   ``docker run --volume </path/to/dataset>:/data`` puts DATADIR at ``/data/gov_report``;
2. the run's mount: a ``data_mounts`` entry mounted at P;
3. the launcher's mountcheck: the key that ``run.sub`` verifies at P (``OPEN_IMAGES_V6_DIR`` at
   ``/workspace/ssd_dataset/open-images-v6``), and the data mount of that key;
4. expected-mounts.csv: a key with a folder ``R`` where P ends with ``/R`` (BACKBONE_DIR's
   ``hub/checkpoints``) is mounted at P without ``/R``.

The command is the invocation, after the lines of its code block that prepare it in the
container (``pip install``, ``export NAME=VALUE``, ``cd``), joined by ``&&``, each line re-quoted
from its words; it starts with ``export HOME=/tmp``: a data command runs as the caller's uid:gid,
which has no home in the image, and pip, fiftyone and Hugging Face write under ``~``. A line that
needs the shell or a value of the reader's (a placeholder) is never copied: a setup line is left
out with a note, an invocation is not used and the "not found" line says why. A script that no
invocation covers, and that no used script names (AMD's ``prepare_data_and_model.sh`` runs its
``download_dataset.py``), is named there too.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from scripts.campaign.implementation_readme import (
    Readme,
    Step,
    read_readmes,
    shell_text,
    word_problem,
)
from scripts.data.mountcheck import Expected

INTERPRETERS = ("bash", "sh", "python", "python3", "exec")
HOST_LAUNCHERS = ("sbatch", "srun", "salloc")
# lines of a code block that end what runs in the container: a step before them is the host's
HOST_LINES = ("docker", "podman", "nvidia-docker", "sudo", "exit", "source", ".", *HOST_LAUNCHERS)
SETUP = re.compile(r"(?:pip3?|python3? -m pip) install |export |cd ")
MOUNT = re.compile(r"/[^\n,:]*")  # the schema's pattern of a data command's mount
HOME = "export HOME=/tmp"
MAX_SCRIPT_BYTES = 256 * 1024  # of a used script read for the names of the scripts it runs


@dataclass
class DataCommands:
    """The overlay's ``dataset.commands`` and what the overlay says of them."""

    commands: list[dict[str, str]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # for the "not found" line
    notes: list[str] = field(default_factory=list)
    used: list[str] = field(default_factory=list)  # scripts with a command, in order


@dataclass(frozen=True)
class Places:
    """Where the run and its launcher see the data: ``data_mounts`` ({key, path, mount}),
    the launcher's verified (key, path) pairs, and expected-mounts.csv's rows."""

    data_mounts: Sequence[Mapping[str, str]]
    verify: Sequence[tuple[str, str]] = ()
    expected: Sequence[Expected] = ()

    @property
    def folders(self) -> list[str]:
        """The data folders: the top folder of each data mount's path, in order."""
        return list(dict.fromkeys(m["path"].split("/")[0] for m in self.data_mounts))


def readme_commands(impl: Path, scripts: Sequence[str], places: Places) -> DataCommands:
    """The data commands of ``scripts`` (relative paths in ``impl``) from its README."""
    readme = read_readmes(impl)
    out = DataCommands(notes=list(readme.notes))
    why: dict[str, str] = {}
    taken: dict[str, str] = {}  # folder -> script
    for script in scripts:
        reason = "no invocation in the README"
        for step in [s for s in readme.steps if _script_word(s, script) is not None]:
            found = _command(readme, step, (script, scripts), places, out.notes)
            if isinstance(found, str):
                reason = found
                continue
            if found["folder"] in taken:
                out.notes.append(
                    f"{script} also writes data folder {found['folder']}: the overlay runs "
                    f"{taken[found['folder']]} for it"
                )
            else:
                taken[found["folder"]] = script
                out.commands.append(found)
                out.used.append(script)
            break
        else:
            why[script] = reason
    run_by = _run_by_used(impl, out.used, list(why))
    left = [f"{s} ({why[s]})" for s in why if s not in run_by]
    if left:
        out.missing.append(f"a data command from the README for {', '.join(left)}")
    uncovered = [f for f in places.folders if f not in taken]
    if uncovered and out.commands:
        out.missing.append(
            f"a data command for data folder {', '.join(uncovered)} (give it in "
            "dataset.commands, or give every folder in dataset.folders)"
        )
    elif not out.commands:
        out.missing.append(
            "the dataset: no data command could be read from the README (give dataset.folders "
            "or dataset.commands; docs/datasets.md)"
        )
    return out


def _script_word(step: Step, script: str) -> int | None:
    """The index of the word of ``step`` that runs ``script`` (a path that is the script, or
    ends with it), or None."""
    words = step.command
    if not words:
        return None

    def names(word: str) -> bool:
        word = word[2:] if word.startswith("./") else word
        return word == script or word.endswith("/" + script)

    if words[0] in HOST_LAUNCHERS:
        return next((i for i, w in enumerate(words) if names(w)), None)
    if names(words[0]):
        return 0
    if words[0] in INTERPRETERS:
        rest = [i for i, w in enumerate(words[1:], 1) if not w.startswith("-")]
        return rest[0] if rest and names(words[rest[0]]) else None
    return None


def _command(
    readme: Readme,
    step: Step,
    scripts: tuple[str, Sequence[str]],
    places: Places,
    notes: list[str],
) -> dict[str, str] | str:
    """The data command of one invocation of ``scripts[0]`` (one of ``scripts[1]``, the
    folder's data scripts), or why it cannot be one."""
    script = scripts[0]
    if step.command[0] in HOST_LAUNCHERS:
        return f"the README runs it with {step.command[0]} on the host, not in the image"
    if step.problem:
        return f"its invocation cannot be used as it is: {step.problem}"
    index = _script_word(step, script) or 0
    paths = [p for w in step.command[index + 1 :] if (p := _absolute(w))]
    if not paths:
        later = [p for p in readme.paths if p.section == step.section and p.order > step.order]
        paths = [p.path for p in later if _resolve(p.path, readme, places)]
    if not paths:
        paths = [container for _, container in readme.volumes(step.order)]
    if not paths:
        return "the README names no folder it writes"
    placed = {pair for p in paths for pair in _resolve(p, readme, places)}
    if not placed:
        return f"it writes {', '.join(paths)}, where no data folder is mounted"
    if len(placed) > 1:
        folders = ", ".join(f"{f} at {m}" for f, m in sorted(placed))
        return f"it writes more than one data folder ({folders}); a data command makes one"
    ((folder, mount),) = placed
    lines = [*_setup(readme, step, scripts, notes), shell_text(step.words)]
    return {"folder": folder, "mount": mount, "command": " && ".join([HOME, *lines])}


def _absolute(word: str) -> str | None:
    """The absolute path a word gives (``/x``, ``--out=/x``), normalized, or None."""
    value = word.partition("=")[2] if word.startswith("-") and "=" in word else word
    if not value.startswith("/") or word_problem([value]):
        return None
    return posixpath.normpath(value)


def _setup(
    readme: Readme, step: Step, scripts: tuple[str, Sequence[str]], notes: list[str]
) -> list[str]:
    """The lines of the invocation's code block that prepare it in the container: after the
    block's last host line (``docker run``, ``sbatch``, ...) and before the invocation, those
    that install a package, export a variable or change folder; the others are left out with
    a note; the other data scripts' invocations are theirs."""
    script, every = scripts
    if step.block < 0:
        return []
    before = [s for s in readme.steps if s.block == step.block and s.order < step.order]
    host = [i for i, s in enumerate(before) if s.command[:1] and s.command[0] in HOST_LINES]
    lines = []
    for s in before[host[-1] + 1 if host else 0 :]:
        text = shell_text(s.words)
        if not s.command and s.words:  # NAME=VALUE alone: a shell variable, as export for us
            s = Step(("export", *s.words), s.block, s.section, s.order, s.problem)
            text = shell_text(s.words)
        if any(_script_word(s, other) is not None for other in every):
            continue
        if s.problem or not SETUP.match(text + " "):
            why = s.problem or "not a pip install, export or cd"
            notes.append(
                f"the README's line before {script}, {' '.join(s.words)!r}, is not in its data "
                f"command ({why}): add it there if the command needs it"
            )
            continue
        lines.append(text)
    return lines


def _resolve(path: str, readme: Readme, places: Places) -> set[tuple[str, str]]:
    """(data folder, mount) for a command that writes at container path ``path``: those of
    the first rule (the module's docstring) that gives any."""
    path = posixpath.normpath(path)
    rules = (_by_readme, _by_run_mount, _by_verify, _by_expected)
    for rule in rules:
        found = {(f, m) for f, m in rule(path, readme, places) if MOUNT.fullmatch(m) and m != "/"}
        if found:
            return found
    return set()


def _by_readme(path: str, readme: Readme, places: Places) -> list[tuple[str, str]]:
    """Rule 1: a data folder's README variable whose value a README volume puts at ``path``."""
    found = []
    for name, value in readme.assignments():
        if name not in places.folders:
            continue
        for host, container in readme.all_volumes():
            host = host.rstrip("/") or "/"
            value = value.rstrip("/") or "/"
            if value == host:
                seen = container
            elif value.startswith(host + "/"):
                seen = posixpath.join(container, value[len(host) + 1 :])
            else:
                continue
            if posixpath.normpath(seen) == path:
                found.append((name, path))
    return found


def _placed(entry: Mapping[str, str], where: str) -> tuple[str, str] | None:
    """(folder, mount) that puts ``entry``'s path (``DATADIR`` or ``DATADIR/data``) at
    ``where``; None when its sub-folder is not the end of ``where``."""
    folder, _, sub = entry["path"].partition("/")
    if not sub:
        return folder, where
    if where.endswith("/" + sub) and len(where) > len(sub) + 1:
        return folder, where[: -len(sub) - 1]
    return None


def _by_run_mount(path: str, _: Readme, places: Places) -> list[tuple[str, str]]:
    """Rule 2: the data mount the run reads at ``path``."""
    return [p for m in places.data_mounts if m["mount"] == path and (p := _placed(m, path))]


def _by_verify(path: str, _: Readme, places: Places) -> list[tuple[str, str]]:
    """Rule 3: the data mount of the key the launcher's mountcheck verifies at ``path``."""
    keys = {key for key, where in places.verify if posixpath.normpath(where) == path}
    return [p for m in places.data_mounts if m["key"] in keys and (p := _placed(m, path))]


def _by_expected(path: str, _: Readme, places: Places) -> list[tuple[str, str]]:
    """Rule 4: a key whose expected folder ``R`` ends ``path``, mounted at ``path`` less R."""
    found = []
    for row in places.expected:
        rel = row.relative_path
        if row.type != "dir" or rel == "." or not path.endswith("/" + rel):
            continue
        where = path[: -len(rel) - 1]
        found += [p for m in places.data_mounts if m["key"] == row.key and (p := _placed(m, where))]
    return found


def _run_by_used(impl: Path, used: Sequence[str], left: Sequence[str]) -> set[str]:
    """The scripts of ``left`` whose file name a used script's text names (it runs them)."""
    named: set[str] = set()
    for script in used:
        path = impl / script
        try:
            if path.is_symlink() or not path.is_file():
                continue
            with path.open("rb") as fh:
                text = fh.read(MAX_SCRIPT_BYTES).decode("utf-8", errors="replace")
        except OSError:
            continue
        named |= {s for s in left if re.search(rf"(?<![\w.-]){re.escape(Path(s).name)}\b", text)}
    return named
