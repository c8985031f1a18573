"""A bad configuration stops before any job runs, with one clear message."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts.campaign import config_checks, topology
from scripts.core import config as cfg
from tests.conftest import REPO, snakemake


def merged(*overlays: tuple[str, dict[str, Any]]) -> tuple[dict[str, Any], list[tuple[str, Any]]]:
    """The default config merged like Snakemake does, plus the (file, data) sources."""
    sources = [(f, yaml.safe_load((REPO / f).read_text())) for f in cfg.DEFAULT_CONFIGFILES]
    sources += list(overlays)
    config: dict[str, Any] = {}
    for _, data in sources:
        cfg.merge(config, data)
    return config, sources


def error_of(*overlays: tuple[str, dict[str, Any]]) -> str:
    """The message of the default config with ``overlays``: its schema check and then the
    cross-checks (scripts/campaign/config_checks.py), as the workflow runs them."""
    config, sources = merged(*overlays)
    with pytest.raises(cfg.ConfigError) as info:
        config_checks.check_campaign(cfg.load_and_validate(config, sources), sources)
    return str(info.value)


def test_default_config_is_valid_and_gets_defaults() -> None:
    config, sources = merged()
    full = cfg.load_and_validate(config, sources)
    assert full["benchmarks"]["gnmt"]["runs"] == 10
    assert full["benchmarks"]["gnmt"]["quality"]["direction"] == "higher"
    assert full["systems"]["local"]["threads"] == 2
    assert topology.campaign_systems(full) == ["local"]


def test_a_configuration_that_passed_is_not_checked_against_the_schema_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    passed = tmp_path / ".snakemake" / "valid-config"
    config, sources = merged()
    first = cfg.load_and_validate(config, sources, passed=passed)
    assert passed.is_file()
    monkeypatch.setitem(sys.modules, "jsonschema", None)  # importing it now fails
    assert cfg.load_and_validate(config, sources, passed=passed) == first
    # another configuration (1 for "1") is checked: here, the import fails
    bad, bad_sources = merged(("x.yaml", {"benchmarks": {"gnmt": {"runs": "1"}}}))
    with pytest.raises(ImportError):
        cfg.load_and_validate(bad, bad_sources, passed=passed)
    monkeypatch.undo()
    with pytest.raises(cfg.ConfigError, match="runs"):
        cfg.load_and_validate(bad, bad_sources, passed=passed)
    assert cfg.load_and_validate(config, sources, passed=passed) == first  # it stays valid
    # the other checks run every time
    config["benchmarks"]["gnmt"]["timeout_s"] = float("inf")
    with pytest.raises(cfg.ConfigError, match="timeout_s"):
        cfg.load_and_validate(config, sources, passed=passed)


def test_a_folder_that_cannot_remember_a_passed_configuration_checks_each_time(
    tmp_path: Path,
) -> None:
    (tmp_path / "file").write_text("")
    config, sources = merged()
    cfg.load_and_validate(config, sources, passed=tmp_path / "file" / "valid-config")
    assert not (tmp_path / "file" / "valid-config").exists()


def test_unknown_key_names_the_file_and_the_allowed_keys() -> None:
    msg = error_of(("my-overlay.yaml", {"benchmarks": {"gnmt": {"runz": 3}}}))
    assert "my-overlay.yaml" in msg
    assert "unknown key 'benchmarks.gnmt.runz'" in msg
    assert "runs" in msg  # the allowed keys are listed


def test_zero_runs_is_rejected_with_what_was_expected() -> None:
    msg = error_of(("small.yaml", {"benchmarks": {"gnmt": {"runs": 0}}}))
    assert "small.yaml: benchmarks.gnmt.runs" in msg
    assert "0 is less than the minimum of 1" in msg
    assert "integer >= 1" in msg


def test_wrong_type_names_file_key_found_and_expected() -> None:
    msg = error_of(("x.yaml", {"systems": {"local": {"threads": "two"}}}))
    assert "x.yaml: systems.local.threads" in msg
    assert '"two"' in msg and "integer >= 1" in msg


@pytest.mark.parametrize("name", ["my system", "a/b", "../up", ""])
def test_names_that_would_be_paths_or_shell_words_are_rejected(name: str) -> None:
    overlay = {"systems": {name: {"backend": "local"}}}
    msg = error_of(("bad-name.yaml", overlay))
    assert "bad-name.yaml" in msg
    assert "letters, digits" in msg


def benchmark_outputs() -> set[str]:
    """The names the rules write directly in results/<benchmark>/ (files and folders)."""
    found = set()
    for smk in sorted((REPO / "rules").glob("*.smk")):
        found |= set(re.findall(r"results/\{\{?benchmark\}\}?/([^/{}\"']+)", smk.read_text()))
    return found


def test_a_system_named_as_an_output_of_the_benchmark_is_refused_by_the_schema() -> None:
    """A system's runs are in results/<benchmark>/<system>/: a system named as a table, the
    report or the plots folder would be a folder where a rule writes a file (Snakemake's
    ChildIOException); the schema refuses every such name, in any case of letters."""
    outputs = benchmark_outputs()
    assert {"runs.csv", "summary.csv", "comparison.csv", "leaderboard.csv"} <= outputs
    assert {"evals.csv", "summary.partial.csv", "report.html", "plots"} <= outputs
    for name in sorted(outputs | {n.upper() for n in outputs} | {"Summary.Csv", "x.csv"}):
        msg = error_of(("clash.yaml", {"systems": {name: {"backend": "local"}}}))
        assert msg == (
            f"invalid configuration:\n  clash.yaml: systems: {name!r} is refused: a system's "
            "runs go in results/<benchmark>/<system>/, beside the benchmark's own outputs (its "
            "tables *.csv, report.html, plots/): a system may not be named plots, *.csv or "
            "*.html, in any case of letters; choose another name"
        )


@pytest.mark.parametrize("name", ["summary", "plots2", "csv", "my.plots", "html", "x.csv.d"])
def test_names_near_the_outputs_are_still_systems(name: str) -> None:
    config, sources = merged(("ok.yaml", {"systems": {name: {"backend": "local"}}}))
    assert name in cfg.load_and_validate(config, sources)["systems"]


def test_schema_without_dollar_schema_key_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "s.yaml"
    bad.write_text("type: object\n")
    with pytest.raises(cfg.ConfigError, match=r"\$schema"):
        cfg.load_schema(bad)


@pytest.mark.workflow
def test_snakemake_stops_on_a_bad_overlay_before_any_job(workflow_copy: Path) -> None:
    overlay = workflow_copy / "bad.yaml"
    overlay.write_text("benchmarks:\n  gnmt:\n    runs: 0\n")
    proc = snakemake(workflow_copy, "-n", "--cores", "1", "--configfile", str(overlay))
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "bad.yaml: benchmarks.gnmt.runs: 0 is less than the minimum of 1" in out
    assert not (workflow_copy / "results" / "gnmt").exists()


def test_every_config_file_reads_as_pyyaml_s_safe_loader_reads_it() -> None:
    """read_config_file parses with libyaml's loader (FAST_LOADER) where PyYAML has it: the
    same data as yaml.safe_load for every YAML file of the workflow, and a syntax error is
    still worded (with its line and column) by the pure-Python loader."""
    files = sorted(REPO.glob("config/**/*.yaml")) + sorted(REPO.glob("profiles/**/*.yaml"))
    assert len(files) >= 20
    for path in files:
        assert cfg.read_config_file(path) == yaml.safe_load(path.read_text()), path


def test_a_yaml_syntax_error_names_the_file_line_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("systems:\n  a: [1, 2\n  b: 3\n")
    with pytest.raises(cfg.ConfigError, match=r"bad\.yaml.*line \d+, column \d+"):
        cfg.read_config_file(bad)


def test_a_later_overlay_drops_an_earlier_ones_data_commands_with_null() -> None:
    """Snakemake merges config files key by key, so an overlay cannot remove a key another
    gave: the generated implementation overlay's dataset.commands, say, for a user who already
    has the folders. A kind set to null counts as not given; without the null the two kinds
    are refused, naming both."""
    commands = {"commands": [{"folder": "DATADIR", "command": "true", "mount": "/data"}]}
    generated = (
        "generated.yaml",
        {"benchmarks": {"gnmt": {"dataset": {"files": None, **commands}}}},
    )
    mine = {"folders": {"DATADIR": "/srv/data"}}
    config, sources = merged(generated, ("mine.yaml", {"benchmarks": {"gnmt": {"dataset": mine}}}))
    with pytest.raises(cfg.ConfigError, match=r"given: folders, commands"):
        config_checks.check_campaign(cfg.load_and_validate(config, sources), sources)
    dropped = {"dataset": {**mine, "commands": None}}
    config, sources = merged(generated, ("mine.yaml", {"benchmarks": {"gnmt": dropped}}))
    full = cfg.load_and_validate(config, sources)
    config_checks.check_campaign(full, sources)
    assert full["benchmarks"]["gnmt"]["dataset"] == {
        **mine,
        "mirror": None,
        "script": None,
        "max_unpacked_bytes": None,
    }
