"""GPU check: the embedded campaign on the GPU (3 seeds) and one timed minute at GNMT reference
size. Run it through bench/gpu_check.sh, which first checks that there is an NVIDIA GPU.

    bash bench/gpu_check.sh                  # cuda: 3 runs of the campaign, 60 s at reference size
    bash bench/gpu_check.sh --device cpu --quick   # the same path on the CPU, small (tests)

1. A fresh copy of the workflow (no results, no data) runs `snakemake --cores 1
   results/gnmt/summary.csv` with config/systems/local-gpu.yaml and an overlay that restricts
   the campaign to that system and 3 runs (--device cpu: the system 'local' instead). The
   trainer's device comes from the system's gpus, as in any campaign.
2. `python -m scripts.gnmt.speed --preset reference` trains the reference-size model (4+4
   LSTM layers of 1024 units, vocabulary 32000) on synthetic tokens for --seconds, with --amp
   unless --precision fp32 (both: one timed period each).

It prints, per run, time to target, time per epoch (runs.csv, from the MLPerf log) and tokens/s
(the trainer's progress lines), their medians, and the reference-size tokens/s.

With ``--nvml`` the system also has ``power: {source: nvml}`` (every ``--nvml-interval`` s):
each run's power log (power/node_0.txt: the GPUs only, through NVIDIA's NVML), its energy
(result.json, as the result summarizer scores it), the GPUs' own energy counter over the same
window beside it, and gpu_telemetry.json: per GPU the seconds with each clock event reason,
the highest temperature, the mean SM clock, ECC and XID errors.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, commit, copy_workflow, snakemake  # noqa: E402

from scripts.campaign import topology  # noqa: E402

TOKENS = re.compile(r"^epoch \d+: .*?(\d+) tokens/s on (\w+)", re.M)


def cuda_problem() -> str | None:
    """Why torch cannot use a GPU here, or None when it can."""
    import torch

    if torch.cuda.is_available():
        return None
    if torch.version.cuda is None:
        return (
            f"torch {torch.__version__} is a CPU-only build: install a CUDA build "
            "(e.g. pip install torch --index-url https://download.pytorch.org/whl/cu124) "
            "and run this again"
        )
    return (
        f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no GPU: check the driver "
        "(nvidia-smi) and CUDA_VISIBLE_DEVICES"
    )


def describe(device: str) -> str:
    """torch's version and the device's name."""
    import torch

    name = (
        torch.cuda.get_device_name(0) if device == "cuda" else f"{torch.get_num_threads()} threads"
    )
    return f"torch {torch.__version__} (CUDA {torch.version.cuda}), {device}: {name}"


def overlay(
    device: str, runs: int, quick: bool, nvml_interval_s: float | None = None
) -> dict[str, object]:
    """The campaign of the check: one system, ``runs`` runs. Quick: one epoch of a 32-unit
    model in batches of 256, target BLEU 0 (every run converges at once), so that a loaded CPU
    does it in seconds; the path (snakemake, runner, trainer, MLPerf log, tables) is the same."""
    system = "local-gpu" if device == "cuda" else "local"
    bench: dict[str, object] = {"runs": runs}
    systems: dict[str, object] = {}
    if quick:
        bench["quality"] = {"metric": "bleu", "target": 0.0, "direction": "higher"}
        quick_hp = {"hidden": 32, "batch_size": 256, "max_epochs": 1}
        systems[system] = {"hyperparameters": {"gnmt": quick_hp}}
    if nvml_interval_s is not None:  # the GPUs' power and telemetry through NVML
        power = {"source": "nvml", "interval_s": nvml_interval_s}
        systems.setdefault(system, {})["power"] = power  # type: ignore[index]
    return {
        "campaign": {"benchmarks": ["gnmt"], "systems": [system], "reference_system": system},
        "benchmarks": {"gnmt": bench},
        "systems": systems,
    }


def campaign(
    wf: Path, device: str, runs: int, quick: bool, nvml_interval_s: float | None = None
) -> list[dict[str, str]]:
    """Run the campaign in ``wf``; its runs.csv rows, each with the run's tokens/s added
    (``nvml_interval_s``: measure the GPUs through NVML every that many seconds)."""
    extra = wf / "gpu-check.yaml"
    extra.write_text(yaml.safe_dump(overlay(device, runs, quick, nvml_interval_s)))
    files = ["config/systems/local-gpu.yaml", str(extra)] if device == "cuda" else [str(extra)]
    try:
        snakemake(wf, "--cores", "1", "results/gnmt/summary.csv", "--configfile", *files)
    except RuntimeError as exc:  # its output, the failed run's reason included, last
        raise SystemExit(f"error: the campaign failed: {str(exc)[-6000:]}") from None
    with (wf / "results/gnmt/runs.csv").open() as f:
        rows = list(csv.DictReader(f))
    ids = topology.run_ids(runs)  # the run folders' suffixes (01, 02, ...)
    for row in rows:
        run_dir = wf / f"results/gnmt/{row['system']}/run_{ids[int(row['run']) - 1]}"
        log = (run_dir / "mlperf.log").read_text()
        found = TOKENS.findall(log)
        if not found or any(dev != device for _, dev in found):
            raise SystemExit(f"error: run {row['run']} did not train on {device}: {found}")
        row["tokens_per_s"] = str(statistics.median(float(t) for t, _ in found))
        row["run_dir"] = str(run_dir)
    return rows


def nvml_lines(rows: list[dict[str, str]]) -> list[str]:
    """What NVML recorded of each run: readings and gaps, energy (and the mean power by the
    readings against the GPUs' own energy counter), and per GPU its clock event reasons,
    temperature, SM clock and errors (gpu_telemetry.json)."""
    out = ["NVML (power.source nvml: the GPUs only, not the node at the wall), per run:"]
    for row in rows:
        run_dir = Path(row["run_dir"])
        meta = json.loads((run_dir / "run.json").read_text())
        result = json.loads((run_dir / "result.json").read_text())
        s = meta.get("power_sampling") or {}
        if s.get("problem") or not s.get("file"):
            out.append(f"  run {row['run']}: no power log: {s.get('problem') or 'not sampled'}")
            continue
        node = meta["power"]["files"][0]
        mean_w = node["integral_w_ms"] / (node["stop_ms"] - node["start_ms"])
        counter = s.get("gpu_energy_counter_j")
        sampled = s.get("sampled_s") or s["window_s"]  # the counters span the whole sampling
        by_counter = f"{counter / sampled:.1f} W" if counter and sampled else "n/a"
        out.append(
            f"  run {row['run']}: {s['readings']} readings every {s['interval_s']} s "
            f"({s['failed']} failed), energy {result.get('energy_j')} J "
            f"({result.get('power_problems') or 'no power problems'}); mean power "
            f"{mean_w:.1f} W by the readings from run_start to run_stop, {by_counter} by the "
            "GPUs' energy counter over the whole sampling (start-up and teardown too); "
            f"a GPU throttled {s.get('gpu_throttled_s')} s, at its power cap "
            f"{s.get('gpu_power_capped_s')} s"
        )
        telemetry = json.loads((run_dir / s["gpu_telemetry"]).read_text())
        for gpu, g in telemetry["gpus"].items():
            reasons = ", ".join(f"{k} {v:g} s" for k, v in g["reasons_s"].items() if v)
            out.append(
                f"    GPU {gpu}: clock event reasons: {reasons or 'none'}; max "
                f"{g['max_temperature_c']} C; mean SM clock {g['mean_sm_clock_mhz']} MHz; ECC "
                f"corrected {g['ecc_corrected']}, uncorrected {g['ecc_uncorrected']}; XID "
                f"errors {[x['xid'] for x in g['xid_errors']]}"
            )
        out += [f"    note: {n}" for n in telemetry.get("notes", [])]
    return out


def timed(device: str, seconds: float, amp: bool, quick: bool) -> str:
    """One timed period of scripts.gnmt.speed; its ``timed:`` line."""
    size = ["--preset", "reference"]
    if quick:
        size = ["--preset", "embedded", "--vocab", "1000", "--batch-size", "16", "--seq-len", "8"]
    cmd = [sys.executable, "-m", "scripts.gnmt.speed", *size, "--device", device]
    cmd += ["--seconds", str(seconds), *(["--amp"] if amp else [])]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"error: {' '.join(cmd)} failed:\n{out.stderr.strip()}")
    return next(line for line in out.stdout.splitlines() if line.startswith("timed:"))


def median(rows: list[dict[str, str]], key: str) -> float:
    values = [float(r[key]) for r in rows if r[key] not in ("", "nan")]
    return statistics.median(values) if values else float("nan")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    p.add_argument("--runs", type=int, default=3, help="runs (seeds) of the embedded campaign")
    p.add_argument("--seconds", type=float, default=60.0, help="timed training at reference size")
    p.add_argument("--precision", choices=["amp", "fp32", "both"], default="amp")
    p.add_argument("--quick", action="store_true", help="small and short (the CPU smoke test)")
    p.add_argument("--keep", type=Path, help="run the campaign in this folder and keep it")
    p.add_argument(
        "--nvml",
        action="store_true",
        help="measure the GPUs through NVML (power.source nvml): energy, clock event reasons, "
        "temperature, SM clock, ECC and XID errors per run (needs --device cuda)",
    )
    p.add_argument("--nvml-interval", type=float, default=0.1, help="seconds between readings")
    args = p.parse_args()
    if args.nvml and args.device != "cuda":
        raise SystemExit("error: --nvml measures NVIDIA GPUs: it needs --device cuda")
    if args.device == "cuda" and (why := cuda_problem()):
        raise SystemExit(f"error: no usable GPU: {why}")
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        wf = copy_workflow(args.keep or Path(tmp) / "wf")
        rows = campaign(
            wf, args.device, args.runs, args.quick, args.nvml_interval if args.nvml else None
        )
        measured = nvml_lines(rows) if args.nvml else []
        lines = [
            timed(args.device, args.seconds, amp, args.quick)
            for amp in {"amp": [True], "fp32": [False], "both": [False, True]}[args.precision]
        ]
    print(f"GPU check on {args.device}, commit {commit()}{' (quick)' if args.quick else ''}")
    print(describe(args.device))
    print(f"embedded campaign, {len(rows)} runs (snakemake, fresh copy of the workflow):")
    print(
        f"{'run':>5}{'seed':>12}{'converged':>11}{'epochs':>8}{'time to target s':>18}"
        f"{'time per epoch s':>18}{'tokens/s':>11}"
    )
    for r in rows:
        print(
            f"{r['run']:>5}{r['seed']:>12}{r['converged']:>11}{r['epochs']:>8}"
            f"{float(r['time_to_train_s'] or 'nan'):>18.2f}"
            f"{float(r['time_per_epoch_s'] or 'nan'):>18.3f}{float(r['tokens_per_s']):>11.0f}"
        )
    print(
        f"median time to target: {median(rows, 'time_to_train_s'):.2f} s; median time per "
        f"epoch: {median(rows, 'time_per_epoch_s'):.3f} s; median tokens/s: "
        f"{median(rows, 'tokens_per_s'):.0f}"
    )
    size = "embedded size (quick)" if args.quick else "reference size"
    for line in lines:
        print(f"{size}, synthetic tokens: {line}")
    if measured:
        print("\n".join(measured))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
