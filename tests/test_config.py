"""A bad configuration stops before any job runs, with one clear message."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts import config as cfg
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
    config, sources = merged(*overlays)
    with pytest.raises(cfg.ConfigError) as info:
        cfg.load_and_validate(config, sources)
    return str(info.value)


def test_default_config_is_valid_and_gets_defaults() -> None:
    config, sources = merged()
    full = cfg.load_and_validate(config, sources)
    assert full["benchmarks"]["gnmt"]["runs"] == 10
    assert full["benchmarks"]["gnmt"]["quality"]["direction"] == "higher"
    assert full["systems"]["local"]["threads"] == 2
    assert cfg.campaign_systems(full) == ["local"]


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


def test_a_campaign_naming_an_undefined_system_is_rejected() -> None:
    msg = error_of(("c.yaml", {"campaign": {"systems": ["nope"]}}))
    assert "campaign.systems names 'nope', which is not defined" in msg
    assert "local" in msg


def test_unknown_command_placeholder_is_rejected() -> None:
    overlay = {"benchmarks": {"gnmt": {"implementation": {"command": "train --x {nonsense}"}}}}
    msg = error_of(("c.yaml", overlay))
    assert "unknown placeholder {nonsense}" in msg


def test_too_few_seeds_is_rejected() -> None:
    msg = error_of(("s.yaml", {"benchmarks": {"gnmt": {"seeds": [1, 2]}}}))
    assert "2 seeds for 10 runs" in msg


def test_schema_without_dollar_schema_key_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "s.yaml"
    bad.write_text("type: object\n")
    with pytest.raises(cfg.ConfigError, match=r"\$schema"):
        cfg.load_schema(bad)


def test_seeds_are_distinct_recorded_and_shared_across_systems() -> None:
    config, sources = merged()
    full = cfg.load_and_validate(config, sources)
    seeds = [cfg.seed_for(full["benchmarks"]["gnmt"], "gnmt", r) for r in range(1, 11)]
    assert len(set(seeds)) == 10
    assert seeds[0] == cfg.derive_seed("gnmt", 1)  # stable, not random
    overlay = {"benchmarks": {"gnmt": {"seeds": list(range(100, 110))}}}
    config, sources = merged(("seeds.yaml", overlay))
    full = cfg.load_and_validate(config, sources)
    assert cfg.seed_for(full["benchmarks"]["gnmt"], "gnmt", 3) == 102


def test_run_spec_renders_the_command_with_hyperparameters_and_overrides() -> None:
    overlay = {"systems": {"local": {"hyperparameters": {"gnmt": {"batch_size": 32}}}}}
    config, sources = merged(("o.yaml", overlay))
    full = cfg.load_and_validate(config, sources)
    spec = cfg.run_spec(full, "gnmt", "local", 2, python="py", dataset_dir="d", run_dir="r")
    assert "--batch-size 32" in spec.command and "--learning-rate 0.01" in spec.command
    assert f"--seed {cfg.derive_seed('gnmt', 2)}" in spec.command
    assert spec.timeout_s == 600
    base = cfg.run_spec(
        cfg.load_and_validate(*merged()),
        "gnmt",
        "local",
        2,
        python="py",
        dataset_dir="d",
        run_dir="r",
    )
    assert base.config_fingerprint != spec.config_fingerprint  # the override is comparability
    assert cfg.RunSpec.from_json(spec.to_json()) == spec


@pytest.mark.integration
def test_snakemake_stops_on_a_bad_overlay_before_any_job(workflow_copy: Path) -> None:
    overlay = workflow_copy / "bad.yaml"
    overlay.write_text("benchmarks:\n  gnmt:\n    runs: 0\n")
    proc = snakemake(workflow_copy, "-n", "--cores", "1", "--configfile", str(overlay))
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "bad.yaml: benchmarks.gnmt.runs: 0 is less than the minimum of 1" in out
    assert not (workflow_copy / "results" / "gnmt").exists()


def test_load_files_merges_overlays_like_snakemake(tmp_path: Path) -> None:
    overlay = tmp_path / "o.yaml"
    overlay.write_text("benchmarks:\n  gnmt:\n    runs: 3\n")
    full = cfg.load_files([overlay])
    assert full["benchmarks"]["gnmt"]["runs"] == 3
    assert full["benchmarks"]["gnmt"]["quality"]["target"] == 90.0  # merged, not replaced


HOSTILE = "a b; touch pwned; $(touch pwned2) `touch pwned3` 'q\" *"


def test_every_placeholder_is_one_shell_word_through_a_real_shell(tmp_path: Path) -> None:
    """A value with spaces, ';', '$(...)', backquotes, quotes or a glob stays one argument
    and never runs as code, for every kind of placeholder: {hp[name]}, {hp_args} and paths."""
    echo = "import json, sys; print(json.dumps(sys.argv[1:]))"
    command = f"{{python}} -c {shlex.quote(echo)} {{hp[note]}} {{hp_args}} {{run_dir}} {{seed}}"
    overlay = {
        "benchmarks": {
            "gnmt": {
                "implementation": {
                    "command": command,
                    "hyperparameters": {"note": HOSTILE},
                    "env": {"NOTE": "{hp[note]}", "WHERE": "{run_dir}"},
                }
            }
        }
    }
    full = cfg.load_and_validate(*merged(("q.yaml", overlay)))
    run_dir = str(tmp_path / "run dir; touch pwned4")
    spec = cfg.run_spec(
        full, "gnmt", "local", 1, python=sys.executable, dataset_dir="d", run_dir=run_dir
    )
    out = subprocess.run(
        ["/bin/bash", "-c", spec.command], cwd=tmp_path, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    hp = cfg.hyperparameters(full, "gnmt", "local")
    expected_hp = [w for k, v in hp.items() for w in (f"--{k.replace('_', '-')}", str(v))]
    assert json.loads(out.stdout) == [HOSTILE, *expected_hp, run_dir, str(spec.seed)]
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing ran, nothing matched
    # environment values are not shell words: they are the plain values
    assert spec.env["NOTE"] == HOSTILE and spec.env["WHERE"] == run_dir


def test_a_lone_brace_in_a_command_is_a_config_error() -> None:
    overlay = {"benchmarks": {"gnmt": {"implementation": {"command": "train {seed"}}}}
    msg = error_of(("c.yaml", overlay))
    assert "benchmarks.gnmt.implementation.command" in msg and "literal brace" in msg
