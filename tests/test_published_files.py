"""A published tree is data (scripts/core/published_files.py): links, FIFOs, devices, loops and huge
files in it are named log problems of their runs, never followed, never a hang, and the
folder's other runs are imported; values from it (scaling.json, systems json) are checked
where they enter."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scripts.core import published_files
from scripts.core.layout import result_files
from scripts.run.published import cli
from scripts.run.published.batch import import_batch
from scripts.run.published.folder import published_system, scaling_factor, system_columns
from scripts.run.published.overlay import build_overlay
from tests.conftest import need_fixtures
from tests.test_import_batch import gnmt_plan

V06_GNMT = ("mlperf-v0.6-nvidia", "dgx1_ngc19.05_pytorch", "gnmt")
SECRET = b"-----BEGIN OPENSSH PRIVATE KEY----- not for the report\n"


def good_logs() -> list[Path]:
    return result_files(need_fixtures().joinpath(*V06_GNMT))


def make_entry(folder: Path, name: str, kind: str, outside: Path, good: Path) -> None:
    """One entry ``name`` of a published folder, of ``kind``."""
    path = folder / name
    if kind == "log":
        shutil.copyfile(good, path)
    elif kind == "link-out":
        path.symlink_to(outside / "secret")
    elif kind == "link-in":
        shutil.copyfile(good, folder / f".{name}.target")
        path.symlink_to(folder / f".{name}.target")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "link-fifo":
        path.symlink_to(outside / "fifo")
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "loop":
        path.symlink_to(path)
    elif kind == "folder":
        path.mkdir()
    else:
        raise AssertionError(kind)


KINDS = ["log", "link-out", "link-in", "fifo", "link-fifo", "dev-zero", "loop", "folder"]


def run_batch(tmp: Path, folder: Path) -> list[dict[str, Any]]:
    plan = gnmt_plan(tmp, folder, ruleset=None)
    return import_batch(plan, workers=1, progress=lambda _: None)


@settings(
    derandomize=True,
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.lists(st.sampled_from(KINDS), min_size=1, max_size=6))
def test_random_trees_import_only_regular_files_and_name_the_rest(kinds: list[str]) -> None:
    good = good_logs()
    with tempfile.TemporaryDirectory() as tmp_:
        tmp = Path(tmp_)
        outside = tmp / "outside"
        outside.mkdir()
        (outside / "secret").write_bytes(SECRET)
        os.mkfifo(outside / "fifo")
        folder = tmp / "published" / "gnmt"
        folder.mkdir(parents=True)
        for i, kind in enumerate(kinds):
            make_entry(folder, f"result_{i}.txt", kind, outside, good[i % len(good)])
        outcomes = run_batch(tmp, folder)  # never hangs on a FIFO, never reads /dev/zero
        listed = [k for k in kinds if k != "folder"]  # a folder is no log
        assert len(outcomes) == len(listed)
        assert all("error" not in o for o in outcomes)
        for run, kind in enumerate(listed, start=1):
            run_dir = tmp / "results" / f"run_{run:02d}"
            log = (run_dir / "mlperf.log").read_bytes()
            assert SECRET not in log
            result = json.loads((run_dir / "result.json").read_text())
            if kind == "log":
                assert log and result["log_problems"] == []
            else:
                assert log == b"" and not result["converged"]
                assert "not read" in result["log_problems"][0], result["log_problems"]
                assert (
                    "not a regular file" in result["log_problems"][0]
                    or "cannot be read" in (result["log_problems"][0])
                )


def test_a_log_over_the_cap_is_a_named_problem(tmp_path: Path) -> None:
    src = tmp_path / "result_0.txt"
    shutil.copyfile(good_logs()[0], src)
    with pytest.raises(published_files.RefusedFile, match="more than 1000 a published log"):
        published_files.copy_regular(src, tmp_path / "copy.log", max_bytes=1000)
    assert not (tmp_path / "copy.log").exists() and not (tmp_path / "copy.log.tmp").exists()


def test_a_symlinked_folder_is_not_followed(tmp_path: Path) -> None:
    root = tmp_path / "training_results_v0.6"
    shutil.copytree(need_fixtures().joinpath(*V06_GNMT), root / "NVIDIA/results/good/gnmt")
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(need_fixtures().joinpath(*V06_GNMT), elsewhere / "gnmt")
    (root / "NVIDIA/results/linked").symlink_to(elsewhere)
    (root / "NVIDIA/results/partly").mkdir()
    (root / "NVIDIA/results/partly/gnmt").symlink_to(elsewhere / "gnmt")
    overlay, notes = build_overlay(root)
    assert list(overlay["systems"]) == ["nvidia-good"]
    assert any("linked: a symbolic link" in n for n in notes), notes
    assert any("partly: no result folder" in n for n in notes), notes


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ('{"scaling_factor": 1e308}', "not one the RCP checker can give"),
        ('{"scaling_factor": 1e-300}', "not one the RCP checker can give"),
        ('{"scaling_factor": Infinity}', "not one the RCP checker can give"),
        ('{"scaling_factor": NaN}', "not one the RCP checker can give"),
        ('{"scaling_factor": "2"}', "must be a number"),
        ('{"scaling_factor": true}', "must be a number"),
        ("[1.2]", 'expected {"scaling_factor": <number>}'),
    ],
)
def test_a_scaling_factor_is_finite_and_one_the_rcp_checker_can_give(
    tmp_path: Path, text: str, why: str
) -> None:
    (tmp_path / "scaling.json").write_text(text)
    with pytest.raises(ValueError, match=why):
        scaling_factor(tmp_path)
    (tmp_path / "scaling.json").write_text('{"scaling_factor": 1.1666666666666667}')
    assert scaling_factor(tmp_path) == 1.1666666666666667


def test_a_bad_scaling_json_leaves_every_run_of_the_folder_without_a_result(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "published" / "gnmt"
    shutil.copytree(need_fixtures().joinpath(*V06_GNMT), folder)
    (folder / "scaling.json").write_text('{"scaling_factor": 1e308}')
    outcomes = run_batch(tmp_path, folder)
    assert len(outcomes) == 10 and all("error" not in o for o in outcomes)
    assert all(not o["converged"] and "RCP checker" in o["log_problems"][0] for o in outcomes)
    (folder / "scaling.json").unlink()
    (folder / "scaling.json").symlink_to("/dev/zero")
    outcome = run_batch(tmp_path / "again", folder)[0]
    assert "is a symbolic link, not a regular file: not read" in outcome["log_problems"][0]


@pytest.mark.parametrize(
    ("desc", "columns"),
    [
        ({"number_of_nodes": "-1", "accelerators_per_node": "8"}, {"n_nodes": None}),
        ({"number_of_nodes": 2.5, "accelerators_per_node": 8}, {"n_accelerators": None}),
        ({"number_of_nodes": "2", "accelerators_per_node": 8}, {"n_accelerators": 16}),
        ({"framework": {"a": 1}, "submitter": ["x"]}, {"framework": None, "submitter": None}),
        ({"accelerator_model_name": 100}, {"accelerator": "100"}),
    ],
)
def test_system_fields_are_counts_or_text(desc: dict[str, Any], columns: dict[str, Any]) -> None:
    got = system_columns(desc)
    assert {k: got[k] for k in columns} == columns


def test_a_systems_json_that_is_a_link_is_a_warning_and_the_logs_are_imported(
    tmp_path: Path,
) -> None:
    root = tmp_path / "training_results_v0.6"
    shutil.copytree(need_fixtures().joinpath(*V06_GNMT), root / "NVIDIA/results/dgx1/gnmt")
    (root / "NVIDIA/systems").mkdir(parents=True)
    (tmp_path / "secret.json").write_text('{"submitter": "=cmd|calc"}')
    (root / "NVIDIA/systems/dgx1.json").symlink_to(tmp_path / "secret.json")
    overlay, notes = build_overlay(root)
    assert list(overlay["systems"]) == ["nvidia-dgx1"]
    assert any("warning:" in n and "symbolic link" in n for n in notes), notes
    published = published_system(root / "NVIDIA/results/dgx1")
    assert published is not None and "symbolic link" in published["error"]
    assert published["submitter"] is None


def test_more_logs_than_the_run_count_is_a_note_naming_the_package_checkers_rule(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "published" / "gnmt"
    shutil.copytree(need_fixtures().joinpath(*V06_GNMT), folder)
    shutil.copyfile(folder / "result_3.txt", folder / "result_03.txt")
    plan = gnmt_plan(tmp_path, folder, ruleset=None)
    for run in plan["runs"]:
        run["spec"]["expected_runs"] = 10
    import_batch(plan, workers=1, progress=lambda _: None)
    result = json.loads((tmp_path / "results/run_01/result.json").read_text())
    [note] = [p for p in result["problems"] if "package checker" in p]
    assert note.startswith("note: ") and "holds 11 result_*.txt files" in note
    assert "requires exactly 10" in note and "Incorrect number of files in dir" in note


@pytest.mark.workflow
def test_snakemake_imports_a_hostile_tree_and_names_each_refused_log(tmp_path: Path) -> None:
    """The workflow's own command on a published folder whose logs include a link to a
    secret, a link loop and a link to a FIFO: it loads (no ELOOP from the sources digest), never
    hangs, copies no secret, and runs.csv names each refused log; the good logs are scored."""
    import pandas as pd

    from tests.conftest import copy_workflow, snakemake

    root = tmp_path / "training_results_v0.6"
    folder = root / "NVIDIA" / "results" / "dgx1" / "gnmt"
    shutil.copytree(need_fixtures().joinpath(*V06_GNMT), folder)
    (tmp_path / "secret").write_bytes(SECRET)
    os.mkfifo(tmp_path / "fifo")
    for name in ("result_7.txt", "result_8.txt", "result_9.txt"):
        (folder / name).unlink()
    (folder / "result_7.txt").symlink_to(tmp_path / "secret")
    (folder / "result_8.txt").symlink_to(folder / "result_8.txt")
    (folder / "result_9.txt").symlink_to(tmp_path / "fifo")
    wf = copy_workflow(tmp_path / "wf")
    overlay = wf / "overlay.yaml"
    assert cli.main(["overlay", str(root), "--output", str(overlay)]) == 0
    proc = snakemake(wf, "results/gnmt-v0.6/summary.csv", "--cores", "2", "--configfile",
                     str(overlay), timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = pd.read_csv(wf / "results" / "gnmt-v0.6" / "runs.csv")
    refused = runs[runs["run"] >= 8]
    assert len(runs) == 10 and len(refused) == 3 and not refused["converged"].any()
    assert refused["log_problems"].str.contains("is a symbolic link, not a regular file").all()
    assert runs[runs["run"] < 8]["converged"].sum() >= 6
    for log in (wf / "results").rglob("mlperf.log"):
        assert SECRET not in log.read_bytes()
    summary = pd.read_csv(wf / "results" / "gnmt-v0.6" / "summary.csv").iloc[0]
    assert not summary["valid"]  # 3 runs without a result: more than MLPerf allows
