"""Dataset files: checksums on the way in, atomic results, corrupt bytes kept, safe unpacking."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import zipfile
from pathlib import Path

import pytest

from scripts import dataset


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_fetch_file_url_checks_sha256_and_md5_in_one_pass(tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(b"x" * 3_000_000)
    dest = tmp_path / "out" / "file.bin"
    expected = {"sha256": sha(src.read_bytes()), "md5": hashlib.md5(src.read_bytes()).hexdigest()}
    entry = dataset.fetch(src.as_uri(), dest, expected)
    assert dest.read_bytes() == src.read_bytes()
    assert entry == {"name": "file.bin", "size": 3_000_000, **expected}
    assert not dest.with_name("file.bin.part").exists()


def test_a_mismatch_keeps_the_bytes_as_corrupt_and_says_everything(tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(b"wrong content")
    dest = tmp_path / "file.bin"
    with pytest.raises(dataset.DatasetError) as info:
        dataset.fetch(src.as_uri(), dest, {"sha256": "0" * 64})
    msg = str(info.value)
    assert "file.bin" in msg and src.as_uri() in msg
    assert "0" * 64 in msg and sha(b"wrong content") in msg and "13 bytes" in msg
    assert not dest.exists()
    assert (tmp_path / "file.bin.corrupt").read_bytes() == b"wrong content"


def test_unsupported_scheme_and_missing_source_are_clear(tmp_path: Path) -> None:
    with pytest.raises(dataset.DatasetError, match="unsupported URL scheme 'ftp'"):
        dataset.fetch("ftp://host/x", tmp_path / "x", {})
    with pytest.raises(dataset.DatasetError, match="x was found nowhere:\n  .*nope: no such file"):
        dataset.fetch((tmp_path / "nope").as_uri(), tmp_path / "x", {})


def test_verify_reports_every_missing_or_bad_file(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"a")
    (tmp_path / "b").write_bytes(b"b")
    files = [
        {"name": "a", "sha256": sha(b"a")},
        {"name": "b", "md5": "0" * 32},
        {"name": "c", "sha256": sha(b"c")},
    ]
    with pytest.raises(dataset.DatasetError) as info:
        dataset.verify(files, tmp_path)
    assert "b: md5 expected" in str(info.value) and "c: missing" in str(info.value)
    ok = dataset.verify(files[:1], tmp_path)
    assert ok == [{"name": "a", "size": 1, "sha256": sha(b"a")}]


def _tar_with(member: tarfile.TarInfo, data: bytes = b"x") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        member.size = len(data) if member.isfile() else 0
        tar.addfile(member, io.BytesIO(data) if member.isfile() else None)
    return buf.getvalue()


@pytest.mark.parametrize("name", ["../evil.txt", "/abs/evil.txt", "a/../../evil.txt"])
def test_unpack_refuses_members_that_escape(tmp_path: Path, name: str) -> None:
    archive = tmp_path / "bad.tar.gz"
    archive.write_bytes(_tar_with(tarfile.TarInfo(name)))
    dest = tmp_path / "d" / "out"
    with pytest.raises(dataset.DatasetError, match="outside"):
        dataset.safe_unpack(archive, dest)
    assert not (tmp_path / "d" / "evil.txt").exists() and not (tmp_path / "evil.txt").exists()


def test_unpack_refuses_links_that_escape(tmp_path: Path) -> None:
    link = tarfile.TarInfo("data/link")
    link.type, link.linkname = tarfile.SYMTYPE, "../../../etc/passwd"
    archive = tmp_path / "bad.tar.gz"
    archive.write_bytes(_tar_with(link))
    with pytest.raises(dataset.DatasetError, match="escapes"):
        dataset.safe_unpack(archive, tmp_path / "out")


def test_unpack_zip_and_prepare_links_plain_files(tmp_path: Path) -> None:
    downloads = tmp_path / "download"
    downloads.mkdir()
    with zipfile.ZipFile(downloads / "z.zip", "w") as zf:
        zf.writestr("inner/a.txt", "A")
    (downloads / "plain.txt").write_text("P")
    files = [{"name": "z.zip", "unpack": True}, {"name": "plain.txt"}]
    dest = tmp_path / "dataset"
    dataset.prepare(files, downloads, dest)
    assert (dest / "inner" / "a.txt").read_text() == "A"
    assert (dest / "plain.txt").read_text() == "P"
    assert not (tmp_path / "dataset.tmp").exists()


def test_cli_verify_writes_the_manifest(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"a")
    manifest = tmp_path / "manifest.json"
    files = json.dumps([{"name": "a", "sha256": sha(b"a")}])
    rc = dataset.main(
        ["verify", "--files-json", files, "--dir", str(tmp_path), "--manifest", str(manifest)]
    )
    assert rc == 0
    assert json.loads(manifest.read_text())["files"][0]["sha256"] == sha(b"a")
    rc = dataset.main(
        [
            "verify",
            "--files-json",
            json.dumps([{"name": "a", "md5": "0" * 32}]),
            "--dir",
            str(tmp_path),
            "--manifest",
            str(manifest),
        ]
    )
    assert rc == 1
