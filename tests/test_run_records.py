"""run.json and result.json as records (scripts/core/run_records.py): every file any version of
the workflow wrote reads and writes back byte for byte, a key a file lacks reads as its default
and is not added, a key this version does not know is kept, a newer version is refused in one
line, and no module reads the two files but through the records."""

from __future__ import annotations

import ast
import dataclasses
import json
from pathlib import Path

import pytest

from scripts.analysis import tables
from scripts.core import formats
from scripts.core.run_records import (
    RESULT_JSON_VERSIONS,
    RUN_JSON_VERSIONS,
    NotAnObject,
    ResultRecord,
    RunRecord,
)
from scripts.run import seals
from scripts.run.published.run import import_run
from scripts.run.result_json import compliance_of, write_result
from scripts.run.runner import execute
from tests.conftest import REPO
from tests.test_import import SPEC as IMPORT_SPEC
from tests.test_run_training import good_log_command, spec

RECORDS = REPO / "tests" / "data" / "records"  # see its README.md
RUN_FILES = sorted(RECORDS.glob("*.run.json"))
RESULT_FILES = sorted(RECORDS.glob("*.result.json"))
QUALITY = {"metric": "acc", "target": 0.9}


def record_class(path: Path) -> type[RunRecord] | type[ResultRecord]:
    return RunRecord if path.name.endswith("run.json") else ResultRecord


def round_trip(path: Path, tmp_path: Path) -> bytes:
    """The bytes of ``path`` read as its record and written again."""
    copy = tmp_path / f"copy.{path.name}"
    record_class(path).read(path).write(copy)
    return copy.read_bytes()


@pytest.mark.parametrize("path", RUN_FILES + RESULT_FILES, ids=lambda p: p.name)
def test_every_file_of_every_version_keeps_its_bytes(path: Path, tmp_path: Path) -> None:
    record = record_class(path).read(path)
    assert round_trip(path, tmp_path) == path.read_bytes()
    assert record.to_json() == json.loads(path.read_bytes())
    assert record.extra == {}  # every key any version wrote is a field (or an engine's argv)


def test_the_fixtures_hold_every_field_and_each_kind_of_file() -> None:
    for cls, files in ((RunRecord, RUN_FILES), (ResultRecord, RESULT_FILES)):
        written = {key for f in files for key in json.loads(f.read_bytes())}
        assert set(cls.ORDER) <= written, f"{cls.__name__} fields no file has"
    assert RunRecord.read(RECORDS / "docker.run.json").argv_of("docker")[0] == "docker"


def test_a_fresh_run_and_its_result_keep_their_bytes(tmp_path: Path, paths) -> None:  # noqa: F811
    meta = execute(spec(good_log_command(tmp_path)), **paths)
    result_path = tmp_path / "run_01" / "result.json"
    result = write_result(paths["log_path"], paths["meta_path"], QUALITY, "run_stop", result_path)
    for path, record in ((paths["meta_path"], meta), (result_path, result)):
        assert record == record_class(path).read(path)
        assert record.extra == {}  # the writers write no key the record does not name
        assert round_trip(path, tmp_path) == path.read_bytes()
    assert json.loads(paths["meta_path"].read_bytes()) == meta.to_json()
    assert list(json.loads(result_path.read_bytes()))[:2] == ["format_version", "benchmark"]
    assert result.log_sha256 == (meta.log_seal or {}).get("sha256")
    # tables parse writes it without the log's sha256, in the same order
    parsed = tmp_path / "parsed.json"
    argv = ["parse", "--log", str(paths["log_path"]), "--meta", str(paths["meta_path"])]
    argv += ["--quality-json", json.dumps(QUALITY), "--output", str(parsed)]
    assert tables.main(argv) == 0
    again = ResultRecord.read(parsed)
    assert not again.has("log_sha256") and again.key_order == result.key_order[:-1]
    assert round_trip(parsed, tmp_path) == parsed.read_bytes()


def test_a_fresh_import_keeps_its_bytes(tmp_path: Path) -> None:
    source = REPO / "tests" / "data" / "v06" / "dgx1_pytorch_transformer_result_0.txt"
    import_spec = dict(IMPORT_SPEC)
    d = tmp_path / "run_01"
    meta = import_run(source, import_spec, d / "mlperf.log", d / "run.json")
    result = write_result(d / "mlperf.log", d / "run.json", QUALITY, "run_stop", d / "result.json")
    assert meta.extra == {} and result.extra == {}
    assert meta.has("rcp_scaling_factor") and not meta.has("exit_code")
    for path in (d / "run.json", d / "result.json"):
        assert round_trip(path, tmp_path) == path.read_bytes()


def test_an_old_file_reads_with_defaults_and_gains_no_key(tmp_path: Path) -> None:
    meta = RunRecord.read(RECORDS / "local-before-seals.run.json")
    assert meta.format_version == 1 and not meta.has("format_version")
    assert meta.log_seal is None and not meta.has("log_seal")  # unsealed
    assert meta.fingerprint_keys is None and meta.dataset_tree_sha256 is None
    assert (meta.rcp_scaling_factor, meta.olympic_drop, meta.submission) == (1.0, 1, {})
    assert not meta.has("rcp_scaling_factor")  # a run made here: nothing published
    result = ResultRecord.read(RECORDS / "local-before-seals.result.json")
    assert result.log_sha256 is None and result.log_problems is None
    assert compliance_of(result) == ("not applicable", "")
    assert "compliance" not in result.to_json()
    bare = RunRecord.from_json({"run": 3})
    assert (bare.run, bare.nodes, bare.gpu_devices) == (3, 1, [])
    assert bare.to_json() == {"run": 3}


def test_a_key_this_version_does_not_know_is_kept_in_its_place(tmp_path: Path) -> None:
    path = tmp_path / "result.json"
    data = {"format_version": 1, "run": 2, "later_key": {"x": [1, 2]}, "converged": True}
    path.write_text(json.dumps(data, indent=2) + "\n")
    record = ResultRecord.read(path)
    assert record.extra == {"later_key": {"x": [1, 2]}} and record.run == 2
    assert round_trip(path, tmp_path) == path.read_bytes()
    sealed = record.updated(log_sha256="ab", converged=False)
    assert list(sealed.to_json()) == [
        "format_version",
        "run",
        "later_key",
        "converged",
        "log_sha256",
    ]
    meta = RunRecord.of(benchmark="b", podman_argv=["podman", "run"], later=1)
    assert meta.argv_of("podman") == ["podman", "run"] and meta.extra == {"later": 1}
    assert meta.to_json() == {
        "format_version": 1,
        "benchmark": "b",
        "podman_argv": ["podman", "run"],
        "later": 1,
    }


def test_a_record_is_frozen_and_a_change_is_a_new_record(tmp_path: Path) -> None:
    meta = RunRecord.read(RECORDS / "local.run.json")
    with pytest.raises(dataclasses.FrozenInstanceError):
        meta.seed = 1  # type: ignore[misc]
    assert meta.updated(seed=1).seed == 1 and meta.seed != 1
    log = tmp_path / "mlperf.log"
    log.write_text("log\n")
    old = RunRecord.read(RECORDS / "local-before-seals.run.json")
    sealed = seals.add_seal(old, log)
    assert sealed.has("log_seal") and sealed.key_order[-1] == "log_seal"
    assert sealed.log_seal == seals.seal(log) and not old.has("log_seal")


@pytest.mark.parametrize("cls", [RunRecord, ResultRecord])
def test_a_newer_version_is_refused_in_one_line(tmp_path: Path, cls: type[RunRecord]) -> None:
    path = tmp_path / cls.KIND
    path.write_text(json.dumps({"format_version": cls.VERSION + 1, "run": 1}))
    with pytest.raises(formats.NewerFormat) as info:
        cls.read(path)
    assert str(info.value) == (
        f"{path} has format_version {cls.VERSION + 1}, but this workflow reads {cls.KIND} up "
        f"to version {cls.VERSION} (made by a newer workflow?): update the workflow, or move "
        "the file away"
    )
    with pytest.raises(formats.NewerFormat, match=f"^a {cls.KIND} has format_version 2"):
        cls.from_json({"format_version": 2})


@pytest.mark.parametrize("cls", [RunRecord, ResultRecord])
def test_a_corrupt_file_is_named(tmp_path: Path, cls: type[RunRecord]) -> None:
    path = tmp_path / cls.KIND
    path.write_text('{"run": 1, "conv')
    with pytest.raises(formats.CorruptFile, match=r"is not valid JSON \(16 bytes; half-written"):
        cls.read(path)
    path.write_text("[1, 2]")
    with pytest.raises(NotAnObject, match=f"^{path} is not a JSON object$"):
        cls.read(path)
    assert issubclass(NotAnObject, formats.CorruptFile)
    path.write_text('{"format_version": "1"}')
    with pytest.raises(formats.CorruptFile, match="not a version number"):
        cls.read(path)


def test_the_version_history_is_in_one_place() -> None:
    for history, cls in ((RUN_JSON_VERSIONS, RunRecord), (RESULT_JSON_VERSIONS, ResultRecord)):
        assert sorted(history) == list(range(1, cls.VERSION + 1))
        assert cls.VERSION == max(history) and cls.KIND not in formats.VERSIONS


def test_no_module_reads_run_or_result_json_but_through_the_records() -> None:
    """No call under scripts/ reads or stamps either file as a dict (read_json, json.load(s),
    formats.stamped or version naming them)."""
    calls = {"read_json", "loads", "load", "stamped", "version", "check_version"}
    found = []
    for path in sorted((REPO / "scripts").rglob("*.py")):
        if path.name == "run_records.py":
            continue
        source = path.read_text()
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "attr", getattr(node.func, "id", ""))
            text = ast.get_source_segment(source, node) or ""
            if name in calls and ("run.json" in text or "result.json" in text):
                found.append(f"{path.relative_to(REPO)}:{node.lineno}: {text}")
    assert not found, "\n".join(found)
