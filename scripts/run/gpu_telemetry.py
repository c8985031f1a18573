"""What a run's GPUs did while it trained, from NVML's samples: the arithmetic only, pure, so it
is tested with recorded sample values (the NVML calls that take the samples,
:mod:`scripts.run.nvml_power`, need an NVIDIA driver).

A slow run is often a slow GPU, not a slow model: clocks held down by the power cap, by heat
or by the board (NVML's *clock event reasons*, called throttle reasons before driver 530), or a
GPU with memory or XID errors. Per GPU, ``gpu_telemetry.json`` holds:

- ``reasons_s``: the seconds with each clock event reason of :data:`THROTTLE_REASONS` set
  (SW power cap, HW slowdown, SW thermal, HW thermal, HW power brake);
- ``throttled_s``: the seconds with any of them but the SW power cap (:data:`THROTTLE_MASK`):
  a GPU held at its power limit is working as configured (a training GPU often runs there),
  not slowed by heat or by the board, so it is recorded (``reasons_s``, the run's
  ``gpu_power_capped_s``) but never called throttled;
- ``max_temperature_c`` and ``mean_sm_clock_mhz`` (time-weighted);
- ``ecc_corrected``, ``ecc_uncorrected``: the volatile ECC error counts the run added;
- ``xid_errors``: the XID critical errors NVML reported during the run.

A sample stands for the time since the previous one (the first: since the start), as the
result summarizer weighs a power reading (:mod:`scripts.mlperf.power`), so the seconds of a
reason are the sum of the intervals whose closing sample has its bit set. The run's
``gpu_throttled_s`` is the time during which at least one of its GPUs was throttled, and
``gpu_power_capped_s`` the time during which at least one was at its SW power cap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

# NVML's clock event reasons that slow a GPU down (nvml.h: nvmlClocksEventReason*): the bits of
# nvmlDeviceGetCurrentClocksEventReasons. Idle, application clocks, sync boost and display
# clocks are not slowdowns of a training run and are not counted.
THROTTLE_REASONS: dict[str, int] = {
    "sw_power_cap": 0x4,
    "hw_slowdown": 0x8,
    "sw_thermal": 0x20,
    "hw_thermal": 0x40,
    "hw_power_brake": 0x80,
}
POWER_CAP_MASK = THROTTLE_REASONS["sw_power_cap"]
# the reasons that count as throttled: HW slowdown, SW and HW thermal, HW power brake
THROTTLE_MASK = sum(THROTTLE_REASONS.values()) & ~POWER_CAP_MASK
TELEMETRY_FILE = "gpu_telemetry.json"


class GpuSample(NamedTuple):
    """One GPU at one sample; a value NVML could not give is None."""

    reasons: int | None  # the clock event reasons bitmask
    temperature_c: float | None
    sm_clock_mhz: float | None


Sample = tuple[float, Sequence[GpuSample]]  # (epoch seconds, one GpuSample per GPU)


def weights(start_s: float, times_s: Sequence[float]) -> list[float]:
    """The seconds each sample stands for: the time since the previous one (the first: since
    ``start_s``); never negative (a clock that stepped back weighs 0)."""
    out, prev = [], start_s
    for t in times_s:
        out.append(max(0.0, t - prev))
        prev = max(prev, t)
    return out


def reason_seconds(start_s: float, times_s: Sequence[float], masks: Sequence[int | None]) -> dict:
    """Seconds with each reason of :data:`THROTTLE_REASONS` set, and ``throttled_s`` (any of
    them), over samples taken at ``times_s`` with the bitmasks ``masks`` (None: unknown)."""
    seconds = dict.fromkeys(THROTTLE_REASONS, 0.0)
    throttled = 0.0
    for w, mask in zip(weights(start_s, times_s), masks, strict=True):
        if mask is None:
            continue
        for name, bit in THROTTLE_REASONS.items():
            if mask & bit:
                seconds[name] += w
        if mask & THROTTLE_MASK:
            throttled += w
    return {
        "reasons_s": {k: round(v, 3) for k, v in seconds.items()},
        "throttled_s": round(throttled, 3),
    }


def weighted_mean(ws: Sequence[float], values: Sequence[float | None]) -> float | None:
    """The mean of ``values`` weighted by ``ws`` (None values left out); None without weight."""
    pairs = [(w, v) for w, v in zip(ws, values, strict=True) if v is not None]
    total = sum(w for w, _ in pairs)
    if total <= 0:
        known = [v for _, v in pairs]
        return sum(known) / len(known) if known else None
    return sum(w * v for w, v in pairs) / total


def gpu_summary(start_s: float, times_s: Sequence[float], samples: Sequence[GpuSample]) -> dict:
    """One GPU's record (without its errors) from its samples at ``times_s``."""
    ws = weights(start_s, times_s)
    temps = [s.temperature_c for s in samples if s.temperature_c is not None]
    clock = weighted_mean(ws, [s.sm_clock_mhz for s in samples])
    return {
        **reason_seconds(start_s, times_s, [s.reasons for s in samples]),
        "max_temperature_c": max(temps) if temps else None,
        "mean_sm_clock_mhz": round(clock, 1) if clock is not None else None,
        "samples": sum(1 for s in samples if s.reasons is not None),
    }


def any_throttled_s(start_s: float, samples: Sequence[Sample], mask: int = THROTTLE_MASK) -> float:
    """The seconds during which at least one GPU had a reason of ``mask`` (by default the
    throttling ones, :data:`THROTTLE_MASK`)."""
    ws = weights(start_s, [t for t, _ in samples])
    return round(
        sum(
            w
            for w, (_, gpus) in zip(ws, samples, strict=True)
            if any(g.reasons is not None and g.reasons & mask for g in gpus)
        ),
        3,
    )


def summarize(
    start_s: float,
    stop_s: float,
    gpus: Sequence[str],
    samples: Sequence[Sample],
    errors: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """gpu_telemetry.json: per GPU (``gpus``: their names, e.g. NVML indices as strings, in the
    order of each sample's GpuSample list) its :func:`gpu_summary` and ``errors`` (ECC counts
    and XIDs, by GPU name), and the run's ``gpu_throttled_s`` and ``gpu_power_capped_s``."""
    times = [t for t, _ in samples]
    per_gpu = {}
    for i, name in enumerate(gpus):
        own = [g[i] if i < len(g) else GpuSample(None, None, None) for _, g in samples]
        per_gpu[name] = {**gpu_summary(start_s, times, own), **dict((errors or {}).get(name, {}))}
    return {
        "start_s": start_s,
        "stop_s": stop_s,
        "seconds": round(max(0.0, stop_s - start_s), 3),
        "reasons": {k: hex(v) for k, v in THROTTLE_REASONS.items()},
        "gpu_throttled_s": any_throttled_s(start_s, samples),
        "gpu_power_capped_s": any_throttled_s(start_s, samples, POWER_CAP_MASK),
        "gpus": per_gpu,
    }


def error_counts(before: int | None, after: int | None) -> int | None:
    """The errors a counter gained during the run (None: unknown, e.g. ECC off or unsupported;
    a counter that went down, reset by the driver, counts from 0)."""
    if before is None or after is None:
        return None
    return after - before if after >= before else after


# The report's thresholds (scripts/analysis/report_findings.py: throttle_warnings): a run is
# named throttled when a GPU was for at least this share of it, and a system's runs differ in
# throttling when their shares lie this far apart.
THROTTLED_SHARE = 0.05
THROTTLE_SPREAD = 0.10
