#!/usr/bin/env bash
# GPU check of a machine: 3 seeds of the embedded campaign on its NVIDIA GPU (snakemake with
# config/systems/local-gpu.yaml, in a fresh copy of the workflow) and one timed minute of the
# GNMT model at reference size (4+4 LSTM layers of 1024 units, vocabulary 32000; synthetic
# tokens, mixed precision). Prints tokens/s, time per epoch and time to target.
#
# Needs: this repository, `pip install -r requirements.txt` done, an NVIDIA driver and a CUDA
# build of torch (requirements.txt may have installed a CPU-only one: the script says so).
#   bash bench/gpu_check.sh                         # a few minutes (never run on a GPU yet)
#   bash bench/gpu_check.sh --precision both        # the timed minute in fp32 and in amp
#   bash bench/gpu_check.sh --seconds 120 --runs 5  # longer
#   bash bench/gpu_check.sh --device cpu --quick --seconds 2   # the same path on the CPU, small
#   bash bench/gpu_check.sh --synthetic             # RetinaNet v5.1, synthetic data, 1 run (below)
#                                                   # (tests/test_bench.py runs it)
#   bash bench/gpu_check.sh --nvml --seconds 10     # the campaign with power.source nvml: each
#                                                   # run's energy (the GPUs only), clock event
#                                                   # reasons, temperature, SM clock, ECC, XID
#                                                   # (never run on a GPU yet; --nvml-interval S)
# Every other option goes to bench/gpu_check.py (--help lists them).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"

# --synthetic: NVIDIA's RetinaNet v5.1 (tests/data/published) as a benchmark with
# implementation.synthetic (USE_SYNTHETIC_DATA=1), 1 run on this machine's GPUs in docker with
# the NVIDIA container toolkit, the stand-in image of tests/data/v51_standin on
# MLPERF_SYNTHETIC_BASE (default python:3.11-slim); prints result.json and summary.csv. It skips
# (exit 0, one line) where there is no GPU or no docker with the toolkit. Not run in CI.
if [[ "${1:-}" == "--synthetic" ]]; then
    if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
        echo "skip: synthetic run: no NVIDIA GPU here (nvidia-smi missing or finds none)"
        exit 0
    fi
    if ! docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q nvidia; then
        echo "skip: synthetic run: no docker with the NVIDIA container toolkit here"
        exit 0
    fi
    ngpu="$(nvidia-smi -L | wc -l)"
    work="$(mktemp -d /tmp/gpu-synthetic.XXXXXX)"
    echo "synthetic run: $ngpu GPU(s), in $work"
    exec "$PYTHON" -m bench.gpu_synthetic --work "$work" --gpus "$ngpu" \
        --base "${MLPERF_SYNTHETIC_BASE:-python:3.11-slim}"
fi

device=cuda
for ((i = 1; i <= $#; i++)); do
    if [[ "${!i}" == "--device" ]]; then
        j=$((i + 1))
        device="${!j:-}"
    fi
done

if [[ "$device" == "cuda" ]]; then
    if ! command -v nvidia-smi >/dev/null 2>&1; then
        echo "error: no NVIDIA GPU here: nvidia-smi is not installed (no NVIDIA driver);" \
            "this check needs a GPU (--device cpu runs its CPU smoke mode)" >&2
        exit 2
    fi
    if ! gpus="$(nvidia-smi --query-gpu=index,name,driver_version,memory.total \
        --format=csv,noheader 2>&1)" || [[ -z "$gpus" ]]; then
        echo "error: no NVIDIA GPU here: nvidia-smi found none: ${gpus:-no output}" >&2
        exit 2
    fi
    echo "nvidia-smi: ${gpus//$'\n'/; }"
    for arg in "$@"; do
        if [[ "$arg" == "--nvml" ]]; then  # NVML through NVIDIA's binding (nvidia-ml-py)
            if ! why="$("$PYTHON" -c 'import sys
from scripts.run.nvml_power import nvml_problem
why = nvml_problem()
print(why or "NVML starts")
sys.exit(1 if why is not None else 0)' 2>&1 | tail -n 1)"; then
                echo "error: --nvml: $why" >&2
                exit 2
            fi
            echo "nvml: $why"
        fi
    done
    if ! why="$("$PYTHON" -c 'import sys
from bench.gpu_check import cuda_problem
why = cuda_problem()
print(why or "")
sys.exit(1 if why else 0)' 2>&1 | tail -n 1)"; then
        echo "error: the GPU is there but torch cannot use it: $why" >&2
        exit 2
    fi
fi
exec "$PYTHON" bench/gpu_check.py "$@"
