"""The plan: what a validated config means for a campaign (scripts/campaign/: config_checks,
topology, command, run_specs, comparability, finished_runs): cross-checks, topology, run ids and
seeds, the command context, run specs and comparability."""

from __future__ import annotations

import ast
import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from scripts.campaign import command, config_checks, finished_runs, run_specs, topology
from scripts.core import config as cfg
from scripts.core import hashing, layout, records
from scripts.run.spec import RunSpec
from tests.conftest import REPO
from tests.test_config import error_of, merged

SCRIPTS = REPO / "scripts"


def checked(config: dict[str, Any], sources: list[tuple[str, Any]]) -> dict[str, Any]:
    """The config validated, with defaults, and cross-checked, as the workflow loads it."""
    full = cfg.load_and_validate(config, sources)
    config_checks.check_campaign(full, sources)
    return full


HOSTILE = "a b; touch pwned; $(touch pwned2) `touch pwned3` 'q\" *"


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


def test_seeds_are_distinct_recorded_and_shared_across_systems() -> None:
    config, sources = merged()
    full = checked(config, sources)
    seeds = [command.seed_for(full["benchmarks"]["gnmt"], "gnmt", r) for r in range(1, 11)]
    assert len(set(seeds)) == 10
    assert seeds[0] == command.derive_seed("gnmt", 1)  # stable, not random
    overlay = {"benchmarks": {"gnmt": {"seeds": list(range(100, 110))}}}
    config, sources = merged(("seeds.yaml", overlay))
    full = checked(config, sources)
    assert command.seed_for(full["benchmarks"]["gnmt"], "gnmt", 3) == 102


def test_run_spec_renders_the_command_with_hyperparameters_and_overrides() -> None:
    overlay = {"systems": {"local": {"hyperparameters": {"gnmt": {"batch_size": 32}}}}}
    config, sources = merged(("o.yaml", overlay))
    full = checked(config, sources)
    spec = run_specs.run_spec(full, "gnmt", "local", 2, python="py", dataset_dir="d", run_dir="r")
    assert "--batch-size 32" in spec.command and "--learning-rate 0.01" in spec.command
    assert f"--seed {command.derive_seed('gnmt', 2)}" in spec.command
    assert spec.timeout_s == 600
    base = run_specs.run_spec(
        checked(*merged()),
        "gnmt",
        "local",
        2,
        python="py",
        dataset_dir="d",
        run_dir="r",
    )
    assert base.config_fingerprint != spec.config_fingerprint  # the override is comparability
    assert RunSpec.from_json(spec.to_json()) == spec


def test_load_campaign_merges_overlays_like_snakemake(tmp_path: Path) -> None:
    overlay = tmp_path / "o.yaml"
    overlay.write_text("benchmarks:\n  gnmt:\n    runs: 3\n")
    full = config_checks.load_campaign([overlay])
    assert full["benchmarks"]["gnmt"]["runs"] == 3
    assert full["benchmarks"]["gnmt"]["quality"]["target"] == 90.0  # merged, not replaced


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
    full = checked(*merged(("q.yaml", overlay)))
    run_dir = str(tmp_path / "run dir; touch pwned4")
    spec = run_specs.run_spec(
        full, "gnmt", "local", 1, python=sys.executable, dataset_dir="d", run_dir=run_dir
    )
    out = subprocess.run(
        ["/bin/bash", "-c", spec.command], cwd=tmp_path, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    hp = records.hyperparameters(full, "gnmt", "local")
    expected_hp = [w for k, v in hp.items() for w in (f"--{k.replace('_', '-')}", str(v))]
    assert json.loads(out.stdout) == [HOSTILE, *expected_hp, run_dir, str(spec.seed)]
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing ran, nothing matched
    # environment values are not shell words: they are the plain values
    assert spec.env["NOTE"] == HOSTILE and spec.env["WHERE"] == run_dir


def test_a_lone_brace_in_a_command_is_a_config_error() -> None:
    overlay = {"benchmarks": {"gnmt": {"implementation": {"command": "train {seed"}}}}
    msg = error_of(("c.yaml", overlay))
    assert "benchmarks.gnmt.implementation.command" in msg and "literal brace" in msg


# ---------------------------------------------------------------------------------------------
# What this step of the refactoring promises: one home per job, no import cycle.

# Made by the code before scripts/campaign/plan.py existed (config.run_spec at 9c3fedf; plan.py
# is now split in scripts/campaign/): a change here changes the fingerprint recorded in every
# run.json, and finished campaigns would stop as "made under a different configuration".
DEFAULT_FINGERPRINT = "269e19b76e0d9b9dff7a9a23aecebb393966ccf66bad042ab232f523d7bdb193"
DEFAULT_SEED_1 = 888763526


def _module_imports(path: Path) -> tuple[set[str], list[tuple[int, str]]]:
    """The scripts.* modules a file imports at its top level, and (line, text) of every
    import statement inside a function."""
    tree = ast.parse(path.read_text())
    top: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("scripts"):
            if node.module == "scripts":
                top |= {f"scripts.{a.name}" for a in node.names}
            else:
                top.add(node.module)
        elif isinstance(node, ast.Import):
            top |= {a.name for a in node.names if a.name.startswith("scripts")}
    inner = [
        (n.lineno, ast.unparse(n))
        for f in ast.walk(tree)
        if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
        for n in ast.walk(f)
        if isinstance(n, ast.Import | ast.ImportFrom)
    ]
    return top, inner


def test_config_imports_nothing_else_of_the_package() -> None:
    """The config (every start loads it) imports only leaves of core: modules that import
    nothing of the package themselves (window_setting, the M-of-N window's check;
    dataset_setting, a dataset kind set to null dropped)."""
    top, inner = _module_imports(SCRIPTS / "core" / "config.py")
    assert top <= {"scripts.core.window_setting", "scripts.core.dataset_setting"}
    for module in top:
        leaf = SCRIPTS.joinpath(*module.split(".")[1:]).with_suffix(".py")
        leaf_top, leaf_inner = _module_imports(leaf)
        assert leaf_top == set() and leaf_inner == [], module
    assert all(not text.startswith(("from scripts", "import scripts")) for _, text in inner)


def test_nvidia_v06_imports_at_the_top_only() -> None:
    assert _module_imports(SCRIPTS / "mlperf" / "nvidia_v06.py")[1] == []


def test_the_fingerprint_is_the_canonical_digest_of_the_record_as_before() -> None:
    full = config_checks.load_campaign()
    spec = run_specs.run_spec(full, "gnmt", "local", 1, python="py", dataset_dir="d", run_dir="r")
    assert spec.config_fingerprint == hashing.canonical_sha256(spec.comparability)
    assert spec.config_fingerprint == DEFAULT_FINGERPRINT
    assert spec.seed == DEFAULT_SEED_1 == command.derive_seed("gnmt", 1)
    current = finished_runs.current_state(spec.comparability, Path("/none"), Path("/none"))
    assert current["config_fingerprint"] == DEFAULT_FINGERPRINT


def test_one_command_context_for_the_run_the_container_and_the_check() -> None:
    """The 12 placeholders are listed once: the run command's context, the sample one of the
    config check and (rules/common.smk) the container's data preparation have the same keys,
    and the run's values are the spec's."""
    full = config_checks.load_campaign()
    context = command.command_context(
        full, "gnmt", "local", 3, python="py", dataset_dir="d", run_dir="r"
    )
    assert sorted(context) == sorted(
        ["python", "dataset_dir", "run_dir", "seed", "run", "target", "threads", "gpus"]
        + ["system", "port", "hp", "hp_args"]
    )
    assert sorted(command.sample_context(full["benchmarks"]["gnmt"])) == sorted(context)
    spec = run_specs.run_spec(full, "gnmt", "local", 3, python="py", dataset_dir="d", run_dir="r")
    assert context["seed"] == spec.seed and context["port"] == command.run_port(3)
    assert context["hp"] == records.hyperparameters(full, "gnmt", "local")
    template = full["benchmarks"]["gnmt"]["implementation"]["command"]
    assert command.render_command(template, context) == spec.command


def test_a_run_number_is_an_int_and_its_id_the_text_of_its_paths() -> None:
    full = config_checks.load_campaign()
    spec = run_specs.run_spec(full, "gnmt", "local", 7, python="py", dataset_dir="d", run_dir="r")
    assert isinstance(spec.run, int) and spec.run == 7 and spec.run_id == "07"
    assert json.loads(spec.to_json())["run"] == 7  # run.json's "run" is this number
    ids = topology.system_run_ids(full, "gnmt", "local")
    assert ids == layout.run_ids(topology.system_runs(full, "gnmt", "local"))
    assert [layout.parse_run_id(i) for i in ids] == list(range(1, len(ids) + 1))
    assert layout.parse_run_id("007") == 7
    for bad in ("7", "run_07", "", "0x7", " 07"):
        with pytest.raises(ValueError, match="is not a run id"):
            layout.parse_run_id(bad)


def test_load_campaign_cross_checks_what_load_and_validate_does_not() -> None:
    """config.load_and_validate checks the schema only; config_checks.check_campaign the names."""
    config, sources = merged(("c.yaml", {"campaign": {"systems": ["nope"]}}))
    full = cfg.load_and_validate(config, sources)  # the schema allows any name
    with pytest.raises(cfg.ConfigError, match="campaign.systems names 'nope'"):
        config_checks.check_campaign(full, sources)


def test_the_profile_check_imports_only_config_and_config_files() -> None:
    """profiles/default/config.yaml imports scripts.core.config_files at every snakemake start:
    it must stay light (no jsonschema, none of the workflow's other modules)."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from scripts.core.config_files import preflight;"
        "print(sorted(m for m in sys.modules if m.startswith(('scripts', 'jsonschema'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(REPO)], capture_output=True, text=True, check=True
    )
    # scripts.core.config (YAML) only where a --configfile is read: the runner imports
    # config_files for disk_full_problem alone
    assert out.stdout.strip() == "['scripts', 'scripts.core', 'scripts.core.config_files']"
