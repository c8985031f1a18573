"""The MLPerf v0.6 GNMT dataset through the workflow, with small stand-in files: from an HTTP
mirror on 127.0.0.1, from a folder mirror, and from the implementation's download_dataset.sh."""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from scripts.data.datalock import TOKEN_ENV
from tests.conftest import REPO, copy_workflow, jobs_run, snakemake
from tests.httpserver import Served, Server, http_server

STANDIN = REPO / "tests" / "data" / "gnmt-v0.6-standin.yaml"
TARGET = "data/gnmt-v0.6/manifest.json"


def standin_content(name: str) -> bytes:
    """The bytes of a stand-in file (their md5s are in tests/data/gnmt-v0.6-standin.yaml)."""
    return "".join(f"stand-in for {name}, line {i}\n" for i in range(1000)).encode()


def standin_files() -> list[dict[str, str]]:
    return yaml.safe_load(STANDIN.read_text())["benchmarks"]["gnmt-v0.6"]["dataset"]["files"]


def test_the_standin_config_holds_the_standin_hashes() -> None:
    files = standin_files()
    real = yaml.safe_load((REPO / "config/benchmarks/gnmt-v0.6.yaml").read_text())
    real_files = real["benchmarks"]["gnmt-v0.6"]["dataset"]["files"]
    assert [f["name"] for f in files] == [f["name"] for f in real_files]
    assert len(real_files) == 7 and all(len(f["md5"]) == 32 for f in real_files)
    for f in files:
        assert hashlib.md5(standin_content(f["name"])).hexdigest() == f["md5"]


@pytest.fixture
def wf(tmp_path: Path) -> Path:
    wf = copy_workflow(tmp_path / "wf")
    (wf / "standin.yaml").write_text(STANDIN.read_text())
    return wf


@pytest.fixture
def server() -> Iterator[Server]:
    with http_server() as s:
        yield s


def site(wf: Path, dataset: dict[str, object], name: str = "site.yaml") -> str:
    overlay = {
        "download": {"retries": 2, "backoff_s": 0.1},
        "benchmarks": {"gnmt-v0.6": {"dataset": dataset}},
    }
    (wf / name).write_text(yaml.safe_dump(overlay))
    return name


def run(wf: Path, *overlays: str) -> tuple[int, str]:
    files = ["config/benchmarks/gnmt-v0.6.yaml", "standin.yaml", *overlays]
    proc = snakemake(wf, TARGET, "--cores", "1", "--configfile", *files, timeout=300)
    return proc.returncode, proc.stdout + proc.stderr


def check_manifest(wf: Path) -> None:
    manifest = json.loads((wf / TARGET).read_text())
    got = {e["name"]: (e["md5"], e["size"]) for e in manifest["files"]}
    want = {f["name"]: (f["md5"], len(standin_content(f["name"]))) for f in standin_files()}
    assert got == want


@pytest.mark.workflow
def test_from_an_http_mirror_then_a_changed_md5_redoes_the_download(
    wf: Path, server: Server
) -> None:
    for f in standin_files():
        server.files[f"/mirror/{f['name']}"] = Served(standin_content(f["name"]))
    overlay = site(wf, {"mirror": server.url("mirror/")})
    rc, out = run(wf, overlay)
    assert rc == 0, out
    check_manifest(wf)
    assert len(server.requests) == 7
    assert (wf / "data/gnmt-v0.6/download/newstest2014.de").read_bytes() == standin_content(
        "newstest2014.de"
    )
    # a new expected md5 in config: that file is fetched again (and here, the bytes are wrong)
    files = standin_files()
    files[6]["md5"] = hashlib.md5(b"the corrected file").hexdigest()
    (wf / "standin.yaml").write_text(
        yaml.safe_dump({"benchmarks": {"gnmt-v0.6": {"dataset": {"files": files}}}})
    )
    server.requests.clear()
    rc, out = run(wf, overlay)
    assert rc != 0
    assert [r.path for r in server.requests] == ["/mirror/newstest2014.de"]
    assert "checksum mismatch for newstest2014.de" in out and files[6]["md5"] in out
    download = wf / "data/gnmt-v0.6/download"
    assert (download / "newstest2014.de.corrupt").read_bytes() == standin_content("newstest2014.de")
    assert (download / "newstest2014.de.outdated").exists()  # the old file, kept
    assert not (download / "newstest2014.de").exists()
    assert not (wf / TARGET).exists()
    # the corrected file on the mirror: the next invocation fetches it and verifies all seven
    server.files["/mirror/newstest2014.de"] = Served(b"the corrected file")
    rc, out = run(wf, overlay)
    assert rc == 0, out
    assert json.loads((wf / TARGET).read_text())["files"][6]["md5"] == files[6]["md5"]


@pytest.mark.workflow
def test_from_a_folder_mirror_with_no_network(wf: Path) -> None:
    mirror = wf.parent / "mirror"
    mirror.mkdir()
    for f in standin_files():
        (mirror / f["name"]).write_bytes(standin_content(f["name"]))
    rc, out = run(wf, site(wf, {"mirror": str(mirror)}))
    assert rc == 0, out
    check_manifest(wf)
    assert sum(j.startswith("download_file ") for j in jobs_run(out)) == 7


DOWNLOAD_DATASET_SH = """\
#!/bin/bash
# stand-in for NVIDIA's download_dataset.sh: output folder as $1, run from implementations/
set -e
OUTPUT_DIR=${1:-"data/wmt16_de_en"}
test -d pytorch || { echo "must run from implementations/" >&2; exit 2; }
echo "$PWD" > "$OUTPUT_DIR/ran_in.txt"
cp "$STANDIN_SOURCE"/* "$OUTPUT_DIR"/
"""


@pytest.mark.workflow
def test_from_the_implementations_download_dataset_sh(
    wf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    impl = wf.parent / "training_results_v0.6/NVIDIA/benchmarks/gnmt/implementations"
    (impl / "pytorch").mkdir(parents=True)
    (impl / "download_dataset.sh").write_text(DOWNLOAD_DATASET_SH)
    source = wf.parent / "upstream"
    source.mkdir()
    for f in standin_files()[:6]:  # the first attempt: one file short
        (source / f["name"]).write_bytes(standin_content(f["name"]))
    monkeypatch.setenv("STANDIN_SOURCE", str(source))
    overlay = site(wf, {"script": {"cwd": str(impl)}})
    rc, out = run(wf, overlay)
    assert rc != 0
    assert "newstest2014.de: missing" in out and "was made by the dataset script" in out
    (source / "newstest2014.de").write_bytes(standin_content("newstest2014.de"))
    (wf / "data/gnmt-v0.6/generated").rename(wf / "data/gnmt-v0.6/generated.old")
    rc, out = run(wf, overlay)
    assert rc == 0, out
    check_manifest(wf)
    assert (wf / "data/gnmt-v0.6/generated/ran_in.txt").read_text().strip() == str(impl)

    # unpacked, then a file edited in place: the script's file is the same (a hard link), so
    # the next invocation runs the script again before it unpacks the tree again
    files = ["config/benchmarks/gnmt-v0.6.yaml", "standin.yaml", overlay]
    tree = "data/gnmt-v0.6/dataset"
    proc = snakemake(wf, tree, "--cores", "1", "--configfile", *files, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wf / "data/gnmt-v0.6/generated/ran_in.txt").unlink()
    (wf / tree / "newstest2014.de").chmod(0o644)  # unpacked read-only
    with (wf / tree / "newstest2014.de").open("a") as fh:
        fh.write("edited\n")
    proc = snakemake(wf, tree, "--cores", "1", "--configfile", *files, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "generated/newstest2014.de is the same file (a hard link)" in proc.stderr
    assert (wf / "data/gnmt-v0.6/generated/ran_in.txt").exists()  # the script ran again
    assert (wf / tree / "newstest2014.de").read_bytes() == standin_content("newstest2014.de")


@pytest.mark.workflow
@pytest.mark.parametrize(
    ("file", "message"),
    [
        ({"name": "a.bin", "url": "ftp://example.org/a.bin", "md5": "0" * 32}, "ftp://"),
        ({"name": "../a.bin", "url": "https://example.org/a.bin", "md5": "0" * 32}, "../a.bin"),
        ({"name": "a.bin", "url": "https://example.org/", "md5": "0" * 32}, "names no file"),
    ],
)
def test_bad_urls_and_names_stop_before_any_job(
    wf: Path, file: dict[str, str], message: str
) -> None:
    overlay = {"benchmarks": {"gnmt-v0.6": {"dataset": {"files": [file]}}}}
    (wf / "bad.yaml").write_text(yaml.safe_dump(overlay))
    rc, out = run(wf, "bad.yaml")
    assert rc != 0
    assert message in out and "benchmarks.gnmt-v0.6.dataset.files" in out
    assert not (wf / "data").exists() and jobs_run(out) == []


@pytest.mark.workflow
def test_each_retry_of_a_download_reaches_the_console(wf: Path) -> None:
    """A mirror that refuses connections: the console (snakemake's stderr) shows one line per
    retry (retries 2), though the download's output goes to its log file."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        mirror = f"http://127.0.0.1:{s.getsockname()[1]}/mirror/"
    files = ["config/benchmarks/gnmt-v0.6.yaml", "standin.yaml", site(wf, {"mirror": mirror})]
    proc = snakemake(wf, TARGET, "--cores", "1", "--configfile", *files, timeout=300)
    assert proc.returncode != 0
    # show-failed-logs prints each failed job's log afterwards: leave those blocks out
    live = re.sub(r"(?ms)^Logfile .*?:\n=+\n.*?^=+\n", "", proc.stderr)
    assert live.count("Logfile logs/download_file/") == 0
    names = [f["name"] for f in standin_files()]
    for name in names:
        shown = [
            line
            for line in live.splitlines()
            if line.startswith(f"download {name}: connection refused ({mirror}")
        ]
        assert [line.rsplit("; ", 1)[1] for line in shown] == [
            "retry 1 of 2 in 0.1 s",
            "retry 2 of 2 in 0.2 s",
        ], proc.stderr[-3000:]
        log = (wf / f"logs/download_file/gnmt-v0.6/{name}.log").read_text()
        assert log.count(f"download {name}: connection refused") == 2
        assert "connection refused; gave up after 2 retries (3 attempts in " in log


@pytest.mark.workflow
def test_two_campaigns_with_one_data_dir_make_the_dataset_once(
    tmp_path: Path, server: Server
) -> None:
    """Two snakemake invocations in two working folders, one data_dir: the second waits while
    the first fetches (one line naming its pid, host and folder), then finds the dataset made
    and runs no job that would remove it (scripts/data/datalock.py)."""
    shared = tmp_path / "shared-data"
    gate = threading.Event()  # the mirror holds every body until the test opens it
    for f in standin_files():
        server.files[f"/mirror/{f['name']}"] = Served(standin_content(f["name"]), gate=gate)
    target = f"{shared}/gnmt-v0.6/dataset"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAKEMAKE") and k != TOKEN_ENV}
    started = []
    for name in ("campaign-a", "campaign-b"):
        wf = copy_workflow(tmp_path / name)
        (wf / "standin.yaml").write_text(STANDIN.read_text())
        site(wf, {"mirror": server.url("mirror/")})
        overlay = yaml.safe_load((wf / "site.yaml").read_text())
        (wf / "site.yaml").write_text(yaml.safe_dump({**overlay, "data_dir": str(shared)}))
        files = ["config/benchmarks/gnmt-v0.6.yaml", "standin.yaml", "site.yaml"]
        with (tmp_path / f"{name}.log").open("w") as log:
            started.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "snakemake",
                        target,
                        "--cores",
                        "1",
                        "--configfile",
                        *files,
                    ],
                    cwd=wf,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    text=True,
                    env=env,
                )  # fmt: skip
            )
        if name == "campaign-a":  # the second starts once the first is fetching
            wait_for(lambda: len(server.requests) >= 1, "the first campaign's download")
    a, b = started
    try:
        log_b = tmp_path / "campaign-b.log"
        wait_for(lambda: "waiting for" in log_b.read_text(), "the second campaign's waiting line")
        (line,) = [x for x in log_b.read_text().splitlines() if "waiting for" in x]
        assert line.startswith(
            f"waiting for {shared}/gnmt-v0.6.lock: held by pid {a.pid} on {socket.gethostname()}, "
            f"working folder {tmp_path / 'campaign-a'}, since "
        ), line
        assert f"for making {shared}/gnmt-v0.6 (fetch, verify, unpack) for its campaign" in line
        gate.set()
        assert a.wait(timeout=300) == 0, (tmp_path / "campaign-a.log").read_text()[-3000:]
        assert b.wait(timeout=300) == 0, log_b.read_text()[-3000:]
    finally:
        for proc in started:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert len(server.requests) == 7  # every file fetched once, by the first campaign
    assert jobs_run(log_b.read_text()) == []  # the second found the dataset made
    check_manifest_at(shared / "gnmt-v0.6" / "manifest.json")
    assert (shared / "gnmt-v0.6" / "dataset.manifest.json").exists()
    assert (shared / "gnmt-v0.6.lock").read_text() == ""  # let go, no stale record


def check_manifest_at(path: Path) -> None:
    manifest = json.loads(path.read_text())
    got = {e["name"]: e["md5"] for e in manifest["files"]}
    assert got == {f["name"]: f["md5"] for f in standin_files()}


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 120) -> None:
    """Wait for a condition (never for a guessed time), failing after ``timeout``."""
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.05)
