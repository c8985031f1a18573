"""The ``nvml`` power source: the run's GPUs' power and health through NVIDIA's own NVML binding
(``nvidia-ml-py``, pinned in requirements.txt; its module is named ``pynvml``, the deprecated
``pynvml`` *package* is never used), imported only when a system names ``power.source: nvml``.

**What it measures: the GPUs only.** NVML reports each GPU board's power draw
(``nvmlDeviceGetPowerUsage``); the node's CPUs, memory, fans, network and power supplies are
not in it, so its energy is not MLPerf's wall-plug node energy and is never to be compared
with a published power result. run.json's ``power_sampling.measures`` says so.

Per sample (one per ``power.interval_s``) it reads, per GPU: the power (their sum is the
sample's watts), the clock event reasons (``nvmlDeviceGetCurrentClocksEventReasons``), the GPU
temperature and the SM clock; at the start and the stop the volatile ECC error counts and the
energy counter (``nvmlDeviceGetTotalEnergyConsumption``, millijoules, Volta and later, a cross
check of the integrated power); XID critical errors arrive as NVML events, polled at each
sample. :mod:`scripts.run.gpu_telemetry` turns the samples into ``gpu_telemetry.json``.

The run's GPUs are those of its ``gpu_devices`` taken as NVML indices (NVML numbers GPUs by PCI
bus, as CUDA does with ``CUDA_DEVICE_ORDER=PCI_BUS_ID``, which the runner sets for the GPUs it
assigns: :func:`scripts.run.gpus.cuda_env`; a container engine's ``--gpus`` numbers them so too)
or UUIDs; without any, every GPU NVML sees. A MIG instance's UUID reads its whole GPU (NVML
gives power per GPU, not per instance): noted in ``gpu_telemetry.json``, each GPU counted once.
None of this can run without an NVIDIA driver: the workflow checks it at load time
(:func:`nvml_problem`, scripts/campaign/power_checks.py), and bench/gpu_check.sh runs it on a
real GPU. On a machine without one only the arithmetic
(:mod:`scripts.run.gpu_telemetry`) and this module's handling of what NVML answers (through a
stand-in module in tests/test_power_sampler.py) are tested.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from scripts.core import hashing
from scripts.run.gpu_telemetry import TELEMETRY_FILE, GpuSample, Sample, error_counts, summarize

NOT_FOUND = "NVML not found: no NVIDIA driver on this host"
NO_PACKAGE = (
    "NVML not found: the nvidia-ml-py package is not installed (pip install -r requirements.txt)"
)
MAX_XIDS = 100  # XID events kept per run


class NvmlUnavailable(Exception):
    """NVML cannot be used here (the message is one line)."""


class NvmlReadFailed(Exception):
    """One sample NVML could not give (the sampler counts it as a failed sample)."""


def load() -> ModuleType:
    """NVIDIA's binding (``import pynvml`` of the nvidia-ml-py package)."""
    try:
        # lazy: only a system with power.source nvml needs NVIDIA's binding
        import pynvml
    except ImportError:
        raise NvmlUnavailable(NO_PACKAGE) from None
    return pynvml


def init(nv: ModuleType) -> None:
    """nvmlInit, its failure as one line: NOT_FOUND without the library or a loaded driver."""
    try:
        nv.nvmlInit()
    except nv.NVMLError as exc:
        code = getattr(exc, "value", None)
        if code in (nv.NVML_ERROR_LIBRARY_NOT_FOUND, nv.NVML_ERROR_DRIVER_NOT_LOADED):
            raise NvmlUnavailable(NOT_FOUND) from None
        raise NvmlUnavailable(f"NVML cannot start on this host: {exc}") from None


def nvml_problem() -> str | None:
    """Why ``power.source: nvml`` cannot work on this host (one line), or None: NVML starts
    and sees at least one GPU."""
    try:
        nv = load()
        init(nv)
    except NvmlUnavailable as exc:
        return str(exc)
    try:
        if nv.nvmlDeviceGetCount() == 0:
            return "NVML finds no GPU on this host"
    except nv.NVMLError as exc:
        return f"NVML cannot list the GPUs of this host: {exc}"
    finally:
        _shutdown(nv)
    return None


def _shutdown(nv: ModuleType) -> None:
    try:
        nv.nvmlShutdown()
    except nv.NVMLError:
        pass


def _maybe(nv: ModuleType, call: Any, *args: Any) -> Any:
    """``call(*args)``, None where NVML cannot give it (not supported, no permission...)."""
    try:
        return call(*args)
    except nv.NVMLError:
        return None


@dataclass
class NvmlSource:
    """The summed power of the run's GPUs, with their telemetry (see the module docstring)."""

    devices: list[str]
    name: str = "nvml"
    nv: Any = None
    handles: list[Any] = field(default_factory=list)
    gpus: list[str] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    before: dict[str, dict[str, Any]] = field(default_factory=dict)
    xids: list[dict[str, Any]] = field(default_factory=list)
    events: Any = None
    notes: list[str] = field(default_factory=list)

    def open(self) -> None:
        self.nv = nv = load()
        init(nv)
        if self.devices:
            handles = [self._whole_gpu(d, self._handle(d)) for d in self.devices]
        else:
            handles = [nv.nvmlDeviceGetHandleByIndex(i) for i in range(nv.nvmlDeviceGetCount())]
        by_gpu = {str(_maybe(nv, nv.nvmlDeviceGetIndex, h)): h for h in reversed(handles)}
        self.gpus = list(reversed(by_gpu))  # each GPU once (two MIG instances share one)
        self.handles = [by_gpu[g] for g in self.gpus]
        self.before = {g: self._counters(h) for g, h in zip(self.gpus, self.handles, strict=True)}
        self._watch_xids()

    def _handle(self, device: str) -> Any:
        nv = self.nv
        if device.isdigit():
            return nv.nvmlDeviceGetHandleByIndex(int(device))
        return nv.nvmlDeviceGetHandleByUUID(device)

    def _whole_gpu(self, device: str, handle: Any) -> Any:
        """The GPU of a MIG instance (its power, clocks and counters are the whole GPU's,
        shared with its other instances: noted), else ``handle`` itself."""
        nv = self.nv
        is_mig = getattr(nv, "nvmlDeviceIsMigDeviceHandle", None)
        if is_mig is None or not _maybe(nv, is_mig, handle):
            return handle
        gpu = nv.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(handle)
        self.notes.append(
            f"{device} is a MIG instance: NVML reads the power of its whole GPU "
            f"{_maybe(nv, nv.nvmlDeviceGetIndex, gpu)}, shared with the GPU's other instances"
        )
        return gpu

    def _counters(self, handle: Any) -> dict[str, Any]:
        """The counters read at the start and the stop: ECC errors, energy (mJ)."""
        nv = self.nv
        return {
            "ecc_corrected": _maybe(
                nv,
                nv.nvmlDeviceGetTotalEccErrors,
                handle,
                nv.NVML_MEMORY_ERROR_TYPE_CORRECTED,
                nv.NVML_VOLATILE_ECC,
            ),
            "ecc_uncorrected": _maybe(
                nv,
                nv.nvmlDeviceGetTotalEccErrors,
                handle,
                nv.NVML_MEMORY_ERROR_TYPE_UNCORRECTED,
                nv.NVML_VOLATILE_ECC,
            ),
            "energy_mj": _maybe(nv, nv.nvmlDeviceGetTotalEnergyConsumption, handle),
        }

    def _watch_xids(self) -> None:
        """Register every GPU for XID critical error events (a GPU that cannot be watched is
        noted, its XIDs then unknown)."""
        nv = self.nv
        try:
            self.events = nv.nvmlEventSetCreate()
        except nv.NVMLError as exc:
            self.notes.append(f"XID errors not watched: {exc}")
            return
        for gpu, handle in zip(self.gpus, self.handles, strict=True):
            try:
                nv.nvmlDeviceRegisterEvents(handle, nv.nvmlEventTypeXidCriticalError, self.events)
            except nv.NVMLError as exc:
                self.notes.append(f"GPU {gpu}: XID errors not watched: {exc}")

    def read(self) -> float:
        nv = self.nv
        when, watts, gpus = time.time(), 0.0, []
        for h in self.handles:
            try:
                watts += nv.nvmlDeviceGetPowerUsage(h) / 1000.0  # milliwatts
            except nv.NVMLError as exc:
                raise NvmlReadFailed(f"nvmlDeviceGetPowerUsage: {exc}") from None
            gpus.append(
                GpuSample(
                    self._reasons(h),
                    _maybe(nv, nv.nvmlDeviceGetTemperature, h, nv.NVML_TEMPERATURE_GPU),
                    _maybe(nv, nv.nvmlDeviceGetClockInfo, h, nv.NVML_CLOCK_SM),
                )
            )
        self.samples.append((when, gpus))
        self._poll_xids()
        return watts

    def _reasons(self, handle: Any) -> int | None:
        """The clock event reasons bitmask: ``nvmlDeviceGetCurrentClocksEventReasons`` (drivers
        from 535), else the same bits by their older name, ``...ClocksThrottleReasons``."""
        nv = self.nv
        try:
            return int(nv.nvmlDeviceGetCurrentClocksEventReasons(handle))
        except nv.NVMLError:
            return _maybe(nv, nv.nvmlDeviceGetCurrentClocksThrottleReasons, handle)

    def _poll_xids(self) -> None:
        """Take the XID events that arrived (a wait of 0 ms: it never blocks)."""
        nv = self.nv
        while self.events is not None and len(self.xids) < MAX_XIDS:
            try:
                data = nv.nvmlEventSetWait_v2(self.events, 0)
            except nv.NVMLError:
                return  # NVML_ERROR_TIMEOUT: none waiting
            gpu = _maybe(nv, nv.nvmlDeviceGetIndex, data.device)
            self.xids.append({"gpu": str(gpu), "xid": int(data.eventData), "time_s": time.time()})

    def close(self, run_dir: Path, start_s: float, stop_s: float) -> dict[str, Any]:
        """Write gpu_telemetry.json; run.json's additions: where it is, the run's
        ``gpu_throttled_s``, ``gpu_power_capped_s`` and the GPUs' own energy counters."""
        nv = self.nv
        try:
            self._poll_xids()
            errors, energy = self._errors()
        finally:
            if self.events is not None:
                _maybe(nv, nv.nvmlEventSetFree, self.events)
            _shutdown(nv)
        # the window's samples (run_start to run_stop): start-up and teardown are not the run's
        scored = [x for x in self.samples if start_s <= x[0] <= stop_s]
        telemetry = summarize(start_s, stop_s, self.gpus, scored, errors)
        telemetry["notes"] = self.notes
        hashing.write_atomic(run_dir / TELEMETRY_FILE, json.dumps(telemetry, indent=2) + "\n")
        return {
            "gpus": self.gpus,
            "gpu_telemetry": TELEMETRY_FILE,
            "gpu_throttled_s": telemetry["gpu_throttled_s"],
            "gpu_power_capped_s": telemetry["gpu_power_capped_s"],
            "gpu_energy_counter_j": energy,
        }

    def _errors(self) -> tuple[dict[str, dict[str, Any]], float | None]:
        """Per GPU: ECC errors the run added, XIDs, its energy counter's joules; and the
        counters' sum (None when a GPU has none)."""
        errors: dict[str, dict[str, Any]] = {}
        joules: list[float | None] = []
        for gpu, handle in zip(self.gpus, self.handles, strict=True):
            after, before = self._counters(handle), self.before[gpu]
            mj = error_counts(before["energy_mj"], after["energy_mj"])
            joules.append(mj / 1000.0 if mj is not None else None)
            errors[gpu] = {
                "ecc_corrected": error_counts(before["ecc_corrected"], after["ecc_corrected"]),
                "ecc_uncorrected": error_counts(
                    before["ecc_uncorrected"], after["ecc_uncorrected"]
                ),
                "xid_errors": [x for x in self.xids if x["gpu"] == gpu],
                "energy_counter_j": joules[-1],
            }
        total = (
            sum(j for j in joules if j is not None) if all(j is not None for j in joules) else None
        )
        return errors, total
