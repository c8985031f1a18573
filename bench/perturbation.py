"""Does the harness disturb what it measures? The embedded trainer bare and through the workflow.

    python bench/perturbation.py             # 5 pairs of GNMT runs, 3 pairs of chatty runs
    python bench/perturbation.py --quick     # 1 pair each, a lower BLEU target (CI)
    python bench/perturbation.py --power-only    # only part 4, power sampling (not in CI)

1. **Time to train.** The default campaign's GNMT runs (same seeds, same command, same threads),
   each once through the workflow (`snakemake --cores 1 results/gnmt/local/run_NN/mlperf.log`,
   local backend) and once bare (the run's own command, taken from the workflow's dry run, in a
   shell with the runner's environment, its output to a file), interleaved: pair i runs the
   workflow first when i is odd, bare first when it is even, so a drift of the machine hits
   both sides alike. Reported: the ratio workflow / bare of time to train and of time per
   epoch (from each run's MLPerf log), per pair and as a mean with its 95% t interval.
   Goal: within 1%.
2. **The harness's CPU.** While a run trains, a sampler (every 0.25 s, from /proc) sums the CPU
   time of every process of the invocation that is not the trainer: snakemake, the job's shell,
   the runner (the trainer runs in its own session, so it is told apart by its session id).
   Reported: that CPU per second of training (run_start to run_stop). Goal: under 0.5% of a
   core. The sampler also runs (its numbers unused) during the bare runs, so both sides of a
   pair carry its own small cost.
3. **A chatty trainer.** bench/chatty_trainer.py writes 500,000 plain lines at 50,000 lines per
   second between run_start and run_stop: bare (to a file) against through the workflow (the
   runner gives the trainer the run's log file as its stdout), interleaved. Reported: bare /
   workflow of its time to train. Goal: at least 0.95.
4. **Power sampling** (``--power``, never in ``--quick``): a ``command`` power source at 1 Hz
   (``echo 250`` through ``bash -c``, as a user's string runs; scripts/run/power_sampler.py).
   (a) The sampler alone, in this process, for ``--power-seconds``: its thread and the
   commands it runs, CPU seconds per second (getrusage of this process and its reaped
   children). Goal: under 0.5% of a core. (b) ``--power-pairs`` GNMT runs through the workflow
   with sampling on and off (two copies of the workflow, the same seeds), interleaved: time
   to train on / off (its wake-ups must not slow the trainer) and the harness's CPU of each
   side, this time with the CPU of its reaped children (the sampler's commands live a few
   milliseconds: the /proc sampler never sees them running).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import yaml  # noqa: E402
from common import REPO, commit, copy_workflow, trivial_campaign  # noqa: E402

from scripts.analysis import scoring  # noqa: E402
from scripts.mlperf.log_parser import parse_file
from scripts.mlperf.outcome import RunOutcome, run_outcome
from scripts.run import backends, power_sampler
from scripts.run.spec import RunSpec  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Sampler:
    """CPU seconds of the processes of one invocation (a process tree started in its own
    session), sampled from /proc; the trainer's own session is left out."""

    root: int
    period_s: float = 0.25
    children: bool = False  # count each process's reaped children too (cutime, cstime)
    samples: list[tuple[float, dict[int, float]]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.time(), harness_cpu(self.root, self.children)))
            self._stop.wait(self.period_s)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def cpu_between(self, start: float, stop: float) -> float:
        """CPU seconds the harness used from ``start`` to ``stop`` (epoch seconds): for each
        process, its last sample in the window minus its first."""
        first: dict[int, float] = {}
        last: dict[int, float] = {}
        for t, cpu in self.samples:
            if start <= t <= stop:
                for pid, seconds in cpu.items():
                    first.setdefault(pid, seconds)
                    last[pid] = seconds
        return sum(last[pid] - first[pid] for pid in last)


def _stat(pid: str, children: bool = False) -> tuple[int, int, float] | None:
    """(ppid, session, CPU seconds) of a process (``children``: with its reaped children's),
    or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # after the command: state ppid pgrp session ... utime (12th) stime (13th) cutime cstime
    ticks = sum(int(f) for f in fields[11 : 15 if children else 13])
    return int(fields[1]), int(fields[3]), ticks / TICK


def harness_cpu(root: int, children: bool = False) -> dict[int, float]:
    """CPU seconds of every live process under ``root`` that is in ``root``'s session
    (``children``: each with the CPU of its children it has reaped)."""
    stats = {}
    for pid in os.listdir("/proc"):
        if pid.isdigit() and (st := _stat(pid, children)) is not None:
            stats[int(pid)] = st
    tree = {root}
    grew = True
    while grew:
        grew = False
        for pid, (ppid, _, _) in stats.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                grew = True
    return {pid: stats[pid][2] for pid in tree if pid in stats and stats[pid][1] == root}


@dataclass
class Run:
    time_to_train_s: float
    time_per_epoch_s: float | None
    harness_cpu_per_s: float | None  # CPU seconds of the harness per second of training


def outcome_of(log: Path, target: float) -> RunOutcome:
    outcome = run_outcome(parse_file(log), target)
    if outcome.time_to_train_s is None or outcome.run_start_s is None:
        raise RuntimeError(f"{log}: no time to train ({outcome.problems})")
    return outcome


def measure(
    argv: Sequence[str],
    cwd: Path,
    env: dict[str, str],
    log: Path,
    target: float,
    out: Path,
    children: bool = False,
) -> Run:
    """One run: ``argv`` writes the MLPerf log ``log`` (its stdout goes to ``out``);
    ``children``: the harness's CPU with its reaped children's."""
    with out.open("wb") as fh:
        proc = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
        )
        sampler = Sampler(proc.pid, children=children)
        rc = proc.wait()
        sampler.stop()
    if rc != 0:
        raise RuntimeError(f"{shlex.join(argv)} exited with {rc}; see {out}")
    o = outcome_of(log, target)
    assert o.run_stop_s is not None and o.time_to_train_s is not None
    cpu = sampler.cpu_between(o.run_start_s or 0.0, o.run_stop_s)
    return Run(o.time_to_train_s, o.time_per_epoch_s, cpu / o.time_to_train_s)


def run_commands(wf: Path, target_of: str, overlays: Sequence[Path]) -> dict[str, str]:
    """The spec of every training job the workflow would run for ``target_of``'s runs: the
    rendered command and the runner's environment, from ``snakemake -n -p`` (what the rule
    really runs, whatever the code that renders it)."""
    argv = snakemake_argv("-n", "-p", target_of, overlays=overlays)
    proc = subprocess.run(argv, cwd=wf, capture_output=True, text=True, env=snakemake_env())
    if proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} failed:\n{proc.stdout}\n{proc.stderr}")
    specs = {}
    for line in proc.stdout.splitlines():
        if "scripts.run.runner" in line and "--spec" in line:
            words = shlex.split(line.strip())
            spec = yaml.safe_load(words[words.index("--spec") + 1])  # JSON is YAML
            specs[spec["run_id"]] = spec
    return specs


def snakemake_argv(*targets: str, overlays: Sequence[Path]) -> list[str]:
    """``snakemake --cores 1 TARGETS --configfile OVERLAYS`` (the overlays last: --configfile
    takes every word that follows it)."""
    return [sys.executable, "-m", "snakemake", "--cores", "1", *targets, "--configfile",
            *map(str, overlays)]  # fmt: skip


def snakemake_env() -> dict[str, str]:
    """This environment without a calling snakemake's variables."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SNAKEMAKE")}


def bare_env(spec: dict) -> dict[str, str]:
    """The environment the runner gives a local run: the local backend's own launch
    (scripts/run/backends/local.py), from this environment, which has no snakemake's."""
    run_spec = RunSpec.from_json(json.dumps(spec))
    return backends.get("local").launch(run_spec, run_spec.command, {}).env


def pairs_of(
    wf: Path, benchmark: str, system: str, n: int, overlays: Sequence[Path], target: float
) -> list[tuple[Run, Run]]:
    """``n`` interleaved (workflow, bare) runs of ``benchmark`` on ``system``."""
    run_dirs = [f"results/{benchmark}/{system}/run_{i:02d}" for i in range(1, n + 1)]
    specs = run_commands(wf, f"results/{benchmark}/runs.csv", overlays)
    (wf / "bare").mkdir(exist_ok=True)
    env = snakemake_env()
    pairs = []
    for i, run_dir in enumerate(run_dirs, start=1):
        spec = specs[f"{i:02d}"]
        bare_log = wf / "bare" / f"{benchmark}_{i:02d}.log"
        # (argv, environment, the MLPerf log it writes, where its stdout goes)
        sides = {
            "workflow": (
                snakemake_argv(f"{run_dir}/mlperf.log", overlays=overlays), env,
                wf / run_dir / "mlperf.log",
                wf / "bare" / f"snakemake_{benchmark}_{i:02d}.out",
            ),
            "bare": (["/bin/bash", "-c", spec["command"]], bare_env(spec), bare_log, bare_log),
        }  # fmt: skip
        order = ("workflow", "bare") if i % 2 else ("bare", "workflow")
        got = {}
        for side in order:
            argv, side_env, log, out = sides[side]
            got[side] = measure(argv, wf, side_env, log, target, out)
        pairs.append((got["workflow"], got["bare"]))
        w, b = got["workflow"].time_to_train_s, got["bare"].time_to_train_s
        print(f"  pair {i} ({order[0]} first): workflow {w:.3f} s, bare {b:.3f} s", flush=True)
    return pairs


def interval(values: Sequence[float]) -> str:
    d = scoring.describe(values)
    if d.n < 2:
        return f"{d.mean_s:.4f} (1 pair: no interval)"
    return f"{d.mean_s:.4f} (95% CI {d.ci95_low_s:.4f} to {d.ci95_high_s:.4f}, n={d.n})"


# the power command of part 4: as cheap as a real one can be, through bash -c as a string runs
POWER_COMMAND = "echo 250"


def sampler_alone(seconds: float, interval_s: float = 1.0) -> tuple[float, int]:
    """Part 4 (a): (CPU seconds per second, samples) of a ``command`` power source sampled in
    this otherwise idle process for ``seconds``: its thread, the commands it runs (reaped
    children), the power log written at the stop."""

    def cpu() -> float:
        me, kids = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
        return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime

    setting = {"source": "command", "command": POWER_COMMAND, "interval_s": interval_s}
    with tempfile.TemporaryDirectory(prefix="bench-power-") as run_dir:
        env = power_sampler.command_env(os.environ, "gnmt", "local", 1)
        c0, t0 = cpu(), time.monotonic()
        sampler = power_sampler.start(setting, Path(run_dir), env)
        time.sleep(seconds)
        record = power_sampler.finish(sampler, Path(run_dir))
        c1, t1 = cpu(), time.monotonic()
    return (c1 - c0) / (t1 - t0), int(record["power_sampling"]["samples"])


def power_pairs(tmp: Path, n: int, target: float) -> list[tuple[Run, Run]]:
    """Part 4 (b): ``n`` interleaved GNMT runs with power sampling (on, off), each side in its
    own copy of the workflow: the same runs, seeds and commands but for the power source."""
    copies = {}
    for side in ("on", "off"):
        wf = copy_workflow(tmp / f"wf-power-{side}")
        overlay: dict = {"benchmarks": {"gnmt": {"runs": n}}}
        if side == "on":
            power = {"source": "command", "command": POWER_COMMAND, "interval_s": 1}
            overlay["systems"] = {"local": {"power": power}}
        path = wf / "power-pairs.yaml"
        path.write_text(yaml.safe_dump(overlay))
        copies[side] = (wf, path)
    pairs = []
    for i in range(1, n + 1):
        order = ("on", "off") if i % 2 else ("off", "on")
        got = {}
        for side in order:
            wf, overlay_path = copies[side]
            run = f"results/gnmt/local/run_{i:02d}"
            argv = snakemake_argv(f"{run}/mlperf.log", overlays=[overlay_path])
            log, out = wf / run / "mlperf.log", wf / f"snakemake_power_{i:02d}.out"
            got[side] = measure(argv, wf, snakemake_env(), log, target, out, children=True)
        meta = copies["on"][0] / f"results/gnmt/local/run_{i:02d}/run.json"
        readings = (json.loads(meta.read_text()).get("power_sampling") or {}).get("readings")
        on, off = got["on"].time_to_train_s, got["off"].time_to_train_s
        print(f"  power pair {i} ({order[0]} first): on {on:.3f} s ({readings} readings), "
              f"off {off:.3f} s", flush=True)  # fmt: skip
        pairs.append((got["on"], got["off"]))
    return pairs


def power_report(alone: tuple[float, int], pairs: Sequence[tuple[Run, Run]]) -> None:
    """Part 4's lines (tests/test_bench.py and docs/PERFORMANCE.md section 12 read them)."""
    per_s, samples = alone
    print(
        f"power sampling at 1 Hz, the sampler alone: {100 * per_s:.3f}% of a core "
        f"({samples} samples of {POWER_COMMAND!r}; goal < 0.5%)"
    )
    if not pairs:
        return
    ratio = [on.time_to_train_s / off.time_to_train_s for on, off in pairs]
    cpu_on = [on.harness_cpu_per_s for on, _ in pairs if on.harness_cpu_per_s is not None]
    cpu_off = [off.harness_cpu_per_s for _, off in pairs if off.harness_cpu_per_s is not None]
    print(f"power sampling on / off, time to train: {interval(ratio)}")
    print(
        f"harness CPU per second of training with its children, power sampling on: "
        f"{100 * statistics.mean(cpu_on):.3f}% of a core, off: "
        f"{100 * statistics.mean(cpu_off):.3f}% (on - off: "
        f"{100 * (statistics.mean(cpu_on) - statistics.mean(cpu_off)):.3f}%)"
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--pairs", type=int, default=5, help="GNMT pairs (workflow, bare)")
    p.add_argument("--chatty-pairs", type=int, default=3)
    p.add_argument("--chatty-lines", type=int, default=500_000)
    p.add_argument("--quick", action="store_true", help="1 pair each, BLEU target 40")
    p.add_argument("--power", action="store_true", help="part 4: power sampling on and off")
    p.add_argument("--power-only", action="store_true", help="part 4 only")
    p.add_argument("--power-pairs", type=int, default=3, help="GNMT pairs (sampling on, off)")
    p.add_argument("--power-seconds", type=float, default=60.0, help="the sampler alone")
    args = p.parse_args()
    if (args.power or args.power_only) and not args.quick:
        print(f"power sampling at 1 Hz, commit {commit()}", flush=True)
        alone = sampler_alone(args.power_seconds)
        with tempfile.TemporaryDirectory(prefix="bench-power-pairs-") as tmp:
            pairs = power_pairs(Path(tmp), args.power_pairs, 90.0)
        power_report(alone, pairs)
        if args.power_only:
            return 0
    pairs, chatty_pairs, lines = (1, 1, 20_000) if args.quick else (
        args.pairs, args.chatty_pairs, args.chatty_lines
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-perturbation-") as tmp:
        wf = copy_workflow(Path(tmp) / "wf")
        shutil.copy2(REPO / "bench" / "chatty_trainer.py", wf / "chatty_trainer.py")
        gnmt = wf / "gnmt-pairs.yaml"
        bench: dict = {"runs": max(pairs, 1)}
        if args.quick:
            bench["quality"] = {"target": 40.0}
        gnmt.write_text(yaml.safe_dump({"benchmarks": {"gnmt": bench}}))
        target = 40.0 if args.quick else 90.0
        print(f"embedded GNMT, {pairs} pairs, commit {commit()}", flush=True)
        gnmt_pairs = pairs_of(wf, "gnmt", "local", pairs, [gnmt], target)
        chatty = trivial_campaign(
            wf, systems=1, runs=chatty_pairs, benchmark="chatty",
            command=f"{{python}} chatty_trainer.py --seed {{seed}} --lines {lines}",
        )  # fmt: skip
        print(f"chatty trainer, {lines} lines at 50,000 per second, {chatty_pairs} pairs")
        chatty_runs = pairs_of(wf, "chatty", "sys000", chatty_pairs, [chatty], 0.5)
    report(gnmt_pairs, chatty_runs)
    return 0


def report(gnmt: Sequence[tuple[Run, Run]], chatty: Sequence[tuple[Run, Run]]) -> None:
    ttt = [w.time_to_train_s / b.time_to_train_s for w, b in gnmt]
    tpe = [
        w.time_per_epoch_s / b.time_per_epoch_s
        for w, b in gnmt
        if w.time_per_epoch_s and b.time_per_epoch_s
    ]
    cpu = [w.harness_cpu_per_s for w, _ in gnmt if w.harness_cpu_per_s is not None]
    print(f"{'pair':>4}{'workflow s':>12}{'bare s':>10}{'ratio':>8}{'harness CPU %':>15}")
    for i, (w, b) in enumerate(gnmt, start=1):
        print(
            f"{i:>4}{w.time_to_train_s:>12.3f}{b.time_to_train_s:>10.3f}"
            f"{w.time_to_train_s / b.time_to_train_s:>8.4f}"
            f"{100 * (w.harness_cpu_per_s or 0):>15.3f}"
        )
    print(f"time to train, workflow / bare: {interval(ttt)} (goal within 1%)")
    if tpe:
        print(f"time per epoch, workflow / bare: {interval(tpe)} (goal within 1%)")
    print(
        f"harness CPU per second of training: {100 * statistics.mean(cpu):.3f}% of a core "
        f"(max {100 * max(cpu):.3f}%; goal < 0.5%)"
    )
    chat = [b.time_to_train_s / w.time_to_train_s for w, b in chatty]
    print(f"chatty trainer, bare / workflow time to train: {interval(chat)} (goal >= 0.95)")


if __name__ == "__main__":
    raise SystemExit(main())
