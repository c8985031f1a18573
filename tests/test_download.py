"""Downloads against a real HTTP server on 127.0.0.1: retries, resume, restart, bad bytes, 404."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import socket
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.campaign.stale import outdated_manifest
from scripts.data import cli
from scripts.data.download_policy import MAX_WAIT_S, PROGRESS_MIN_BYTES, Policy
from scripts.data.errors import DatasetError
from scripts.data.fetch import checksums_path, fetch
from scripts.data.sources import check_dataset, sources, url_problem
from scripts.data.unpack import prepare
from tests.conftest import REPO
from tests.httpserver import Served, Server, http_server

BODY = bytes(range(256)) * 4096  # 1 MiB
FAST = Policy(retries=3, backoff_s=0.01, timeout_s=10, progress=False)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def server() -> Iterator[Server]:
    with http_server() as s:
        yield s


def test_clean_download_checks_md5_and_sha256(server: Server, tmp_path: Path) -> None:
    server.files["/data.bin"] = Served(BODY)
    dest = tmp_path / "data.bin"
    entry = fetch(server.url("data.bin"), dest, {"md5": md5(BODY), "sha256": sha(BODY)}, FAST)
    assert dest.read_bytes() == BODY
    assert entry == {"name": "data.bin", "size": len(BODY), "md5": md5(BODY), "sha256": sha(BODY)}
    assert json.loads(checksums_path(dest).read_text()) == entry
    assert len(server.requests) == 1 and "Range" not in server.requests[0].headers
    assert sorted(p.name for p in tmp_path.iterdir()) == [".data.bin.checksums.json", "data.bin"]


def test_a_body_cut_off_midway_is_resumed_with_range(server: Server, tmp_path: Path) -> None:
    server.files["/data.bin"] = Served(BODY, cut_after=[400_000])
    dest = tmp_path / "data.bin"
    fetch(server.url("data.bin"), dest, {"md5": md5(BODY)}, FAST)
    assert dest.read_bytes() == BODY
    first, second = server.asked("data.bin")
    assert "Range" not in first.headers
    assert second.headers["Range"] == "bytes=400000-"
    assert second.headers["If-Range"] == f'"{md5(BODY)}"'  # no splicing of two versions
    assert server.bytes_sent == len(BODY)  # nothing was downloaded twice


def test_500_twice_then_200_succeeds_after_retries(server: Server, tmp_path: Path) -> None:
    server.files["/data.bin"] = Served(BODY, fail_first=[500, 500])
    dest = tmp_path / "data.bin"
    fetch(server.url("data.bin"), dest, {"sha256": sha(BODY)}, FAST)
    assert dest.read_bytes() == BODY
    assert len(server.asked("data.bin")) == 3


def test_5xx_beyond_the_retries_is_a_clear_error(server: Server, tmp_path: Path) -> None:
    server.files["/data.bin"] = Served(BODY, fail_first=[503] * 10)
    with pytest.raises(DatasetError, match=r"data.bin: HTTP 503 .* after 3 retries"):
        fetch(server.url("data.bin"), tmp_path / "data.bin", {"md5": md5(BODY)}, FAST)
    assert len(server.asked("data.bin")) == 4
    assert not (tmp_path / "data.bin").exists()


def test_a_server_without_range_support_restarts_cleanly(server: Server, tmp_path: Path) -> None:
    server.files["/data.bin"] = Served(BODY, ranges=False, cut_after=[300_000])
    dest = tmp_path / "data.bin"
    fetch(server.url("data.bin"), dest, {"md5": md5(BODY)}, FAST)
    assert dest.read_bytes() == BODY  # not the first 300000 bytes twice
    first, second = server.asked("data.bin")
    assert second.headers["Range"] == "bytes=300000-"  # asked, got a 200 with the whole file
    assert server.bytes_sent == 300_000 + len(BODY)


def test_wrong_bytes_are_kept_as_corrupt_and_named(server: Server, tmp_path: Path) -> None:
    server.files["/data.bin"] = Served(b"not the dataset")
    dest = tmp_path / "data.bin"
    url = server.url("data.bin")
    with pytest.raises(DatasetError) as info:
        fetch(url, dest, {"md5": md5(BODY)}, FAST)
    msg = str(info.value)
    assert "data.bin" in msg and url in msg
    assert md5(BODY) in msg and md5(b"not the dataset") in msg and "15 bytes" in msg
    assert not dest.exists() and not (tmp_path / "data.bin.part").exists()
    assert (tmp_path / "data.bin.corrupt").read_bytes() == b"not the dataset"


def test_404_is_a_clear_error_naming_the_url(server: Server, tmp_path: Path) -> None:
    url = server.url("missing.bin")
    with pytest.raises(DatasetError) as info:
        fetch(url, tmp_path / "missing.bin", {"md5": md5(BODY)}, FAST)
    assert f"{url}: HTTP 404 Not Found" in str(info.value)
    assert len(server.requests) == 1  # a 404 is not retried
    assert list(tmp_path.iterdir()) == []


def test_a_tar_with_a_dotdot_member_is_rejected_and_writes_nothing_outside(
    server: Server, tmp_path: Path
) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in (("ok/a.txt", b"fine"), ("../evil.txt", b"evil")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    server.files["/bad.tar.gz"] = Served(buf.getvalue())
    downloads = tmp_path / "data" / "download"
    fetch(server.url("bad.tar.gz"), downloads / "bad.tar.gz", {"sha256": sha(buf.getvalue())}, FAST)
    files = [{"name": "bad.tar.gz", "unpack": True}]
    with pytest.raises(DatasetError, match=r"'\.\./evil\.txt' would be written outside"):
        prepare(files, downloads, tmp_path / "data" / "dataset")
    assert not any(p.name == "evil.txt" for p in tmp_path.rglob("*"))
    assert not (tmp_path / "data" / "dataset").exists()


def test_failed_retries_keep_the_part_and_the_next_process_resumes(
    server: Server, tmp_path: Path
) -> None:
    server.files["/data.bin"] = Served(BODY, cut_after=[100_000, 0, 0, 0])
    dest = tmp_path / "data.bin"
    with pytest.raises(DatasetError, match=r"100000 bytes are kept in .*data.bin.part"):
        fetch(server.url("data.bin"), dest, {"md5": md5(BODY)}, FAST)
    assert (tmp_path / "data.bin.part").stat().st_size == 100_000
    # a later invocation (a new process: the hashers are gone) goes on from byte 100000
    server.requests.clear()
    fetch(server.url("data.bin"), dest, {"md5": md5(BODY)}, FAST)
    assert dest.read_bytes() == BODY
    assert [r.headers.get("Range") for r in server.requests] == ["bytes=100000-"]


def test_mirror_first_then_the_files_own_url(server: Server, tmp_path: Path) -> None:
    server.files["/origin/a.bin"] = Served(BODY)
    entry = {"name": "a.bin", "url": server.url("origin/a.bin"), "md5": md5(BODY)}
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    urls = sources(entry, str(mirror))
    assert urls == [(mirror / "a.bin").as_uri(), server.url("origin/a.bin")]
    dest = tmp_path / "d" / "a.bin"
    fetch(urls, dest, {"md5": md5(BODY)}, FAST)  # not in the mirror: from the url
    assert dest.read_bytes() == BODY and len(server.requests) == 1
    (mirror / "a.bin").write_bytes(BODY)
    dest.unlink()
    fetch(urls, dest, {"md5": md5(BODY)}, FAST)  # in the mirror: the url is not asked
    assert dest.read_bytes() == BODY and len(server.requests) == 1
    assert sources(entry, server.base + "/m/")[0] == server.url("m/a.bin")


def test_a_file_found_nowhere_names_every_source(server: Server, tmp_path: Path) -> None:
    urls = [(tmp_path / "mirror" / "x.bin").as_uri(), server.url("x.bin")]
    with pytest.raises(DatasetError) as info:
        fetch(urls, tmp_path / "x.bin", {"md5": md5(b"")}, FAST)
    assert "x.bin was found nowhere" in str(info.value)
    assert all(u in str(info.value) for u in urls)


def test_a_download_reads_its_bytes_once(tmp_path: Path) -> None:
    """The checksum is computed in the same pass: the source is read once, the result never."""
    src = tmp_path / "src.bin"
    src.write_bytes(BODY * 32)  # 32 MiB
    io_before = _rchar()
    fetch(src.as_uri(), tmp_path / "out.bin", {"md5": md5(BODY * 32)}, FAST)
    read = _rchar() - io_before
    assert len(BODY) * 32 <= read < len(BODY) * 32 * 1.05, read


def _rchar() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://host/x", "unsupported URL scheme 'ftp'"),
        ("/just/a/path", "is not a URL"),
        ("http:///x", "has no host"),
        ("https://host/dir/", "names no file"),
        ("file:///ok/file.bin", None),
    ],
)
def test_url_problems(url: str, why: str | None) -> None:
    problem = url_problem(url)
    assert (problem is None) if why is None else (why in (problem or ""))


def test_progress_in_a_log_is_one_line_per_update(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "big.bin"
    src.write_bytes(b"\0" * (PROGRESS_MIN_BYTES + 1))
    policy = Policy(progress=True)
    fetch(src.as_uri(), tmp_path / "out.bin", {}, policy)
    err = capfd.readouterr().err
    assert "\r" not in err and err.count("out.bin") >= 1
    assert "16.0M/16.0M" in err and "100%" in err


def test_check_dataset_names_every_problem() -> None:
    ds = {
        "mirror": None,
        "script": None,
        "files": [
            {"name": "a.txt", "url": "gopher://h/a.txt", "md5": "0" * 32},
            {"name": "a.txt", "url": "https://h/a.txt", "md5": "0" * 32, "unpack": True},
            {"name": "b.bin", "md5": "0" * 32},
        ],
    }
    problems = check_dataset(ds)
    assert any("files[0] (a.txt).url: unsupported URL scheme 'gopher'" in p for p in problems)
    assert any("files[1] (a.txt): the name appears twice" in p for p in problems)
    assert any("files[1] (a.txt): unpack is true" in p for p in problems)
    assert any("b.bin has no url" in p for p in problems)
    assert check_dataset({**ds, "mirror": "ftp://h/m", "files": ds["files"][2:]}) == [
        "dataset.mirror: unsupported URL scheme 'ftp' in 'ftp://h/m'; use http://, https:// or "
        "file://"
    ]


def test_a_changed_checksum_makes_a_script_made_manifest_stale(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"files": [{"name": "a", "size": 1, "md5": "1" * 32}]}))
    assert outdated_manifest(manifest, [{"name": "a", "md5": "1" * 32}]) is None
    assert "checksum of a md5 changed" in (
        outdated_manifest(manifest, [{"name": "a", "md5": "2" * 32}]) or ""
    )
    assert "files changed" in (outdated_manifest(manifest, [{"name": "b", "md5": "1" * 32}]) or "")


# -- one retry policy: download.retries and backoff_s mean what they say, each retry is one line

RETRY_LINE = re.compile(
    r"^download (?P<file>\S+): (?P<why>.+) \((?P<url>\S+)\); "
    r"retry (?P<k>\d+) of (?P<n>\d+) in (?P<wait>[\d.]+) s$"
)


def retry_lines(err: str) -> list[re.Match[str]]:
    return [m for line in err.splitlines() if (m := RETRY_LINE.match(line))]


def refused_url(name: str = "x.bin") -> str:
    """A URL on 127.0.0.1 with nothing listening: every connection is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/{name}"


def test_the_budget_is_every_wait_plus_two_timeouts_per_attempt() -> None:
    default = Policy()
    assert [default.wait(k) for k in range(1, 6)] == [1, 2, 4, 8, 16]
    assert default.budget_s() == 31 + 6 * 2 * 60
    assert Policy(retries=10, backoff_s=1).wait(8) == MAX_WAIT_S  # 128 -> 60
    assert Policy(backoff_s=0.1).wait(1, retry_after=5) == 5  # the server asks longer
    assert Policy(backoff_s=0.1).wait(1, retry_after=3600) == MAX_WAIT_S
    assert Policy(retries=0, timeout_s=3).budget_s() == 6


def test_a_refused_connection_fails_within_its_budget_with_one_line_per_retry(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    policy = Policy(retries=2, backoff_s=0.1, timeout_s=5, progress=False)
    url = refused_url()
    t0 = time.monotonic()
    with pytest.raises(DatasetError) as info:
        fetch(url, tmp_path / "x.bin", {"md5": md5(BODY)}, policy)
    elapsed = time.monotonic() - t0
    assert 0.1 + 0.2 <= elapsed <= policy.budget_s()  # slept exactly the two backoffs
    lines = retry_lines(capfd.readouterr().err)
    assert [(m["file"], m["why"], m["url"], m["k"], m["n"], m["wait"]) for m in lines] == [
        ("x.bin", "connection refused", url, "1", "2", "0.1"),
        ("x.bin", "connection refused", url, "2", "2", "0.2"),
    ]
    msg = str(info.value)
    assert msg.startswith(f"{url}: connection refused; gave up after 2 retries (3 attempts in ")
    assert "bytes are kept" not in msg  # nothing arrived


def test_503_n_times_then_200_succeeds_with_n_retry_lines(
    server: Server, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    server.files["/data.bin"] = Served(BODY, fail_first=[503] * 3)
    dest = tmp_path / "data.bin"
    fetch(server.url("data.bin"), dest, {"sha256": sha(BODY)}, FAST)
    assert dest.read_bytes() == BODY
    assert len(server.asked("data.bin")) == 4  # no hidden retries inside urllib3
    lines = retry_lines(capfd.readouterr().err)
    assert [m["why"] for m in lines] == ["HTTP 503 Service Unavailable"] * 3
    assert [m["k"] for m in lines] == ["1", "2", "3"]


def test_retry_after_is_honoured(
    server: Server, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    server.files["/data.bin"] = Served(BODY, fail_first=[429], retry_after="1")
    t0 = time.monotonic()
    fetch(server.url("data.bin"), tmp_path / "data.bin", {"md5": md5(BODY)}, FAST)
    assert time.monotonic() - t0 >= 1.0  # not FAST's 0.01 s
    (line,) = retry_lines(capfd.readouterr().err)
    assert line["why"] == "HTTP 429 Too Many Requests" and line["wait"] == "1"


def test_other_4xx_fail_at_once(server: Server, tmp_path: Path) -> None:
    server.files["/data.bin"] = Served(BODY, fail_first=[403])
    with pytest.raises(DatasetError, match=r"data.bin: HTTP 403 Forbidden$"):
        fetch(server.url("data.bin"), tmp_path / "data.bin", {"md5": md5(BODY)}, FAST)
    assert len(server.asked("data.bin")) == 1


def test_a_server_that_never_answers_fails_within_the_budget(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """It accepts the connection (the kernel does) and says nothing: each attempt waits
    timeout_s for the answer."""
    policy = Policy(retries=1, backoff_s=0.1, timeout_s=1, progress=False)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/x.bin"
        t0 = time.monotonic()
        with pytest.raises(DatasetError, match=r"no bytes for 1 s; gave up after 1 retr"):
            fetch(url, tmp_path / "x.bin", {"md5": md5(BODY)}, policy)
        elapsed = time.monotonic() - t0
    assert 2 * 1 + 0.1 <= elapsed <= policy.budget_s()
    (line,) = retry_lines(capfd.readouterr().err)
    assert line["why"] == "no bytes for 1 s" and line["wait"] == "0.1"


def test_the_cli_writes_each_retry_to_the_console_fd_as_well_as_its_log(tmp_path: Path) -> None:
    """rules/dataset.smk: the job's output goes to its log, fd 3 is snakemake's stderr."""
    url = refused_url()
    log = tmp_path / "download.log"
    read_end, write_end = os.pipe()
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "scripts.data.cli", "fetch", "--url", url, "--dest",
             str(tmp_path / "x.bin"), "--retries", "2", "--backoff-s", "0.05", "--timeout-s",
             "5", "--no-progress", "--console-fd", str(write_end)],
            cwd=REPO, stdout=out, stderr=subprocess.STDOUT, pass_fds=(write_end,),
        )  # fmt: skip
    os.close(write_end)
    with os.fdopen(read_end) as console:
        shown = console.read()
    assert proc.wait() == 1
    assert [m["k"] for m in retry_lines(shown)] == ["1", "2"]
    assert len(shown.splitlines()) == 2  # only the retries; the rest is in the log
    logged = log.read_text()
    assert [m["k"] for m in retry_lines(logged)] == ["1", "2"]  # the log has the whole story
    assert f"error: {url}: connection refused; gave up after 2 retries" in logged


# -- a deadline per file, a minimum rate, and redirects only to http(s), each one line


def fetch_cli(url: str, dest: Path, *options: str) -> int:
    """``python -m scripts dataset fetch`` as the rule runs it (in this process: a traceback
    would fail the test), with quick retries and no progress bar."""
    return cli.main(
        ["fetch", "--url", url, "--dest", str(dest), "--md5", md5(BODY), "--retries", "3",
         "--backoff-s", "0.05", "--no-progress", *options]
    )  # fmt: skip


def test_a_server_that_trickles_a_byte_every_5_s_is_given_up_at_the_deadline(
    server: Server, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Each byte comes well within timeout_s (60 s), so only the deadline stops it: at 4 s,
    with one line, the byte kept for the next invocation."""
    server.files["/slow.bin"] = Served(BODY, trickle_s=5)
    url, dest = server.url("slow.bin"), tmp_path / "slow.bin"
    t0 = time.monotonic()
    assert fetch_cli(url, dest, "--timeout-s", "60", "--deadline-s", "4") == 1
    elapsed = time.monotonic() - t0
    assert 4 <= elapsed < 4 + 2.5, elapsed
    (line,) = capfd.readouterr().err.splitlines()
    part = tmp_path / "slow.bin.part"
    assert re.fullmatch(
        rf"error: {re.escape(url)}: the deadline passed at byte 1; gave up at the deadline of "
        r"4 s per file \(1 attempt in 4\.\d s; config download: deadline_s\); 1 bytes are kept "
        rf"in {re.escape(str(part))} and the next run resumes there",
        line,
    ), line
    assert part.read_bytes() == BODY[:1] and not dest.exists()


def test_a_download_slower_than_min_bytes_per_s_is_retried_then_given_up(
    server: Server, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """A byte every 0.2 s never times out (timeout_s 1): each window of timeout_s that brings
    fewer than min_bytes_per_s x timeout_s bytes fails the attempt, which is retried from the
    bytes it brought (Range)."""
    server.files["/slow.bin"] = Served(BODY, trickle_s=0.2)
    url, dest = server.url("slow.bin"), tmp_path / "slow.bin"
    options = ("--retries", "1", "--timeout-s", "1", "--min-bytes-per-s", "100")
    t0 = time.monotonic()
    assert fetch_cli(url, dest, *options) == 1
    assert time.monotonic() - t0 < 2 * 2 + 0.05 + 2.5  # two windows of about 1 s, and a wait
    err = capfd.readouterr().err.splitlines()
    (retry,) = retry_lines("\n".join(err))
    slow = r"only \d+ bytes in 1 s, under download.min_bytes_per_s = 100"
    assert re.fullmatch(slow, retry["why"])
    assert err[-1].startswith(f"error: {url}: only ")
    assert "gave up after 1 retry (2 attempts" in err[-1]
    first, second = server.asked("slow.bin")
    resumed_at = re.fullmatch(r"bytes=(\d+)-", second.headers["Range"])
    assert "Range" not in first.headers and resumed_at and int(resumed_at[1]) > 0
    assert (tmp_path / "slow.bin.part").stat().st_size > int(resumed_at[1])  # kept, resumable


@pytest.mark.parametrize("target", ["file:///etc/passwd", "ftp://127.0.0.1/x.bin", "gopher:x"])
def test_a_redirect_to_another_scheme_is_one_line(
    server: Server, tmp_path: Path, capfd: pytest.CaptureFixture[str], target: str
) -> None:
    server.files["/x.bin"] = Served(b"", redirect=target)
    url = server.url("x.bin")
    assert fetch_cli(url, tmp_path / "x.bin") == 1
    (line,) = capfd.readouterr().err.splitlines()
    assert line == (
        f"error: {url}: redirected to {target}: a download follows redirects to http:// and "
        "https:// URLs only"
    )
    assert len(server.requests) == 1 and list(tmp_path.iterdir()) == []  # asked once, no retry


def test_a_redirect_loop_and_too_many_redirects_are_one_line_each(
    server: Server, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    server.files["/a"] = Served(b"", redirect="/b")
    server.files["/b"] = Served(b"", redirect=server.url("a"))
    assert fetch_cli(server.url("a"), tmp_path / "a") == 1
    (line,) = capfd.readouterr().err.splitlines()
    a, b = server.url("a"), server.url("b")
    assert line == f"error: {a}: a redirect loop: {a} -> {b} -> {a}"
    for i in range(20):
        server.files[f"/hop{i}"] = Served(b"", redirect=f"/hop{i + 1}")
    server.requests.clear()
    assert fetch_cli(server.url("hop0"), tmp_path / "hop0") == 1
    (line,) = capfd.readouterr().err.splitlines()
    assert line == f"error: {server.url('hop0')}: more than 10 redirects (the last to " + (
        f"{server.url('hop11')})"
    )
    assert len(server.requests) == 11


def test_a_redirect_to_http_is_followed_and_resumes_there(server: Server, tmp_path: Path) -> None:
    server.files["/old/data.bin"] = Served(b"", redirect="../new/data.bin")
    server.files["/new/data.bin"] = Served(BODY, cut_after=[300_000])
    dest = tmp_path / "data.bin"
    fetch(server.url("old/data.bin"), dest, {"md5": md5(BODY)}, FAST)
    assert dest.read_bytes() == BODY
    assert [r.path for r in server.requests] == ["/old/data.bin", "/new/data.bin"] * 2
    assert server.requests[3].headers["Range"] == "bytes=300000-"
