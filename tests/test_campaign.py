"""Which derived files a missing run makes stale; raw logs are never among them."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts import campaign


def make_runs(root: Path, runs: list[str], files=("mlperf.log", "run.json", "result.json")) -> None:
    for run in runs:
        d = campaign.run_dir(root, "b", "s", run)
        d.mkdir(parents=True)
        for f in files:
            (d / f).write_text("x")
    for name in ("runs.csv", "summary.csv"):
        (root / "results" / "b" / name).write_text("x")


def test_a_complete_campaign_has_nothing_stale(tmp_path: Path) -> None:
    make_runs(tmp_path, ["01", "02"])
    assert campaign.stale_derived_files(tmp_path, "b", ["s"], ["01", "02"]) == []


def test_a_deleted_log_makes_its_result_and_the_tables_stale(tmp_path: Path) -> None:
    make_runs(tmp_path, ["01", "02"])
    (campaign.run_dir(tmp_path, "b", "s", "02") / "mlperf.log").unlink()
    stale = dict(campaign.stale_derived_files(tmp_path, "b", ["s"], ["01", "02"]))
    base = tmp_path / "results" / "b"
    assert set(stale) == {base / "s/run_02/result.json", base / "runs.csv", base / "summary.csv"}
    assert "mlperf.log is gone" in stale[base / "s/run_02/result.json"]
    assert all(not str(p).endswith("mlperf.log") for p in stale)


def test_a_deleted_result_or_a_new_run_makes_only_the_tables_stale(tmp_path: Path) -> None:
    make_runs(tmp_path, ["01", "02"])
    (campaign.run_dir(tmp_path, "b", "s", "01") / "result.json").unlink()
    stale = [p.name for p, _ in campaign.stale_derived_files(tmp_path, "b", ["s"], ["01", "02"])]
    assert stale == ["runs.csv", "summary.csv"]
    make_runs(tmp_path / "other", ["01"])
    grown = campaign.stale_derived_files(tmp_path / "other", "b", ["s"], ["01", "02"])
    assert [p.name for p, _ in grown] == ["runs.csv", "summary.csv"]


@pytest.mark.parametrize(
    ("argv", "dry"),
    [
        (["snakemake", "-n"], True),
        (["snakemake", "--cores", "1", "-np"], True),
        (["snakemake", "--dry-run"], True),
        (["snakemake", "--summary"], True),
        (["snakemake", "--cores", "1", "results/gnmt/summary.csv"], False),
        (["snakemake", "--configfile", "n.yaml"], False),
    ],
)
def test_dry_runs_are_recognised(argv: list[str], dry: bool) -> None:
    assert campaign.is_dry_run(argv) is dry
