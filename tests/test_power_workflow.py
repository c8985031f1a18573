"""Energy to train for the runs of a campaign (issue 25): a ``command`` power source printing a
known wattage pattern, over a 2-run campaign of the fake trainer, in one snakemake call. Each run
writes power/node_0.txt, which mlperf-logging's own result summarizer scores
(``_compute_total_power``) to the energy in result.json, runs.csv and summary.csv; a run whose
command dies halfway is still a result, its power gap named and its energy left empty."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from mlperf_logging.result_summarizer import result_summarizer as rs

from scripts.mlperf.own_power import MIN_READINGS
from tests.conftest import fake_campaign, snakemake

# per run (MLPERF_RUN), counts its calls in counts/<run>; prints 10 W until the trainer waits at
# its gate (after run_start and its first epoch: start-up is not scored), then 200, 210 ... 240 W
# in turn; opens the run's gate at its 65th call after that, so every run has at least 65
# samples between run_start and run_stop however loaded the machine; run 2's command dies at
# its 30th call
WATTS_SH = """f="counts/$MLPERF_RUN"
n=$(( $(cat "$f" 2>/dev/null || echo 0) + 1 ))
echo $n > "$f"
w=10
if [ -e "gates/run_$MLPERF_RUN.waiting.$MLPERF_RUN" ]; then
  t="counts/training_$MLPERF_RUN"
  m=$(( $(cat "$t" 2>/dev/null || echo 0) + 1 ))
  echo $m > "$t"
  if [ "$m" -ge 65 ]; then : > "gates/run_$MLPERF_RUN"; fi
  w=$(( 200 + 10 * (n % 5) ))
fi
if [ "$MLPERF_RUN" = 2 ] && [ "$n" -ge 30 ]; then echo "BMC not answering" >&2; exit 1; fi
echo "Instantaneous power reading: $w Watts"
"""


def summarizer_energy(run_dir: Path, tmp: Path) -> tuple[float, float]:
    """(time to train in ms, energy in J) of a run as mlperf-logging's result summarizer has
    them: the log's run_start to run_stop, and _compute_total_power of its power log laid out
    as a submission's (<benchmark folder>/power/result_0/node_0.txt)."""
    loglines, _ = rs.parse_file(str(run_dir / "mlperf.log"), "5.0.0")
    start, stop = rs._query_run_start_stop(loglines)
    folder = tmp / run_dir.name / "fake"
    (folder / "power" / "result_0").mkdir(parents=True)
    (folder / "power" / "result_0" / "node_0.txt").write_bytes(
        (run_dir / "power" / "node_0.txt").read_bytes()
    )
    energy = rs._compute_total_power(
        str(folder), str(folder / "result_0.txt"), stop - start, "5.0.0"
    )
    return stop - start, energy


@pytest.mark.workflow
def test_a_command_source_gives_each_run_its_energy_as_the_summarizer_scores_it(
    workflow_copy: Path, tmp_path: Path
) -> None:
    wf = workflow_copy
    gate = str(wf / "gates" / "run_{run}")
    overlay = fake_campaign(wf, runs=2, faults={"gate": [1, 2], "gate_file": gate})
    (wf / "watts.sh").write_text(WATTS_SH)
    for folder in ("counts", "gates"):
        (wf / folder).mkdir()
    power = {"source": "command", "command": ["bash", "watts.sh"], "interval_s": 0.02,
             "timeout_s": 5}  # fmt: skip
    (wf / "power.yaml").write_text(yaml.safe_dump({"systems": {"local": {"power": power}}}))
    # one run at a time: a node's power command beside another run would read both (named,
    # no energy: tests/test_power_window.py)
    proc = snakemake(
        wf, "results/fake/summary.csv", "--cores", "1", "--configfile", str(overlay), "power.yaml"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = pd.read_csv(wf / "results/fake/runs.csv").set_index("run")
    system = wf / "results/fake/local"

    # run 1: a power log the summarizer reads, at least 60 readings, its energy the summarizer's
    run_1 = system / "run_01"
    meta = json.loads((run_1 / "run.json").read_text())
    result = json.loads((run_1 / "result.json").read_text())
    sampling = meta["power_sampling"]
    assert sampling["source"] == "command" and sampling["failed"] == 0
    text = (run_1 / "power" / "node_0.txt").read_text()
    assert sampling["window"] == "run_start to the first reading at or after run_stop"
    assert sampling["readings"] >= max(65, MIN_READINGS)
    assert text.count('"key": "power_reading"') == sampling["readings"] + sampling["outside_window"]
    ttt_ms, theirs = summarizer_energy(run_1, tmp_path)
    assert result["time_to_train_s"] * 1000 == pytest.approx(ttt_ms, abs=1e-6)
    assert abs(result["energy_j"] - theirs) <= 1e-9 * theirs
    # the pattern's power, not the start-up's 10 W (a reading or two of the first epoch may be)
    assert 0.9 * 200 * ttt_ms / 1000 <= result["energy_j"] <= 240 * ttt_ms / 1000
    assert result["power_source"] == "command" and result["power_problems"] == []
    assert sampling["concurrent_runs"] == []  # alone on the host
    assert runs.loc[1, "energy_j"] == pytest.approx(result["energy_j"], rel=1e-12)
    assert runs.loc[1, "energy_kwh"] == pytest.approx(result["energy_j"] / 3.6e6, rel=1e-12)

    # run 2: its command died at its 30th call; still a result, its gap named, no energy
    run_2 = system / "run_02"
    meta = json.loads((run_2 / "run.json").read_text())
    result = json.loads((run_2 / "result.json").read_text())
    assert result["converged"] is True and result["time_to_train_s"] > 0
    sampling = meta["power_sampling"]
    # 29 readings, those of its start-up outside the window
    assert sampling["readings"] <= 29 and sampling["failed"] >= 36
    (gap,) = sampling["gaps"]
    assert gap["until_stop"] and gap["error"] == "exited with 1: BMC not answering"
    assert result["energy_j"] is None
    few, problem = result["power_problems"]
    readings = sampling["readings"]
    assert few.startswith(f"power: power/node_0.txt has {readings} readings, fewer than the 60 ")
    assert "it stopped answering (exited with 1: BMC not answering)" in problem
    assert problem.endswith("no energy") and problem in result["problems"]
    assert "BMC not answering" in runs.loc[2, "power_problems"]
    assert pd.isna(runs.loc[2, "energy_j"])
    # the summarizer still reads the log of what was measured
    assert summarizer_energy(run_2, tmp_path)[1] > 0

    # summary.csv: no energy score when a counted run has none (as the summarizer)
    summary = pd.read_csv(wf / "results/fake/summary.csv")
    assert pd.isna(summary.loc[0, "energy_j"])
