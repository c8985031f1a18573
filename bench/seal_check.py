"""Seal check: what checking 10,000 finished runs' seals adds to an invocation.

    python bench/seal_check.py            # 100 systems x 100 runs = 10,000 runs (goal: < 0.3 s)
    python bench/seal_check.py --quick    # 2 systems x 100 runs (CI; asserts no speed)

Every invocation checks each finished run's log against the seal in its run.json
(scripts/run/seals.py: size and mtime first, the hash only when those changed). This makes sealed
run folders (a 3 KiB mlperf.log, a run.json and a result.json of the sizes a real run has) in a
temporary folder and times scripts.run.seals.check_system over all of them, as the workflow's
load-time check calls it:

- cold: the first invocation after the runs finished (no cache yet: every run.json and
  result.json is read once, and the cache .snakemake/seals/<benchmark>/<system>.json written);
- warm: every later no-op invocation (the cache is current: three stat calls per run);
- baseline, in the same run: one os.stat of each log (string paths, the floor of any check
  that looks at every log).

Each is repeated (alternating) and the median is reported; warm file-system cache throughout.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import commit  # noqa: E402

from scripts.run import seals  # noqa: E402

BENCHMARK = "bench"
LOG_LINE = ':::MLLOG {"namespace": "", "time_ms": %d, "event_type": "POINT_IN_TIME", "key": '
LOG_LINE += '"eval_accuracy", "value": 0.%04d, "metadata": {"file": "train.py", "lineno": 90}}\n'


def run_meta(system: str, run: int) -> dict:
    """A run.json of the size and shape the runner writes (about 1.7 KiB)."""
    return {
        "attempts": 1,
        "benchmark": BENCHMARK,
        "system": system,
        "run": run,
        "seed": 1000 + run,
        "scale": "bench",
        "command": f"/usr/bin/python3 trainer.py --seed {1000 + run} --run {run} --target 0.9",
        "comparability": {
            "benchmark": BENCHMARK,
            "command": "{python} trainer.py --seed {seed} --run {run} --target {target}",
            "dataset": [{"md5": None, "name": "tiny.txt", "sha256": "ab" * 32, "unpack": None}],
            "hyperparameters": {},
            "implementation_env": {},
            "quality": {"direction": "higher", "metric": "acc", "target": 0.9},
            "system": {"backend": "local", "env": {}, "gpus": 0, "threads": 2},
        },
        "config_fingerprint": "cd" * 32,
        "dataset_manifest_sha256": "ef" * 32,
        "environment_digest": "01" * 32,
        "exit_code": 0,
        "fingerprint": "23" * 32,
        "gpu_assignment": "none",
        "gpu_devices": [],
        "host": "node001",
        "hosts": ["node001"],
        "nodes": 1,
        "python": "3.11.7",
        "started_utc": "2026-12-01T07:43:01.123456+00:00",
        "threads": 2,
        "timeout_s": 60,
        "wall_s": 1.234,
    }


def make_runs(root: Path, systems: int, runs: int) -> list[str]:
    """Sealed, finished run folders under ``root``/results/bench/; returns the system names."""
    names = [f"sys{i:03d}" for i in range(systems)]
    for system in names:
        for run in range(1, runs + 1):
            d = root / "results" / BENCHMARK / system / f"run_{run:03d}"
            d.mkdir(parents=True)
            log = d / "mlperf.log"
            log.write_text("".join(LOG_LINE % (1000 * i, run + i) for i in range(20)))
            meta = {**run_meta(system, run), seals.SEAL_KEY: seals.seal(log)}
            (d / "run.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
            result = {k: meta[k] for k in ("benchmark", "system", "run", "seed", "host")}
            result.update(converged=True, time_to_train_s=19.0, problems=[], log=str(log))
            result["evals"] = [{"epoch": i, "value": 0.5 + i / 40} for i in range(20)]
            result[seals.RESULT_KEY] = meta[seals.SEAL_KEY]["sha256"]
            (d / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    return names


def check_all(root: Path, names: list[str], run_ids: list[str]) -> int:
    bad = 0
    for system in names:
        found = seals.check_system(root, BENCHMARK, system, run_ids)
        bad += len(found.tampered) + len(found.corrupt_results) + len(found.unsealed)
    return bad


def stat_all(root: Path, names: list[str], run_ids: list[str]) -> int:
    total = 0
    for system in names:
        prefix = f"{root}/results/{BENCHMARK}/{system}/run_"
        for run in run_ids:
            total += os.stat(f"{prefix}{run}/mlperf.log").st_size
    return total


def timed(fn, *args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    systems, runs, repeat = (2, 100, 3) if args.quick else (100, 100, 7)
    run_ids = [f"{r:03d}" for r in range(1, runs + 1)]
    with tempfile.TemporaryDirectory(prefix="bench-seals-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        names = make_runs(root, systems, runs)
        made_s = time.perf_counter() - t0
        stat_all(root, names, run_ids)  # warm the file-system cache
        cold: list[float] = []
        warm: list[float] = []
        base: list[float] = []
        for _ in range(repeat):
            for system in names:
                seals.cache_path(root, BENCHMARK, system).unlink(missing_ok=True)
            cold.append(timed(check_all, root, names, run_ids))
            warm.append(timed(check_all, root, names, run_ids))
            base.append(timed(stat_all, root, names, run_ids))
        bad = check_all(root, names, run_ids)
        assert bad == 0, f"{bad} of the sealed runs were not found intact"
        # one truncated log is found (and only by the warm check: the proof that it checks)
        victim = root / "results" / BENCHMARK / names[-1] / f"run_{run_ids[-1]}" / "mlperf.log"
        victim.write_bytes(victim.read_bytes()[:100])
        found = seals.check_system(root, BENCHMARK, names[-1], run_ids)
        assert list(found.tampered) == [run_ids[-1]], found
    n = systems * runs
    print(f"{n} sealed runs ({systems} systems x {runs}), made in {made_s:.1f} s")
    print(f"commit {commit()}")
    print(f"{'check':<58}{'median s':>10}{'min s':>8}")
    rows = (
        ("os.stat of every mlperf.log (baseline)", base),
        ("seal check, cold (no cache: reads every run.json)", cold),
        ("seal check, warm (the no-op invocation)", warm),
    )
    for label, times in rows:
        print(f"{label:<58}{statistics.median(times):>10.3f}{min(times):>8.3f}")
    print(
        f"seal check of {n} runs: {statistics.median(warm):.3f} s (goal < 0.3 s), "
        f"{statistics.median(warm) / statistics.median(base):.1f}x the stat baseline; "
        f"cold {statistics.median(cold):.3f} s"
    )
    print("a truncated log among them was found: yes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
