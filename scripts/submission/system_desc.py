"""A submission's ``systems/<system>.json``: every field the round's system description checker
requires, filled from the system's ``environment.json``, its yaml and its ``submission:``
block.

What mlperf-logging's checker (``mlperf_logging/system_desc_checker/system_desc_checker.py``,
``check_system_desc``; 4.1.68) asks of a Training system description, and how it is followed:

- every field of its ``required_fields`` list must be present (:data:`REQUIRED_FIELDS`, in its
  order): a missing one fails the file ("Missing field <name>"). It checks presence only, and
  NVIDIA's published files leave many empty (``"host_processor_vcpu_count": ""``); so does this
  module for a fact nobody gave, and names each such field (:attr:`SystemDesc.unknown`): the
  verdict lists them, a field is never left empty without a word;
- from ruleset 4.0 on (its test is ``major >= 4``) ``status`` must be one of
  :data:`CHECKED_STATUSES`; the ``submission:`` block's short words are written in those
  spellings (:func:`status_for`). Before 4.0 the checker reads no status, and the short word is
  written as the published files of those rounds have it.

Filled from what the workflow knows: ``number_of_nodes`` (slurm.nodes), ``accelerators_per_node``
(gpus), ``host_processors_per_node`` and ``host_processor_core_count`` (topology: sockets and
cores per socket), and from environment.json the CPU model and logical CPUs, the GPU model and
memory (nvidia-smi's name and memory.total, the form NVIDIA publishes: ``81559 MiB``), the
framework (PyTorch and its version), the software stack (Python, packages, GPU driver, the
image) and the operating system. A system without GPUs has ``N/A`` in the accelerator fields.
The block's ``fields`` win over all of it but the block's own four keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from scripts.mlperf.rounds import round_key

__all__ = ["CHECKED_STATUSES", "REQUIRED_FIELDS", "SystemDesc", "status_for", "system_desc"]

# check_system_desc's required_fields, in its order
REQUIRED_FIELDS = (
    "submitter",
    "division",
    "status",
    "system_name",
    "number_of_nodes",
    "host_processors_per_node",
    "host_processor_model_name",
    "host_processor_core_count",
    "host_processor_vcpu_count",
    "host_processor_frequency",
    "host_processor_caches",
    "host_processor_interconnect",
    "host_memory_capacity",
    "host_storage_type",
    "host_storage_capacity",
    "host_networking",
    "host_networking_topology",
    "host_memory_configuration",
    "accelerators_per_node",
    "accelerator_model_name",
    "accelerator_host_interconnect",
    "accelerator_frequency",
    "accelerator_on-chip_memories",
    "accelerator_memory_configuration",
    "accelerator_memory_capacity",
    "accelerator_interconnect",
    "accelerator_interconnect_topology",
    "cooling",
    "hw_notes",
    "framework",
    "other_software_stack",
    "operating_system",
    "sw_notes",
)
# check_system_desc's availability_options for Training, ruleset 4.0 on
CHECKED_STATUSES = (
    "Available on-premise",
    "Available cloud",
    "Research, Development, or Internal (RDI)",
    "Preview",
)
# the submission block's short words in the checker's spellings
_STATUS_WORDS = {
    "available": "Available on-premise",
    "preview": "Preview",
    "research": "Research, Development, or Internal (RDI)",
}
# free text: empty is a value, not a fact nobody knows
NOTES = ("hw_notes", "sw_notes")
NOT_APPLICABLE = "N/A"  # an accelerator field of a system without accelerators
_ACCELERATOR_FIELDS = tuple(f for f in REQUIRED_FIELDS if f.startswith("accelerator_"))


def status_for(status: str, round_: str) -> str:
    """The ``status`` to write for a round: the checker's spelling from 4.0 on."""
    if status in CHECKED_STATUSES:
        return status
    if round_key(round_)[0] >= 4:
        return _STATUS_WORDS[status]
    return status


@dataclass(frozen=True)
class SystemDesc:
    """A system description, and the required fields nobody knew (written empty)."""

    fields: dict[str, Any]
    unknown: tuple[str, ...]


def _gpu(environment: Mapping[str, Any]) -> tuple[str, str, str]:
    """(name, memory, driver) of the first GPU environment.json lists ("" each when none)."""
    gpus = environment.get("gpus") or []
    parts = [p.strip() for p in str(gpus[0]).split(",")] if gpus else []
    parts += [""] * 3
    return parts[0], parts[1], parts[2]


def _software(environment: Mapping[str, Any]) -> dict[str, str]:
    """other_software_stack: Python, the packages environment.json found, the GPU driver and
    the image (for a container system), as strings."""
    stack = {"python": str(environment["python"])} if environment.get("python") else {}
    for name, version in (environment.get("packages") or {}).items():
        if version:
            stack[str(name)] = str(version)
    driver = _gpu(environment)[2]
    if driver:
        stack["gpu_driver"] = driver
    image = environment.get("image") or {}
    if image.get("image_id"):
        stack["image"] = f"{image.get('tag')} {image['image_id']}"
    return stack


def _known(system: Mapping[str, Any], environment: Mapping[str, Any]) -> dict[str, Any]:
    """The fields the workflow knows of a system (its yaml facts and its environment.json)."""
    topology = system.get("topology") or {}
    gpus = int(system.get("gpus") or 0)
    known: dict[str, Any] = {
        "number_of_nodes": str(system.get("nodes") or 1),
        "accelerators_per_node": str(gpus),
    }
    if topology:
        known["host_processors_per_node"] = str(topology["sockets"])
        known["host_processor_core_count"] = str(topology["cores_per_socket"])
    if environment.get("cpu_model"):
        known["host_processor_model_name"] = str(environment["cpu_model"])
    if environment.get("cpu_count"):
        known["host_processor_vcpu_count"] = str(environment["cpu_count"])
    if gpus == 0:
        known.update(dict.fromkeys(_ACCELERATOR_FIELDS, NOT_APPLICABLE))
    else:
        name, memory, _ = _gpu(environment)
        if name:
            known["accelerator_model_name"] = name
        if memory:
            known["accelerator_memory_capacity"] = memory
    torch = (environment.get("packages") or {}).get("torch")
    if torch:
        known["framework"] = f"PyTorch {torch}"
    if _software(environment):
        known["other_software_stack"] = _software(environment)
    if environment.get("os"):
        known["operating_system"] = str(environment["os"])
    return known


def system_desc(
    system: Mapping[str, Any], environment: Mapping[str, Any], round_: str
) -> SystemDesc:
    """``systems/<system>.json`` of a system: ``system`` is the plan's facts (its submission
    block, gpus, nodes, topology), ``environment`` its environment.json ({} when none)."""
    block = system["submission"]
    given: dict[str, Any] = {
        "submitter": block["submitter"],
        "division": block["division"],
        "status": status_for(block["status"], round_),
        "system_name": block["system_name"],
    }
    # the block's own keys last: the plan refuses them in fields (one division, said once)
    known = {**_known(system, environment), **dict(block.get("fields") or {}), **given}
    fields = {name: known.get(name, "") for name in REQUIRED_FIELDS}
    fields.update({k: v for k, v in known.items() if k not in fields})  # e.g. framework_name
    unknown = tuple(f for f in REQUIRED_FIELDS if f not in known and f not in NOTES)
    return SystemDesc(fields, unknown)
