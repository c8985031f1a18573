"""``submission/<submitter>/`` made from a campaign's files, in the layout mlperf-logging's
package checker reads (``package_checker.py``: ``<folder>/results/<system>/<benchmark>/
result_*.txt``, ``<folder>/systems/<system>.json``, ``<folder>/benchmarks/<benchmark>/``):

- ``results/<system>/<mlperf_name>/result_N.txt``: each run's ``mlperf.log``, byte for byte, N
  from 0 in run order (run_01 is result_0.txt);
- ``systems/<system>.json``: :mod:`scripts.submission.system_desc`;
- ``results/<system>/<mlperf_name>/power/result_N/node_0.txt``: each run's power log, byte for
  byte, when every run has one from a node (``command``) source (:mod:`scripts.submission.power`);
- ``benchmarks/<mlperf_name>/implementations/<name>/``: a published implementation's build
  context as its image was built (``build/<b>/<s>/context``, checked against the stamp's
  ``context_sha256``), else a ``README.md`` pointer that says what ran (the command, the image).

**Reads the disk** and writes only under ``submission/``. Before a byte is written the runs are
checked: every run has its files, and the runs of each (benchmark, system) are comparable with
one another (:func:`scripts.campaign.finished_runs.incomparable_runs`, the load-time check's own
comparison, against run 1's record and the system's environment.json); otherwise
:func:`refusals` names the differences. Each tree is made in a folder beside it and renamed into
place, so a rerun replaces it whole: no result file of an earlier, larger campaign stays. Only
the trees this job made (named in ``submission/.trees-made.json``) are ever replaced or removed:
a folder a user put there is refused, never touched (:func:`not_ours`). An implementation folder
is untrusted: its copy never follows a link out of it, nor writes through one
(:func:`_copy_merged`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scripts.campaign.comparability import incomparable_message
from scripts.campaign.finished_runs import incomparable_runs
from scripts.core import hashing, layout
from scripts.core.run_records import RunRecord
from scripts.mlperf.log_parser import parse_file
from scripts.submission.plan import RESERVED, RUN_FILES, read_json_object
from scripts.submission.power import add_power
from scripts.submission.system_desc import system_desc

__all__ = ["Built", "build", "made_trees", "not_ours", "refusals", "remove_made"]

MADE = layout.SUBMISSION_MADE.name  # beside the trees: the names of those this job made
_CHECKED = re.compile(r"^\$ .*mlperf_logging\.package_checker \S*?([^/\s]+) training ", re.M)


@dataclass
class Built:
    """What was made: each submitter's tree, and what the verdict says of it."""

    trees: dict[str, Path] = field(default_factory=dict)  # submitter -> its folder
    system_files: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> json path
    unknown: dict[str, list[str]] = field(default_factory=dict)  # system -> fields left empty
    warnings: list[str] = field(default_factory=list)
    runs: dict[str, dict[str, int]] = field(default_factory=dict)  # benchmark -> system -> runs
    # benchmark -> system -> whether its power logs went in (scripts/submission/power.py)
    power: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # the power in the tree, or why not


def _run_ids(entry: Mapping[str, Any]) -> list[str]:
    return [Path(r).name.removeprefix("run_") for r in entry["runs"]]


def _incomparable(entry: Mapping[str, Any], root: Path) -> str | None:
    """The runs of one (benchmark, system) that differ from its first run (or from the
    environment.json its runs were made in), as the load-time check says it; None if none."""
    first = RunRecord.read(root / entry["runs"][0] / "run.json")
    environment = read_json_object(root / entry["environment"])
    current = {
        "comparability": dict(first.comparability or {}),
        "config_fingerprint": first.config_fingerprint,
        "dataset_manifest_sha256": first.dataset_manifest_sha256,
        "dataset_tree_sha256": first.dataset_tree_sha256,
        "environment_digest": environment.get("digest") or first.environment_digest,
    }
    bad = incomparable_runs(root, entry["benchmark"], entry["system"], _run_ids(entry), current)
    if not bad:
        return None
    return (
        f"submission refused: the runs of results/{entry['benchmark']}/{entry['system']} are "
        f"not comparable with its {Path(entry['runs'][0]).name}; an MLPerf result is one set "
        "of comparable runs\n" + incomparable_message(entry["benchmark"], entry["system"], bad)
    )


def refusals(plan: Mapping[str, Any], root: Path) -> list[str]:
    """Why the plan's runs cannot be submitted: a run without its files, runs that are not
    comparable. Empty when they can."""
    out = []
    for tree in plan["trees"].values():
        for entry in tree["entries"]:
            missing = [
                f"{run}/{name}"
                for run in entry["runs"]
                for name in RUN_FILES
                if not (root / run / name).is_file()
            ]
            if missing:
                out.append(
                    f"submission refused: {len(missing)} files of runs are missing "
                    f"({', '.join(missing[:6])}{' ...' if len(missing) > 6 else ''}): every run "
                    "of the campaign goes into a submission; make them first "
                    "(snakemake submission/verdict.json makes them)"
                )
            elif found := _incomparable(entry, root):
                out.append(found)
    return out


def _linked_parent(target: Path, dest: Path) -> Path | None:
    """The first folder between ``dest`` and ``target`` that is a link (a write through it
    would land where the link points), or None."""
    here = dest
    for part in target.relative_to(dest).parts[:-1]:
        here = here / part
        if here.is_symlink():
            return here
    return None


def _link_inside(path: Path, src: Path) -> Path | None:
    """Where the link ``path`` points when that is inside ``src`` (resolved), else None."""
    try:
        resolved = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    return resolved if resolved.is_relative_to(src.resolve()) else None


def _copy_one(path: Path, rel: Path, src: Path, dest: Path, said: _Copied) -> None:
    """One entry of the source (a file, or a link) into ``dest / rel``: a link to a file
    inside ``src`` as the file's bytes, a link to a folder inside it as a relative link; a
    link out of ``src`` or dangling is left out; nothing is written through a link."""
    target = dest / rel
    inside = _link_inside(path, src) if path.is_symlink() else path
    if inside is None or not (inside.is_file() or inside.is_dir()):  # out, dangling, a fifo
        said.left_out.append(str(rel))
        return
    if (linked := _linked_parent(target, dest)) is not None:
        said.conflicts.append(f"{rel} (under the link {linked.relative_to(dest)})")
        return
    if target.is_dir() and not target.is_symlink():
        said.conflicts.append(f"{rel} (a folder in the tree already)")
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.parent.resolve().is_relative_to(dest.resolve()):
        said.conflicts.append(f"{rel} (its folder is outside the tree)")
        return
    if target.is_file() and not target.is_symlink() and inside.is_file():
        if target.read_bytes() != inside.read_bytes():
            said.replaced.append(str(rel))
    if target.is_symlink() or target.exists():
        target.unlink()
    if inside.is_dir():  # a link to a folder of the source: the same link, relative
        os.symlink(os.path.relpath(inside, (src / rel).parent.resolve()), target)
    else:
        shutil.copy2(inside, target)


@dataclass
class _Copied:
    """What a copy could not do as asked, relative to its destination."""

    replaced: list[str] = field(default_factory=list)  # files that had other bytes
    left_out: list[str] = field(default_factory=list)  # links out of the source, dangling,
    # and what is neither a file nor a folder (a fifo would block the copy)
    conflicts: list[str] = field(default_factory=list)  # a link where a folder is, or inverse


def _copy_merged(src: Path, dest: Path, skip: tuple[str, ...] = (".git",)) -> _Copied:
    """Copy the folder ``src`` into ``dest``, which may hold another system's copy already.
    ``src`` is untrusted (a published folder, a clone): its links are never followed out of
    it, and no file is written through a link or outside ``dest``."""
    said = _Copied()
    dest.mkdir(parents=True, exist_ok=True)
    for folder, dirs, files in os.walk(src):  # never into a linked folder
        here = Path(folder)
        if here == src:
            dirs[:] = [d for d in dirs if d not in skip]
            files = [f for f in files if f not in skip]
        for name in sorted(files) + sorted(d for d in dirs if (here / d).is_symlink()):
            path = here / name
            _copy_one(path, path.relative_to(src), src, dest, said)
        keep = []
        for d in dirs:
            target = dest / (here / d).relative_to(src)
            if (here / d).is_symlink():
                continue
            if target.is_symlink() or target.is_file():
                said.conflicts.append(f"{target.relative_to(dest)} (not a folder in the tree)")
            else:
                keep.append(d)
        dirs[:] = keep
    return said


def _pointer(entry: Mapping[str, Any], root: Path, environment: Mapping[str, Any]) -> str:
    """The README.md section that says what ran on one system (no source to copy)."""
    first = RunRecord.read(root / entry["runs"][0] / "run.json")
    image = environment.get("image") or {}
    git = environment.get("workflow_git") or {}
    packages = ", ".join(f"{k} {v}" for k, v in (environment.get("packages") or {}).items() if v)
    lines = [
        f"## {entry['benchmark']} on {entry['system']}",
        "",
        f"- backend: {environment.get('backend') or first.backend or 'unknown'}",
        f"- command ({Path(entry['runs'][0]).name}; each run has its own seed): `{first.command}`",
        f"- image: {image.get('tag')} {image.get('image_id')} (inputs sha256 "
        f"{image.get('inputs_sha256')})"
        if image
        else "- image: none (the command ran in the workflow's own Python environment)",
        f"- python {environment.get('python')}; {packages or 'no package versions recorded'}",
        f"- the workflow at git commit {git.get('commit')} (uncommitted changes: "
        f"{git.get('dirty')})",
        "",
    ]
    return "\n".join(lines)


POINTER_HEAD = (
    "# What ran\n\n"
    "These runs were made by the MLPerf training workflow with the command below, not from a "
    "published implementation folder, so this folder says what ran instead of holding its "
    "source.\n\n"
)


def _say_copied(where: str, dest: Path, said: _Copied, built: Built) -> None:
    """The warnings of one copy into ``dest``."""
    if said.replaced:
        built.warnings.append(
            f"{where}: {dest} had other bytes in {', '.join(said.replaced[:5])} from another "
            "system's build context (the later system's are kept)"
        )
    if said.left_out:
        built.warnings.append(
            f"{where}: links that lead out of the implementation's folder (or nowhere) are left "
            f"out of {dest}: {', '.join(said.left_out[:5])}"
        )
    if said.conflicts:
        built.warnings.append(
            f"{where}: left out of {dest}, where another system's copy has a link or a file in "
            f"their way: {', '.join(said.conflicts[:5])}"
        )


def _implementation(entry: Mapping[str, Any], root: Path, dest: Path, built: Built) -> None:
    """benchmarks/<mlperf_name>/implementations/<name>/ of one (benchmark, system)."""
    impl = entry["implementation"]
    where = f"{entry['benchmark']} on {entry['system']}"
    environment = read_json_object(root / entry["environment"])
    if impl["kind"] == "source":
        context, source = root / impl["context"], root / impl["source"]
        stamp = read_json_object(root / impl["stamp"])
        subdir = source / impl.get("subdir", "")
        shown = f"{impl['source']}/{impl.get('subdir', '')}".rstrip("/")
        if context.is_dir():
            if stamp.get("context_sha256") not in (None, hashing.tree_sha256(context)):
                built.warnings.append(
                    f"{where}: {impl['context']} changed since its image was built "
                    f"({impl['stamp']} context_sha256): the tree holds the folder as it is now"
                )
            _say_copied(where, dest, _copy_merged(context, dest, (".git", "wheels")), built)
        elif subdir.is_dir() and subdir.resolve().is_relative_to(source.resolve()):
            built.warnings.append(
                f"{where}: {impl['context']} is gone: the tree holds the implementation's "
                f"source {shown} without the files generated into the build "
                "context (config_<SYSTEM>.sh)"
            )
            _say_copied(where, dest, _copy_merged(subdir, dest), built)
        else:
            built.warnings.append(
                f"{where}: neither {impl['context']} nor {shown} is there "
                "(or it leads out of the source): the tree has a pointer file for it"
            )
            impl = {**impl, "kind": "pointer"}
    if impl["kind"] == "pointer":
        readme = dest / "README.md"
        dest.mkdir(parents=True, exist_ok=True)
        if readme.is_symlink() or readme.is_dir():  # a copied folder's link: not ours to follow
            _remove(readme)
        text = readme.read_text() if readme.exists() else POINTER_HEAD
        readme.write_text(text + _pointer(entry, root, environment))


def _log_mismatches(entry: Mapping[str, Any], root: Path, block: Mapping[str, Any]) -> list[str]:
    """Where the logs' submission_* events say otherwise than the submission block (the logs
    go in byte for byte; the compliance checker reads the log's division)."""
    expected = {
        "submission_division": block["division"],
        "submission_org": block["submitter"],
        "submission_benchmark": entry["mlperf_name"],
    }
    said: dict[tuple[str, Any], list[str]] = {}
    for run in entry["runs"]:
        events = parse_file(root / run / "mlperf.log")
        for key, want in expected.items():
            ev = events.first(key)
            if ev is not None and ev.value != want:
                said.setdefault((key, ev.value), []).append(Path(run).name)
    return [
        f"results/{entry['benchmark']}/{entry['system']}: {', '.join(runs)} log {key} "
        f"{json.dumps(value)}, the submission says {json.dumps(expected[key])} (the logs go in "
        "as they are)"
        for (key, value), runs in said.items()
    ]


def _build_one(
    tree: Mapping[str, Any], round_: str, root: Path, dest: Path, built: Built
) -> dict[str, str]:
    """One submitter's tree in ``dest``; its system_name -> systems json path."""
    files = {}
    for system, facts in tree["systems"].items():
        first = next(e for e in tree["entries"] if e["system"] == system)
        environment = read_json_object(root / first["environment"])
        desc = system_desc(facts, environment, round_)
        path = dest / "systems" / f"{system}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(desc.fields, indent=4) + "\n")
        files[str(desc.fields["system_name"])] = f"systems/{system}.json"
        if desc.unknown:
            built.unknown[system] = list(desc.unknown)
    for entry in tree["entries"]:
        folder = dest / "results" / entry["system"] / entry["mlperf_name"]
        folder.mkdir(parents=True, exist_ok=True)
        for n, run in enumerate(entry["runs"]):
            shutil.copyfile(root / run / "mlperf.log", folder / f"result_{n}.txt")
        built.runs.setdefault(entry["benchmark"], {})[entry["system"]] = len(entry["runs"])
        said = add_power(entry, root, folder)
        built.power.setdefault(entry["benchmark"], {})[entry["system"]] = said
        built.notes += [said["note"]] if said["note"] else []
        impl = dest / "benchmarks" / entry["mlperf_name"] / "implementations"
        _implementation(entry, root, impl / entry["implementation"]["name"], built)
        block = tree["systems"][entry["system"]]["submission"]
        built.warnings += _log_mismatches(entry, root, block)
    return files


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def made_trees(out: Path) -> list[str]:
    """The submitters' folders under ``out`` this job made (its record there, and the trees
    an earlier verdict names): the only folders it replaces or removes."""
    record = out / MADE
    try:
        names = json.loads(record.read_text())
    except (OSError, ValueError):
        names = []
    names = list(names) if isinstance(names, list) else []
    verdict = read_json_object(out / layout.SUBMISSION_VERDICT.name)
    names += [t.get("submitter") for t in verdict.get("trees") or () if isinstance(t, dict)]
    try:  # a job before the record: its check log names each tree it checked
        names += _CHECKED.findall((out / layout.SUBMISSION_CHECK_LOG.name).read_text())
    except OSError:
        pass
    return [
        n
        for n in dict.fromkeys(names)
        if isinstance(n, str) and layout.SUBMITTER.fullmatch(n) and n.lower() not in RESERVED
    ]


def _record(out: Path, names: Iterable[str]) -> None:
    hashing.write_atomic(out / MADE, json.dumps(sorted(set(names))) + "\n")


def not_ours(plan: Mapping[str, Any], out: Path) -> list[str]:
    """The plan's submitters whose folder under ``out`` is there but was not made by this job
    (e.g. a published tree a user copied in): never replaced, the job is refused."""
    made = set(made_trees(out))
    return [
        f"submission refused: {out / s} is there and was not made by the submission job "
        f"(not in {out / MADE}); move it away, it is never replaced"
        for s in plan["trees"]
        if (out / s).exists() or (out / s).is_symlink()
        if s not in made
    ]


def remove_made(out: Path) -> list[str]:
    """Remove every tree this job made and its check log (a refused or stale submission
    leaves no old tree and no old SUCCESS); what was removed."""
    gone = []
    for name in made_trees(out):
        path = out / name
        if path.is_dir() and not path.is_symlink():
            _remove(path)
            gone.append(str(path))
    log = out / layout.SUBMISSION_CHECK_LOG.name
    if log.is_file() or log.is_symlink():
        log.unlink()
        gone.append(str(log))
    if out.is_dir():
        _record(out, [])
    return gone


def build(plan: Mapping[str, Any], root: Path, out: Path) -> Built:
    """Every submitter's tree under ``out`` (``root``/submission), each made beside its place
    and renamed into it; the trees this job made of earlier submitters no longer in the plan
    are removed (a folder it did not make is never touched: :func:`not_ours`)."""
    built = Built()
    out.mkdir(parents=True, exist_ok=True)
    made = made_trees(out)
    _record(out, [*made, *plan["trees"]])  # before a byte: a job killed midway is known
    for submitter, tree in plan["trees"].items():
        staging, old, final = out / f".{submitter}.new", out / f".{submitter}.old", out / submitter
        _remove(staging)
        _remove(old)
        staging.mkdir()
        built.system_files[submitter] = _build_one(tree, plan["round"], root, staging, built)
        if final.exists() or final.is_symlink():
            final.rename(old)
        staging.rename(final)
        _remove(old)
        built.trees[submitter] = final
    for name in made:
        path = out / name
        if name not in plan["trees"] and path.is_dir() and not path.is_symlink():
            _remove(path)
            built.warnings.append(f"{path}: a tree of an earlier submission, removed")
    _record(out, plan["trees"])
    return built
