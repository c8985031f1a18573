"""A campaign on data the user already has (config dataset.folders), through snakemake: the
trivial benchmark of bench/ trains on a linked folder, and a folder changed between invocations
is named by the load-time check."""

from __future__ import annotations

import json

import yaml

from bench.common import copy_workflow, trivial_campaign
from tests.conftest import snakemake


def test_a_campaign_on_folders_and_a_folder_changed_between_invocations(tmp_path):
    wf = copy_workflow(tmp_path / "wf")
    overlay = trivial_campaign(wf, systems=1, runs=2)
    config = yaml.safe_load(overlay.read_text())
    data = tmp_path / "mydata"
    data.mkdir()
    (data / "train.txt").write_text("some data\n")
    config["benchmarks"]["trivial"]["dataset"] = {"folders": {"DATADIR": str(data)}}
    overlay.write_text(yaml.safe_dump(config))
    target = "results/trivial/summary.csv"
    first = snakemake(wf, target, "--cores", "1", "--configfile", str(overlay))
    assert first.returncode == 0, first.stderr[-3000:]
    link = wf / "data/trivial/dataset/DATADIR"
    assert link.is_symlink() and link.resolve() == data.resolve()
    recorded = json.loads((wf / "data/trivial/manifest.json").read_text())["folders"]
    assert recorded == [
        {"name": "DATADIR", "path": str(data.resolve()), "num_files": 1, "num_bytes": 10}
    ]
    run = json.loads((wf / "results/trivial/sys000/run_01/run.json").read_text())
    assert run["dataset_manifest_sha256"]

    (data / "more.txt").write_text("more\n")
    again = snakemake(wf, target, "--cores", "1", "--configfile", str(overlay))
    assert again.returncode != 0
    assert "the data folders of trivial changed" in again.stderr
    assert "holds 2 files of 15 bytes, recorded 1 file of 10 bytes" in again.stderr
    assert "2 finished run(s) used them" in again.stderr
