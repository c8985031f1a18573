"""``dataset: none`` (issue 24: "A benchmark whose implementation brings its own data may say
dataset: none"): no dataset job, no data_dir folder, no dataset input or check of a run, and
clear errors where a setting needs the dataset. The campaign is the bert-v5.0 replay overlay
(tests/data/bert_replay), beside the embedded gnmt benchmark, which keeps its dataset."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from scripts.campaign import config_checks, preflight
from scripts.campaign.comparability import comparability
from scripts.core.config import ConfigError
from scripts.core.dataset_setting import dataset_section, has_no_dataset
from scripts.run.runner import execute
from scripts.run.spec import RunSpec
from scripts.workflow.rule_inputs import RuleInputs
from tests.bert_replay import BENCHMARK, OVERLAY, ROUND, SYSTEM
from tests.conftest import REPO


def load(tmp_path: Path, *extra: dict[str, Any], replay: bool = True) -> dict[str, Any]:
    """The replay campaign's config (or the default one), with ``extra`` overlays on top."""
    files: list[Path] = [REPO / ROUND, OVERLAY] if replay else [REPO / ROUND]
    for i, overlay in enumerate(extra):
        path = tmp_path / f"extra{i}.yaml"
        path.write_text(yaml.safe_dump(overlay))
        files.append(path)
    return config_checks.load_campaign(files)


def rule_inputs(config: dict[str, Any]) -> RuleInputs:
    return RuleInputs(config, REPO, python="/usr/bin/python3")


def w(benchmark: str, system: str, run: str = "01") -> SimpleNamespace:
    return SimpleNamespace(benchmark=benchmark, system=system, run=run)


CONTAINER = {"dockerfile": "Dockerfile"}
PREPARE = {"command": "make", "mount": "/prepared"}
MOUNT = {"key": "DATADIR", "path": "data", "mount": "/data/x"}


def bert(**keys: Any) -> dict[str, Any]:
    return {"benchmarks": {BENCHMARK: keys}}


def test_the_word_none_reads_as_no_section_and_a_missing_section_is_not_none() -> None:
    assert has_no_dataset({"dataset": "none"}) and dataset_section({"dataset": "none"}) == {}
    assert not has_no_dataset({}) and dataset_section({}) == {}
    assert dataset_section({"dataset": {"files": []}}) == {"files": []}


def test_a_run_of_a_benchmark_without_dataset_takes_no_dataset_input(tmp_path: Path) -> None:
    inputs = rule_inputs(load(tmp_path))
    assert inputs.config["benchmarks"][BENCHMARK]["dataset"] == "none"
    # one benchmark says none: train_run's dataset inputs are a function, asked per job
    assert inputs.dataset_run_input_patterns() == {}
    assert len(inputs.dataset_run_input_functions()) == 1
    assert inputs.dataset_run_inputs(w(BENCHMARK, SYSTEM)) == {}
    assert inputs.dataset_run_inputs(w("gnmt", "local")) == {
        "dataset": "data/gnmt/dataset",
        "manifest": "data/gnmt/manifest.json",
    }
    assert "--dataset-manifest" not in inputs.runner_args(w(BENCHMARK, SYSTEM))
    spec = RunSpec.from_json(inputs.run_spec_json(w(BENCHMARK, SYSTEM, "03")))
    assert "--run 3" in spec.command and f"data/{BENCHMARK}" not in spec.command


def test_without_a_benchmark_saying_none_the_dataset_inputs_stay_patterns(tmp_path: Path) -> None:
    inputs = rule_inputs(load(tmp_path, replay=False))
    assert inputs.dataset_run_input_functions() == []
    assert inputs.dataset_run_input_patterns() == {
        "dataset": "data/{benchmark}/dataset",
        "manifest": "data/{benchmark}/manifest.json",
    }
    assert "--dataset-manifest data/gnmt/manifest.json" in inputs.runner_args(w("gnmt", "local"))


def test_a_dataset_rule_asked_for_a_benchmark_without_dataset_names_it(tmp_path: Path) -> None:
    inputs = rule_inputs(load(tmp_path))
    for ask in (inputs.dataset_inputs, inputs.files_json, inputs.unpack_limit_args):
        with pytest.raises(ConfigError, match=rf"benchmarks\.{BENCHMARK}\.dataset is none"):
            ask(w(BENCHMARK, SYSTEM))
    assert inputs.dataset_folders(BENCHMARK) == {} and inputs.data_commands(BENCHMARK) == []
    assert BENCHMARK not in inputs.folder_benchmarks_regex()


def test_no_dataset_lock_is_taken_and_the_record_says_none(tmp_path: Path) -> None:
    config = load(tmp_path)
    assert preflight.campaign_datasets(config, tmp_path, []) == ["gnmt"]
    assert comparability(config, BENCHMARK, SYSTEM)["dataset"] == "none"
    assert isinstance(comparability(config, "gnmt", "local")["dataset"], list)


@pytest.mark.parametrize(
    ("extra", "refused"),
    [
        (
            bert(implementation={"command": "{python} t.py --data {dataset_dir}"}),
            rf"benchmarks\.{BENCHMARK}\.implementation\.command uses \{{dataset_dir\}}, but "
            rf"benchmarks\.{BENCHMARK}\.dataset is none",
        ),
        (
            bert(implementation={"env": {"DATADIR": "{dataset_dir}/x"}}),
            rf"benchmarks\.{BENCHMARK}\.implementation\.env\.DATADIR uses \{{dataset_dir\}}",
        ),
        (
            bert(implementation={"container": {**CONTAINER, "prepare": PREPARE}}),
            rf"benchmarks\.{BENCHMARK}\.implementation\.container\.prepare needs the dataset",
        ),
        (
            bert(implementation={"container": {**CONTAINER, "data_mounts": [MOUNT]}}),
            rf"benchmarks\.{BENCHMARK}\.implementation\.container\.data_mounts needs the "
            "dataset",
        ),
    ],
)
def test_a_setting_that_needs_the_dataset_is_refused_naming_its_key(
    tmp_path: Path, extra: dict[str, Any], refused: str
) -> None:
    with pytest.raises(ConfigError, match=refused):
        load(tmp_path, extra)


def test_another_word_is_refused_naming_the_file_key_and_none(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, bert(dataset="nothing"))
    message = str(caught.value)
    assert "extra0.yaml: benchmarks.bert-v5.0.dataset: 'none' was expected" in message
    assert 'found "nothing"' in message and "none (the implementation brings its own" in message
    # a mistake inside a dataset section is still named where it is
    with pytest.raises(
        ConfigError, match=r"benchmarks\.bert-v5\.0\.dataset\.files\.0\.sha256: .x. does not match"
    ):
        load(tmp_path, bert(dataset={"files": [{"name": "a", "url": "file:///a", "sha256": "x"}]}))


def test_the_runner_runs_without_a_dataset_and_records_no_digest(tmp_path: Path, paths) -> None:
    emit = tmp_path / "emit.py"
    events = [
        {"key": "run_start", "event_type": "INTERVAL_START", "time_ms": 1000},
        {"key": "run_stop", "event_type": "INTERVAL_END", "time_ms": 1500},
    ]
    lines = [
        ":::MLLOG "
        + json.dumps({"namespace": "", "value": None, "metadata": {"status": "success"}, **e})
        for e in events
    ]
    emit.write_text(f"for line in {lines!r}:\n    print(line)\n")
    spec = RunSpec(
        benchmark="b",
        system="s",
        run=1,
        seed=7,
        command=f"{sys.executable} {emit}",
        env={},
        timeout_s=30,
        threads=1,
        scale="test",
        config_fingerprint="cfp",
        comparability={"dataset": "none"},
    )
    meta = execute(spec, **{**paths, "dataset_manifest": None})
    assert meta.exit_code == 0
    assert meta.dataset_manifest_sha256 is None and meta.dataset_tree_sha256 is None
    assert meta.dataset_residency["files"] == 0
