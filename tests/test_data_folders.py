"""A dataset of folders the user already has (config dataset.folders): the schema, the rule's
inputs, the links and their record, the check before each run and at load time."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from scripts.campaign import config_checks
from scripts.campaign.data_folders import CheckDataFolders
from scripts.campaign.invocation import Refused
from scripts.core.config import ConfigError
from scripts.data import cli
from scripts.data.errors import DatasetError
from scripts.data.folders import folder_changes, folders_problem, link_folders, run_problem
from scripts.data.verify import verified_manifest_sha256
from scripts.workflow.rule_inputs import RuleInputs
from tests.conftest import REPO


def make_folder(path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_text(text)
    return path


def overlay(tmp_path: Path, dataset: dict) -> Path:
    """The trivial benchmark of bench/common.py with ``dataset``."""
    data = {
        "campaign": {"benchmarks": ["trivial"], "systems": ["sys000"]},
        "benchmarks": {
            "trivial": {
                "description": "x",
                "scale": "bench",
                "runs": 1,
                "quality": {"metric": "acc", "target": 0.5},
                "dataset": dataset,
                "implementation": {"command": "{python} trivial_trainer.py --seed {seed}"},
            }
        },
        "systems": {"sys000": {"description": "bench", "backend": "local", "threads": 1}},
    }
    path = tmp_path / "overlay.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_folders_load_and_the_rule_links_only_their_benchmarks(tmp_path):
    config = config_checks.load_campaign([overlay(tmp_path, {"folders": {"DATADIR": "/d/x"}})])
    inputs = RuleInputs(config, REPO, python="/usr/bin/python3")
    assert inputs.dataset_folders("trivial") == {"DATADIR": "/d/x"}
    assert inputs.dataset_files("trivial") == []
    assert inputs.folder_benchmarks_regex() == "trivial"
    args = inputs.folders_args(SimpleNamespace(benchmark="trivial"))
    assert args == '--folders-json \'{"DATADIR": "/d/x"}\' --key benchmarks.trivial.dataset.folders'


def test_no_benchmark_of_folders_is_a_pattern_that_matches_nothing(tmp_path):
    sha = "0" * 64
    files = {"files": [{"name": "a.txt", "url": "file:///a.txt", "sha256": sha}]}
    config = config_checks.load_campaign([overlay(tmp_path, files)])
    regex = RuleInputs(config, REPO, python="/usr/bin/python3").folder_benchmarks_regex()
    assert regex == "(?!)"


@pytest.mark.parametrize(
    ("dataset", "message"),
    [
        (
            {"folders": {"D": "/x"}, "files": [{"name": "a", "url": "file:///a", "md5": "0" * 32}]},
            "give exactly one of files",
        ),
        ({}, "give exactly one of files"),
        ({"folders": {"D": "/x"}, "mirror": "/m"}, "dataset.mirror: a dataset of folders has none"),
    ],
)
def test_files_or_folders_exactly_one_is_a_clear_error(tmp_path, dataset, message):
    with pytest.raises(ConfigError, match=message):
        config_checks.load_campaign([overlay(tmp_path, dataset)])


def test_folders_are_linked_resolved_and_recorded_by_their_counts(tmp_path):
    data = make_folder(tmp_path / "real", {"a.bin": "12345", "sub/b.bin": "67", ".hidden": "x"})
    (tmp_path / "alias").symlink_to(data)
    tree, manifest = tmp_path / "d/b/dataset", tmp_path / "d/b/manifest.json"
    assert cli.main(["folders", "--folders-json", json.dumps({"DATADIR": str(tmp_path / "alias")}),
                     "--tree", str(tree), "--manifest", str(manifest)]) == 0  # fmt: skip
    link = tree / "DATADIR"
    assert link.is_symlink() and Path(link.readlink()) == data.resolve()
    recorded = json.loads(manifest.read_text())
    assert recorded["folders"] == [
        {"name": "DATADIR", "path": str(data.resolve()), "num_files": 2, "num_bytes": 7}
    ]
    assert recorded["files"] == []
    assert (tree.with_name("dataset.manifest.json")).exists()
    assert folders_problem(tree) is None
    assert verified_manifest_sha256(manifest)  # what runs record


def test_a_missing_folder_is_one_line_naming_its_key(tmp_path, capsys):
    tree, manifest = tmp_path / "dataset", tmp_path / "manifest.json"
    with pytest.raises(DatasetError, match=r"^k\.DATADIR: /no/such \(/no/such\) does not exist$"):
        link_folders({"DATADIR": "/no/such"}, tree, manifest, prefix="k")
    folders = json.dumps({"DATADIR": "/no/such"})
    args = ["folders", "--folders-json", folders, "--tree", str(tree), "--manifest", str(manifest)]
    assert cli.main(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "dataset.folders.DATADIR" in err
    assert not manifest.exists()


def test_a_changed_folder_is_refused_before_a_run_unless_expected_mounts_count_it(tmp_path):
    data = make_folder(tmp_path / "real", {"a.bin": "12345"})
    tree = tmp_path / "dataset"
    link_folders({"DATADIR": str(data)}, tree, tmp_path / "manifest.json")
    assert run_problem({}, tree) is None
    (data / "new.bin").write_text("abc")
    problem = run_problem({}, tree)
    assert problem and "DATADIR" in problem and "holds 2 files of 8 bytes" in problem
    assert "recorded 1 file of 5 bytes" in problem
    assert run_problem({"expected_mounts": "expected-mounts.csv"}, tree) is None


def test_a_dataset_of_files_costs_the_run_no_walk(tmp_path):
    tree = tmp_path / "dataset"
    tree.mkdir()
    (tmp_path / "manifest.json").write_text(json.dumps({"files": []}))
    assert run_problem({}, tree) is None


def test_the_config_pointing_elsewhere_is_a_change(tmp_path):
    a = make_folder(tmp_path / "a", {"x": "1"})
    b = make_folder(tmp_path / "b", {"x": "1"})
    manifest = tmp_path / "manifest.json"
    link_folders({"D": str(a)}, tmp_path / "dataset", manifest)
    assert folder_changes(manifest, {"D": str(a)}) == []
    assert folder_changes(manifest, {"D": str(b)}) == [f"D: now {b}, recorded {a}"]
    assert folder_changes(manifest, {"D": str(a), "E": str(b)}) == ["E: added to the config"]


def test_at_load_time_a_changed_folder_is_recorded_again_or_refused_with_finished_runs(tmp_path):
    data = make_folder(tmp_path / "real", {"a.bin": "12345"})
    rel_tree = Path("data/trivial/dataset")
    link_folders({"D": str(data)}, tmp_path / rel_tree, tmp_path / "data/trivial/manifest.json")
    check = CheckDataFolders("trivial", tmp_path, rel_tree, {"D": str(data)})
    said: list[str] = []
    check.apply(False, said.append)
    assert said == []
    (data / "a.bin").write_text("123456")
    check.apply(True, said.append)  # a dry run changes nothing
    assert "a real run records them again" in said[-1]
    assert (tmp_path / rel_tree / "D").is_symlink()
    run = tmp_path / "results/trivial/sys000/run_01"
    run.mkdir(parents=True)
    (run / "run.json").write_text("{}")
    with pytest.raises(Refused, match="6 bytes.*1 finished run.*results/trivial/sys000/run_01"):
        check.apply(False, said.append)
    (run / "run.json").unlink()
    check.apply(False, said.append)
    assert "linked and recorded again" in said[-1]
    assert not (tmp_path / rel_tree).exists()
    assert not (tmp_path / "data/trivial/manifest.json").exists()
    assert (data / "a.bin").read_text() == "123456"  # the user's folder is never touched
