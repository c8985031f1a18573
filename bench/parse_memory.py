"""Memory of parsing one huge log: peak RSS of a process that parses it, against the same
process's RSS after importing the parser (goal: peak under 300 MB for a 200 MB log).

    python bench/parse_memory.py            # 200 MB logs
    python bench/parse_memory.py --quick    # 20 MB logs (CI)

Each log is parsed in a fresh child process (``python -c``), which reports its own high-water
mark (``VmHWM`` of /proc/self/status, the same figure as ``ru_maxrss``) twice: after importing
the modules (the baseline) and after the work. Logs:

- ``random``: random bytes (a result_0.txt that is not a log at all);
- ``text``: a text log with few events: the real DGX-1 v0.6 GNMT excerpt's events at the start
  and the end, and progress lines in between;
- ``one-line``: one line without a newline, with a marker at its start (the skipped long line).

Work, per log: ``parse``: scripts.mlperf.log_parser.parse_file + run_outcome; ``import``: what an
import
job does (scripts.run.published.cli main: copy, sha256, parse, result.json), for the random log.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXCERPT = REPO / "tests" / "data" / "v06_dgx1_result_0_excerpt.txt"
GOAL_MB = 300.0
PROGRESS = (
    b"0: TRAIN [3][1230/1938]\tTime 0.412 (0.398)\tData 1.19e-04 (3.99e-02)\t"
    b"Tok/s 91234 (90121)\tLoss/tok 3.1415 (3.2718)\tLR 2.000e-03\n"
)

CHILD = r"""
import json, sys, time
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
sys.path.insert(0, {repo!r})
from scripts.mlperf import log_parser, outcome  # noqa: F401
from scripts.run import result_json  # noqa: F401
from scripts.run.published import cli  # noqa: F401
base = hwm()
t = time.perf_counter()
work, path, out = sys.argv[1], sys.argv[2], sys.argv[3]
if work == "parse":
    o = outcome.run_outcome(log_parser.parse_file(path), 24.0)
    what = f"{{len(getattr(o, 'log_problems', ()))}} log problem(s), time {{o.time_to_train_s}}"
else:
    spec = dict(benchmark="gnmt-v0.6", system="pub", run=1, scale="MLPerf", mlperf_name="gnmt",
                config_fingerprint="c", comparability={{}})
    rc = cli.main(["--source", path, "--spec", json.dumps(spec), "--log", out + "/l",
                  "--meta", out + "/m", "--result", out + "/r", "--quality-json",
                  json.dumps({{"target": 24.0}})])
    assert rc == 0
    what = "; ".join(json.load(open(out + "/r")).get("log_problems", ["(none)"]))[:60]
print(json.dumps({{"base": base, "peak": hwm(), "s": time.perf_counter() - t, "what": what}}))
"""


def make_random(path: Path, size: int) -> None:
    with path.open("wb") as fh:
        left = size
        while left:
            n = min(left, 1 << 20)
            fh.write(os.urandom(n))
            left -= n


def make_text(path: Path, size: int) -> None:
    lines = EXCERPT.read_bytes().splitlines(keepends=True)
    head, tail = lines[: len(lines) // 2], lines[len(lines) // 2 :]
    with path.open("wb") as fh:
        fh.writelines(head)
        written = sum(map(len, head)) + sum(map(len, tail))
        block = PROGRESS * 8192
        while written + len(block) <= size:
            fh.write(block)
            written += len(block)
        fh.write(PROGRESS * ((size - written) // len(PROGRESS)))
        fh.writelines(tail)


def make_one_line(path: Path, size: int) -> None:
    with path.open("wb") as fh:
        fh.write(b':::MLLOG {"key": "run_start", "time_ms": 1, "value": "')
        block = b"x" * (1 << 20)
        left = size - 64
        while left > 0:
            fh.write(block[: min(left, len(block))])
            left -= len(block)


def measure(work: str, path: Path, tmp: Path, repo: Path = REPO) -> dict:
    out = tmp / f"out-{work}-{path.stem}"
    out.mkdir(exist_ok=True)
    proc = subprocess.run(
        [sys.executable, "-c", CHILD.format(repo=str(repo)), work, str(path), str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{work} {path.name} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--mb", type=int, default=200, help="size of each log in MB (10^6 bytes)")
    p.add_argument("--quick", action="store_true", help="20 MB logs")
    p.add_argument(
        "--repo",
        type=Path,
        default=REPO,
        help="the checkout whose scripts/ to measure (e.g. an export of an older commit)",
    )
    args = p.parse_args()
    size = (20 if args.quick else args.mb) * 1_000_000
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-mem-") as name:
        tmp = Path(name)
        logs = {"random": make_random, "text": make_text, "one-line": make_one_line}
        cases = [("parse", k) for k in logs] + [("import", "random")]
        made: dict[str, Path] = {}
        for work, kind in cases:
            if kind not in made:
                made[kind] = tmp / f"{kind}.txt"
                logs[kind](made[kind], size)
            t = time.perf_counter()
            r = measure(work, made[kind], tmp, args.repo)
            rows.append((work, kind, r, time.perf_counter() - t))
    mb = size / 1e6
    print(f"logs of {mb:.0f} MB; peak RSS of a fresh process (VmHWM), goal < {GOAL_MB:.0f} MB")
    print(f"scripts of {args.repo}")
    print(f"{'work':<8}{'log':<10}{'base MB':>9}{'peak MB':>9}{'added MB':>10}{'s':>7}  result")
    worst = 0.0
    for work, kind, r, _ in rows:
        worst = max(worst, r["peak"])
        print(
            f"{work:<8}{kind:<10}{r['base']:>9.1f}{r['peak']:>9.1f}{r['peak'] - r['base']:>10.1f}"
            f"{r['s']:>7.2f}  {r['what']}"
        )
    verdict = "met" if worst < GOAL_MB else "NOT met"
    print(
        f"highest peak RSS: {worst:.1f} MB for {mb:.0f} MB logs "
        f"(goal < {GOAL_MB:.0f} MB: {verdict})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
