"""``python -m scripts submission --plan <file> --output submission/verdict.json``: the
submission job of ``snakemake submission/verdict.json`` (rules/submission.smk).

It checks the plan's runs (:func:`scripts.submission.tree.refusals`: every file there, the runs
comparable; a submitter's folder it did not make is never replaced; otherwise it stops, exit
status 1, naming the differences, writes no verdict and removes the trees and the check log an
earlier submission made, so no old SUCCESS stays beside the refusal),
builds ``submission/<submitter>/`` (:mod:`scripts.submission.tree`), runs mlperf-logging's
package checker for the round on each tree (:mod:`scripts.submission.checker_log`), and writes
``submission/package_check.log`` (the checker's whole output) and ``submission/verdict.json``:
whether the checker passed every tree, each problem in words, the fields nobody knew, what was
left out and why, the round, the ruleset and the checker's version, and whether each
benchmark's power logs went in (:mod:`scripts.submission.power`; the notes say why not). A
failed check is a verdict, not a failed job (exit status 0).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from scripts.core import formats, hashing, layout
from scripts.mlperf.compliance import checker_version
from scripts.submission.checker_log import read_output, run_checker
from scripts.submission.m_of_n import NOTES, expected_run_count, m_of_n, notes_text
from scripts.submission.tree import Built, build, not_ours, refusals, remove_made

__all__ = ["main", "submit"]

VERDICT = layout.SUBMISSION_VERDICT.name
CHECK_LOG = layout.SUBMISSION_CHECK_LOG.name


def _window_notes(windows: list[dict[str, Any]]) -> list[str]:
    """What the M-of-N protocol means for the tree: every one of the M logs is in it, and
    which window of N is the result."""
    notes = []
    for w in windows:
        chosen = w.get("window_runs")
        which = (
            f"the result is the median window, runs {chosen[0]}..{chosen[-1]}"
            if chosen
            else f"no window could be scored: {w.get('problem')}"
        )
        notes.append(
            f"{w['benchmark']} on {w['system']}: the M-of-N protocol (window {w['window']} of "
            f"{w['runs']} runs): the tree holds every one of the {w['runs']} logs, as the "
            f"protocol keeps them; {which}; mlperf-logging's package checker wants exactly "
            f"{w['window']} result files and says so as a run count problem (marked expected)"
        )
    return notes


def _unknown_warnings(built: Built) -> list[str]:
    return [
        f"systems/{system}.json: {len(fields)} fields the workflow cannot know and the "
        f"submission: block does not give are written empty: {', '.join(fields)}; give them "
        f"under systems.{system}.submission.fields"
        for system, fields in built.unknown.items()
    ]


def submit(plan: Mapping[str, Any], root: Path, out: Path) -> dict[str, Any]:
    """Build the trees, check them, write the log; the verdict (not yet written)."""
    built = build(plan, root, out)
    log_parts, trees, problems, warnings = [], [], [], []
    windows: list[dict[str, Any]] = []
    for submitter, folder in built.trees.items():
        relative = Path(os.path.relpath(folder, root))
        these = {
            f"{relative}/results/{e['system']}/{e['mlperf_name']}": w
            for e in plan["trees"][submitter]["entries"]
            if (w := m_of_n(e, root)) is not None
        }
        if these:  # at the tree's top, outside results/ (the checker reads no other place)
            (folder / NOTES).write_text(notes_text(list(these.values())))
        windows += these.values()
        argv, output, status = run_checker(relative, plan["ruleset"], cwd=root)
        log_parts.append(f"$ {shlex.join(argv)}\n{output}(exit status {status})\n")
        folders = [
            f"{relative}/results/{e['system']}/{e['mlperf_name']}"
            for e in plan["trees"][submitter]["entries"]
        ]
        files = _with_prefix(built.system_files[submitter], relative)
        said = read_output(output, files, status, folders)
        said.problems = [expected_run_count(p, these) for p in said.problems]
        problems += said.problems
        warnings += said.warnings
        trees.append(
            {
                "submitter": submitter,
                "path": str(relative),
                "passed": said.passed,
                "command": argv,
                "problems": said.problems,
            }
        )
    hashing.write_atomic(out / CHECK_LOG, "\n".join(log_parts))
    passed = bool(trees) and all(t["passed"] for t in trees)
    return formats.stamped(
        VERDICT,
        {
            "passed": passed,
            "round": plan["round"],
            "ruleset": plan["ruleset"],
            "checker": checker_version(),
            "problems": problems,
            "missing_fields": built.unknown,
            "warnings": _unknown_warnings(built) + built.warnings + warnings,
            "skipped": list(plan["skipped"]),
            "notes": _window_notes(windows) + built.notes,
            "m_of_n": windows,
            "runs": built.runs,
            "power": built.power,
            "trees": trees,
            "log": os.path.relpath(out / CHECK_LOG, root),
        },
    )


def _with_prefix(files: Mapping[str, str], tree: Path) -> dict[str, str]:
    return {name: f"{tree}/{path}" for name, path in files.items()}


def _summary(verdict: Mapping[str, Any], output: Path) -> str:
    head = "passed" if verdict["passed"] else f"FAILED, {len(verdict['problems'])} problems"
    lines = [f"{output}: {head} ({verdict['checker']}, ruleset {verdict['ruleset']})"]
    lines += [f"  problem: {p}" for p in verdict["problems"]]
    lines += [
        f"  missing fields of {s}: {', '.join(f)}" for s, f in verdict["missing_fields"].items()
    ]
    lines += [f"  left out: {s}" for s in verdict["skipped"]]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m scripts submission",
        description="Build submission/<submitter>/ from a campaign's runs, run mlperf-logging's "
        "package checker on it and write submission/verdict.json (snakemake "
        "submission/verdict.json runs this; docs/submission.md).",
    )
    p.add_argument("--plan", type=Path, required=True, help="the plan (rules/submission.smk)")
    p.add_argument("--output", type=Path, required=True, help="submission/verdict.json")
    p.add_argument("--root", type=Path, default=Path("."), help="the campaign's folder")
    args = p.parse_args(argv)
    plan = json.loads(args.plan.read_text())
    root = args.root.resolve()
    out = args.output.resolve().parent
    refused = refusals(plan, root) + not_ours(plan, out)
    if refused:
        # no old tree, log or verdict stays beside the refusal to be read as this campaign's
        args.output.unlink(missing_ok=True)
        gone = remove_made(out)
        print("\n".join(refused), file=sys.stderr)
        if gone:
            print(f"removed what an earlier submission made: {', '.join(gone)}", file=sys.stderr)
        return 1
    verdict = submit(plan, root, out)
    hashing.write_json(args.output, verdict)
    print(_summary(verdict, args.output))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
