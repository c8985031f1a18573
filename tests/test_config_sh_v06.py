"""NVIDIA's v0.6 config_<SYSTEM>.sh as one layout of scripts/mlperf/config_sh.py (issue 23).

The generated file is in the image's fingerprint, so the layout must make the bytes it made
before config_sh owned it (tests/data/config_sh_v06, captured from nvidia_v06.py at a2f60fc),
and the file must say, when bash reads it, what the system's yaml says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from scripts.__main__ import main as scripts_main
from scripts.campaign import config_checks
from scripts.mlperf import config_sh, nvidia_v06
from scripts.mlperf.config_read import read_exported, read_vars
from scripts.run.backends import image
from tests.conftest import REPO

BEFORE = REPO / "tests" / "data" / "config_sh_v06"
OVERLAYS = (
    "config/benchmarks/gnmt-v0.6.yaml",
    "config/benchmarks/gnmt-v0.6-nvidia.yaml",
    "config/systems/sut-4xv100.yaml",
    "config/systems/dgx1.yaml",
)
SYSTEMS = ("SUT", "DGX1", "V06X")
V06_NAMES = ("DGXSYSTEM", "DGXNNODES", "DGXNGPU", "DGXNSOCKET", "DGXSOCKETCORES", "DGXHT")
S1_TOPOLOGY = {"sockets": 1, "cores_per_socket": 4, "threads_per_core": 2}


def campaign() -> dict[str, Any]:
    """The gnmt-v0.6 campaign the texts in BEFORE were made from (its README)."""
    files = [REPO / f for f in OVERLAYS] + [BEFORE / "variant.yaml", BEFORE / "site.yaml"]
    return config_checks.load_campaign(files)


def before(name: str) -> str:
    return (BEFORE / name).read_bytes().decode()


@pytest.mark.parametrize("system", SYSTEMS)
def test_the_v06_layout_makes_the_bytes_it_made_before(system: str) -> None:
    config = campaign()
    name = f"config_{system}.sh"
    assert image.generated_files(config, "gnmt-v0.6", system) == {name: before(name)}
    assert config_sh.config_files(config, "gnmt-v0.6", system) == {name: before(name)}
    assert nvidia_v06.config_files(config, "gnmt-v0.6", system) == {name: before(name)}


def test_the_v06_function_without_timeout_or_hyperparameters_makes_the_same_bytes() -> None:
    system_cfg = {"gpus": 1, "topology": S1_TOPOLOGY}
    text = nvidia_v06.config_sh("S1", system_cfg, {}, target=21.8)
    assert text == before("config_S1.sh")
    assert config_sh.v06_text("S1", system_cfg, {}, target=21.8) == text


@pytest.mark.parametrize("system", SYSTEMS)
def test_bash_reads_the_yamls_values_from_the_v06_file(system: str, tmp_path: Path) -> None:
    config = campaign()
    [(name, text)] = config_sh.config_files(config, "gnmt-v0.6", system).items()
    (tmp_path / name).write_text(text)
    yaml_cfg = config["systems"][system]
    topo = yaml_cfg["topology"]
    expected = {
        "DGXSYSTEM": system,  # from the file's own name, as NVIDIA's
        "DGXNNODES": "1",
        "DGXNGPU": str(yaml_cfg["gpus"]),
        "DGXNSOCKET": str(topo["sockets"]),
        "DGXSOCKETCORES": str(topo["cores_per_socket"]),
        "DGXHT": str(topo["threads_per_core"]),
    }
    # plain assignments, as NVIDIA's config_DGX1.sh: run_and_time.sh sources the file
    assert read_vars(tmp_path / name, V06_NAMES) == expected
    assert not set(V06_NAMES) & set(read_exported(tmp_path / name))
    # read_exported sees them where a reader exports what the file assigns
    (tmp_path / "config_W.sh").write_text(f"set -a\nsource ./{name}\nset +a\n")
    exported = read_exported(tmp_path / "config_W.sh")
    assert {k: exported[k] for k in V06_NAMES} == expected
    assert exported["TARGET"] == "24.0"


def test_the_v06_files_hyperparameters_as_the_yaml_gives_them(tmp_path: Path) -> None:
    config = campaign()
    (tmp_path / "config_V06X.sh").write_text(before("config_V06X.sh"))
    names = ["LR", "TRAIN_BATCH_SIZE", "EXTRA_OPTS", "BIND_LAUNCH", "ZETA_FLAG", "ALPHA"]
    names += ["DGXIBDEVICES", "WALLTIME"]
    assert read_vars(tmp_path / "config_V06X.sh", names) == {
        "LR": "1.0e-3",
        "TRAIN_BATCH_SIZE": "64",
        "EXTRA_OPTS": "--fused-attention --note 'it''s here'",
        "BIND_LAUNCH": "0",
        "ZETA_FLAG": "1",
        "ALPHA": "3",
        "DGXIBDEVICES": "--device=/dev/infiniband/uverbs0 --device=/dev/infiniband/rdma_cm",
        "WALLTIME": "1:01:01",
    }
    assert config["systems"]["V06X"]["timeout_s"] == 3661
    # a variable given to the container wins, as run.sub relies on; an empty EXTRA_OPTS stays
    env = {"LR": "5e-4", "EXTRA_OPTS": ""}
    got = read_vars(tmp_path / "config_V06X.sh", ["LR", "EXTRA_OPTS"], env=env)
    assert got == {"LR": "5e-4", "EXTRA_OPTS": ""}


@pytest.mark.parametrize("kind", ["nvidia-v0.6", "config-sh"])
def test_both_layouts_refuse_a_system_with_the_same_messages(kind: str) -> None:
    container = {"config_script": kind, "base_config": "config_DGX1.sh"}
    bench = {"quality": {"target": 24.0}, "implementation": {"container": container}}

    def files(system_cfg: dict[str, Any]) -> dict[str, str]:
        config = {"benchmarks": {"b": bench}, "systems": {"S": system_cfg}}
        return config_sh.config_files(config, "b", "S")

    topo = dict(S1_TOPOLOGY)
    with pytest.raises(config_sh.SystemConfigError, match=r"systems\.S\.topology needs sockets"):
        files({"gpus": 4, "topology": {}})
    with pytest.raises(config_sh.SystemConfigError, match=r"systems\.S\.gpus is 0.*one GPU"):
        files({"gpus": 0, "topology": topo})
    clash = {"gpus": 1, "topology": topo, "hyperparameters": {"b": {"DGXNGPU": 2}}}
    with pytest.raises(config_sh.SystemConfigError, match="DGXNGPU.*set it there"):
        files(clash)
    assert list(files({"gpus": 1, "topology": topo})) == ["config_S.sh"]
    assert nvidia_v06.SystemConfigError is config_sh.SystemConfigError


def test_a_benchmark_without_config_script_gets_no_file_and_an_unknown_one_an_error() -> None:
    config = {"benchmarks": {"b": {"implementation": {"container": {}}}}, "systems": {"S": {}}}
    assert config_sh.config_files(config, "b", "S") == {}
    config["benchmarks"]["b"]["implementation"]["container"]["config_script"] = "nvidia-v9"
    with pytest.raises(ValueError, match="config_script 'nvidia-v9' is not one of config-sh"):
        config_sh.config_files(config, "b", "S")


def test_config_sh_and_nvidia_v06_print_the_v06_file(capsys: pytest.CaptureFixture[str]) -> None:
    files = [str(REPO / f) for f in OVERLAYS] + [str(BEFORE / "site.yaml")]
    files.append(str(BEFORE / "variant.yaml"))
    expected = "# config_DGX1.sh\n" + before("config_DGX1.sh")
    args = ["DGX1", "--benchmark", "gnmt-v0.6", "--configfile", *files]
    assert scripts_main(["config-sh", *args]) == 0
    assert capsys.readouterr().out == expected
    assert scripts_main(["nvidia-v06", "DGX1", "--configfile", *files]) == 0
    assert capsys.readouterr().out == expected
