"""Finished runs are sealed (scripts/run/seals.py): a changed or truncated log of a finished run
stops
the workflow and is named with the command that redoes it; a touched but identical log passes;
a half-written result.json is named and re-parsed from its intact log, never retrained."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.analysis import runs_table
from scripts.campaign import archive as campaign
from scripts.campaign import status
from scripts.core.layout import result_files
from scripts.core.run_records import ResultRecord, RunRecord
from scripts.run import seals
from scripts.run.published.run import import_run
from scripts.run.result_json import write_result
from tests.conftest import (
    REPO,
    fake_campaign,
    jobs_run,
    need_fixtures,
    snakemake,
    snapshot,
)
from tests.test_faults import executions

QUALITY = {"metric": "acc", "target": 0.9, "direction": "higher"}
LOG = (
    ':::MLLOG {"namespace": "", "time_ms": 1000, "event_type": "INTERVAL_START", '
    '"key": "run_start", "value": null, "metadata": {"file": "t.py", "lineno": 1}}\n'
    ':::MLLOG {"namespace": "", "time_ms": 1500, "event_type": "POINT_IN_TIME", '
    '"key": "eval_accuracy", "value": 0.95, "metadata": {"file": "t.py", "lineno": 2, '
    '"epoch_num": 1}}\n'
    ':::MLLOG {"namespace": "", "time_ms": 3000, "event_type": "INTERVAL_END", '
    '"key": "run_stop", "value": null, "metadata": {"file": "t.py", "lineno": 3, '
    '"status": "success"}}\n'
)


def finished_run(root: Path, run: str = "01", *, sealed: bool = True) -> Path:
    """A finished run folder as the runner leaves it (run.json written like today's when
    ``sealed`` is false), with its result.json parsed by the runner's own function."""
    d = root / "results" / "b" / "s" / f"run_{run}"
    d.mkdir(parents=True)
    (d / "mlperf.log").write_text(LOG)
    meta = {"benchmark": "b", "system": "s", "run": int(run), "seed": 7}
    if sealed:
        meta[seals.SEAL_KEY] = seals.seal(d / "mlperf.log")
    (d / "run.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    write_result(d / "mlperf.log", d / "run.json", QUALITY, "run_stop", d / "result.json")
    return d


def later(path: Path, seconds: int = 5) -> None:
    """Give ``path`` another mtime (same bytes): a touch."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + seconds * 10**9))


def check(root: Path, runs: tuple[str, ...] = ("01",), **kw) -> seals.SystemCheck:
    return seals.check_system(root, "b", "s", runs, **kw)


# --- the seal -------------------------------------------------------------------------------


def test_a_seal_records_size_sha256_and_mtime_and_the_result_what_it_was_parsed_from(
    tmp_path: Path,
) -> None:
    d = finished_run(tmp_path)
    log = d / "mlperf.log"
    sealed = json.loads((d / "run.json").read_text())[seals.SEAL_KEY]
    assert sealed == {
        "size": len(LOG.encode()),
        "sha256": seals.sha256_file(log),
        "mtime_ns": log.stat().st_mtime_ns,
    }
    result = json.loads((d / "result.json").read_text())
    assert result[seals.RESULT_KEY] == sealed["sha256"]
    assert result["converged"] is True  # the result itself is unchanged


def test_an_intact_run_passes_and_a_touched_identical_log_passes(tmp_path: Path) -> None:
    d = finished_run(tmp_path)
    assert check(tmp_path) == seals.SystemCheck("b", "s")
    later(d / "mlperf.log")
    assert check(tmp_path) == seals.SystemCheck("b", "s")
    # and the cache remembers the touched log as verified (no second hash)
    entry = seals._load_cache(seals.cache_path(tmp_path, "b", "s"))["01"]
    st = (d / "mlperf.log").stat()
    assert entry["log"] == [st.st_size, st.st_mtime_ns]


@pytest.mark.parametrize(
    ("edit", "what"),
    [
        (lambda b: b[: len(b) // 2], f"it is {len(LOG) // 2} bytes, sealed at {len(LOG)} bytes"),
        (lambda b: b + b"one more line\n", f"sealed at {len(LOG)} bytes"),
        (lambda b: b.replace(b"0.95", b"0.99"), "its sha256 is not the sealed one (same size"),
    ],
    ids=["truncated", "appended", "same-size-edit"],
)
def test_a_changed_log_is_tampered_and_the_message_names_the_run_and_the_command(
    tmp_path: Path, edit, what: str
) -> None:
    d = finished_run(tmp_path, "02")
    assert check(tmp_path, ("02",)).tampered == {}  # cached as intact first
    log = d / "mlperf.log"
    log.write_bytes(edit(log.read_bytes()))
    found = check(tmp_path, ("02",))
    assert list(found.tampered) == ["02"]
    assert "mlperf.log changed since the run finished" in found.tampered["02"]
    assert what in found.tampered["02"]
    message = seals.tampered_message([found])
    assert message is not None
    assert "results/b/s/run_02: mlperf.log changed since the run finished" in message
    assert "python -m scripts rerun b s 2" in message
    assert "results/archive" in message
    # it stays tampered (the cache never records a bad log as verified)
    assert list(check(tmp_path, ("02",)).tampered) == ["02"]


def test_the_named_command_redoes_the_run_and_keeps_the_old_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = finished_run(tmp_path, "02")
    (d / "mlperf.log").write_text("cut")
    message = seals.tampered_message([check(tmp_path, ("02",))])
    assert message is not None
    command = message.rsplit("): ", 1)[1].split()
    assert command[:4] == ["python", "-m", "scripts", "rerun"]
    monkeypatch.chdir(tmp_path)
    assert campaign.main(command[3:]) == 0
    (kept,) = (tmp_path / "results/archive/b/s").glob("run_02.replaced-*")
    assert (kept / "mlperf.log").read_text() == "cut" and not d.exists()
    assert check(tmp_path, ("02",)) == seals.SystemCheck("b", "s")  # nothing finished now


def test_the_cheap_check_looks_at_size_and_mtime_only(tmp_path: Path) -> None:
    """The documented limit of the cheap check: an edit of the same size that also restores
    the mtime is not seen (nothing is read); any other edit is."""
    d = finished_run(tmp_path)
    log = d / "mlperf.log"
    st = log.stat()
    log.write_bytes(log.read_bytes().replace(b"0.95", b"0.99"))
    os.utime(log, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert check(tmp_path).tampered == {}
    later(log)
    assert list(check(tmp_path).tampered) == ["01"]


def test_a_deleted_log_is_not_tampered_it_asks_for_the_run_again(tmp_path: Path) -> None:
    d = finished_run(tmp_path)
    (d / "mlperf.log").unlink()
    assert check(tmp_path) == seals.SystemCheck("b", "s")


def test_a_run_json_that_is_not_json_is_named(tmp_path: Path) -> None:
    d = finished_run(tmp_path)
    text = (d / "run.json").read_text()
    (d / "run.json").write_text(text[: len(text) // 2])
    found = check(tmp_path)
    assert "run.json is not valid JSON" in found.tampered["01"]


def test_a_run_json_whose_seal_is_not_a_seal_is_named(tmp_path: Path) -> None:
    d = finished_run(tmp_path)
    meta = json.loads((d / "run.json").read_text())
    meta[seals.SEAL_KEY] = {"size": "big"}
    (d / "run.json").write_text(json.dumps(meta))
    assert "run.json's log_seal is not a seal" in check(tmp_path).tampered["01"]


# --- result.json ------------------------------------------------------------------------


def test_a_half_written_result_is_named_for_a_re_parse(tmp_path: Path) -> None:
    d = finished_run(tmp_path)
    text = (d / "result.json").read_text()
    (d / "result.json").write_text(text[: len(text) // 2])
    found = check(tmp_path)
    assert found.tampered == {}
    assert str(d / "result.json") in found.corrupt_results["01"]
    assert "is not valid JSON" in found.corrupt_results["01"]


def test_a_result_parsed_from_another_log_is_named_for_a_re_parse(tmp_path: Path) -> None:
    d = finished_run(tmp_path)
    result = json.loads((d / "result.json").read_text())
    result[seals.RESULT_KEY] = "0" * 64
    (d / "result.json").write_text(json.dumps(result))
    assert "was parsed from another log" in check(tmp_path).corrupt_results["01"]


def test_a_bad_log_wins_over_a_bad_result(tmp_path: Path) -> None:
    d = finished_run(tmp_path)
    (d / "result.json").write_text("{")
    (d / "mlperf.log").write_text("cut")
    found = check(tmp_path)
    assert list(found.tampered) == ["01"] and found.corrupt_results == {}


def test_read_json_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "result.json"
    bad.write_text('{"run": 1, "conv')
    with pytest.raises(seals.CorruptFile, match=r"result\.json is not valid JSON \(16 bytes"):
        ResultRecord.read(bad)
    bad.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(seals.CorruptFile, match="is not valid JSON"):
        ResultRecord.read(bad)


def test_the_tables_name_a_half_written_result_never_a_bare_decode_error(tmp_path: Path) -> None:
    d = finished_run(tmp_path)
    (d / "result.json").write_text('{"benchmark": "b", "sys')
    with pytest.raises(seals.CorruptFile, match="result.json is not valid JSON"):
        runs_table.collect([d / "result.json"])
    for cmd in ("collect", "evals"):
        proc = subprocess.run(
            [sys.executable, "-m", "scripts", "tables", cmd, "--output", str(tmp_path / "t.csv")]
            + [str(d / "result.json")],
            capture_output=True,
            text=True,
            cwd=REPO,
        )
        assert proc.returncode == 1
        assert proc.stderr.startswith(f"error: {d / 'result.json'} is not valid JSON")
        assert "Traceback" not in proc.stderr and len(proc.stderr.splitlines()) == 1


# --- runs from before sealing ---------------------------------------------------------------


def test_a_run_from_before_sealing_keeps_working_unsealed_until_sealed_by_hand(
    tmp_path: Path,
) -> None:
    d = finished_run(tmp_path, sealed=False)
    before = (d / "run.json").read_bytes()
    found = check(tmp_path)
    assert found.unsealed == ["01"] and found.tampered == {} and found.corrupt_results == {}
    message = seals.unsealed_message([found])
    assert message is not None and "python -m scripts seal results/b/s" in message
    assert (d / "run.json").read_bytes() == before  # never rewritten by a check
    (d / "mlperf.log").write_text("cut")  # nothing records what it was: not seen
    assert check(tmp_path).tampered == {}
    result = (d / "result.json").read_text()
    (d / "result.json").write_text(result[:20])  # but a half-written result.json is
    assert "is not valid JSON" in check(tmp_path).corrupt_results["01"]
    (d / "result.json").write_text(result)
    assert check(tmp_path).unsealed == ["01"]
    (d / "mlperf.log").write_text(LOG)
    assert seals.main(["seal", str(d.parent)]) == 0
    assert seals.SEAL_KEY in json.loads((d / "run.json").read_text())
    assert check(tmp_path) == seals.SystemCheck("b", "s")
    assert seals.seal_folder(d.parent) == []  # sealing twice changes nothing
    (d / "result.json").write_text("{")
    assert "result.json is not valid JSON" in check(tmp_path).corrupt_results["01"]
    (d / "mlperf.log").write_text("cut")
    assert list(check(tmp_path).tampered) == ["01"]


# --- the cache --------------------------------------------------------------------------


def test_the_cache_is_derived_a_lost_or_garbage_one_is_rebuilt(tmp_path: Path) -> None:
    d = finished_run(tmp_path)
    cache = seals.cache_path(tmp_path, "b", "s")
    assert check(tmp_path).tampered == {} and cache.exists()
    for garbage in (
        "",
        "[1, 2]",
        '{"format_version": 99, "runs": {}}',
        "{",
        '{"format_version": 1, "runs": {"01": [1]}}',
        '{"format_version": 1, "runs": {"01": {"meta": [1], "seal": {"size": "x"}}}}',
    ):
        cache.write_text(garbage)
        (d / "mlperf.log").write_text("cut")
        assert list(check(tmp_path).tampered) == ["01"]
        (d / "mlperf.log").write_text(LOG)
        seals.seal_folder(d)  # no-op: it is sealed already
        cache.unlink()


def test_a_redone_run_is_checked_against_its_new_seal_not_the_cached_one(
    tmp_path: Path,
) -> None:
    d = finished_run(tmp_path)
    assert check(tmp_path).tampered == {}
    # the run is redone: a new log of another size, and a new run.json with its seal
    (d / "mlperf.log").write_text(LOG + LOG)
    seals.add_seal(RunRecord.read(d / "run.json"), d / "mlperf.log").write(d / "run.json")
    write_result(d / "mlperf.log", d / "run.json", QUALITY, "run_stop", d / "result.json")
    assert check(tmp_path) == seals.SystemCheck("b", "s")


def test_without_the_cache_the_check_is_the_same(tmp_path: Path) -> None:
    d = finished_run(tmp_path)
    (d / "mlperf.log").write_text("cut")
    assert list(check(tmp_path, use_cache=False).tampered) == ["01"]
    assert not seals.cache_path(tmp_path, "b", "s").exists()


# --- the import backend and status ---------------------------------------------------


def test_an_imported_run_is_sealed(tmp_path: Path) -> None:
    fixtures = need_fixtures()
    source = result_files(fixtures / "mlperf-v0.6-nvidia/dgx1_ngc19.05_pytorch/gnmt")[0]
    d = tmp_path / "run_01"
    spec = {
        "benchmark": "gnmt-v0.6",
        "system": "dgx1",
        "run": 1,
        "scale": "full",
        "mlperf_name": "gnmt",
        "config_fingerprint": "x",
        "comparability": {},
    }
    meta = import_run(source, spec, d / "mlperf.log", d / "run.json")
    assert meta.log_seal is not None and meta.log_seal["sha256"] == meta.source_sha256
    assert json.loads((d / "run.json").read_text())[seals.SEAL_KEY]["size"] == source.stat().st_size


def test_status_shows_a_tampered_run_and_a_corrupt_result_as_such(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    finished_run(tmp_path, "01")
    d2 = finished_run(tmp_path, "02")
    d3 = finished_run(tmp_path, "03")
    d4 = finished_run(tmp_path, "04", sealed=False)
    (d2 / "mlperf.log").write_text("cut")
    (d3 / "result.json").write_text("{")
    states = {r: status.run_state(tmp_path, "b", "s", r) for r in ("01", "02", "03", "04")}
    assert states["01"].state == "done" and "converged" in states["01"].detail
    assert states["02"].state == "tampered"
    assert states["02"].detail.startswith("mlperf.log changed since the run finished: it is 3")
    assert "python -m scripts rerun b s 2" in states["02"].detail
    assert states["03"].state == "corrupt"
    assert "results/b/s/run_03/result.json is not valid JSON" in states["03"].detail
    assert states["04"].state == "done" and "unsealed" in states["04"].detail
    assert d4.exists()


# --- the workflow -------------------------------------------------------------------------


TARGET = "results/fake/summary.csv"


def run_status(wf: Path, overlay: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "scripts.campaign.status", "--configfile", overlay],
        cwd=wf,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


@pytest.mark.workflow
def test_a_truncated_log_of_a_finished_run_stops_the_next_invocation_before_any_job(
    workflow_copy: Path,
) -> None:
    wf = workflow_copy
    overlay = str(fake_campaign(wf, runs=3, faults={"marker_dir": "markers"}))
    first = snakemake(wf, TARGET, "--cores", "1", "--configfile", overlay)
    assert first.returncode == 0, first.stderr[-3000:]
    ran = executions(wf)
    # the campaign's end cached its runs' seals: the next no-op reads no run.json
    cached = seals._load_cache(seals.cache_path(wf, "fake", "local"))
    assert sorted(cached) == ["01", "02", "03"] and all(e["seal"] for e in cached.values())
    # a touched, identical log passes: nothing to do
    later(wf / "results/fake/local/run_01/mlperf.log")
    proc = snakemake(wf, TARGET, "--cores", "1", "--configfile", overlay)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Nothing to be done" in proc.stderr and jobs_run(proc.stderr) == []
    # run 02's log is cut in half
    log = wf / "results/fake/local/run_02/mlperf.log"
    full = log.read_bytes()
    log.write_bytes(full[: len(full) // 2])
    before = snapshot(wf)
    proc = snakemake(wf, TARGET, "--cores", "1", "--configfile", overlay)
    assert proc.returncode != 0
    assert (
        "results/fake/local/run_02: mlperf.log changed since the run finished: "
        f"it is {len(full) // 2} bytes, sealed at {len(full)} bytes"
    ) in proc.stderr
    assert "python -m scripts rerun fake local 2" in proc.stderr
    assert jobs_run(proc.stderr) == [] and executions(wf) == ran
    assert snapshot(wf) == before  # every file as it was, the tables too
    assert "run_02  tampered    mlperf.log changed since the run finished" in run_status(
        wf, overlay
    )
    # a dry run says the same
    dry = snakemake(wf, TARGET, "-n", "--configfile", overlay)
    assert dry.returncode != 0 and "run_02: mlperf.log changed" in dry.stdout + dry.stderr
    # the named command redoes it, and only it
    subprocess.run(
        [sys.executable, "-m", "scripts.campaign.archive", "rerun", "fake", "local", "2"],
        cwd=wf,
        check=True,
        capture_output=True,
    )
    proc = snakemake(wf, TARGET, "--cores", "1", "--configfile", overlay)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert executions(wf) == {**ran, 2: ran[2] + 1}
    (kept,) = (wf / "results/archive/fake/local").glob("run_02.replaced-*")
    assert (kept / "mlperf.log").read_bytes() == full[: len(full) // 2]


@pytest.mark.workflow
def test_a_half_written_result_is_named_and_re_parsed_without_training(
    workflow_copy: Path,
) -> None:
    wf = workflow_copy
    overlay = str(fake_campaign(wf, runs=3, faults={"marker_dir": "markers"}))
    assert snakemake(wf, TARGET, "--cores", "1", "--configfile", overlay).returncode == 0
    ran = executions(wf)
    result = wf / "results/fake/local/run_03/result.json"
    intact = json.loads(result.read_text())
    text = result.read_text()
    result.write_text(text[: len(text) // 2])
    assert "run_03  corrupt     results/fake/local/run_03/result.json is not valid JSON" in (
        run_status(wf, overlay)
    )
    kept = {k: v for k, v in snapshot(wf).items() if "/run_03/" not in k and "/run_" in k}
    proc = snakemake(wf, TARGET, "--cores", "1", "--configfile", overlay)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "results/fake/local/run_03/result.json is not valid JSON" in proc.stderr
    assert "re-parsing it from its intact log (no training)" in proc.stderr
    assert executions(wf) == ran  # nothing was trained
    assert json.loads(result.read_text()) == intact
    assert not [j for j in jobs_run(proc.stderr) if j.startswith("train_run")]
    assert {k: v for k, v in snapshot(wf).items() if k in kept} == kept
    assert "run_03  done" in run_status(wf, overlay)
    # a half-written result of a run whose log is also cut: the workflow stops, naming the log
    result.write_text(text[: len(text) // 2])
    log = wf / "results/fake/local/run_03/mlperf.log"
    log.write_bytes(log.read_bytes()[:10])
    proc = snakemake(wf, TARGET, "--cores", "1", "--configfile", overlay)
    assert proc.returncode != 0 and "run_03: mlperf.log changed" in proc.stderr
    assert result.read_text() == text[: len(text) // 2]  # left for the user to see


@pytest.mark.workflow
def test_runs_from_before_sealing_keep_working(workflow_copy: Path) -> None:
    wf = workflow_copy
    overlay = str(fake_campaign(wf, runs=3, faults={"marker_dir": "markers"}))
    assert snakemake(wf, TARGET, "--cores", "1", "--configfile", overlay).returncode == 0
    for meta_path in (wf / "results/fake/local").glob("run_*/run.json"):  # as written today
        meta = json.loads(meta_path.read_text())
        del meta[seals.SEAL_KEY]
        meta_path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    before = snapshot(wf)
    proc = snakemake(wf, TARGET, "--cores", "1", "--configfile", overlay)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Nothing to be done" in proc.stderr
    assert "finished runs from before sealing are not checked" in proc.stderr
    assert "python -m scripts seal results/fake/local" in proc.stderr
    assert snapshot(wf) == before
    subprocess.run(
        [sys.executable, "-m", "scripts.run.seals", "seal", "results/fake/local"],
        cwd=wf,
        check=True,
        capture_output=True,
    )
    log = wf / "results/fake/local/run_01/mlperf.log"
    log.write_bytes(log.read_bytes()[:10])
    proc = snakemake(wf, TARGET, "--cores", "1", "--configfile", overlay)
    assert proc.returncode != 0 and "run_01: mlperf.log changed" in proc.stderr


def test_a_cache_entry_whose_stats_are_not_stats_is_dropped(tmp_path: Path) -> None:
    """A cache entry with a log or result stat that is not a list of ints is rebuilt from
    run.json, never a TypeError before any job."""
    d = finished_run(tmp_path)
    cache = seals.cache_path(tmp_path, "b", "s")
    assert check(tmp_path).tampered == {} and cache.exists()
    data = json.loads(cache.read_text())
    for bad in (5, "x", [1, "2"]):
        data["runs"]["01"]["log"] = bad
        cache.write_text(json.dumps(data))
        os.utime(d / "mlperf.log")  # touched: the check looks past size and mtime
        assert check(tmp_path) == seals.SystemCheck("b", "s")


@pytest.mark.parametrize("where", ["root", "inside", "elsewhere"])
def test_archive_moves_a_system_folder_from_wherever_it_is_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """``campaign archive .`` from inside the system's folder archived it into a new
    results/archive/ under itself (and raised); the campaign's root comes from the path."""
    d = finished_run(tmp_path, "01")
    system = d.parent
    cwd = {"root": tmp_path, "inside": system, "elsewhere": tmp_path.parent}[where]
    arg = {"root": "results/b/s", "inside": ".", "elsewhere": str(system)}[where]
    monkeypatch.chdir(cwd)
    assert campaign.main(["archive", arg]) == 0
    (archived,) = (tmp_path / "results/archive/b").glob("s.*")
    assert (archived / "run_01" / "mlperf.log").is_file() and not system.exists()
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["archive", "b"]


def test_archive_refuses_a_folder_that_is_not_a_systems_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    d = finished_run(tmp_path, "01")
    monkeypatch.chdir(tmp_path)
    assert campaign.main(["archive", str(d)]) == 1  # a run folder, not a system's
    assert "is not a system's results folder" in capsys.readouterr().err
    assert d.is_dir()
