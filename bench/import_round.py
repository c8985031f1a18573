"""Importing a whole published round: the workflow against mlperf-logging's result summarizer.

    python bench/import_round.py ../training_results_v5.0 --round 5.0 --cores 2
    python bench/import_round.py --quick        # the NVIDIA v5.0 fixtures (../shared), 1 round
    python bench/import_round.py --replicate 20 # a round-sized stand-in made of the fixtures

``--replicate K`` builds a stand-in of a whole round from ROOT (default: the fixtures): K
submitter folders (``Copy01`` ... ``CopyK``), each a copy of ROOT's results and systems, and
every copied log made distinct by one appended line that is no MLPerf event (``# stand-in
copy k``): both parsers skip it, the scores stay the same, and no sha256 repeats (a repeat
would be a compliance cache hit). With K = 20 that is 160 result folders and 1,360 logs,
about the size of a published round (training_results_v5.1: about 1,500 result logs).

On the same tree, in one run:

1. **Ours, cold**: ``python -m scripts import overlay ROOT`` writes the overlay, then
   ``snakemake --cores N <every benchmark's summary.csv> --configfile overlay.yaml`` in a fresh
   copy of the workflow: one import job per log (copy, parse, the round's compliance checker,
   result.json), then runs.csv and summary.csv per benchmark. Nothing cached.
2. **Ours, again**: the same command with nothing new (a no-op: every run is checked, no job
   runs). Goal: under 5 s.
3. **The summarizer**: ``python -m mlperf_logging.result_summarizer <submitter folder>
   training <ruleset> --quiet`` for each submitter folder of the tree (it runs the compliance
   checker and its own parser on every log). Goal for 1: at least 3x faster than this.
   Printed beside it: the summarizer's scoring function alone
   (``_compute_strong_score_standalone`` on every folder in one process, without the command
   line's start-up per submitter), the fastest way to use the official code.

Then every folder's score is compared by the command a user runs, ``python -m scripts verify
ROOT --results <the campaign's results>``: our ``score_s`` (and ``energy_j``) against the
summarizer's own ``_compute_strong_score_standalone`` on that folder (minutes x 60, relative
1e-9), which it runs in one process and times (the second baseline above). The summarizer's
command line runs first: every side then reads the tree from the same warm file cache.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import yaml  # noqa: E402
from common import REPO, commit, copy_workflow, snakemake  # noqa: E402

from scripts.core.layout import RESULT_FILE_RE, result_files
from scripts.mlperf import rounds  # noqa: E402
from scripts.run.published.tree import detect_round, submitter_folders

FIXTURES = REPO.parent / "shared" / "fixtures" / "mlperf-v5.0-nvidia"


def summarizer_seconds(root: Path, ruleset: str, cwd: Path) -> float:
    """The result summarizer's command line over every submitter folder of ``root``, run in
    ``cwd`` (it writes its summary.json into the folder it runs in)."""
    t = time.perf_counter()
    for _, folder in submitter_folders(root):
        cmd = [
            sys.executable,
            "-m",
            "mlperf_logging.result_summarizer",
            str(folder.resolve()) + "/",
        ]
        subprocess.run(
            [*cmd, "training", ruleset, "--quiet"], capture_output=True, text=True, check=True,
            cwd=cwd,
        )  # fmt: skip
    return time.perf_counter() - t


def replicate(root: Path, dest: Path, copies: int) -> Path:
    """A round-sized stand-in: ``copies`` submitter folders under ``dest``, each ROOT's results
    and systems with every log made distinct (see the module docstring)."""
    for k in range(1, copies + 1):
        for _, folder in submitter_folders(root):
            out = dest / f"Copy{k:02d}"
            for path in sorted(folder.rglob("*")):
                rel = path.relative_to(folder)
                if not path.is_file() or rel.parts[0] not in ("results", "systems"):
                    continue
                target = out / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                data = path.read_bytes()
                if RESULT_FILE_RE.match(path.name):
                    end = b"" if data.endswith(b"\n") else b"\n"
                    data += end + f"# stand-in copy {k} of {rel}\n".encode()
                target.write_bytes(data)
    return dest


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("root", nargs="?", type=Path, help="a training_results_vX.Y checkout")
    p.add_argument("--round", dest="round_", help="the round (default: from the path)")
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="the NVIDIA v5.0 fixtures (../shared)")
    p.add_argument(
        "--replicate", type=int, metavar="K", help="K copies of ROOT as K submitters (a stand-in)"
    )
    args = p.parse_args()
    root = (args.root or FIXTURES).resolve()  # the overlay command runs in the copy
    if not root.is_dir():
        raise SystemExit(f"error: {root} is not a folder (--quick needs ../shared/fixtures)")
    round_ = args.round_ or ("5.0" if root == FIXTURES else detect_round(root))
    try:  # it names a folder below: only a known round
        round_ = rounds.known_round(round_)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    ruleset = rounds.ruleset_of(round_)
    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        if args.replicate:
            root = replicate(root, Path(tmp) / f"training_results_v{round_}", args.replicate)
        wf = copy_workflow(Path(tmp) / "wf")
        (Path(tmp) / "summarizer").mkdir()
        baseline = summarizer_seconds(root, ruleset, Path(tmp) / "summarizer")
        t = time.perf_counter()
        make = [sys.executable, "-m", "scripts.run.published.cli", "overlay", str(root)]
        subprocess.run(
            [*make, "--round", round_, "--output", "round.yaml"], cwd=wf, check=True,
            capture_output=True,
        )  # fmt: skip
        overlay = yaml.safe_load((wf / "round.yaml").read_text())
        targets = [f"results/{b}/summary.csv" for b in overlay["campaign"]["benchmarks"]]
        args_ = ["--cores", str(args.cores), *targets, "--configfile", "round.yaml"]
        snakemake(wf, *args_)
        cold = time.perf_counter() - t
        again, _ = snakemake(wf, *args_)
        # the check a user runs: the summarizer's own scoring function on every folder, in one
        # process (timed by the command itself), against the campaign's summary.csv files
        verify = [sys.executable, "-m", "scripts.analysis.verify", str(root), "--round", round_]
        checked = subprocess.run(
            [*verify, "--results", str(wf / "results")], cwd=REPO, capture_output=True,
            text=True,
        )  # fmt: skip
        m = re.search(r"its scoring function took ([\d.]+) s", checked.stdout)
        if not m:
            raise SystemExit(f"scripts.analysis.verify failed:\n{checked.stdout}{checked.stderr}")
        in_process = float(m.group(1))
        logs = sum(len(result_files(Path(d))) for d in _bench_dirs(root))
        n_submitters = len(submitter_folders(root))
        n_folders = len(_bench_dirs(root))
    what = f"{args.replicate} copies of {args.root or FIXTURES}" if args.replicate else root
    print(f"import of a round ({what}: {n_submitters} submitters, {n_folders} result "
          f"folders, {logs} logs, ruleset {ruleset}), commit {commit()}")  # fmt: skip
    print(f"  mlperf-logging result summarizer (baseline): {baseline:7.2f} s")
    print(f"  its scoring function in one process:         {in_process:7.2f} s")
    print(f"  ours, cold (--cores {args.cores}):               {cold:7.2f} s")
    print(f"  ours again, nothing new:                     {again:7.2f} s (goal: < 5 s)")
    print(f"  summarizer / ours: {baseline / cold:.2f}x (goal: >= 3x); "
          f"its function in one process / ours: {in_process / cold:.2f}x")  # fmt: skip
    lines = checked.stdout.splitlines()
    differ = [x for x in lines[:-1] if ": equal" not in x]
    shown = lines if len(lines) <= 21 else differ + lines[-1:]
    print("  python -m scripts verify (folders not equal, and the total):" if shown != lines
          else "  python -m scripts verify:")  # fmt: skip
    print("\n".join(f"    {line}" for line in shown))
    return checked.returncode


def _bench_dirs(root: Path) -> list[Path]:
    return [
        b
        for _, folder in submitter_folders(root)
        for system in (folder / "results").iterdir()
        for b in system.iterdir()
        if b.is_dir()
    ]


if __name__ == "__main__":
    raise SystemExit(main())
