"""Dataset files: checksums on the way in, atomic results, corrupt bytes kept, safe unpacking."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import shutil
import tarfile
import zipfile
from pathlib import Path

import pytest

from scripts.data import archives, cli
from scripts.data.errors import DatasetError
from scripts.data.fetch import fetch
from scripts.data.unpack import prepare, safe_unpack
from scripts.data.verify import verify


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_fetch_file_url_checks_sha256_and_md5_in_one_pass(tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(b"x" * 3_000_000)
    dest = tmp_path / "out" / "file.bin"
    expected = {"sha256": sha(src.read_bytes()), "md5": hashlib.md5(src.read_bytes()).hexdigest()}
    entry = fetch(src.as_uri(), dest, expected)
    assert dest.read_bytes() == src.read_bytes()
    assert entry == {"name": "file.bin", "size": 3_000_000, **expected}
    assert not dest.with_name("file.bin.part").exists()


def test_a_mismatch_keeps_the_bytes_as_corrupt_and_says_everything(tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(b"wrong content")
    dest = tmp_path / "file.bin"
    with pytest.raises(DatasetError) as info:
        fetch(src.as_uri(), dest, {"sha256": "0" * 64})
    msg = str(info.value)
    assert "file.bin" in msg and src.as_uri() in msg
    assert "0" * 64 in msg and sha(b"wrong content") in msg and "13 bytes" in msg
    assert not dest.exists()
    assert (tmp_path / "file.bin.corrupt").read_bytes() == b"wrong content"


def test_unsupported_scheme_and_missing_source_are_clear(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="unsupported URL scheme 'ftp'"):
        fetch("ftp://host/x", tmp_path / "x", {})
    with pytest.raises(DatasetError, match="x was found nowhere:\n  .*nope: no such file"):
        fetch((tmp_path / "nope").as_uri(), tmp_path / "x", {})


def test_verify_reports_every_missing_or_bad_file(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"a")
    (tmp_path / "b").write_bytes(b"b")
    files = [
        {"name": "a", "sha256": sha(b"a")},
        {"name": "b", "md5": "0" * 32},
        {"name": "c", "sha256": sha(b"c")},
    ]
    with pytest.raises(DatasetError) as info:
        verify(files, tmp_path)
    assert "b: md5 expected" in str(info.value) and "c: missing" in str(info.value)
    ok = verify(files[:1], tmp_path)
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
    with pytest.raises(DatasetError, match="outside"):
        safe_unpack(archive, dest)
    assert not (tmp_path / "d" / "evil.txt").exists() and not (tmp_path / "evil.txt").exists()


def test_unpack_refuses_links_that_escape(tmp_path: Path) -> None:
    link = tarfile.TarInfo("data/link")
    link.type, link.linkname = tarfile.SYMTYPE, "../../../etc/passwd"
    archive = tmp_path / "bad.tar.gz"
    archive.write_bytes(_tar_with(link))
    with pytest.raises(DatasetError, match="escapes"):
        safe_unpack(archive, tmp_path / "out")


def test_unpack_zip_and_prepare_links_plain_files(tmp_path: Path) -> None:
    downloads = tmp_path / "download"
    downloads.mkdir()
    with zipfile.ZipFile(downloads / "z.zip", "w") as zf:
        zf.writestr("inner/a.txt", "A")
    (downloads / "plain.txt").write_text("P")
    files = [{"name": "z.zip", "unpack": True}, {"name": "plain.txt"}]
    dest = tmp_path / "dataset"
    prepare(files, downloads, dest)
    assert (dest / "inner" / "a.txt").read_text() == "A"
    assert (dest / "plain.txt").read_text() == "P"
    assert not (tmp_path / "dataset.tmp").exists()


def test_cli_verify_writes_the_manifest(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"a")
    manifest = tmp_path / "manifest.json"
    files = json.dumps([{"name": "a", "sha256": sha(b"a")}])
    rc = cli.main(
        ["verify", "--files-json", files, "--dir", str(tmp_path), "--manifest", str(manifest)]
    )
    assert rc == 0
    assert json.loads(manifest.read_text())["files"][0]["sha256"] == sha(b"a")
    rc = cli.main(
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


# -- hostile archives: every member checked before anything is written, every byte counted


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]], mode: str = "w") -> Path:
    with tarfile.open(path, mode) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _info(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


def _unpack_fails(
    archive: Path, dest: Path, match: str, capsys: pytest.CaptureFixture[str], **kw: int
) -> str:
    """The unpack through the CLI's main (as the rule runs it): exit 1, one line naming the
    archive, no traceback, and nothing written (no tree, no temporary folder)."""
    files = json.dumps([{"name": archive.name, "unpack": True}])
    argv = ["unpack", "--files-json", files, "--dir", str(archive.parent), "--dest", str(dest)]
    if "limit" in kw:
        argv += ["--max-unpacked-bytes", str(kw["limit"])]
    capsys.readouterr()
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith(f"error: {archive}: "), err
    assert re.search(match, err), err
    assert not dest.exists() and not dest.with_name(dest.name + ".tmp").exists()
    return err.strip()


@pytest.mark.parametrize(
    ("link_name", "target"),
    [("sub/h", "../x"), ("a/b/c/h", "../../x"), ("h", "/etc/passwd"), ("sub/h", "sub/../../x")],
)
def test_a_hard_link_out_of_the_folder_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], link_name: str, target: str
) -> None:
    """A hard link's target is a path from the archive's root (as tar reads it): 'a/b/c/h' ->
    '../../x' leaves the folder, though from the link's own folder it would not."""
    (tmp_path / "dl").mkdir()
    archive = _tar(
        tmp_path / "dl" / "bad.tar",
        [(_info("ok.txt"), b"fine"), (_info(link_name, tarfile.LNKTYPE, target), None)],
    )
    err = _unpack_fails(archive, tmp_path / "dataset", "escapes", capsys)
    assert f"hard link {link_name!r} -> {target!r} escapes" in err
    assert "from the archive's root" in err


def test_a_hard_link_is_resolved_from_the_archive_root(tmp_path: Path) -> None:
    archive = _tar(
        tmp_path / "good.tar",
        [(_info("top.txt"), b"top"), (_info("sub/deep/h", tarfile.LNKTYPE, "top.txt"), None)],
    )
    dest = tmp_path / "out"
    safe_unpack(archive, dest)
    assert (dest / "sub/deep/h").read_bytes() == b"top"
    assert (dest / "sub/deep/h").samefile(dest / "top.txt")


def test_a_hard_link_to_no_earlier_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "dl").mkdir()
    archive = _tar(
        tmp_path / "dl" / "bad.tar",
        [(_info("h", tarfile.LNKTYPE, "later.txt"), None), (_info("later.txt"), b"x")],
    )
    _unpack_fails(archive, tmp_path / "dataset", "'h' -> 'later.txt' names no regular file", capsys)


@pytest.mark.parametrize(
    ("kind", "words"),
    [(tarfile.FIFOTYPE, "a FIFO"), (tarfile.CHRTYPE, "a character device"),
     (tarfile.BLKTYPE, "a block device")],
)  # fmt: skip
def test_a_special_member_after_files_is_refused_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: bytes, words: str
) -> None:
    (tmp_path / "dl").mkdir()
    members = [(_info(f"f{i}.txt"), b"data") for i in range(3)] + [(_info("dev", kind), None)]
    archive = _tar(tmp_path / "dl" / "special.tar.gz", members, "w:gz")
    err = _unpack_fails(archive, tmp_path / "dataset", f"'dev' is {words}, not a regular", capsys)
    assert err.endswith("a dataset holds none, so nothing was unpacked")


def test_a_special_zip_member_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "dl").mkdir()
    archive = tmp_path / "dl" / "special.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ok.txt", "fine")
        fifo = zipfile.ZipInfo("pipe")
        fifo.external_attr = (0o010644) << 16  # S_IFIFO
        zf.writestr(fifo, "")
    _unpack_fails(archive, tmp_path / "dataset", "'pipe' is a FIFO", capsys)


@pytest.mark.parametrize(
    ("members", "match"),
    [
        # written through a symbolic link the archive made (or makes later)
        ([("l", tarfile.SYMTYPE, "sub"), ("l/x", tarfile.REGTYPE, "")], "through 'l'"),
        ([("l/x", tarfile.REGTYPE, ""), ("l", tarfile.SYMTYPE, "sub")], "through 'l'"),
        # '..' after a link is not the lexical '..': l -> '.', then l2 -> 'l/..' is the parent
        ([("l", tarfile.SYMTYPE, "."), ("l2", tarfile.SYMTYPE, "l/..")], "'l2' -> 'l/..' escapes"),
        ([("l2", tarfile.SYMTYPE, "l/.."), ("l", tarfile.SYMTYPE, ".")], "'l2' -> 'l/..' escapes"),
        # one name twice as two kinds
        ([("a", tarfile.REGTYPE, ""), ("a", tarfile.SYMTYPE, "b")], "appears twice, as a file"),
        # under a file
        ([("a", tarfile.REGTYPE, ""), ("a/b", tarfile.REGTYPE, "")], "archives make a file"),
    ],
)  # fmt: skip
def test_members_written_through_links_or_links_out_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], members: list[tuple[str, bytes, str]],
    match: str,
) -> None:  # fmt: skip
    (tmp_path / "dl").mkdir()
    infos = [
        (_info(name, kind, link), b"x" if kind == tarfile.REGTYPE else None)
        for name, kind, link in members
    ]
    archive = _tar(tmp_path / "dl" / "bad.tar", infos)
    _unpack_fails(archive, tmp_path / "dataset", match, capsys)


def test_safe_links_and_a_tar_of_dot_unpack(tmp_path: Path) -> None:
    archive = _tar(
        tmp_path / "good.tar",
        [
            (_info("./", tarfile.DIRTYPE), None),
            (_info("./d/f.txt"), b"f"),
            (_info("./d/up", tarfile.SYMTYPE, "../d/f.txt"), None),
            (_info("./d/f.txt"), b"newer"),  # a name twice: the last one wins, as in tar
        ],
    )
    dest = tmp_path / "out"
    names = safe_unpack(archive, dest)
    assert names[-1] == "./d/f.txt"
    assert (dest / "d/up").read_bytes() == b"newer" and os.readlink(dest / "d/up") == "../d/f.txt"


def test_declared_sizes_over_the_configured_limit_are_refused_before_writing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "dl").mkdir()
    members = [(_info(f"f{i}.bin"), bytes(1000)) for i in range(3)]
    archive = _tar(tmp_path / "dl" / "big.tar.gz", members, "w:gz")
    err = _unpack_fails(archive, tmp_path / "dataset", "'f2.bin'", capsys, limit=2500)
    assert err == (
        f"error: {archive}: member 'f2.bin' (1000 bytes) takes what the archives declare to "
        "3000 bytes, over the limit of 2500 bytes (config dataset.max_unpacked_bytes); nothing "
        "was unpacked"
    )
    safe_unpack(archive, tmp_path / "ok", max_unpacked_bytes=3000)  # at the limit: fine


def _bomb(path: Path, declared: int) -> Path:
    """A .tar.gz of a few hundred bytes whose one member declares ``declared`` bytes."""
    info = _info("zeros.bin")
    info.size = declared
    with gzip.open(path, "wb") as gz:
        gz.write(info.tobuf(format=tarfile.GNU_FORMAT) + bytes(1024))
    return path


def test_a_small_tar_gz_that_would_unpack_to_2_gib_is_refused_by_the_default_ratio(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "dl").mkdir()
    archive = _bomb(tmp_path / "dl" / "bomb.tar.gz", 2 << 30)
    size = archive.stat().st_size
    err = _unpack_fails(archive, tmp_path / "dataset", "'zeros.bin'", capsys)
    limit = f"over the limit of {1 << 30} bytes (by default 100 x the archives' {size} bytes, "
    assert limit in err
    assert err.endswith("set dataset.max_unpacked_bytes to allow more); nothing was unpacked")


def test_the_default_limit_is_100_times_the_archives_at_least_1_gib() -> None:
    assert archives.unpack_limit(2_000_000, None)[0] == 1 << 30  # 2 MB: 1 GiB
    assert archives.unpack_limit(150 << 30, None)[0] == 100 * (150 << 30)  # ImageNet's tar
    configured = archives.unpack_limit(2_000_000, 5 << 40)
    assert configured == (5 << 40, "config dataset.max_unpacked_bytes")


def test_a_member_that_brings_more_than_it_declared_is_stopped_while_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The readers stop at the declared size; if one did not (a lying header), the count while
    writing stops it, and the tree that was there stays."""
    downloads = tmp_path / "dl"
    downloads.mkdir()
    _tar(downloads / "a.tar", [(_info("small.txt"), b"0123456789")])
    monkeypatch.setattr(archives.Archive, "open", lambda self, m: io.BytesIO(bytes(5000)))
    dest = tmp_path / "dataset"
    dest.mkdir()
    (dest / "old.txt").write_text("the tree before")
    with pytest.raises(DatasetError) as info:
        prepare([{"name": "a.tar", "unpack": True}], downloads, dest)
    assert str(info.value) == (
        f"{downloads / 'a.tar'}: member 'small.txt' holds more than the 10 bytes its header "
        "declares; unpacking stopped"
    )
    assert [p.name for p in dest.iterdir()] == ["old.txt"]
    assert not (tmp_path / "dataset.tmp").exists()


def test_the_limit_is_counted_again_while_writing() -> None:
    budget = archives.Budget(limit=1500, rule="config dataset.max_unpacked_bytes", written=1000)
    member = archives.Member("m.bin", "m.bin", "file", size=1000)
    with pytest.raises(archives.ArchiveError, match="'m.bin' took what was unpacked over the "
                       "limit of 1500 bytes"):  # fmt: skip
        archives._copy_member(io.BytesIO(bytes(1000)), io.BytesIO(), member, Path("a.tar"), budget)


def test_a_zip_whose_sizes_lie_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A zip whose directory says 10 bytes for a member of 1000: the reader stops at 10, its
    CRC fails, and that is one line naming the archive and member."""
    (tmp_path / "dl").mkdir()
    archive = tmp_path / "dl" / "lies.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("m.bin", bytes(1000))
    raw = bytearray(archive.read_bytes())
    for sig, at in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):  # uncompressed size fields
        pos = raw.index(sig) + at
        raw[pos : pos + 4] = (10).to_bytes(4, "little")
    archive.write_bytes(bytes(raw))
    _unpack_fails(archive, tmp_path / "dataset", r"member 'm.bin' cannot be unpacked \(", capsys)


def test_zip_members_are_checked_like_tar_members(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "dl").mkdir()
    archive = tmp_path / "dl" / "z.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a.txt", "A")
        link = zipfile.ZipInfo("up")
        link.external_attr = 0o120777 << 16  # S_IFLNK
        zf.writestr(link, "../../etc/passwd")
    _unpack_fails(archive, tmp_path / "dataset", "link 'up' -> '../../etc/passwd' escapes", capsys)
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a.txt", "A")
        link = zipfile.ZipInfo("same")
        link.external_attr = 0o120777 << 16
        zf.writestr(link, "a.txt")
        zf.writestr("big.bin", bytes(3000))
    _unpack_fails(archive, tmp_path / "dataset", "'big.bin' .* over the limit of 2000", capsys,
                  limit=2000)  # fmt: skip
    safe_unpack(archive, tmp_path / "ok")
    assert os.readlink(tmp_path / "ok" / "same") == "a.txt"  # a safe link is a link


def test_an_archive_larger_than_the_free_space_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "dl").mkdir()
    archive = _tar(tmp_path / "dl" / "a.tar", [(_info("f.bin"), bytes(4096))])
    usage = shutil.disk_usage(tmp_path)._replace(free=1000)
    monkeypatch.setattr(archives.shutil, "disk_usage", lambda path: usage)
    _unpack_fails(archive, tmp_path / "dataset", "declare 4096 bytes, but the disk of .* has "
                  "1000 bytes free; nothing was unpacked", capsys)  # fmt: skip
