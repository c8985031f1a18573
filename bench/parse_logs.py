"""Parsing and aggregation: 1,000 MLPerf logs parsed and scored, against mlperf-logging's own
parser (mlperf_logging.compliance_checker.mlp_parser) on the same files.

    python bench/parse_logs.py                  # 1,000 v0.6 logs of 140 KB (goal: <= 5 s, >= 5x)
    python bench/parse_logs.py --quick          # 50 logs (CI)
    python bench/parse_logs.py --round 5.0      # 1,020 real v5.0 logs (goal: >= 5x mlp_parser)
    python bench/parse_logs.py --round 5.0 --quick   # the 68 fixture logs once (CI)
    python bench/parse_logs.py --round 5.0 --v50 DIR # the v5.0 logs of another folder

v0.6 (the default):
The logs are made from the real DGX-1 v0.6 GNMT log excerpt in tests/data (its :::MLL events,
timestamps stretched per log so that times differ) padded with the TRAIN progress lines and
"Gradient overflow" lines a real log has, to the size of NVIDIA's logs (about 140 KB, 1,300 lines).
Ours: scripts.mlperf.log_parser.parse_file + run_outcome for every log, then the MLPerf score of
every
group of 10 logs (a "system"). Baseline: mlp_parser.parse_file(path, ruleset="0.6.0") and the
time to train from its run_start and run_stop lines; no scoring. Alternating order, one run.

v5.0 (``--round 5.0``): NVIDIA's published v5.0 logs in ../shared/fixtures/mlperf-v5.0-nvidia
or ``--v50 DIR`` (the tests give the unpacked copy of tests/data/published) (:::MLLOG JSON
lines; 68 logs, 8 result folders, every v5.0 benchmark), unchanged, the whole tree copied as
many times as ``--logs`` needs. Ours: parse_file + run_outcome with each
benchmark's v5.0 quality target, and the MLPerf score of every result folder; the scores of the
first copy are checked against expected.tsv (the official result summarizer's). Baseline:
mlp_parser.parse_file(path, ruleset="5.0.0") and the time to train from run_start and run_stop.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.analysis import scoring  # noqa: E402
from scripts.core.layout import result_files  # noqa: E402
from scripts.mlperf.log_parser import parse_file
from scripts.mlperf.outcome import run_outcome
from scripts.mlperf.round_files import definitions

EXCERPT = Path(__file__).resolve().parents[1] / "tests" / "data" / "v06_dgx1_result_0_excerpt.txt"
TRAIN = (
    "0: TRAIN [{epoch}][{step}/1938]\tTime 0.{a:03d} (0.{b:03d})\tData 1.{c:02d}e-04 (3.99e-02)\t"
    "Tok/s {tok} ({tok2})\tLoss/tok {loss:.4f} ({loss2:.4f})\tLR 2.000e-03"
)
STAMP = re.compile(r"^(:::MLL )(\d+\.\d+)")
V50 = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "mlperf-v5.0-nvidia"


def make_log(path: Path, rng: random.Random, size: int = 140_000) -> None:
    lines = EXCERPT.read_text().splitlines()
    t0 = next(float(m.group(2)) for line in lines if (m := STAMP.match(line)))
    stretch = rng.uniform(0.85, 1.35)
    out: list[str] = []
    epoch = 0
    for line in lines:
        m = STAMP.match(line)
        if m:
            t = t0 + (float(m.group(2)) - t0) * stretch
            line = f"{m.group(1)}{t:.3f}{line[m.end() :]}"
        out.append(line)
        if "epoch_start" in line:
            out += _progress(rng, epoch, 190)
            epoch += 1
    text = "\n".join(out) + "\n"
    while len(text) < size:
        text += "Gradient overflow.  Skipping step, loss scaler 0 reducing loss scale to 4096.0\n"
    path.write_text(text)


def _progress(rng: random.Random, epoch: int, n: int) -> list[str]:
    return [
        TRAIN.format(
            epoch=epoch,
            step=10 * i,
            a=rng.randrange(1000),
            b=rng.randrange(1000),
            c=rng.randrange(100),
            tok=rng.randrange(80000, 99999),
            tok2=rng.randrange(80000, 99999),
            loss=rng.uniform(3, 10),
            loss2=rng.uniform(3, 10),
        )
        for i in range(n)
    ]


def ours(paths: list[Path]) -> float:
    t = time.perf_counter()
    times: list[float | None] = []
    for p in paths:
        outcome = run_outcome(parse_file(p), 24.0)
        times.append(outcome.time_to_train_s if outcome.converged else None)
    for i in range(0, len(times), 10):
        group = times[i : i + 10]
        scoring.olympic_score(
            group,
            [x is not None for x in group],
        )
    return time.perf_counter() - t


def baseline(paths: list[Path]) -> float:
    from mlperf_logging.compliance_checker import mlp_parser

    t = time.perf_counter()
    for p in paths:
        loglines, _errors = mlp_parser.parse_file(str(p), ruleset="0.6.0")
        start = next(x.timestamp for x in loglines if x.key == "run_start")
        stop = [x.timestamp for x in loglines if x.key == "run_stop"][-1]
        assert stop > start
    return time.perf_counter() - t


# ---------------------------------------------------------------------------------------------
# v5.0: the real published logs


Folder = tuple[str, str, list[Path]]  # (system, benchmark, its result_N.txt in the order of N)


def v50_folders(v50: Path, dest: Path, copies: int) -> list[Folder]:
    """``copies`` copies of the fixture tree ``v50`` under ``dest``, as result folders."""
    folders: list[Folder] = []
    for c in range(copies):
        tree = dest / f"copy{c}"
        shutil.copytree(v50 / "results", tree)
        for bench_dir in sorted(tree.glob("*/*")):
            system, benchmark = bench_dir.parent.name, bench_dir.name
            folders.append((system, benchmark, result_files(bench_dir)))
    return folders


def ours_v50(folders: list[Folder]) -> tuple[float, list[float | None]]:
    """Seconds to parse, judge and score every folder, and each folder's score (s). Each
    benchmark's quality is its v5.0 definition (scripts/mlperf/round_files.py, from
    mlperf-logging's rule files: Stable Diffusion's FID and CLIP both), read as result.json
    reads it."""
    quality = {d["mlperf_name"]: d["quality"] for d in definitions("5.0").values()}
    t = time.perf_counter()
    scores: list[float | None] = []
    for _system, benchmark, paths in folders:
        q = quality[benchmark]
        times: list[float | None] = []
        converged: list[bool] = []
        for path in paths:
            outcome = run_outcome(
                parse_file(path),
                float(q["target"]),
                q.get("direction", "higher"),
                value_key=q.get("value_key"),
                also_targets=q.get("also_targets"),
                also_directions=q.get("also_directions"),
            )
            times.append(outcome.time_to_train_s)
            converged.append(outcome.converged)
        scores.append(scoring.olympic_score(times, converged).score_s)
    return time.perf_counter() - t, scores


def baseline_v50(folders: list[Folder]) -> float:
    from mlperf_logging.compliance_checker import mlp_parser

    t = time.perf_counter()
    for _system, _benchmark, paths in folders:
        for p in paths:
            loglines, _errors = mlp_parser.parse_file(str(p), ruleset="5.0.0")
            start = next(x.timestamp for x in loglines if x.key == "run_start")
            stop = [x.timestamp for x in loglines if x.key == "run_stop"][-1]
            assert stop > start
    return time.perf_counter() - t


def agreement(v50: Path, folders: list[Folder], scores: list[float | None]) -> tuple[int, int]:
    """Of the fixture's result folders, how many our score (times scaling.json's factor)
    gives the official result summarizer's score of (expected.tsv, minutes, rel 1e-6)."""
    expected = {}
    for line in (v50 / "expected.tsv").read_text().splitlines()[1:]:
        _submitter, system, benchmark, _n, minutes, _factor = line.split("\t")
        expected[(system, benchmark)] = float(minutes)
    hits = 0
    for (system, benchmark, paths), score in zip(folders, scores, strict=True):
        scaling = paths[0].parent / "scaling.json"
        factor = json.loads(scaling.read_text())["scaling_factor"] if scaling.exists() else 1.0
        want = expected[(system, benchmark)]
        hits += score is not None and math.isclose(score * factor / 60, want, rel_tol=1e-6)
    return hits, len(expected)


def main_v50(n: int, rounds: int, v50: Path = V50) -> int:
    if not v50.is_dir():
        print(f"error: {v50} is missing (the shared fixtures; or give --v50)", file=sys.stderr)
        return 1
    n_fixture = len(list((v50 / "results").rglob("result_*.txt")))
    copies = max(1, math.ceil(n / n_fixture))
    with tempfile.TemporaryDirectory(prefix="bench-parse-v50-") as tmp:
        folders = v50_folders(v50, Path(tmp), copies)
        paths = [p for _, _, ps in folders for p in ps]
        mib = sum(p.stat().st_size for p in paths) / (1 << 20)
        a: list[float] = []
        b: list[float] = []
        scores: list[float | None] = []
        for r in range(rounds):
            if r % 2:
                b.append(baseline_v50(folders))
            elapsed, scores = ours_v50(folders)
            a.append(elapsed)
            if not r % 2:
                b.append(baseline_v50(folders))
        first = len(folders) // copies
        hits, of = agreement(v50, folders[:first], scores[:first])
    ours_s, base_s = statistics.median(a), statistics.median(b)
    n = len(paths)
    print(
        f"{n} real v5.0 logs ({copies} x the {n_fixture} fixture logs), {mib:.1f} MiB "
        f"({mib * 1024 / n:.0f} KiB each), {len(folders)} result folders, "
        f"{rounds} alternating round(s)"
    )
    print(f"{'parser':<52}{'median s':>10}{'logs/s':>10}")
    print(
        f"{'mlp_parser (ruleset 5.0.0), time to train only':<52}{base_s:>10.3f}{n / base_s:>10.0f}"
    )
    print(f"{'mlperf_log + run_outcome + MLPerf score':<52}{ours_s:>10.3f}{n / ours_s:>10.0f}")
    print(f"our score = the official result summarizer's: {hits} of {of} result folders")
    print(f"speed-up over mlp_parser: {base_s / ours_s:.1f}x (goal >= 5x)")
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--logs", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--round", choices=["0.6", "5.0"], default="0.6", help="which logs")
    p.add_argument("--quick", action="store_true", help="50 logs (v5.0: 68), 1 round")
    p.add_argument("--v50", type=Path, default=V50, help=f"the v5.0 logs (default: {V50})")
    args = p.parse_args()
    if args.round == "5.0":
        n, rounds = (1, 1) if args.quick else (args.logs, args.rounds)
        return main_v50(n, rounds, args.v50)
    n, rounds = (50, 1) if args.quick else (args.logs, args.rounds)
    rng = random.Random(6)
    with tempfile.TemporaryDirectory(prefix="bench-parse-") as tmp:
        paths = [Path(tmp) / f"result_{i}.txt" for i in range(n)]
        for path in paths:
            make_log(path, rng)
        mib = sum(path.stat().st_size for path in paths) / (1 << 20)
        a: list[float] = []
        b: list[float] = []
        for r in range(rounds):
            if r % 2:
                b.append(baseline(paths))
                a.append(ours(paths))
            else:
                a.append(ours(paths))
                b.append(baseline(paths))
    ours_s, base_s = statistics.median(a), statistics.median(b)
    print(f"{n} logs, {mib:.1f} MiB ({mib * 1024 / n:.0f} KiB each), {rounds} alternating round(s)")
    print(f"{'parser':<52}{'median s':>10}{'logs/s':>10}")
    print(
        f"{'mlp_parser (ruleset 0.6.0), time to train only':<52}{base_s:>10.3f}{n / base_s:>10.0f}"
    )
    print(f"{'mlperf_log + run_outcome + MLPerf score':<52}{ours_s:>10.3f}{n / ours_s:>10.0f}")
    print(
        f"speed-up over mlp_parser: {base_s / ours_s:.1f}x (goal >= 5x); "
        f"ours: {ours_s:.2f} s for {n} logs (goal <= 5 s for 1,000)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
