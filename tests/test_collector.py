"""The cycle collector setting of the planning process (scripts/workflow/collector.py), in a
child Python so that the test process keeps its own."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from scripts.workflow.collector import FIRST_GENERATION

REPO = Path(__file__).resolve().parents[1]

CHILD = """
import gc, json
from scripts.workflow import collector
before = gc.get_threshold()
collector.for_the_plan()
print(json.dumps({"before": before, "after": gc.get_threshold(),
                  "frozen": gc.get_freeze_count(), "enabled": gc.isenabled()}))
"""


def test_the_plan_freezes_what_is_loaded_and_scans_the_young_generation_less_often() -> None:
    out = subprocess.run(
        [sys.executable, "-c", CHILD], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    seen = json.loads(out)
    # the first threshold only: the older generations keep Python's own
    assert seen["after"] == [FIRST_GENERATION, *seen["before"][1:]]
    assert seen["before"][0] < FIRST_GENERATION
    assert seen["frozen"] > 1000 and seen["enabled"]


def test_the_workflow_sets_it_once_the_config_is_loaded() -> None:
    common = (REPO / "rules/common.smk").read_text()
    assert common.count("collector.for_the_plan()") == 1
    assert common.index("collector.for_the_plan()") > common.index("cfg.load_and_validate(")
