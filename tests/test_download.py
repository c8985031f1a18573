"""Downloads against a real HTTP server on 127.0.0.1: retries, resume, restart, bad bytes, 404."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts import dataset
from tests.httpserver import Served, Server, http_server

BODY = bytes(range(256)) * 4096  # 1 MiB
FAST = dataset.Policy(retries=3, backoff_s=0.01, timeout_s=10, progress=False)


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
    entry = dataset.fetch(
        server.url("data.bin"), dest, {"md5": md5(BODY), "sha256": sha(BODY)}, FAST
    )
    assert dest.read_bytes() == BODY
    assert entry == {"name": "data.bin", "size": len(BODY), "md5": md5(BODY), "sha256": sha(BODY)}
    assert json.loads(dataset.checksums_path(dest).read_text()) == entry
    assert len(server.requests) == 1 and "Range" not in server.requests[0].headers
    assert sorted(p.name for p in tmp_path.iterdir()) == [".data.bin.checksums.json", "data.bin"]


def test_a_body_cut_off_midway_is_resumed_with_range(server: Server, tmp_path: Path) -> None:
    server.files["/data.bin"] = Served(BODY, cut_after=[400_000])
    dest = tmp_path / "data.bin"
    dataset.fetch(server.url("data.bin"), dest, {"md5": md5(BODY)}, FAST)
    assert dest.read_bytes() == BODY
    first, second = server.asked("data.bin")
    assert "Range" not in first.headers
    assert second.headers["Range"] == "bytes=400000-"
    assert second.headers["If-Range"] == f'"{md5(BODY)}"'  # no splicing of two versions
    assert server.bytes_sent == len(BODY)  # nothing was downloaded twice


def test_500_twice_then_200_succeeds_after_retries(server: Server, tmp_path: Path) -> None:
    server.files["/data.bin"] = Served(BODY, fail_first=[500, 500])
    dest = tmp_path / "data.bin"
    dataset.fetch(server.url("data.bin"), dest, {"sha256": sha(BODY)}, FAST)
    assert dest.read_bytes() == BODY
    assert len(server.asked("data.bin")) == 3


def test_5xx_beyond_the_retries_is_a_clear_error(server: Server, tmp_path: Path) -> None:
    server.files["/data.bin"] = Served(BODY, fail_first=[503] * 10)
    with pytest.raises(dataset.DatasetError, match=r"data.bin: HTTP 503 .* after 3 retries"):
        dataset.fetch(server.url("data.bin"), tmp_path / "data.bin", {"md5": md5(BODY)}, FAST)
    assert len(server.asked("data.bin")) == 4
    assert not (tmp_path / "data.bin").exists()


def test_a_server_without_range_support_restarts_cleanly(server: Server, tmp_path: Path) -> None:
    server.files["/data.bin"] = Served(BODY, ranges=False, cut_after=[300_000])
    dest = tmp_path / "data.bin"
    dataset.fetch(server.url("data.bin"), dest, {"md5": md5(BODY)}, FAST)
    assert dest.read_bytes() == BODY  # not the first 300000 bytes twice
    first, second = server.asked("data.bin")
    assert second.headers["Range"] == "bytes=300000-"  # asked, got a 200 with the whole file
    assert server.bytes_sent == 300_000 + len(BODY)


def test_wrong_bytes_are_kept_as_corrupt_and_named(server: Server, tmp_path: Path) -> None:
    server.files["/data.bin"] = Served(b"not the dataset")
    dest = tmp_path / "data.bin"
    url = server.url("data.bin")
    with pytest.raises(dataset.DatasetError) as info:
        dataset.fetch(url, dest, {"md5": md5(BODY)}, FAST)
    msg = str(info.value)
    assert "data.bin" in msg and url in msg
    assert md5(BODY) in msg and md5(b"not the dataset") in msg and "15 bytes" in msg
    assert not dest.exists() and not (tmp_path / "data.bin.part").exists()
    assert (tmp_path / "data.bin.corrupt").read_bytes() == b"not the dataset"


def test_404_is_a_clear_error_naming_the_url(server: Server, tmp_path: Path) -> None:
    url = server.url("missing.bin")
    with pytest.raises(dataset.DatasetError) as info:
        dataset.fetch(url, tmp_path / "missing.bin", {"md5": md5(BODY)}, FAST)
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
    dataset.fetch(
        server.url("bad.tar.gz"), downloads / "bad.tar.gz", {"sha256": sha(buf.getvalue())}, FAST
    )
    files = [{"name": "bad.tar.gz", "unpack": True}]
    with pytest.raises(dataset.DatasetError, match=r"'\.\./evil\.txt' would be written outside"):
        dataset.prepare(files, downloads, tmp_path / "data" / "dataset")
    assert not any(p.name == "evil.txt" for p in tmp_path.rglob("*"))
    assert not (tmp_path / "data" / "dataset").exists()


def test_failed_retries_keep_the_part_and_the_next_process_resumes(
    server: Server, tmp_path: Path
) -> None:
    server.files["/data.bin"] = Served(BODY, cut_after=[100_000, 0, 0, 0])
    dest = tmp_path / "data.bin"
    with pytest.raises(dataset.DatasetError, match=r"100000 bytes are kept in .*data.bin.part"):
        dataset.fetch(server.url("data.bin"), dest, {"md5": md5(BODY)}, FAST)
    assert (tmp_path / "data.bin.part").stat().st_size == 100_000
    # a later invocation (a new process: the hashers are gone) goes on from byte 100000
    server.requests.clear()
    dataset.fetch(server.url("data.bin"), dest, {"md5": md5(BODY)}, FAST)
    assert dest.read_bytes() == BODY
    assert [r.headers.get("Range") for r in server.requests] == ["bytes=100000-"]


def test_mirror_first_then_the_files_own_url(server: Server, tmp_path: Path) -> None:
    server.files["/origin/a.bin"] = Served(BODY)
    entry = {"name": "a.bin", "url": server.url("origin/a.bin"), "md5": md5(BODY)}
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    urls = dataset.sources(entry, str(mirror))
    assert urls == [(mirror / "a.bin").as_uri(), server.url("origin/a.bin")]
    dest = tmp_path / "d" / "a.bin"
    dataset.fetch(urls, dest, {"md5": md5(BODY)}, FAST)  # not in the mirror: from the url
    assert dest.read_bytes() == BODY and len(server.requests) == 1
    (mirror / "a.bin").write_bytes(BODY)
    dest.unlink()
    dataset.fetch(urls, dest, {"md5": md5(BODY)}, FAST)  # in the mirror: the url is not asked
    assert dest.read_bytes() == BODY and len(server.requests) == 1
    assert dataset.sources(entry, server.base + "/m/")[0] == server.url("m/a.bin")


def test_a_file_found_nowhere_names_every_source(server: Server, tmp_path: Path) -> None:
    urls = [(tmp_path / "mirror" / "x.bin").as_uri(), server.url("x.bin")]
    with pytest.raises(dataset.DatasetError) as info:
        dataset.fetch(urls, tmp_path / "x.bin", {"md5": md5(b"")}, FAST)
    assert "x.bin was found nowhere" in str(info.value)
    assert all(u in str(info.value) for u in urls)


def test_a_download_reads_its_bytes_once(tmp_path: Path) -> None:
    """The checksum is computed in the same pass: the source is read once, the result never."""
    src = tmp_path / "src.bin"
    src.write_bytes(BODY * 32)  # 32 MiB
    io_before = _rchar()
    dataset.fetch(src.as_uri(), tmp_path / "out.bin", {"md5": md5(BODY * 32)}, FAST)
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
    problem = dataset.url_problem(url)
    assert (problem is None) if why is None else (why in (problem or ""))


def test_progress_in_a_log_is_one_line_per_update(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "big.bin"
    src.write_bytes(b"\0" * (dataset.PROGRESS_MIN_BYTES + 1))
    policy = dataset.Policy(progress=True)
    dataset.fetch(src.as_uri(), tmp_path / "out.bin", {}, policy)
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
    problems = dataset.check_dataset(ds)
    assert any("files[0] (a.txt).url: unsupported URL scheme 'gopher'" in p for p in problems)
    assert any("files[1] (a.txt): the name appears twice" in p for p in problems)
    assert any("files[1] (a.txt): unpack is true" in p for p in problems)
    assert any("b.bin has no url" in p for p in problems)
    assert dataset.check_dataset({**ds, "mirror": "ftp://h/m", "files": ds["files"][2:]}) == [
        "dataset.mirror: unsupported URL scheme 'ftp' in 'ftp://h/m'; use http://, https:// or "
        "file://"
    ]


def test_a_changed_checksum_makes_a_script_made_manifest_stale(tmp_path: Path) -> None:
    from scripts.campaign import outdated_manifest

    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"files": [{"name": "a", "size": 1, "md5": "1" * 32}]}))
    assert outdated_manifest(manifest, [{"name": "a", "md5": "1" * 32}]) is None
    assert "checksum of a md5 changed" in (
        outdated_manifest(manifest, [{"name": "a", "md5": "2" * 32}]) or ""
    )
    assert "files changed" in (outdated_manifest(manifest, [{"name": "b", "md5": "1" * 32}]) or "")
