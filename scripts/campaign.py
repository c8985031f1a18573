"""A campaign's finished runs: whether they are still comparable with the current
configuration, dataset and environment (and which later fingerprint keys their system's runs
were made with), and moving them aside (kept, never deleted) so that the workflow redoes them
(``python -m scripts.campaign archive`` / ``rerun``).

The load-time checks that call the comparability functions, and the derived files that a
missing run makes stale, are in :mod:`scripts.preflight`.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scripts import formats, layout


def run_dir(root: Path, benchmark: str, system: str, run: str) -> Path:
    return layout.run_dir(root, benchmark, system, run)


# ---------------------------------------------------------------------------------------------
# Comparability: finished runs are never silently redone or mixed after a config change.


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): data}


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """'key: old -> new' for every leaf that differs between two comparability records."""
    a, b = _flatten(old), _flatten(new)
    return [
        f"{k}: {json.dumps(a.get(k))} -> {json.dumps(b.get(k))}"
        for k in sorted(set(a) | set(b))
        if a.get(k) != b.get(k)
    ]


def incomparable_runs(
    root: Path,
    benchmark: str,
    system: str,
    runs: Sequence[str],
    current: dict[str, Any],
) -> dict[str, list[str]]:
    """Finished runs of (benchmark, system) that differ from ``current``, with what differs.

    ``current`` has ``comparability`` (the config record) and its ``config_fingerprint``, and,
    where known, ``dataset_manifest_sha256``, ``dataset_tree_sha256`` and
    ``environment_digest``. A key that a run did not record (e.g. ``dataset_tree_sha256`` of a
    run made before the workflow recorded the unpacked tree) is "not recorded", never a
    difference.
    """
    found: dict[str, list[str]] = {}
    for run in runs:
        meta_path = run_dir(root, benchmark, system, run) / "run.json"
        if not meta_path.exists():
            continue
        try:
            meta = formats.read_json(meta_path, "run.json")
        except (OSError, ValueError):
            continue
        if "comparability" in meta:
            diffs = differences(meta["comparability"], current["comparability"])
        elif meta.get("config_fingerprint") != current.get("config_fingerprint"):
            diffs = ["the configuration (fingerprint) changed"]
        else:
            diffs = []
        for key, label in (
            ("dataset_manifest_sha256", "the verified dataset (manifest.json)"),
            ("dataset_tree_sha256", "the unpacked dataset (dataset.manifest.json)"),
            ("environment_digest", "the environment (environment.json digest)"),
        ):
            if current.get(key) and meta.get(key) and meta[key] != current[key]:
                diffs.append(f"{label} changed")
        if diffs:
            found[run] = diffs
    return found


# Keys that joined the run fingerprint after campaigns had started. A system whose finished
# runs were fingerprinted without one goes on without it, so that its runs stay one group
# (results.py refuses to mix fingerprints) until it is archived; the run still records it.
LATER_FINGERPRINT_KEYS = ("dataset_tree_sha256",)


def later_fingerprint_keys(system_dir: Path, this_run: Path) -> list[str]:
    """The keys of LATER_FINGERPRINT_KEYS that the finished runs in ``system_dir`` (other than
    ``this_run``) were fingerprinted with: all of them when there is none. The runs of a system
    agree (each new one follows those before it), so the first readable run.json decides; one
    without ``fingerprint_keys`` was made before any of them. O(1): this runs after every run."""
    for meta_path in sorted(system_dir.glob("run_*/run.json")):
        if meta_path.parent == this_run:
            continue
        try:
            used = formats.read_json(meta_path, "run.json").get("fingerprint_keys") or []
        except (OSError, ValueError, AttributeError):
            continue
        return [k for k in LATER_FINGERPRINT_KEYS if k in used]
    return list(LATER_FINGERPRINT_KEYS)


def git_head(path: Path) -> str | None:
    """The commit checked out in ``path``, or None."""
    import subprocess

    out = subprocess.run(
        ["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True
    )
    return out.stdout.strip() if out.returncode == 0 else None


def current_state(
    record: dict[str, Any],
    manifest: Path,
    environment: Path,
    dataset_tree: Path | None = None,
) -> dict[str, Any]:
    """What finished runs are compared against (see :func:`incomparable_runs`): the config's
    comparability record, and the dataset manifest, the unpacked tree's digest (from its
    manifest ``dataset_tree``) and the environment digest where they exist."""
    from scripts.config import fingerprint
    from scripts.dataset import tree_digest_of, verified_manifest_sha256

    return {
        "comparability": record,
        "config_fingerprint": fingerprint(record),
        "dataset_manifest_sha256": (
            verified_manifest_sha256(manifest) if manifest.exists() else None
        ),
        "dataset_tree_sha256": tree_digest_of(dataset_tree) if dataset_tree else None,
        "environment_digest": (
            json.loads(environment.read_text()).get("digest") if environment.exists() else None
        ),
    }


def incomparable_message(benchmark: str, system: str, bad: dict[str, list[str]]) -> str:
    """What differs for which runs, and what to do about it."""
    changes = sorted({d for diffs in bad.values() for d in diffs})
    if len(changes) > 12:
        changes = changes[:12] + [f"... and {len(changes) - 12} more"]
    return (
        f"results/{benchmark}/{system}: runs {', '.join(sorted(bad))} were made under a "
        "different configuration:\n    "
        + "\n    ".join(changes)
        + "\n  Restore the previous configuration to continue this campaign, or move the old "
        "runs aside (kept, not deleted) and start anew:\n"
        f"    python -m scripts.campaign archive results/{benchmark}/{system}"
    )


def archive(path: Path, root: Path) -> Path:
    """Move a system's results folder to results/archive/<benchmark>/<system>.<time>/."""
    path = path.resolve()
    benchmark, system = path.parent.name, path.name
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    dest = root / "results" / "archive" / benchmark / f"{system}.{stamp}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(path), dest)
    return dest


def replace_run(root: Path, benchmark: str, system: str, run: int) -> Path:
    """Move one run aside (kept, never deleted) so the next invocation redoes it. ``run`` is
    the run's number: its folder is found whatever the width of the campaign's run ids."""
    system_dir = root / "results" / benchmark / system
    try:
        src = layout.find_run_dir(system_dir, run)
    except ValueError as exc:
        raise FileNotFoundError(f"{exc}; move the one to redo aside by hand") from None
    if src is None:
        raise FileNotFoundError(f"{system_dir} has no folder of run {run}")
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    dest = root / "results" / "archive" / benchmark / system / f"{src.name}.replaced-{stamp}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(src), dest)
    return dest


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(
        prog="python -m scripts.campaign",
        description="Move finished runs aside (kept, never deleted) so the workflow redoes them.",
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("archive", help="move results/<benchmark>/<system> to results/archive/")
    a.add_argument("path", type=Path, help="e.g. results/gnmt/local")
    r = sub.add_parser("rerun", help="move one run aside; the next invocation redoes it")
    r.add_argument("benchmark")
    r.add_argument("system")
    r.add_argument("run", type=int, help="run number, e.g. 4")
    args = p.parse_args(argv)
    root = Path.cwd()
    try:
        if args.cmd == "archive":
            if not (args.path / "environment.json").exists() and not list(args.path.glob("run_*")):
                raise FileNotFoundError(f"{args.path} is not a system's results folder")
            dest = archive(args.path, root)
            print(f"moved {args.path} to {dest.relative_to(root)}")
        else:
            dest = replace_run(root, args.benchmark, args.system, args.run)
            print(
                f"moved run {args.run} to {dest.relative_to(root)}; now run:\n"
                f"  snakemake --cores 1 results/{args.benchmark}/summary.csv"
            )
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
