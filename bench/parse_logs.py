"""Parsing and aggregation: 1,000 MLPerf v0.6 GNMT-sized logs parsed and scored, against
mlperf-logging's own parser (mlperf_logging.compliance_checker.mlp_parser) on the same files.

    python bench/parse_logs.py            # 1,000 logs of 140 KB (goal: <= 5 s, >= 5x mlp_parser)
    python bench/parse_logs.py --quick    # 50 logs (CI)

The logs are made from the real DGX-1 v0.6 GNMT log excerpt in tests/data (its :::MLL events,
timestamps stretched per log so that times differ) padded with the TRAIN progress lines and
"Gradient overflow" lines a real log has, to the size of NVIDIA's logs (about 140 KB, 1,300 lines).
Ours: scripts.mlperf_log.parse_file + run_outcome for every log, then the MLPerf score of every
group of 10 logs (a "system"). Baseline: mlp_parser.parse_file(path, ruleset="0.6.0") and the
time to train from its run_start and run_stop lines; no scoring. Alternating order, one run.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts import mlperf_log, scoring  # noqa: E402

EXCERPT = Path(__file__).resolve().parents[1] / "tests" / "data" / "v06_dgx1_result_0_excerpt.txt"
TRAIN = (
    "0: TRAIN [{epoch}][{step}/1938]\tTime 0.{a:03d} (0.{b:03d})\tData 1.{c:02d}e-04 (3.99e-02)\t"
    "Tok/s {tok} ({tok2})\tLoss/tok {loss:.4f} ({loss2:.4f})\tLR 2.000e-03"
)
STAMP = re.compile(r"^(:::MLL )(\d+\.\d+)")


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
        outcome = mlperf_log.run_outcome(mlperf_log.parse_file(p), 24.0)
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


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--logs", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="50 logs, 1 round")
    args = p.parse_args()
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
    print(
        f"{'scripts.mlperf_log + run_outcome + MLPerf score':<52}{ours_s:>10.3f}{n / ours_s:>10.0f}"
    )
    print(
        f"speed-up over mlp_parser: {base_s / ours_s:.1f}x (goal >= 5x); "
        f"ours: {ours_s:.2f} s for {n} logs (goal <= 5 s for 1,000)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
