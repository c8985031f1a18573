"""Format versions (scripts/core/formats.py): the files the workflow writes carry format_version,
a newer one is refused with one line naming the file, an unversioned one (every campaign made
before versions existed) is read as version 1 and stays comparable."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from scripts.campaign import archive as campaign
from scripts.campaign import finished_runs, stale, status
from scripts.core import formats
from scripts.core.hashing import canonical_sha256 as fingerprint
from scripts.core.run_records import ResultRecord, RunRecord
from scripts.data import cli
from scripts.data.tree import TREE_FORMAT_VERSION
from scripts.data.verify import verified_manifest_sha256, verify, write_verified_manifest
from scripts.run import seals
from scripts.run.backends.errors import ContainerError
from scripts.run.backends.stamp import read_stamp
from scripts.run.runner import execute
from tests.test_run_training import good_log_command, spec

NEWER = r"format_version 2, but this workflow reads {kind} up to version 1 \(made by a newer"
# every versioned file's reader: run.json and result.json are read as records
READERS = {
    **{kind: lambda path, kind=kind: formats.read_json(path, kind) for kind in formats.VERSIONS},
    "run.json": RunRecord.read,
    "result.json": ResultRecord.read,
}


def test_every_versioned_file_is_at_version_1() -> None:
    assert formats.VERSIONS == {
        "image.json": 1,
        "manifest.json": 1,
        "dataset.manifest.json": 1,
        "verdict.json": 1,
    }
    assert RunRecord.VERSION == 1 and ResultRecord.VERSION == 1  # scripts/core/run_records.py
    assert TREE_FORMAT_VERSION == formats.version("dataset.manifest.json")


def test_a_file_without_format_version_is_version_1(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    path.write_text('{"run": 1}\n')
    record = RunRecord.read(path)
    assert (record.run, record.format_version, record.has("format_version")) == (1, 1, False)
    assert formats.read_json(path) == {"run": 1}
    assert formats.check_version({"run": 1}, path, "manifest.json") == 1
    assert formats.check_version({"format_version": 1}, path, "manifest.json") == 1


@pytest.mark.parametrize("kind", sorted(READERS))
def test_a_newer_version_is_refused_in_one_line_naming_the_file(tmp_path: Path, kind: str) -> None:
    path = tmp_path / kind
    path.write_text(json.dumps({"format_version": 2, "files": []}))
    with pytest.raises(formats.NewerFormat, match=NEWER.format(kind=kind)) as info:
        READERS[kind](path)
    assert str(info.value).startswith(f"{path} has format_version 2")
    assert len(str(info.value).splitlines()) == 1
    assert not isinstance(info.value, ValueError)  # not skipped as an unreadable file


@pytest.mark.parametrize("bad", ['"2"', "0", "true", "1.5", "null"])
def test_a_format_version_that_is_no_version_is_a_corrupt_file(tmp_path: Path, bad: str) -> None:
    path = tmp_path / "result.json"
    path.write_text(f'{{"format_version": {bad}}}')
    with pytest.raises(formats.CorruptFile, match="not a version number"):
        ResultRecord.read(path)


def test_run_json_carries_format_version_outside_its_fingerprint(tmp_path: Path, paths) -> None:  # noqa: F811
    meta = execute(spec(good_log_command(tmp_path)), **paths)
    written = json.loads(paths["meta_path"].read_text())
    assert written["format_version"] == 1 == meta.format_version
    assert "format_version" not in written["fingerprint_keys"]
    assert written["fingerprint"] == fingerprint(
        {k: written[k] for k in written["fingerprint_keys"]}
    )


def test_a_run_json_from_before_versions_stays_comparable(tmp_path: Path) -> None:
    """incomparable_runs over a run.json as the old runner wrote it (no format_version) and
    one written now: neither differs from the current state."""
    record = {"benchmark": "b", "scale": "test"}
    current = {
        "comparability": record,
        "config_fingerprint": fingerprint(record),
        "dataset_manifest_sha256": "m",
        "environment_digest": "e",
    }
    old = {
        "comparability": record,
        "config_fingerprint": fingerprint(record),
        "dataset_manifest_sha256": "m",
        "environment_digest": "e",
    }
    for run, meta in (("01", old), ("02", {"format_version": 1, **old})):
        run_dir = campaign.run_dir(tmp_path, "b", "s", run)
        run_dir.mkdir(parents=True)
        (run_dir / "run.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    assert finished_runs.incomparable_runs(tmp_path, "b", "s", ["01", "02"], current) == {}
    newer = campaign.run_dir(tmp_path, "b", "s", "03")
    newer.mkdir()
    (newer / "run.json").write_text(json.dumps({"format_version": 2, **old}))
    with pytest.raises(formats.NewerFormat):
        finished_runs.incomparable_runs(tmp_path, "b", "s", ["01", "03"], current)


def test_the_verified_manifest_keeps_its_digest_across_the_version(tmp_path: Path) -> None:
    """A manifest of an existing campaign is hashed as it is; the versioned one written now for
    the same files has the same digest, so verifying again does not make runs incomparable."""
    (tmp_path / "tiny.txt").write_text("a tiny dataset\n")
    files = [{"name": "tiny.txt", "sha256": hashlib.sha256(b"a tiny dataset\n").hexdigest()}]
    entries = verify(files, tmp_path)
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"files": entries}, indent=2) + "\n")  # as the old verify wrote
    new = tmp_path / "manifest.json"
    write_verified_manifest(new, entries)
    assert json.loads(new.read_text())["format_version"] == 1
    old_digest = hashlib.sha256(old.read_bytes()).hexdigest()
    assert verified_manifest_sha256(old) == old_digest
    assert verified_manifest_sha256(new) == old_digest
    # a hand-written one without a version: its bytes, whatever their layout
    odd = tmp_path / "odd.json"
    odd.write_text(json.dumps({"files": entries}))
    assert verified_manifest_sha256(odd) == hashlib.sha256(odd.read_bytes()).hexdigest()
    current = finished_runs.current_state({}, new, tmp_path / "none")
    assert current["dataset_manifest_sha256"] == old_digest
    new.write_text(json.dumps({"format_version": 2, "files": entries}))
    with pytest.raises(formats.NewerFormat):
        verified_manifest_sha256(new)
    assert stale.outdated_manifest(old, files) is None
    with pytest.raises(formats.NewerFormat):
        stale.outdated_manifest(new, files)


def test_the_dataset_verify_command_writes_a_versioned_manifest(tmp_path: Path) -> None:
    (tmp_path / "tiny.txt").write_text("a tiny dataset\n")
    files = [{"name": "tiny.txt", "sha256": hashlib.sha256(b"a tiny dataset\n").hexdigest()}]
    out = tmp_path / "manifest.json"
    argv = ["verify", "--files-json", json.dumps(files), "--dir", str(tmp_path)]
    assert cli.main([*argv, "--manifest", str(out)]) == 0
    data = json.loads(out.read_text())
    assert list(data) == ["format_version", "files"] and data["format_version"] == 1


def test_an_image_stamp_of_a_newer_workflow_is_refused(tmp_path: Path) -> None:
    stamp = tmp_path / "image.json"
    stamp.write_text(json.dumps({"format_version": 1, "image_id": "sha256:1"}))
    assert read_stamp(stamp)["image_id"] == "sha256:1"
    stamp.write_text(json.dumps({"image_id": "sha256:1"}))  # from before versions
    assert read_stamp(stamp)["image_id"] == "sha256:1"
    stamp.write_text(json.dumps({"format_version": 2, "image_id": "sha256:1"}))
    with pytest.raises(ContainerError, match=NEWER.format(kind="image.json")):
        read_stamp(stamp)


def test_a_result_json_of_a_newer_workflow_stops_the_seal_check(tmp_path: Path) -> None:
    run_dir = tmp_path / "results/b/s/run_01"
    run_dir.mkdir(parents=True)
    (run_dir / "mlperf.log").write_text("log\n")
    meta = {"run": 1, seals.SEAL_KEY: seals.seal(run_dir / "mlperf.log")}
    (run_dir / "run.json").write_text(json.dumps(meta))
    (run_dir / "result.json").write_text(json.dumps({"format_version": 1}))
    assert seals.check_run(run_dir, None)[0] == "ok"
    (run_dir / "result.json").write_text(json.dumps({"format_version": 2}))
    with pytest.raises(formats.NewerFormat, match=NEWER.format(kind="result.json")):
        seals.check_run(run_dir, None)


def test_status_refuses_a_run_json_of_a_newer_workflow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    overlay = tmp_path / "fake.yaml"
    overlay.write_text(
        "campaign: {benchmarks: [fake]}\n"
        "benchmarks: {fake: {description: d, scale: test, runs: 1, timeout_s: 60,"
        " quality: {metric: acc, target: 0.9},"
        " dataset: {files: [{name: t.txt, url: 'file:///t.txt', sha256: '" + "0" * 64 + "'}]},"
        " implementation: {command: 'true'}}}\n"
    )
    run_dir = tmp_path / "results/fake/local/run_01"
    run_dir.mkdir(parents=True)
    (run_dir / "mlperf.log").write_text("log\n")
    (run_dir / "run.json").write_text(json.dumps({"format_version": 2, "run": 1}))
    monkeypatch.chdir(tmp_path)
    assert status.main(["--configfile", str(overlay)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    assert err.startswith("error: ") and "run_01/run.json has format_version 2" in err
    assert "made by a newer workflow?" in err
    (run_dir / "run.json").write_text(json.dumps({"run": 1}))  # from before versions
    assert status.main(["--configfile", str(overlay)]) == 0
    assert "run_01  trained" in capsys.readouterr().out
    (run_dir / "run.json").write_text('{"format_version": "x"}')  # named when it is parsed
    assert status.main(["--configfile", str(overlay)]) == 0
    assert "run_01  trained" in capsys.readouterr().out
