"""The unpacked dataset tree (what the trainer reads): its manifest, the check before each run,
the repair before the plan is built, and the tree's digest in every run's fingerprint."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pandas as pd
import pytest

from scripts.campaign import archive as campaign
from scripts.campaign import finished_runs
from scripts.core.hashing import canonical_sha256 as fingerprint
from scripts.data import cli
from scripts.data.restore import restore_tree
from scripts.data.tree import (
    TREE_FORMAT_VERSION,
    make_read_only,
    tree_digest_of,
    tree_manifest_path,
    tree_problem,
    write_tree_manifest,
)
from scripts.data.unpack import prepare
from scripts.data.verify import verify
from scripts.run import spec as spec_module
from scripts.run.failure import RunFailed
from scripts.run.runner import execute
from scripts.run.spec import RunSpec
from tests.conftest import REPO, fake_campaign, jobs_run, set_faults, snakemake, snapshot


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_sources(folder: Path) -> list[dict[str, object]]:
    """A download folder with an archive (two members) and a plain file, as verified files."""
    folder.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in (("corpus/train.en", b"hello\n" * 100), ("corpus/dev.en", b"dev\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
    (folder / "corpus.tar.gz").write_bytes(buf.getvalue())
    (folder / "vocab.txt").write_bytes(b"a\nb\n")
    return [
        {"name": "corpus.tar.gz", "sha256": sha(buf.getvalue()), "unpack": True},
        {"name": "vocab.txt", "sha256": sha(b"a\nb\n")},
    ]


@pytest.fixture
def unpacked(tmp_path: Path) -> tuple[Path, list[dict[str, object]]]:
    """data/b/{download,manifest.json,dataset,dataset.manifest.json}, as the rules make them."""
    root = tmp_path / "data" / "b"
    files = make_sources(root / "download")
    entries = verify(files, root / "download")
    (root / "manifest.json").write_text(json.dumps({"files": entries}))
    tree = root / "dataset"
    prepare(files, root / "download", tree, tree_manifest_path(tree))
    return tree, files


def no_remake(names: object) -> None:
    raise AssertionError(f"nothing should be made again, asked for {names}")


def test_unpacking_records_every_file_beside_the_tree_and_makes_the_files_read_only(
    unpacked: tuple[Path, list[dict[str, object]]],
) -> None:
    tree, files = unpacked
    manifest_path = tree.parent / "dataset.manifest.json"
    assert tree_manifest_path(tree) == manifest_path  # beside the tree, not in it
    manifest = json.loads(manifest_path.read_text())
    assert manifest["format_version"] == TREE_FORMAT_VERSION
    got = {e["path"]: (e["size"], e["sha256"]) for e in manifest["files"]}
    assert got == {
        rel: ((tree / rel).stat().st_size, sha((tree / rel).read_bytes()))
        for rel in ("corpus/train.en", "corpus/dev.en", "vocab.txt")
    }
    assert all(e["mtime_ns"] == (tree / e["path"]).stat().st_mtime_ns for e in manifest["files"])
    vocab = next(e for e in manifest["files"] if e["path"] == "vocab.txt")
    assert vocab["source"] == "download/vocab.txt"  # a hard link of the download
    for path in tree.rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        if path.is_file():
            assert mode & 0o222 == 0, path
        else:
            assert mode & 0o200, path  # folders stay writable: rm -rf and unpacking again work
    assert tree_problem(tree) is None
    # unpacked again over its read-only files: the same digest (mtimes are not in it)
    digest = manifest["digest"]
    prepare(files, tree.parent / "download", tree, manifest_path)
    assert tree_digest_of(manifest_path) == digest
    assert not (tree.parent / "dataset.tmp").exists()


def edit_append(path: Path) -> None:
    path.chmod(0o644)
    with path.open("a") as fh:
        fh.write("more\n")


def edit_same_size(path: Path) -> None:
    data = path.read_bytes()
    path.unlink()  # a new file (sed -i does this): the download it was linked to is untouched
    path.write_bytes(data[::-1])


@pytest.mark.parametrize(
    ("change", "rel", "said"),
    [
        (edit_append, "corpus/train.en", "size 605 bytes differs from the dataset manifest's 600"),
        (edit_same_size, "corpus/train.en", "sha256 differs from the dataset manifest"),
        (lambda p: p.unlink(), "corpus/dev.en", "removed after unpacking"),
        (lambda p: p.write_text("x"), "corpus/extra.txt", "not in the dataset manifest"),
        (
            lambda p: (p.unlink(), p.symlink_to("dev.en")),
            "corpus/train.en",
            "no longer a regular file",
        ),
    ],
    ids=["appended", "same-size-new-bytes", "removed", "added", "replaced-by-a-link"],
)
def test_an_edited_added_or_removed_file_is_named_with_what_to_do(
    unpacked: tuple[Path, list[dict[str, object]]], change, rel: str, said: str
) -> None:
    tree, _ = unpacked
    change(tree / rel)
    problem = tree_problem(tree)
    assert problem is not None
    assert problem.startswith(f"{tree / rel}: {said}")
    assert "run the same snakemake command again" in problem


def test_a_touched_file_is_hashed_and_passes_an_edit_that_keeps_size_and_mtime_needs_full(
    unpacked: tuple[Path, list[dict[str, object]]],
) -> None:
    tree, _ = unpacked
    path = tree / "corpus" / "train.en"
    os.utime(path, ns=(1, 1))  # touched: same bytes, so the hash clears it
    assert tree_problem(tree) is None
    # the same size, and the mtime the manifest recorded: the cheap check cannot see it
    manifest = json.loads(tree_manifest_path(tree).read_text())
    (recorded,) = (e["mtime_ns"] for e in manifest["files"] if e["path"] == "corpus/train.en")
    edit_same_size(path)
    os.utime(path, ns=(recorded, recorded))
    assert tree_problem(tree) is None
    full = tree_problem(tree, full=True)
    assert full is not None and f"{path}: sha256 differs" in full
    assert cli.main(["check-tree", str(tree)]) == 0
    assert cli.main(["check-tree", "--full", str(tree)]) == 1


def test_a_missing_edited_or_newer_manifest_is_named(
    unpacked: tuple[Path, list[dict[str, object]]],
) -> None:
    tree, _ = unpacked
    manifest = tree_manifest_path(tree)
    data = json.loads(manifest.read_text())
    data["files"][0]["size"] += 1
    manifest.write_text(json.dumps(data))
    assert f"{manifest} was edited" in (tree_problem(tree) or "")
    manifest.write_text(json.dumps({**data, "format_version": 99}))
    assert "format_version 99" in (tree_problem(tree) or "")
    manifest.unlink()
    assert f"{manifest} is missing, so {tree} cannot be checked" in (tree_problem(tree) or "")
    assert tree_digest_of(manifest) is None


def test_restore_unpacks_a_changed_tree_again_and_keeps_the_changed_one(
    unpacked: tuple[Path, list[dict[str, object]]],
) -> None:
    tree, files = unpacked
    digest = tree_digest_of(tree_manifest_path(tree))
    (tree / "corpus" / "extra.txt").write_text("x")
    download = tree.parent / "download"
    dry = restore_tree(tree, files, download, no_remake, dry_run=True)
    assert dry is not None and "a real run unpacks" in dry
    assert (tree / "corpus" / "extra.txt").exists()  # a dry run changes nothing
    done = restore_tree(tree, files, download, no_remake)
    assert done is not None and f"{tree}/corpus/extra.txt: not in the dataset manifest" in done
    (kept,) = tree.parent.glob("dataset.edited-*")
    assert (kept / "corpus" / "extra.txt").read_text() == "x" and f"kept as {kept}" in done
    assert tree_problem(tree) is None
    assert tree_digest_of(tree_manifest_path(tree)) == digest
    assert restore_tree(tree, files, download, no_remake) is None  # nothing to do now


def test_restore_makes_again_a_download_edited_in_place_through_its_hard_link(
    unpacked: tuple[Path, list[dict[str, object]]],
) -> None:
    tree, files = unpacked
    download = tree.parent / "download"
    assert os.path.samefile(tree / "vocab.txt", download / "vocab.txt")
    edit_append(tree / "vocab.txt")  # in place: the download has the same bytes now
    asked: list[list[str]] = []

    def remake(names):
        asked.append(list(names))
        (download / "vocab.txt").write_bytes(b"a\nb\n")  # fetched again

    done = restore_tree(tree, files, download, remake)
    assert asked == [["vocab.txt"]]
    assert done is not None and f"{download / 'vocab.txt'} is the same file (a hard link)" in done
    assert (tree / "vocab.txt").read_bytes() == b"a\nb\n"
    assert tree_problem(tree) is None


def test_restore_unpacks_a_missing_tree_or_one_made_before_trees_had_manifests(
    unpacked: tuple[Path, list[dict[str, object]]],
) -> None:
    tree, files = unpacked
    download = tree.parent / "download"
    tree_manifest_path(tree).unlink()  # as unpacked by the workflow before this change
    done = restore_tree(tree, files, download, no_remake)
    assert done is not None and f"{tree} has no manifest" in done
    assert tree_problem(tree) is None
    assert not list(tree.parent.glob("dataset.edited-*"))  # nothing was seen changed: no copy
    shutil.rmtree(tree)  # removed by hand after it was unpacked: its manifest is left
    done = restore_tree(tree, files, download, no_remake)
    assert done is not None and f"{tree} is missing" in done
    assert tree_problem(tree) is None
    shutil.rmtree(tree)
    tree_manifest_path(tree).unlink()  # never unpacked: the workflow's jobs make it
    assert restore_tree(tree, files, download, no_remake) is None
    # ... unless finished runs used it: Snakemake would train them all again
    done = restore_tree(tree, files, download, no_remake, runs_used_it=True)
    assert done is not None and f"{tree} is missing" in done
    shutil.rmtree(tree)
    prepare(files, download, tree, tree_manifest_path(tree))
    (tree.parent / "manifest.json").unlink()  # never verified: the workflow's jobs make it
    shutil.rmtree(tree)
    assert restore_tree(tree, files, download, no_remake) is None


def runner_paths(tmp_path: Path) -> dict[str, Path]:
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"files": []}))
    environment = tmp_path / "environment.json"
    environment.write_text(json.dumps({"digest": "envdigest"}))
    tree = tmp_path / "dataset"
    tree.mkdir()
    (tree / "train.en").write_text("hello\n")
    make_read_only(tree)
    write_tree_manifest(tree)
    return {
        "log_path": tmp_path / "results" / "run_01" / "mlperf.log",
        "meta_path": tmp_path / "results" / "run_01" / "run.json",
        "failed_dir": tmp_path / "logs" / "failed" / "b" / "s",
        "dataset_manifest": manifest,
        "environment": environment,
    }


def trainer(tmp_path: Path) -> RunSpec:
    """A trainer that leaves a marker when it starts, then logs a finished run."""
    script = tmp_path / "emit.py"
    script.write_text(
        "import pathlib, sys\n"
        f"pathlib.Path({str(tmp_path / 'started')!r}).touch()\n"
        'ev = \':::MLLOG {"namespace": "", "time_ms": %d, "event_type": "%s", '
        '"key": "%s", "value": null, "metadata": {%s}}\'\n'
        "print(ev % (1000, 'INTERVAL_START', 'run_start', ''))\n"
        "print(ev % (1500, 'INTERVAL_END', 'run_stop', '\"status\": \"success\"'))\n"
    )
    return RunSpec(
        benchmark="b",
        system="s",
        run=1,
        seed=7,
        command=f"{sys.executable} {script}",
        env={},
        timeout_s=30,
        threads=1,
        scale="test",
        config_fingerprint="cfp",
        comparability={"a": 1},
        retries=2,
    )


def test_the_runner_refuses_an_edited_tree_before_the_trainer_starts(tmp_path: Path) -> None:
    paths = runner_paths(tmp_path)
    spec = trainer(tmp_path)
    meta = execute(spec, **paths)
    tree = tmp_path / "dataset"
    assert meta.dataset_tree_sha256 == tree_digest_of(tree.parent / "dataset.manifest.json")
    keys = meta.fingerprint_keys or []
    assert "dataset_tree_sha256" in keys
    assert meta.fingerprint == fingerprint({k: meta.to_json()[k] for k in keys})
    (tmp_path / "started").unlink()
    edit_same_size(tree / "train.en")
    with pytest.raises(RunFailed, match=r"dataset/train.en: sha256 differs from the dataset"):
        execute(spec, **paths)
    assert not (tmp_path / "started").exists()  # no attempt, and no retry either


def test_a_run_without_the_tree_digest_is_not_recorded_not_incomparable(tmp_path: Path) -> None:
    record = {"benchmark": "b"}
    current = {
        "comparability": record,
        "config_fingerprint": fingerprint(record),
        "dataset_tree_sha256": "new",
    }
    for run, tree in (("01", None), ("02", "new"), ("03", "old")):
        run_dir = campaign.run_dir(tmp_path, "b", "s", run)
        run_dir.mkdir(parents=True)
        meta = {"comparability": record, **({"dataset_tree_sha256": tree} if tree else {})}
        (run_dir / "run.json").write_text(json.dumps(meta))
    bad = finished_runs.incomparable_runs(tmp_path, "b", "s", ["01", "02", "03"], current)
    assert bad == {"03": ["the unpacked dataset (dataset.manifest.json) changed"]}
    # and where the tree has no manifest now, nothing is compared
    assert not finished_runs.incomparable_runs(
        tmp_path, "b", "s", ["03"], {**current, "dataset_tree_sha256": None}
    )


def test_a_system_whose_runs_were_fingerprinted_without_the_tree_goes_on_without_it(
    tmp_path: Path,
) -> None:
    system = tmp_path / "results" / "b" / "s"
    this = system / "run_03"
    assert spec_module.later_fingerprint_keys(system, this) == ["dataset_tree_sha256"]
    (system / "run_01").mkdir(parents=True)
    keys = ["config_fingerprint", "dataset_tree_sha256"]
    (system / "run_01" / "run.json").write_text(json.dumps({"fingerprint_keys": keys}))
    assert spec_module.later_fingerprint_keys(system, this) == ["dataset_tree_sha256"]
    (system / "run_01" / "run.json").write_text(json.dumps({"fingerprint": "made before"}))
    assert spec_module.later_fingerprint_keys(system, this) == []
    assert spec_module.later_fingerprint_keys(system, system / "run_01") == ["dataset_tree_sha256"]


# ---------------------------------------------------------------------------------------------
# Through the workflow, with the fake campaign (its dataset: tiny.txt, hard-linked into the tree).

TARGET = "results/fake/summary.csv"


@pytest.mark.workflow
def test_a_trainer_that_edits_its_dataset_stops_the_next_run_and_the_tree_is_unpacked_again(
    workflow_copy: Path,
) -> None:
    wf = workflow_copy
    overlay = str(fake_campaign(wf, runs=2, faults={"edit_dataset": [1, 2]}))
    first = snakemake(wf, TARGET, "--cores", "1", "--configfile", overlay)
    assert first.returncode != 0
    tree = wf / "data/fake/dataset"
    done = sorted(p.parent.name for p in wf.glob("results/fake/local/run_*/result.json"))
    log = "\n".join(
        p.read_text(errors="replace")
        for p in [*wf.glob("logs/train_run/fake/local/*.log"), *wf.glob("logs/failed/**/*.log")]
    )
    if os.geteuid() == 0:
        # root writes into read-only files: the first run edits the tree as it trains, and
        # the check before the second run stops it, naming the file
        assert len(done) == 1, first.stderr[-3000:]
        said = "data/fake/dataset/tiny.txt: size 32 bytes differs from the dataset manifest's 15"
        assert said in log  # 15 bytes + "written by run N\n"
    else:
        # the files are read-only: a trainer that writes into them crashes
        assert done == [] and "Permission denied" in log
    before = snapshot(wf)
    set_faults(wf, {})
    again = snakemake(wf, TARGET, "--cores", "1", "--configfile", overlay)
    assert again.returncode == 0, again.stderr[-3000:]
    if done:
        # the edit reached the download through the hard link: fetched again, then unpacked
        assert "data/fake/download/tiny.txt is the same file (a hard link)" in again.stderr
        assert "unpacked data/fake/dataset again from the verified files" in again.stderr
        (kept,) = wf.glob("data/fake/dataset.edited-*")
        assert "written by run" in (kept / "tiny.txt").read_text()
        finished = {k: v for k, v in before.items() if f"/{done[0]}/" in k}
        assert finished and {k: snapshot(wf)[k] for k in finished} == finished  # untouched
        trained = [j for j in jobs_run(again.stderr) if j.startswith("train_run")]
        assert len(trained) == 1 and done[0].split("_")[1] not in trained[0]
    assert (tree / "tiny.txt").read_text() == "a tiny dataset\n"
    digest = tree_digest_of(wf / "data/fake/dataset.manifest.json")
    for meta_path in wf.glob("results/fake/local/run_*/run.json"):
        meta = json.loads(meta_path.read_text())
        assert meta["dataset_tree_sha256"] == digest
        assert meta["fingerprint"] == fingerprint({k: meta[k] for k in meta["fingerprint_keys"]})
        assert "dataset_tree_sha256" in meta["fingerprint_keys"]
    assert pd.read_csv(wf / TARGET).loc[0, "n_runs"] == 2


def make_legacy(run_dir: Path) -> None:
    """A run as the workflow recorded it before the tree's digest: no dataset_tree_sha256,
    no fingerprint_keys, and the fingerprint of the three keys of then."""
    meta = json.loads((run_dir / "run.json").read_text())
    del meta["dataset_tree_sha256"], meta["fingerprint_keys"]
    old = ["config_fingerprint", "dataset_manifest_sha256", "environment_digest"]
    meta["fingerprint"] = fingerprint({k: meta[k] for k in old})
    (run_dir / "run.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    result = json.loads((run_dir / "result.json").read_text())
    result["fingerprint"] = meta["fingerprint"]
    (run_dir / "result.json").write_text(json.dumps(result, indent=2) + "\n")


@pytest.mark.workflow
def test_runs_made_before_the_tree_was_recorded_stay_comparable_with_new_ones(
    workflow_copy: Path,
) -> None:
    wf = workflow_copy
    overlay = str(fake_campaign(wf, runs=3))
    assert snakemake(wf, TARGET, "--cores", "1", "--configfile", overlay).returncode == 0
    # as a workspace of the old workflow: runs without the tree digest, a tree without manifest
    for run in ("01", "02"):
        make_legacy(wf / f"results/fake/local/run_{run}")
    (wf / "data/fake/dataset.manifest.json").unlink()
    for name in ("runs.csv", "summary.csv"):
        (wf / "results/fake" / name).unlink()
    legacy_fp = json.loads((wf / "results/fake/local/run_01/run.json").read_text())["fingerprint"]
    shutil.rmtree(wf / "results/fake/local/run_03")
    proc = snakemake(wf, TARGET, "--cores", "1", "--configfile", overlay)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "data/fake/dataset has no manifest" in proc.stderr  # unpacked again, and recorded
    assert "different configuration" not in proc.stderr
    new = json.loads((wf / "results/fake/local/run_03/run.json").read_text())
    assert new["dataset_tree_sha256"]  # recorded, but not in this system's fingerprint
    assert "dataset_tree_sha256" not in new["fingerprint_keys"]
    assert new["fingerprint"] == legacy_fp
    summary = pd.read_csv(wf / TARGET)
    assert summary.loc[0, "n_runs"] == 3 and bool(summary.loc[0, "valid"])


NON_ROOT = r"""
import json, shutil, subprocess, sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from scripts.data.tree import tree_problem
from scripts.data.unpack import prepare
root = Path(sys.argv[1])
(root / "download").mkdir()
(root / "download" / "plain.txt").write_text("P")
files = [{"name": "plain.txt"}]
tree = root / "dataset"
prepare(files, root / "download", tree, root / "dataset.manifest.json")
try:
    (tree / "plain.txt").open("a")
    print("writable")
except PermissionError:
    print("read-only")
prepare(files, root / "download", tree, root / "dataset.manifest.json")
print("unpacked again", tree_problem(tree))
subprocess.run(["rm", "-rf", str(tree)], check=True)
shutil.rmtree(root / "download")
print("removed", sorted(p.name for p in root.iterdir()))
"""


def test_read_only_files_stop_a_non_root_writer_and_still_unpack_again_and_remove(
    tmp_path: Path,
) -> None:
    """As a user other than root (root ignores file modes): a write is refused; unpacking
    again, rm -rf and shutil.rmtree still work, as the folders stay writable."""
    prefix: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="tree-nonroot-"))
    # the other user may not enter the clone (a 0700 folder, a private home): it imports a
    # world-readable copy of scripts/, and runs in that copy
    code = world_readable_copy(REPO / "scripts", Path(tempfile.mkdtemp(prefix="tree-code-")))
    try:
        if os.geteuid() == 0:
            if not shutil.which("setpriv"):
                pytest.skip("running as root without setpriv to become another user")
            os.chown(folder, 65534, 65534)
            prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        probe = [*prefix, sys.executable, "-c", "import scripts.data.unpack, scripts.data.tree"]
        tried = subprocess.run(probe, capture_output=True, text=True, timeout=120, cwd=code)
        if tried.returncode != 0:  # this Python or its packages are private to their owner
            problem = f"user 65534 cannot run {sys.executable} with its packages: {tried.stderr}"
            if os.environ.get("CI") == "true":
                pytest.fail(problem)
            pytest.skip(problem)
        proc = subprocess.run(
            [*prefix, sys.executable, "-c", NON_ROOT, str(folder), str(code)],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=code,
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.splitlines() == [
            "read-only",
            "unpacked again None",
            "removed ['dataset.manifest.json']",
        ]
    finally:
        shutil.rmtree(folder)
        shutil.rmtree(code)


def world_readable_copy(package: Path, dest: Path) -> Path:
    """``package`` copied into ``dest`` (its Python files only), every folder 0755 and every
    file 0644 whatever the umask of the clone; returns ``dest``."""
    dest.chmod(0o755)
    shutil.copytree(package, dest / package.name, ignore=shutil.ignore_patterns("__pycache__"))
    for path in [dest / package.name, *(dest / package.name).rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return dest


@pytest.mark.workflow
def test_a_tree_removed_by_hand_is_unpacked_again_and_no_finished_run_is_trained_again(
    workflow_copy: Path,
) -> None:
    """Snakemake itself would train every finished run again: their (ancient) dataset folder
    is missing as the plan is built, and the job that makes it again runs first."""
    wf = workflow_copy
    overlay = str(fake_campaign(wf, runs=2))
    assert snakemake(wf, TARGET, "--cores", "1", "--configfile", overlay).returncode == 0
    shutil.rmtree(wf / "data/fake/dataset")
    (wf / "data/fake/dataset.manifest.json").unlink()
    (wf / "results/fake/local/run_02/mlperf.log").unlink()  # one run to do again
    before = {k: v for k, v in snapshot(wf).items() if "/run_01/" in k}
    proc = snakemake(wf, TARGET, "--cores", "1", "--configfile", overlay)
    assert proc.returncode == 0, proc.stderr[-3000:]
    trained = [j for j in jobs_run(proc.stderr) if j.startswith("train_run")]
    assert trained == ["train_run benchmark=fake, system=local, run=02"]
    assert "data/fake/dataset is missing; unpacked data/fake/dataset again" in proc.stderr
    assert {k: v for k, v in snapshot(wf).items() if "/run_01/" in k} == before
    assert tree_problem(wf / "data/fake/dataset") is None


@pytest.mark.workflow
def test_the_whole_data_folder_removed_is_made_again_and_no_finished_run_is_trained_again(
    workflow_copy: Path,
) -> None:
    """rm -rf data/<b> (to free disk after a campaign): the downloads, their verification and
    the tree are made again before the plan; Snakemake alone would make them in its plan and
    then train every finished run again ("Input files updated by another job")."""
    wf = workflow_copy
    overlay = str(fake_campaign(wf, runs=2))
    assert snakemake(wf, TARGET, "--cores", "1", "--configfile", overlay).returncode == 0
    shutil.rmtree(wf / "data/fake")
    (wf / "results/fake/local/run_02/mlperf.log").unlink()  # one run to do again
    before = {k: v for k, v in snapshot(wf).items() if "/run_01/" in k}
    proc = snakemake(wf, TARGET, "--cores", "1", "--configfile", overlay)
    assert proc.returncode == 0, proc.stderr[-3000:]
    trained = [j for j in jobs_run(proc.stderr) if j.startswith("train_run")]
    assert trained == ["train_run benchmark=fake, system=local, run=02"]
    assert "data/fake/manifest.json is missing while finished runs used it" in proc.stderr
    assert {k: v for k, v in snapshot(wf).items() if "/run_01/" in k} == before
    assert tree_problem(wf / "data/fake/dataset") is None
