"""Where a dataset's files come from, and the checks of a benchmark's ``dataset`` section.

Sources, in the order they are tried for one file: the benchmark's ``dataset.mirror`` (a folder or a
URL holding the files by name, the normal case on air-gapped clusters), then the file's own ``url``
(:func:`sources`; :mod:`scripts.data.fetch` tries them). A dataset can also be made by a script
(``dataset.script``, e.g. an MLPerf implementation's ``download_dataset.sh``: :func:`run_script`);
its output folder is verified the same way.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse

from scripts.data.errors import DatasetError, note

SCHEMES = ("http", "https", "file")
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".zip")


def expand_url(url: str, workflow_dir: str | Path) -> str:
    return url.replace("{workflow_dir}", str(Path(workflow_dir).resolve()))


def url_scheme(url: str) -> str:
    """The scheme of ``url`` in lower case ('' when it has none)."""
    return urlparse(url).scheme.lower() if "://" in url else ""


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be fetched (unsupported scheme, no host or path), or None."""
    scheme = url_scheme(url)
    if scheme not in SCHEMES:
        return (
            f"unsupported URL scheme {scheme!r} in {url!r}; use http://, https:// or file://"
            if scheme
            else f"{url!r} is not a URL; use http://, https:// or file://"
        )
    parsed = urlparse(url)
    if scheme != "file" and not parsed.netloc:
        return f"{url!r} has no host"
    if not parsed.path or parsed.path.endswith("/"):
        return f"{url!r} names no file"
    return None


def mirror_url(mirror: str, name: str, workflow_dir: str | Path = ".") -> str:
    """The URL of file ``name`` in a mirror: a folder path or an http(s)/file URL base."""
    mirror = expand_url(mirror, workflow_dir)
    if "://" in mirror:
        return f"{mirror.rstrip('/')}/{quote(name)}"
    return (Path(mirror).resolve() / name).as_uri()


def sources(
    entry: Mapping[str, Any], mirror: str | None, workflow_dir: str | Path = "."
) -> list[str]:
    """The URLs to try for one dataset file, in order: the mirror, then its own url."""
    urls = [mirror_url(mirror, entry["name"], workflow_dir)] if mirror else []
    if entry.get("url"):
        urls.append(expand_url(entry["url"], workflow_dir))
    return urls


def check_dataset(dataset: Mapping[str, Any]) -> list[str]:
    """Problems of a benchmark's ``dataset`` section that its schema cannot express."""
    problems: list[str] = []
    mirror, script = dataset.get("mirror"), dataset.get("script")
    if mirror and "://" in mirror:
        why = url_problem(f"{mirror.rstrip('/')}/x")
        if why:
            problems.append(f"dataset.mirror: {why.replace('/x', '')}")
    given = [k for k in ("files", "folders", "commands") if k in dataset]
    if len(given) != 1:
        return ["dataset: give exactly one of files (to fetch and verify), folders (data you "
                "already have, NAME: HOST_PATH) or commands (the implementation's data "
                f"commands, run in its image); given: {', '.join(given) or 'none'}"]  # fmt: skip
    if "folders" in dataset or "commands" in dataset:
        extra = [k for k in ("mirror", "script") if dataset.get(k)]
        problems = [
            f"dataset.{k}: a dataset of folders has none (it is not fetched)" for k in extra
        ]
        names = [c["folder"] for c in dataset.get("commands", [])]
        twice = sorted({n for n in names if names.count(n) > 1})
        return problems + [f"dataset.commands: folder {n} is made twice" for n in twice]
    seen: set[str] = set()
    no_source: list[str] = []
    for i, f in enumerate(dataset["files"]):
        where = f"dataset.files[{i}] ({f['name']})"
        if f["name"] in seen:
            problems.append(f"{where}: the name appears twice")
        seen.add(f["name"])
        if f.get("url"):
            why = url_problem(f["url"])
            if why:
                problems.append(f"{where}.url: {why}")
        elif not mirror and not script:
            no_source.append(f["name"])
        if f.get("unpack") and not f["name"].endswith(ARCHIVE_SUFFIXES):
            problems.append(
                f"{where}: unpack is true but the name does not end in "
                + ", ".join(ARCHIVE_SUFFIXES)
            )
    if no_source:
        problems.append(
            f"dataset: {', '.join(no_source)} {'has' if len(no_source) == 1 else 'have'} no url, "
            "and the dataset has neither a mirror nor a script; set dataset.mirror (a folder or "
            "URL holding the files by name) or dataset.script.cwd (see the benchmark's yaml)"
        )
    return problems


def run_script(command: str, cwd: Path, output: Path) -> None:
    """Make a dataset with a script (e.g. ``bash download_dataset.sh {output_dir}``, run from
    ``cwd``). It writes into ``<output>.partial``, kept if the script fails (so a script that skips
    files it already has resumes); the folder becomes ``output`` only when the script succeeds."""
    if not cwd.is_dir():
        raise DatasetError(
            f"dataset.script.cwd {cwd} is not a folder; point it at the folder the script must "
            "run from (for NVIDIA's v0.6 GNMT: .../NVIDIA/benchmarks/gnmt/implementations)"
        )
    partial = output.with_name(output.name + ".partial")
    partial.mkdir(parents=True, exist_ok=True)
    argv = ["bash", "-c", command.replace("{output_dir}", shlex.quote(str(partial.resolve())))]
    note(f"running in {cwd}: {argv[2]}")
    rc = subprocess.run(argv, cwd=cwd, check=False).returncode
    if rc != 0:
        raise DatasetError(
            f"the dataset script failed with exit status {rc}: {argv[2]} (in {cwd}); "
            f"what it wrote is kept in {partial} and reused by the next run"
        )
    shutil.rmtree(output, ignore_errors=True)
    os.replace(partial, output)
