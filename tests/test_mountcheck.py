"""The mount check: data folders against an implementation's expected-mounts.csv, counted as
NVIDIA's mlperf_common.mountcheck counts them (scripts/data/mountcheck.py, mount_walk.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.data import mountcheck
from scripts.data.mountcheck import (
    Expected,
    MountCheckError,
    check,
    describe,
    read_expected,
    walk_mount,
    write_expected,
)
from tests.conftest import REPO, published

V51 = "mlperf-v5.1-implementations/NVIDIA/benchmarks"
RETINANET = f"{V51}/retinanet/implementations/tyche_ngpu8_ngc25.04_pytorch/expected-mounts.csv"
NEMO = f"{V51}/llama2_70b_lora/implementations/nemo/expected-mounts.csv"


def _rows(rows: list[Expected]) -> dict[str, Expected]:
    return {row.relative_path: row for row in rows}


def _tree(root: Path) -> Path:
    """A small data folder: files at two depths, an empty folder, a hidden file."""
    for rel, text in {
        "info.json": "{}\n",
        "train/data/0001.jpg": "a" * 100,
        "train/data/0002.jpg": "b" * 200,
        "train/labels/detections.csv": "id,label\n1,2\n",
        "validation/data/0003.jpg": "c" * 50,
        ".cache/ignored": "hidden: neither listed nor counted",
    }.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "validation" / "empty").mkdir()
    return root


# --- the published files -----------------------------------------------------------------------


def test_the_published_expected_mounts_parse() -> None:
    retinanet = read_expected(published() / RETINANET)
    nemo = read_expected(published() / NEMO)
    assert len(retinanet) == 24 and len(nemo) == 21
    by = _rows([r for r in retinanet if r.key == "OPEN_IMAGES_V6_DIR"])
    assert by["train/data"] == Expected(
        "OPEN_IMAGES_V6_DIR", "dir", "train/data", 1_170_301, 361_647_688_260
    )
    # a folder is the sum of the files below it (the .jpg rows were filtered out, not uncounted)
    parts = [by[p] for p in ("train/data", "train/labels", "train/metadata")]
    assert by["train"].num_files == sum(p.num_files for p in parts)
    assert by["train"].num_bytes == sum(p.num_bytes for p in parts)
    top = [by[p] for p in ("info.json", "train", "validation")]
    assert (by["."].num_files, by["."].num_bytes) == (
        sum(p.num_files for p in top),
        sum(p.num_bytes for p in top),
    )
    assert [r.key for r in nemo].count("MODEL") == 16


def test_a_tree_made_as_nemos_csv_says_is_described_as_that_csv_row_for_row(tmp_path: Path) -> None:
    """Every file of nemo's csv made at its size (sparse: no disk used), every empty folder
    made: describe gives back the published csv itself, in its order. This is mountcheck's
    counting and order (sorted names, files and folders together, a folder after its rows)."""
    probe = tmp_path / "probe"
    with open(probe, "wb") as f:
        f.truncate(64 << 20)
    if probe.stat().st_blocks * 512 >= 64 << 20:
        pytest.skip("this file system has no sparse files: 138 GB would be written")
    expected = read_expected(published() / NEMO)
    mounts = {key: tmp_path / key for key in dict.fromkeys(r.key for r in expected)}
    for row in expected:
        path = mounts[row.key] / row.relative_path
        if row.type == "file":
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "wb") as f:
                f.truncate(row.num_bytes)
        else:
            path.mkdir(parents=True, exist_ok=True)
    assert describe(mounts) == expected
    assert check(expected, mounts) == []
    out = tmp_path / "again.csv"
    write_expected(describe(mounts), out)
    assert out.read_text() == (published() / NEMO).read_text()


# --- describe and check ------------------------------------------------------------------------


def test_a_described_tree_checks_clean_and_its_csv_reads_back(tmp_path: Path) -> None:
    root = _tree(tmp_path / "data")
    rows = describe({"DATA": root})
    assert [r.relative_path for r in rows] == [
        "info.json",
        "train/data/0001.jpg",
        "train/data/0002.jpg",
        "train/data",
        "train/labels/detections.csv",
        "train/labels",
        "train",
        "validation/data/0003.jpg",
        "validation/data",
        "validation/empty",
        "validation",
        ".",
    ]
    assert _rows(rows)["."] == Expected("DATA", "dir", ".", 5, 3 + 100 + 200 + 13 + 50)
    assert _rows(rows)["validation/empty"].num_files == 0
    csv = tmp_path / "expected-mounts.csv"
    write_expected(rows, csv)
    assert csv.read_text().splitlines()[0] == "key,type,relative_path,num_files,num_bytes"
    assert read_expected(csv) == rows
    assert check(read_expected(csv), {"DATA": root}) == []


def test_filter_out_drops_the_rows_but_the_folders_still_count_them(tmp_path: Path) -> None:
    root = _tree(tmp_path / "data")
    rows = _rows(describe({"DATA": root}, filter_out=[".jpg"]))
    assert not [p for p in rows if p.endswith(".jpg")]
    assert (rows["train/data"].num_files, rows["train/data"].num_bytes) == (2, 300)


def test_describe_of_the_rows_asked_gives_them_in_that_order(tmp_path: Path) -> None:
    root = _tree(tmp_path / "data")
    rows = describe({"DATA": root}, rows=[("DATA", "train"), ("DATA", "info.json")])
    assert rows == [
        Expected("DATA", "dir", "train", 3, 313),
        Expected("DATA", "file", "info.json", 1, 3),
    ]
    with pytest.raises(MountCheckError, match="DATA: nope: not in"):
        describe({"DATA": root}, rows=[("DATA", "nope")])


def test_a_file_missing_is_refused_naming_the_key_and_both_counts(tmp_path: Path) -> None:
    root = _tree(tmp_path / "data")
    expected = describe({"OPEN_IMAGES_V6_DIR": root})
    (root / "train" / "data" / "0002.jpg").unlink()
    problems = check(expected, {"OPEN_IMAGES_V6_DIR": root})
    assert problems == [
        "OPEN_IMAGES_V6_DIR: train/data/0002.jpg: a file of 200 bytes expected, found nothing "
        f"at {root / 'train/data/0002.jpg'}",
        "OPEN_IMAGES_V6_DIR: train/data: 2 files of 300 bytes expected, found 1 file of 100 bytes",
        "OPEN_IMAGES_V6_DIR: train: 3 files of 313 bytes expected, found 2 files of 113 bytes",
        "OPEN_IMAGES_V6_DIR: .: 5 files of 366 bytes expected, found 4 files of 166 bytes",
    ]


def test_a_file_of_another_size_is_refused_naming_the_bytes(tmp_path: Path) -> None:
    root = _tree(tmp_path / "data")
    expected = [r for r in describe({"DATA": root}) if r.relative_path in ("info.json", ".")]
    (root / "info.json").write_text("{ }\n")
    assert check(expected, {"DATA": root}) == [
        "DATA: info.json: 1 file of 3 bytes expected, found 1 file of 4 bytes",
        "DATA: .: 5 files of 366 bytes expected, found 5 files of 367 bytes",
    ]


def test_the_large_counts_are_written_with_thousands_separators() -> None:
    assert mountcheck.counts(1_170_301, 361_647_688_260) == (
        "1,170,301 files of 361,647,688,260 bytes"
    )
    assert mountcheck.counts(1, 1) == "1 file of 1 byte"


def test_a_key_without_a_mount_a_mount_missing_and_a_file_for_a_dir(tmp_path: Path) -> None:
    root = _tree(tmp_path / "data")
    expected = describe({"DATA": root}) + [Expected("MODEL", "dir", ".", 1, 1)]
    assert check(expected, {"DATA": root}) == [
        "MODEL: no mount given for it (1 expected rows name it)"
    ]
    gone = tmp_path / "gone"
    problems = check(expected, {"DATA": gone, "MODEL": root})
    assert problems[0].startswith(f"DATA: {gone}: ") and "No such file" in problems[0]
    assert problems[1] == "MODEL: .: 1 file of 1 byte expected, found 5 files of 366 bytes"
    (root / "train" / "labels" / "detections.csv").unlink()
    (root / "train" / "labels" / "detections.csv").mkdir()
    row = Expected("DATA", "file", "train/labels/detections.csv", 1, 13)
    assert check([row], {"DATA": root}) == [
        "DATA: train/labels/detections.csv: a file of 13 bytes expected, found a dir of 0 files "
        "of 0 bytes"
    ]


def test_a_mount_may_be_one_file(tmp_path: Path) -> None:
    one = tmp_path / "weights.pt"
    one.write_bytes(b"12345")
    assert describe({"CKPT": one}) == [Expected("CKPT", "file", ".", 1, 5)]


def test_a_link_out_of_the_mount_is_not_followed_and_one_inside_is(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "more").mkdir(parents=True)
    (outside / "big.bin").write_bytes(b"x" * 1000)
    (outside / "more" / "f").write_bytes(b"y" * 10)
    root = _tree(tmp_path / "data")
    (root / "train" / "out.bin").symlink_to(outside / "big.bin")
    (root / "train" / "outdir").symlink_to(outside / "more")
    (root / "train" / "loop").symlink_to("..")
    (root / "train" / "in.json").symlink_to("../info.json")
    walk = walk_mount(root)
    assert "train/outdir/f" not in walk.found and "train/out.bin" not in walk.found
    assert walk.found["train/in.json"].num_bytes == 3  # as mountcheck: stat through the link
    assert "a link out of the mount" in walk.uncounted["train/out.bin"]
    assert "a link to a folder that holds it" in walk.uncounted["train/loop"]
    assert walk.found["train"].uncounted == 3
    # the csv counted the linked file in: the check names the difference and the links
    made_with_link = [
        Expected("DATA", "file", "train/out.bin", 1, 1000),
        Expected("DATA", "dir", "train", 3, 313),
    ]
    problems = check(made_with_link, {"DATA": root})
    assert problems[0].startswith(
        "DATA: train/out.bin: a file of 1,000 bytes expected, found a link out"
    )
    assert problems[1] == (
        "DATA: train: 3 files of 313 bytes expected, found 4 files of 316 bytes "
        "(3 entries below it not counted)"
    )
    assert any(p.startswith("not counted: DATA: train/outdir: a link out") for p in problems)
    # links out alone are no problem: a csv made here, without them, checks clean
    assert check(describe({"DATA": root}), {"DATA": root}) == []


def test_a_deep_tree_is_walked_without_recursion(tmp_path: Path) -> None:
    depth = sys.getrecursionlimit() + 200
    top = path = str(tmp_path / "deep")
    os.mkdir(path)
    try:
        for _ in range(depth):  # os.makedirs recurses
            path += "/d"
            os.mkdir(path)
        Path(path, "f").write_bytes(b"1")
        assert walk_mount(Path(top), lambda rel: rel == ".").found["."].num_files == 1
    finally:  # shutil.rmtree (pytest's cleanup) recurses too: removed here, from the bottom
        Path(path, "f").unlink(missing_ok=True)
        while path != os.path.dirname(top):
            os.rmdir(path)
            path = os.path.dirname(path)


# --- a malformed csv ---------------------------------------------------------------------------

GOOD = "key,type,relative_path,num_files,num_bytes\nDATA,file,a.bin,1,5\n"


@pytest.mark.parametrize(
    ("text", "where", "why"),
    [
        ("key,type,path,num_files,num_bytes\nDATA,file,a,1,5\n", 1, "header"),
        ("", 1, "header"),
        (GOOD + "DATA,link,b,1,5\n", 3, "neither 'file' nor 'dir'"),
        (GOOD + "DATA,dir,b,x,5\n", 3, "num_files 'x' is not a whole number"),
        (GOOD + "DATA,dir,b,1,-5\n", 3, "num_bytes '-5' is not a whole number"),
        (GOOD + "DATA,dir,b,1,5.0\n", 3, "num_bytes '5.0' is not a whole number"),
        (GOOD + "DATA,file,/etc/passwd,1,5\n", 3, "an absolute relative_path"),
        (GOOD + "DATA,dir,train/../..,1,5\n", 3, "climbs out of the mount"),
        (GOOD + "DATA,dir,a//b,1,5\n", 3, "not normalized"),
        (GOOD + "DATA,file,b,1\n", 3, "4 fields, expected 5"),
        (GOOD + "DATA,file,b,c,1,5\n", 3, "6 fields, expected 5"),
        (GOOD + "\nDATA,file,b,1,5\n", 3, "1 fields"),
        (GOOD + "DATA,file,b,2,5\n", 3, "a file row with num_files 2"),
        (GOOD + "DATA,file,a.bin,1,5\n", 3, "DATA a.bin again (line 2)"),
        (GOOD + ",file,b,1,5\n", 3, "an empty key"),
    ],
)
def test_a_malformed_csv_is_refused_naming_the_file_and_line(
    tmp_path: Path, text: str, where: int, why: str
) -> None:
    csv = tmp_path / "expected-mounts.csv"
    csv.write_text(text)
    with pytest.raises(MountCheckError) as error:
        read_expected(csv)
    assert f"{csv}:{where}: " in str(error.value) and why in str(error.value)


def test_a_csv_with_only_a_header_or_the_newer_column(tmp_path: Path) -> None:
    csv = tmp_path / "expected-mounts.csv"
    csv.write_text(GOOD.splitlines()[0] + "\n")
    with pytest.raises(MountCheckError, match="no rows under the header"):
        read_expected(csv)
    csv.write_text(
        "key,type,relative_path,num_files,num_bytes,sparse_sha256\nDATA,file,a.bin,1,5,ab12\n"
    )
    assert read_expected(csv) == [Expected("DATA", "file", "a.bin", 1, 5)]


def test_a_path_with_a_comma_cannot_be_written(tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    (root / "a,b").write_text("x")
    with pytest.raises(MountCheckError, match="a comma or line break"):
        write_expected(describe({"DATA": root}), tmp_path / "out.csv")


# --- the command line --------------------------------------------------------------------------


def _exit(argv: list[str]) -> int:
    """The exit status of the command line (argparse exits 2 by SystemExit)."""
    try:
        return mountcheck.main(argv)
    except SystemExit as stop:
        return int(stop.code or 0)


def test_the_command_line_exit_codes_and_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _tree(tmp_path / "data")
    assert _exit(["--describe", f"DATA={root}"]) == 0
    text = capsys.readouterr().out
    csv = tmp_path / "expected-mounts.csv"
    csv.write_text(text)
    assert read_expected(csv) == describe({"DATA": root})

    assert _exit(["--expected", str(csv), f"DATA={root}"]) == 0
    out = capsys.readouterr().out
    assert out == f"mountcheck: {csv}: all 12 rows match (DATA={root} 5 files of 366 bytes)\n"

    (root / "info.json").unlink()
    assert _exit(["--expected", str(csv), f"DATA:{root}"]) == 1  # mountcheck's form
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("mountcheck: DATA: info.json: a file of 3 bytes expected")
    assert err[-1] == f"mountcheck: {csv}: 2 problems"

    assert _exit(["--expected", str(csv), "DATA"]) == 2
    assert "expected KEY=PATH" in capsys.readouterr().err
    assert _exit(["--expected", str(csv), f"DATA={root}", f"DATA={root}"]) == 2
    assert "key DATA given twice" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("key,type\n")
    assert _exit(["--expected", str(bad), f"DATA={root}"]) == 2
    assert f"error: {bad}:1: header" in capsys.readouterr().err
    assert _exit([f"DATA={root}"]) == 2  # neither --expected nor --describe


def test_the_verb_runs_the_module(tmp_path: Path) -> None:
    root = _tree(tmp_path / "data")
    csv = tmp_path / "expected-mounts.csv"
    write_expected(describe({"DATA": root}, filter_out=[".jpg"]), csv)
    run = subprocess.run(
        [sys.executable, "-m", "scripts", "mountcheck", "--expected", str(csv), f"DATA={root}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(f"mountcheck: {csv}: all 9 rows match")
