"""The load-time checks as data (scripts/campaign/preflight.py): which actions a campaign on disk
asks
for in each mode, and what each action does, without running snakemake."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest
import yaml

from scripts.campaign import action_plan, comparability, locks, topology
from scripts.campaign import archive as campaign
from scripts.campaign.actions import (
    RebuildImage,
    RecordTableSettings,
    RefetchSource,
    RefreshSealCache,
    Refuse,
    Remake,
    RemoveCorruptResult,
    RemoveStale,
    RestoreDatasetTree,
    TakeLock,
    Unlock,
    Warn,
    WriteResults,
    apply,
)
from scripts.campaign.invocation import Mode, Refused, is_dry_run
from scripts.campaign.stale import TABLES, RunFiles, runs_on_disk, stale_derived_files
from scripts.campaign.state import (
    BenchmarkFacts,
    DatasetFacts,
    ImageFacts,
    Incomparable,
    SourceFacts,
    State,
    gather,
)
from scripts.core import config as cfg
from scripts.data.download_policy import Policy
from scripts.data.verify import verify, write_verified_manifest
from scripts.run import seals
from tests.conftest import REPO
from tests.test_seals import LOG, QUALITY

ROOT = Path("/w")
REAL = ("snakemake", "--cores", "1")
DRY = ("snakemake", "-n")


def run_files(run: str = "01", *, log=True, meta=True, result=True, system="s") -> RunFiles:
    return RunFiles(system, run, ROOT / "results" / "b" / system / f"run_{run}", log, meta, result)


def bench(*runs: RunFiles, tables=TABLES, downloads=(), data=None, name="b") -> BenchmarkFacts:
    return BenchmarkFacts(name, runs, frozenset(tables), QUALITY, "run_stop", downloads, data)


def state(argv=REAL, *, job=False, **stages) -> State:
    return State(Mode.of(argv, job=job), ROOT, **stages)


def remake(folder: Path = Path("data/b/download"), script=None) -> Remake:
    return Remake(folder, script, {}, Policy())


def tree_facts(*, tree_is_dir=True, verified=True, finished=None) -> DatasetFacts:
    return DatasetFacts(Path("data/b/dataset"), [], remake(), tree_is_dir, verified, finished)


def kinds(actions) -> list[str]:
    return [type(a).__name__ for a in actions]


# --- the mode: who checks, who locks ---------------------------------------------------------


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
    assert is_dry_run(argv) is dry
    assert Mode.of(argv).dry_run is dry


def test_a_plain_invocation_takes_the_lock_and_a_dry_run_or_nolock_takes_none() -> None:
    assert action_plan.lock_actions(Mode.of(REAL), ROOT) == [TakeLock(ROOT, REAL)]
    assert action_plan.lock_actions(Mode.of(DRY), ROOT) == []
    assert action_plan.lock_actions(Mode.of((*REAL, "--nolock")), ROOT) == []
    # the checks themselves still run under --nolock and in a dry run
    assert Mode.of((*REAL, "--nolock")).checks and Mode.of(DRY).checks


def test_unlock_clears_the_record_and_runs_no_check_even_in_a_dry_run() -> None:
    tampered = (seals.SystemCheck("b", "s", tampered={"01": "mlperf.log changed"}),)
    for argv in (("snakemake", "--unlock"), ("snakemake", "--unlock", "-n")):
        assert action_plan.lock_actions(Mode.of(argv), ROOT) == [Unlock(ROOT)]
        assert action_plan.plan_actions(state(argv, seals=tampered)) == []


def test_a_jobs_own_snakemake_takes_no_lock_and_runs_no_check() -> None:
    # job: Snakemake's exec mode is remote (a cluster job) or subprocess (a job step): not the
    # snakemake the user started (today's main_invocation() is false)
    tampered = (seals.SystemCheck("b", "s", tampered={"01": "mlperf.log changed"}),)
    for argv in (REAL, ("snakemake", "--unlock")):
        mode = Mode.of(argv, job=True)
        assert not mode.checks
        assert action_plan.lock_actions(mode, ROOT) == []
        assert action_plan.plan_actions(state(argv, job=True, seals=tampered)) == []
        assert action_plan.success_actions(mode, ROOT, ()) == []
    runs = (topology.CampaignRuns("b", "s", ("01",)),)
    assert action_plan.success_actions(Mode.of(DRY), Path(), runs) == [
        RefreshSealCache(Path(), runs)
    ]


# --- the plan: seals and comparability ------------------------------------------------------


def test_a_tampered_run_stops_everything_with_the_seal_message() -> None:
    checks = (seals.SystemCheck("b", "s", tampered={"02": "mlperf.log changed since ..."}),)
    later = dict(
        incomparable=(Incomparable("b", "s", {"01": ["x: 1 -> 2"]}),),
        benchmarks=(bench(run_files("01", result=False)),),
    )
    for argv in (REAL, DRY):
        actions = action_plan.plan_actions(state(argv, seals=checks, **later))
        assert actions == [Refuse(seals.tampered_message(checks))]
        assert actions[0].message.startswith("finished runs were changed after they finished")


def test_unsealed_runs_are_named_and_a_corrupt_result_goes_and_is_parsed_again() -> None:
    checks = (
        seals.SystemCheck(
            "b", "s", corrupt_results={"02": "results/b/s/run_02/result.json is not valid JSON"}
        ),
        seals.SystemCheck("b", "t", unsealed=["01"]),
    )
    runs = bench(run_files("01"), run_files("02"))  # run 02's result exists (corrupt)
    real = action_plan.plan_actions(state(seals=checks, benchmarks=(runs,)))
    assert real[:2] == [
        Warn(seals.unsealed_message(checks)),
        RemoveCorruptResult(
            ROOT / "results/b/s/run_02/result.json",
            "results/b/s/run_02/result.json is not valid JSON",
        ),
    ]
    # a real run has removed it when it looks for runs to parse; the tables go with the parse
    assert real[2:] == [
        WriteResults(
            (Path("results/b/s/run_02"),),
            QUALITY,
            "run_stop",
            tuple(ROOT / "results/b" / t for t in TABLES),
        )
    ]
    # a dry run removes nothing, so nothing is left to parse
    dry = action_plan.plan_actions(state(DRY, seals=checks, benchmarks=(runs,)))
    assert kinds(dry) == ["Warn", "RemoveCorruptResult"]


def test_incomparable_runs_stop_with_every_system_named_in_dry_runs_too() -> None:
    bad = (
        Incomparable("b", "s", {"01": ["quality.target: 0.9 -> 0.8"]}),
        Incomparable("b", "t", {"02": ["the environment (environment.json digest) changed"]}),
    )
    expected = Refuse(
        "finished runs would no longer be comparable; nothing was run:\n  "
        + comparability.incomparable_message("b", "s", {"01": ["quality.target: 0.9 -> 0.8"]})
        + "\n  "
        + comparability.incomparable_message(
            "b", "t", {"02": ["the environment (environment.json digest) changed"]}
        )
    )
    later = dict(benchmarks=(bench(run_files("01", result=False)),))
    for argv in (REAL, DRY):
        assert action_plan.plan_actions(state(argv, incomparable=bad, **later)) == [expected]


def test_a_stage_that_could_not_be_read_stops_there() -> None:
    # e.g. a run.json of a newer workflow (NewerFormat) or a config error, caught by gather
    newer = Refuse("results/b/s/run_01/run.json has format_version 2, but ...")
    assert action_plan.plan_actions(state(seals=newer)) == [newer]
    checks = (seals.SystemCheck("b", "s", unsealed=["01"]),)
    assert kinds(action_plan.plan_actions(state(seals=checks, incomparable=newer))) == [
        "Warn",
        "Refuse",
    ]


# --- the plan: images -------------------------------------------------------------------------


def test_a_source_at_another_commit_is_fetched_again_and_a_stale_image_rebuilt() -> None:
    src = ROOT / "build/b/source"
    stamp = ROOT / "results/b/s/image.json"
    st = state(
        sources=(SourceFacts("b", src, "abc", "def"), SourceFacts("c", src, "same", "same")),
        images=(
            ImageFacts("b", "s", stamp, "its image sha256:1 is no longer in the Docker engine", ()),
            ImageFacts("b", "t", ROOT / "results/b/t/image.json", None, ()),
        ),
    )
    assert action_plan.plan_actions(st) == [
        RefetchSource(src, "build/b/source", "abc", "def"),
        RebuildImage(
            stamp,
            "results/b/s/image.json",
            "b",
            "s",
            "its image sha256:1 is no longer in the Docker engine",
        ),
    ]


def test_a_stale_image_that_finished_runs_used_stops_with_what_to_do() -> None:
    stamp = ROOT / "results/b/s/image.json"
    why = "what the image is built from changed: dockerfile: 1 -> 2"
    st = state(
        images=(
            ImageFacts("b", "r", ROOT / "results/b/r/image.json", "it cannot be read", ()),
            ImageFacts("b", "s", stamp, why, ("01", "02")),
        ),
        benchmarks=(bench(run_files("03", result=False)),),
    )
    actions = action_plan.plan_actions(st)
    assert kinds(actions) == ["RebuildImage", "Refuse"]
    assert actions[1] == Refuse(
        f"results/b/s/image.json: {why}.\n  Runs 01, 02 of b/s ran in that image, and a "
        "rebuilt image would not be the same; nothing was run. Restore the image (e.g. docker "
        "load), or move the old runs aside (kept) and start anew:\n"
        "    python -m scripts archive results/b/s"
    )
    config_error = Refuse("benchmarks.b.implementation.container: ...")
    st = state(images=(ImageFacts("b", "r", stamp, "x", ()), config_error))
    assert kinds(action_plan.plan_actions(st)) == ["RebuildImage", "Refuse"]


# --- the plan: runs to parse, stale files, dataset trees ------------------------------------


def test_an_unparsed_run_is_parsed_and_only_a_dry_run_calls_the_tables_stale() -> None:
    b = bench(run_files("01"), run_files("02", result=False))
    real = action_plan.plan_actions(state(benchmarks=(b,)))
    assert real == [
        WriteResults(
            (Path("results/b/s/run_02"),),
            QUALITY,
            "run_stop",
            tuple(ROOT / "results/b" / t for t in TABLES),
        )
    ]
    dry = action_plan.plan_actions(state(DRY, benchmarks=(b,)))
    reason = "run(s) s/run_02 of b have no result yet"
    assert dry == [
        real[0],
        RemoveStale(
            (
                (ROOT / "results/b/runs.csv", reason),
                (ROOT / "results/b/summary.csv", reason),
            ),
            ROOT,
        ),
    ]


def test_a_deleted_log_makes_its_result_and_the_tables_stale_after_the_downloads() -> None:
    download = (ROOT / "data/b/download/f.tar", "the configured sha256 changed")
    b = bench(run_files("01"), run_files("02", log=False), downloads=(download,))
    reason = "run(s) s/run_02 of b have no result yet"
    assert action_plan.plan_actions(state(benchmarks=(b,))) == [
        RemoveStale(
            (
                download,
                (ROOT / "results/b/s/run_02/result.json", "its mlperf.log is gone"),
                (ROOT / "results/b/runs.csv", reason),
                (ROOT / "results/b/summary.csv", reason),
            ),
            ROOT,
        )
    ]
    newer = Refuse("data/b/manifest.json has format_version 2, but ...")
    assert action_plan.plan_actions(state(benchmarks=(bench(downloads=newer),))) == [newer]


def test_a_complete_campaign_asks_for_nothing_but_the_tree_check() -> None:
    b = bench(run_files("01"), run_files("02"), data=tree_facts())
    assert action_plan.plan_actions(state(benchmarks=(b,))) == [
        RestoreDatasetTree(Path("data/b/dataset"), [], remake(), runs_used_it=False)
    ]
    assert action_plan.plan_actions(state(benchmarks=(bench(run_files("01")),))) == []


def test_a_tree_is_restored_for_finished_runs_when_it_or_a_stale_download_removed_it() -> None:
    gone = bench(data=tree_facts(tree_is_dir=False, finished=True))
    assert action_plan.plan_actions(state(benchmarks=(gone,)))[-1].runs_used_it
    unused = bench(data=tree_facts(tree_is_dir=False, finished=False))
    assert not action_plan.plan_actions(state(benchmarks=(unused,)))[-1].runs_used_it
    # a changed checksum removes the tree and its verification first (a real run only)
    stale = (
        (ROOT / "data/b/manifest.json", "the configured checksum of f sha256 changed"),
        (ROOT / "data/b/dataset", "the configured checksum of f sha256 changed"),
    )
    b = bench(downloads=stale, data=tree_facts(finished=True))
    real = action_plan.plan_actions(state(benchmarks=(b,)))
    assert kinds(real) == ["RemoveStale", "RestoreDatasetTree"] and real[-1].runs_used_it
    dry = action_plan.plan_actions(state(DRY, benchmarks=(b,)))
    assert kinds(dry) == ["RemoveStale", "RestoreDatasetTree"] and not dry[-1].runs_used_it


# --- the stale-file functions (moved from scripts/campaign/archive.py)
# ------------------------------


def make_runs(root: Path, runs: list[str], files=("mlperf.log", "run.json", "result.json")) -> None:
    for run in runs:
        d = campaign.run_dir(root, "b", "s", run)
        d.mkdir(parents=True)
        for f in files:
            (d / f).write_text("x")
    for name in ("runs.csv", "summary.csv"):
        (root / "results" / "b" / name).write_text("x")


def stale_on_disk(root: Path, runs: list[str]) -> list[tuple[Path, str]]:
    on_disk = runs_on_disk(root, "b", {"s": runs})
    tables = [t for t in TABLES if (root / "results" / "b" / t).exists()]
    return stale_derived_files(root, "b", on_disk, tables)


def test_a_complete_campaign_has_nothing_stale(tmp_path: Path) -> None:
    make_runs(tmp_path, ["01", "02"])
    assert stale_on_disk(tmp_path, ["01", "02"]) == []


def test_a_deleted_log_makes_its_result_and_the_tables_stale(tmp_path: Path) -> None:
    make_runs(tmp_path, ["01", "02"])
    (campaign.run_dir(tmp_path, "b", "s", "02") / "mlperf.log").unlink()
    stale = dict(stale_on_disk(tmp_path, ["01", "02"]))
    base = tmp_path / "results" / "b"
    assert set(stale) == {base / "s/run_02/result.json", base / "runs.csv", base / "summary.csv"}
    assert "mlperf.log is gone" in stale[base / "s/run_02/result.json"]
    assert all(not str(p).endswith("mlperf.log") for p in stale)


def test_a_deleted_result_or_a_new_run_makes_only_the_tables_stale(tmp_path: Path) -> None:
    make_runs(tmp_path, ["01", "02"])
    (campaign.run_dir(tmp_path, "b", "s", "01") / "result.json").unlink()
    stale = [p.name for p, _ in stale_on_disk(tmp_path, ["01", "02"])]
    assert stale == ["runs.csv", "summary.csv"]
    make_runs(tmp_path / "other", ["01"])
    grown = stale_on_disk(tmp_path / "other", ["01", "02"])
    assert [p.name for p, _ in grown] == ["runs.csv", "summary.csv"]


# --- apply, on a real tree --------------------------------------------------------------------


def said_by(actions, dry_run: bool) -> list[str]:
    said: list[str] = []
    apply(actions, dry_run, said.append)
    return said


def test_refuse_stops_and_nothing_after_it_is_done(tmp_path: Path) -> None:
    f = tmp_path / "results/b/runs.csv"
    f.parent.mkdir(parents=True)
    f.write_text("x")
    for dry in (False, True):
        said: list[str] = []
        with pytest.raises(Refused, match="^nothing was run$"):
            apply(
                [Warn("first"), Refuse("nothing was run"), RemoveStale(((f, "why"),), tmp_path)],
                dry,
                said.append,
            )
        assert said == ["first"] and f.exists()


def test_a_corrupt_result_goes_only_in_a_real_run(tmp_path: Path) -> None:
    result = tmp_path / "result.json"
    result.write_text("{")
    action = RemoveCorruptResult(result, "result.json is not valid JSON")
    assert said_by([action], True) == [
        "result.json is not valid JSON: a real run re-parses it from its intact log (no training)"
    ]
    assert result.exists()
    assert said_by([action], False) == [
        "result.json is not valid JSON: re-parsing it from its intact log (no training)"
    ]
    assert not result.exists()


def test_a_source_and_an_image_stamp_go_only_in_a_real_run(tmp_path: Path) -> None:
    src = tmp_path / "build/b/source"
    src.mkdir(parents=True)
    (src / "train.py").write_text("x")
    stamp = tmp_path / "results/b/s/image.json"
    stamp.parent.mkdir(parents=True)
    stamp.write_text("{}")
    actions = [
        RefetchSource(src, "build/b/source", "abc", "def"),
        RebuildImage(stamp, "results/b/s/image.json", "b", "s", "it cannot be read"),
    ]
    fetched = "build/b/source is at abc, not at the configured commit def: it is fetched again"
    assert said_by(actions, True) == [
        fetched,
        "results/b/s/image.json is out of date (it cannot be read); a real run rebuilds it",
    ]
    assert src.is_dir() and stamp.exists()
    assert said_by(actions, False) == [
        fetched,
        "Rebuilding the image of b/s: it cannot be read",
    ]
    assert not src.exists() and not stamp.exists()


def test_an_unparsed_run_is_parsed_as_its_job_would_and_the_tables_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the run folders are relative, as the jobs write them
    d = Path("results/b/s/run_01")
    d.mkdir(parents=True)
    (d / "mlperf.log").write_text(LOG)
    meta = {"benchmark": "b", "system": "s", "run": 1, "seed": 7}
    meta[seals.SEAL_KEY] = seals.seal(d / "mlperf.log")
    (d / "run.json").write_text(json.dumps(meta))
    tables = tuple(Path("results/b", t) for t in TABLES)
    for t in tables[:2]:
        t.write_text("x")
    action = WriteResults((d,), QUALITY, "run_stop", tables)
    assert said_by([action], True) == [
        "A real run re-parses these runs' logs (no training): results/b/s/run_01"
    ]
    assert not (d / "result.json").exists() and tables[0].exists()
    assert said_by([action], False) == [
        "Re-parsing the logs of runs without result.json: results/b/s/run_01"
    ]
    result = json.loads((d / "result.json").read_text())
    assert result["log"] == "results/b/s/run_01/mlperf.log" and result["converged"]
    assert result[seals.RESULT_KEY] == meta[seals.SEAL_KEY]["sha256"]
    assert not any(t.exists() for t in tables)


def test_stale_files_go_and_an_outdated_download_is_kept_aside(tmp_path: Path) -> None:
    data = tmp_path / "data/b"
    (data / "download").mkdir(parents=True)
    (data / "download/f.tar").write_text("old")
    (data / "dataset").mkdir()
    (data / "dataset/x").write_text("x")
    table = tmp_path / "results/b/runs.csv"
    table.parent.mkdir(parents=True)
    table.write_text("x")
    stale = (
        (data / "download/f.tar", "the configured sha256 changed"),
        (data / "dataset", "built from f.tar, which is outdated"),
        (table, "run(s) s/run_02 of b have no result yet"),
    )
    listing = (
        "  data/b/download/f.tar: the configured sha256 changed\n"
        "  data/b/dataset: built from f.tar, which is outdated\n"
        "  results/b/runs.csv: run(s) s/run_02 of b have no result yet"
    )
    action = RemoveStale(stale, tmp_path)
    assert said_by([action], True) == [
        "These derived files are out of date and a real run will rebuild them:\n" + listing
    ]
    assert all(p.exists() for p, _ in stale)
    assert said_by([action], False) == [
        "Removing derived files that no longer match the runs on disk (they are rebuilt):\n"
        + listing
    ]
    assert not any(p.exists() for p, _ in stale)
    assert (data / "download/f.tar.outdated").read_text() == "old"


def verified_dataset(tmp_path: Path) -> tuple[Path, list[dict[str, str]], Path]:
    """data/b/download/f.txt verified (manifest.json), its tree not unpacked."""
    folder = tmp_path / "data/b/download"
    folder.mkdir(parents=True)
    (folder / "f.txt").write_text("data\n")
    files = [{"name": "f.txt", "sha256": hashlib.sha256(b"data\n").hexdigest()}]
    tree = tmp_path / "data/b/dataset"
    write_verified_manifest(tree.with_name("manifest.json"), verify(files, folder))
    return tree, files, folder


def test_a_tree_that_finished_runs_used_is_unpacked_again(tmp_path: Path) -> None:
    tree, files, folder = verified_dataset(tmp_path)
    action = RestoreDatasetTree(tree, files, remake(folder), runs_used_it=True)
    assert said_by([action], True) == [
        f"{tree} is missing; a real run unpacks {tree} again before any job"
    ]
    assert not tree.exists()
    assert said_by([action], False) == [
        f"{tree} is missing; unpacked {tree} again from the verified files"
    ]
    assert (tree / "f.txt").read_text() == "data\n"
    assert said_by([action], False) == []  # as unpacked: nothing to say


def test_a_tree_that_cannot_be_unpacked_again_stops_with_its_name(tmp_path: Path) -> None:
    tree, files, folder = verified_dataset(tmp_path)
    (folder / "f.txt").unlink()  # made again by its script, whose folder is gone
    script = ("bash make.sh {output_dir}", tmp_path / "no-such-folder")
    action = RestoreDatasetTree(tree, files, remake(folder, script), runs_used_it=True)
    with pytest.raises(Refused) as info:
        said_by([action], False)
    assert str(info.value).startswith(f"{tree} cannot be unpacked again: dataset.script.cwd ")


def test_the_lock_is_taken_and_one_held_elsewhere_refuses(tmp_path: Path) -> None:
    assert said_by([TakeLock(tmp_path, REAL)], True) == []  # a dry run takes nothing
    assert not (tmp_path / locks.RECORD).exists()
    assert said_by([TakeLock(tmp_path, REAL)], False) == []
    assert json.loads((tmp_path / locks.RECORD).read_text())["command"] == "snakemake --cores 1"
    assert locks.release(tmp_path)
    other = {"host": "elsewhere", "pid": 42, "taken_utc": "2026-01-02T03:04:05+00:00"}
    (tmp_path / locks.RECORD).write_text(json.dumps(other))
    with pytest.raises(Refused) as info:
        said_by([TakeLock(tmp_path, REAL)], False)
    assert str(info.value) == (
        "locked by snakemake pid 42 on elsewhere since 2026-01-02 03:04:05 UTC; if it is no "
        "longer running: snakemake --unlock"
    )
    said_by([Unlock(tmp_path)], True)  # --unlock clears it, also with -n
    assert not (tmp_path / locks.RECORD).exists()


def test_the_seal_cache_is_refreshed_after_success(tmp_path: Path) -> None:
    d = tmp_path / "results/b/s/run_01"
    d.mkdir(parents=True)
    (d / "mlperf.log").write_text(LOG)
    meta = {"benchmark": "b", "system": "s", "run": 1, seals.SEAL_KEY: seals.seal(d / "mlperf.log")}
    (d / "run.json").write_text(json.dumps(meta))
    runs = (topology.CampaignRuns("b", "s", ("01",)),)
    assert said_by([RefreshSealCache(tmp_path, runs)], True) == []
    cache = json.loads(seals.cache_path(tmp_path, "b", "s").read_text())
    assert list(cache["runs"]) == ["01"]


# --- gather: from a config and a campaign on disk -----------------------------------------------


def default_config() -> dict:
    sources = [(f, yaml.safe_load((REPO / f).read_text())) for f in cfg.DEFAULT_CONFIGFILES]
    config: dict = {}
    for _, data in sources:
        cfg.merge(config, data)
    return cfg.load_and_validate(config, sources)


def gnmt_run(config: dict, root: Path, run: str, *, result: bool = True) -> Path:
    """A finished, sealed run of gnmt on local, made under ``config``."""
    d = root / "results/gnmt/local" / f"run_{run}"
    d.mkdir(parents=True)
    (d / "mlperf.log").write_text(LOG)
    record = comparability.comparability(config, "gnmt", "local")
    meta = {"benchmark": "gnmt", "system": "local", "run": int(run), "comparability": record}
    meta[seals.SEAL_KEY] = seals.seal(d / "mlperf.log")
    (d / "run.json").write_text(json.dumps(meta))
    if result:
        (d / "result.json").write_text("{}")
    return d


def test_gather_reads_the_campaign_and_plans_the_parse_of_a_run_without_result(
    tmp_path: Path,
) -> None:
    config = default_config()
    gnmt_run(config, tmp_path, "01")
    gnmt_run(config, tmp_path, "02", result=False)
    (tmp_path / "results/gnmt/summary.csv").write_text("x")
    st = gather(config, tmp_path, REAL, workflow_dir=REPO)
    assert st.mode == Mode.of(REAL)
    gnmt = next(b for b in st.benchmarks if b.name == "gnmt")
    assert [(r.run, r.result) for r in gnmt.runs[:3]] == [
        ("01", True),
        ("02", False),
        ("03", False),
    ]
    assert gnmt.tables == {"summary.csv"}
    assert gnmt.dataset is not None and not gnmt.dataset.tree_is_dir
    assert gnmt.dataset.finished_runs  # the tree is missing: runs were looked for
    skip = (RestoreDatasetTree, RecordTableSettings)  # no record yet: one each
    actions = [a for a in action_plan.plan_actions(st) if not isinstance(a, skip)]
    assert kinds(actions) == ["WriteResults"]
    assert actions[0].run_dirs == (Path("results/gnmt/local/run_02"),)


def test_gather_reads_nothing_for_unlock_or_a_jobs_snakemake(tmp_path: Path) -> None:
    config = default_config()
    gnmt_run(config, tmp_path, "01", result=False)
    (tmp_path / "results/gnmt/local/run_01/mlperf.log").write_text("changed")  # tampered
    for argv, job in ((("snakemake", "--unlock"), False), (REAL, True)):
        st = gather(config, tmp_path, argv, job=job, workflow_dir=REPO)
        assert st == State(Mode.of(argv, job=job), tmp_path)
    assert not (tmp_path / ".snakemake").exists()  # not even the seal cache


# ---------------------------------------------------------------------------------------------
# the tables' settings (comparability.table_settings): the profile never redoes a rule for its
# params

SETTINGS = {"statistics": {"bootstrap_resamples": 10000}, "reference_system": "a"}
DERIVED = (ROOT / "results/b/summary.csv", ROOT / "results/b/plots/runs.png")


def with_settings(recorded, current=SETTINGS) -> BenchmarkFacts:
    return dataclasses.replace(
        bench(run_files()), settings=current, recorded_settings=recorded, settings_files=DERIVED
    )


def test_changed_table_settings_remove_the_tables_and_plots_and_are_recorded() -> None:
    new = {**SETTINGS, "statistics": {"bootstrap_resamples": 2000}}
    actions = action_plan.plan_actions(state(benchmarks=(with_settings(SETTINGS, new),)))
    assert kinds(actions) == ["RemoveStale", "RecordTableSettings"]
    why = "made with other settings: statistics.bootstrap_resamples: 10000 -> 2000"
    assert actions[0].stale == tuple((f, why) for f in DERIVED)
    assert actions[1].settings == new
    assert actions[1].path == ROOT / ".snakemake/table-settings/b.json"


def test_table_settings_without_a_record_are_recorded_and_nothing_is_removed() -> None:
    # a campaign of a workflow before the check: its tables stay, as the upgrade tests want
    actions = action_plan.plan_actions(state(benchmarks=(with_settings(None),)))
    assert kinds(actions) == ["RecordTableSettings"]


def test_unchanged_table_settings_do_nothing_and_a_dry_run_records_nothing(tmp_path) -> None:
    assert action_plan.plan_actions(state(benchmarks=(with_settings(SETTINGS),))) == []
    record = RecordTableSettings(tmp_path / "b.json", SETTINGS)
    record.apply(True, print)
    assert not record.path.exists()
    record.apply(False, print)
    assert json.loads(record.path.read_text()) == SETTINGS
