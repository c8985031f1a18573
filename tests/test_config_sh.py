"""NVIDIA's v5.1 config_<SYSTEM>.sh read with real bash, and config_SUT.sh generated from one.

The configs are the published ones (tests/data/published/mlperf-v5.1-implementations.tar.xz,
laid out as mlcommons/training_results_v5.1); each test that sources or writes beside them
works on a copy in tmp_path (config_mounts.sh of nemo, for one, makes folders).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from scripts.__main__ import main as scripts_main
from scripts.mlperf import config_sh
from scripts.mlperf.config_sh import (
    ConfigScriptError,
    config_files,
    generate,
    read_exported,
    read_vars,
    system_values,
)
from scripts.mlperf.nvidia_v06 import SystemConfigError
from tests.conftest import REPO, published

V51 = "mlperf-v5.1-implementations"
RETINANET = f"{V51}/NVIDIA/benchmarks/retinanet/implementations/tyche_ngpu8_ngc25.04_pytorch"
NEMO = f"{V51}/NVIDIA/benchmarks/llama2_70b_lora/implementations/nemo"
AMD = (
    f"{V51}/AMD/benchmarks/llama2_70b_lora/implementations/MI300X_EPYC_9575F_pytorch_llama2_70b"
    "/config_MI300X_1x8x1.sh"
)
BASE = "config_GB200_002x04x032.sh"
SUT_YAML = {
    "gpus": 8,
    "topology": {"sockets": 2, "cores_per_socket": 16, "threads_per_core": 2},
}


def copy_impl(rel: str, tmp_path: Path) -> Path:
    """The implementation's shell scripts, copied into tmp_path (the tree is shared)."""
    dest = tmp_path / Path(rel).name
    dest.mkdir()
    for f in (published() / rel).glob("*.sh"):
        shutil.copy(f, dest / f.name)
    return dest


def write_sut(folder: Path, base: str = BASE, **yaml: object) -> Path:
    cfg = {**SUT_YAML, **yaml}
    text = generate(base, "SUT", system_values("SUT", cfg, "retinanet"))
    out = folder / "config_SUT.sh"
    out.write_text(text)
    return out


def test_the_published_gb200_config_reads_as_run_sub_sees_it() -> None:
    found = read_exported(published() / RETINANET / BASE)
    assert found["DGXNNODES"] == "2" and found["DGXNGPU"] == "4"
    assert found["DGXSYSTEM"] == "GB200_002x04x032"  # from its own file name
    assert found["BATCHSIZE"] == "32" and found["LR"] == "0.000085"
    assert found["NCCL_NVLS_ENABLE"] == "1"  # from config_common.sh, sourced beside it
    assert found["WALLTIME_RUNANDTIME"] == "30" and found["WALLTIME"] == str(9 + 1 * (30 + 3))
    assert found["EXTRA_PARAMS"].startswith("--jit --frozen-bn-opt ")
    assert not {"PWD", "OLDPWD", "SHLVL", "_", "PATH"} & set(found)
    assert read_exported(published() / RETINANET / BASE, env={"NEXP": "5"})["WALLTIME"] == str(
        9 + 5 * (30 + 3)
    )


def test_the_environment_is_clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LR", "999")
    monkeypatch.setenv("CONFIG_SH_LEAK", "seen")
    script = tmp_path / "config_probe.sh"
    script.write_text('export SAW="${CONFIG_SH_LEAK:-unset}"\nexport P="$PATH"\n')
    found = read_exported(script, env={"NEXP": "2"})
    assert found == {"SAW": "unset", "P": config_sh.CLEAN_PATH, "NEXP": "2"}
    assert read_exported(published() / RETINANET / BASE)["LR"] == "0.000085"


def test_a_generated_config_sut_sets_the_system_and_keeps_the_base(tmp_path: Path) -> None:
    folder = copy_impl(RETINANET, tmp_path)
    base = read_exported(folder / BASE)
    sut = read_exported(write_sut(folder))
    assert (sut["DGXNNODES"], sut["DGXNGPU"], sut["DGXSYSTEM"]) == ("1", "8", "SUT")
    assert (sut["DGXNSOCKET"], sut["DGXSOCKETCORES"], sut["DGXHT"]) == ("2", "16", "2")
    assert sut["BATCHSIZE"] == "32" and sut["LR"] == "0.000085"
    assert sut["NCCL_NVLS_ENABLE"] == "1"
    changed = {k for k in base if sut.get(k) != base[k]}
    assert changed == {"DGXNNODES", "DGXNGPU", "DGXSYSTEM", "DGXSOCKETCORES"}
    # the generated file's helpers are gone once it is sourced
    left = read_vars(folder / "config_SUT.sh", ["_config_sh_held"])
    assert left == {}


def test_an_override_changes_only_itself(tmp_path: Path) -> None:
    folder = copy_impl(RETINANET, tmp_path)
    plain = read_exported(write_sut(folder))
    lr = read_exported(write_sut(folder, hyperparameters={"retinanet": {"LR": "0.0001"}}))
    assert lr["LR"] == "0.0001"
    assert {k for k in lr if lr[k] != plain.get(k)} == {"LR"}


def test_walltime_is_the_bases_formula_on_the_systems_timeout(tmp_path: Path) -> None:
    folder = copy_impl(RETINANET, tmp_path)
    sut = write_sut(folder, timeout_s=3599)  # 59.98 minutes: rounded up, never shorter
    assert read_exported(sut)["WALLTIME_RUNANDTIME"] == "60"
    assert read_exported(sut)["WALLTIME"] == str(9 + 1 * (60 + 3))
    assert read_exported(sut, env={"NEXP": "5"})["WALLTIME"] == str(9 + 5 * (60 + 3))


def test_nemo_values_derived_from_the_gpus_follow_the_system(tmp_path: Path) -> None:
    folder = copy_impl(NEMO, tmp_path)
    base_name = "config_GB200_18x4x1xtp1pp1cp8.sh"
    base = read_exported(folder / base_name)
    # config_common.sh names the system from BASH_SOURCE[1], the config that sources it
    assert base["DGXSYSTEM"] == "GB200_18x4x1xtp1pp1cp8" and base["SEGMENT"] == "2"
    sut = read_exported(write_sut(folder, base_name))
    assert sut["DGXSYSTEM"] == "SUT" and sut["DGXNGPU"] == "8"
    assert sut["SEGMENT"] == "1"  # $(( CP / DGXNGPU )) with the system's 8 GPUs
    assert sut["LR"] == base["LR"] == "0.0005" and sut["WALLTIME"] == base["WALLTIME"]


def test_amd_and_other_nvidia_configs_read_without_error(tmp_path: Path) -> None:
    amd = read_exported(published() / AMD)
    assert amd["DGXSYSTEM"] == "MI300X_1x8x1" and amd["DGXNGPU"] == "8"
    assert amd["WALLTIME"] == "50" and amd["MLPERF_SUBMISSION_ORG"] == "AMD"
    nemo = read_exported(published() / NEMO / "config_GB200_2x4x2xtp1pp1cp2_fp4.sh")
    assert nemo["DGXSYSTEM"] == "GB200_2x4x2xtp1pp1cp2_fp4" and nemo["DGXNNODES"] == "2"


def test_config_mounts_unexported_variables(tmp_path: Path) -> None:
    mounts = published() / RETINANET / "config_mounts.sh"
    env = {"DATADIR": "/d", "LOGDIR": "/l", "BACKBONE_DIR": "/b"}
    names = ["_cont_mounts", "cont_mounts_to_verify", "NOT_SET_ANYWHERE"]
    found = read_vars(mounts, names, env=env)
    assert found == {
        "_cont_mounts": "/d:/datasets/open-images-v6,/l:/results,/b:/root/.cache/torch",
        "cont_mounts_to_verify": "'/datasets/open-images-v6'",
    }
    synthetic = read_vars(mounts, ["_cont_mounts"], env={**env, "USE_SYNTHETIC_DATA": "1"})
    assert synthetic == {"_cont_mounts": "/l:/results"}
    assert "_cont_mounts" not in read_exported(mounts, env=env)


def test_values_with_newlines_quotes_and_bytes_round_trip(tmp_path: Path) -> None:
    folder = copy_impl(RETINANET, tmp_path)
    odd = "two\nlines, 'quotes' \"and\" $dollar `tick` \\ \u00e9 \t="
    sut = write_sut(folder, hyperparameters={"retinanet": {"EXTRA_PARAMS": odd, "FLAG": True}})
    assert read_exported(sut)["EXTRA_PARAMS"] == odd
    assert read_exported(sut)["FLAG"] == "1"
    script = tmp_path / "config_vars.sh"
    script.write_text("A=$'x\\ny\\xff'\nB=\n")
    assert read_vars(script, ["A", "B", "C"]) == {"A": "x\ny\udcff", "B": ""}


def one_line_error(path: Path, **kwargs: object) -> str:
    with pytest.raises(ConfigScriptError) as info:
        read_exported(path, **kwargs)  # type: ignore[arg-type]
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


def test_a_failing_script_names_its_status_and_last_stderr_line(tmp_path: Path) -> None:
    script = tmp_path / "config_fails.sh"
    script.write_text('echo "first" >&2\necho "no data in $DATADIR" >&2\nexit 3\n')
    message = one_line_error(script, env={"DATADIR": "/nowhere"})
    assert "exit status 3" in message and message.endswith("no data in /nowhere")
    exits = tmp_path / "config_exits.sh"
    exits.write_text("export A=1\nexit 0\nexport B=2\n")
    assert "calls exit" in one_line_error(exits)
    missing = one_line_error(tmp_path / "config_none.sh")
    assert "no such config script" in missing


def test_a_script_that_asks_gets_no_answer_and_fails(tmp_path: Path) -> None:
    script = tmp_path / "config_asks.sh"
    script.write_text('read -r -p "Overwrite? " answer\n[ "$answer" = y ]\n')
    message = one_line_error(script)
    assert "exit status 1" in message and "still running" not in message


def running(pid: int) -> bool:
    """Alive and not a zombie (a killed grandchild waits for init to reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def test_a_script_past_its_timeout_is_killed_with_all_it_started(tmp_path: Path) -> None:
    script = tmp_path / "config_sleeps.sh"
    script.write_text("echo $$ > bash.pid\nsleep 600 &\necho $! > sleep.pid\nwait\n")
    # 1 s; longer only if a loaded machine did not even start the sleep in that time
    for timeout in (1, 10, 60):
        start = time.monotonic()
        message = one_line_error(script, timeout_s=timeout)
        assert time.monotonic() - start < timeout + 30
        assert f"still running after {timeout} s" in message
        if (tmp_path / "sleep.pid").is_file() and (tmp_path / "sleep.pid").read_text():
            break
    pids = [int((tmp_path / f).read_text()) for f in ("bash.pid", "sleep.pid")]
    deadline = time.monotonic() + 60
    while any(running(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(running(p) for p in pids)


def test_system_values_need_topology_and_gpus() -> None:
    with pytest.raises(SystemConfigError, match=r"systems\.SUT\.topology needs sockets.*lscpu"):
        system_values("SUT", {"gpus": 8, "topology": {}}, "retinanet")
    with pytest.raises(SystemConfigError, match=r"systems\.SUT\.gpus is 0.*at least one GPU"):
        system_values("SUT", {**SUT_YAML, "gpus": 0}, "retinanet")
    with pytest.raises(SystemConfigError, match="DGXNGPU.*set it there"):
        system_values("SUT", {**SUT_YAML, "hyperparameters": {"b": {"DGXNGPU": 2}}}, "b")
    with pytest.raises(SystemConfigError, match="'BASH_ENV' is bash's own"):
        system_values("SUT", {**SUT_YAML, "hyperparameters": {"b": {"BASH_ENV": "x"}}}, "b")
    values = system_values(
        "SUT", {**SUT_YAML, "slurm": {"nodes": 2}, "timeout_s": 90}, "b", timeout_s=7200
    )
    assert values == {
        "DGXSYSTEM": "SUT",
        "DGXNNODES": "2",
        "DGXNGPU": "8",
        "DGXNSOCKET": "2",
        "DGXSOCKETCORES": "16",
        "DGXHT": "2",
        "WALLTIME_RUNANDTIME": "2",  # the system's timeout_s wins over the benchmark's
    }


def test_generate_refuses_names_that_are_not_plain() -> None:
    values = system_values("SUT", SUT_YAML, "retinanet")
    for bad in ("sub/config_X.sh", "../config_X.sh", "X.sh", "config_SUT.sh", "config_a b.sh"):
        with pytest.raises(ValueError, match="base config"):
            generate(bad, "SUT", values)
    with pytest.raises(ValueError, match="not a shell variable name"):
        generate(BASE, "SUT", {**values, "A-B": "1"})
    with pytest.raises(ValueError, match="not the system"):
        generate(BASE, "SUT", {**values, "DGXSYSTEM": "OTHER"})


def test_config_files_read_the_base_from_the_benchmark(tmp_path: Path) -> None:
    config = {
        "benchmarks": {
            "retinanet": {
                "timeout_s": 1800,
                "implementation": {
                    "hyperparameters": {"NUMEPOCHS": 9},
                    "container": {"config_script": "config-sh", "base_config": BASE},
                },
            }
        },
        "systems": {"SUT": {**SUT_YAML, "hyperparameters": {"retinanet": {"LR": 1e-4}}}},
    }
    files = config_files(config, "retinanet", "SUT")
    assert list(files) == ["config_SUT.sh"]
    folder = copy_impl(RETINANET, tmp_path)
    (folder / "config_SUT.sh").write_text(files["config_SUT.sh"])
    sut = read_exported(folder / "config_SUT.sh")
    assert (sut["NUMEPOCHS"], sut["LR"], sut["WALLTIME_RUNANDTIME"]) == ("9", "0.0001", "30")
    del config["benchmarks"]["retinanet"]["implementation"]["container"]["base_config"]
    with pytest.raises(SystemConfigError, match=r"container\.base_config is not set"):
        config_files(config, "retinanet", "SUT")


def test_the_command_line_shows_a_config_and_prints_a_generated_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = published() / RETINANET / BASE
    assert scripts_main(["config-sh", "--base", str(base), "--show", "--env", "NEXP=2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == sorted(lines) and "DGXNGPU=4" in lines and "NEXP=2" in lines
    assert "WALLTIME=75" in lines
    sut = str(REPO / "config" / "systems" / "sut-4xv100.yaml")
    args = ["config-sh", "SUT", "--benchmark", "gnmt-v0.6", "--configfile", sut]
    assert scripts_main(args) == 1
    assert "config_script is not 'config-sh'" in capsys.readouterr().err
    assert scripts_main([*args, "--base", str(base)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# config_SUT.sh\n#!/bin/bash\n")
    assert "export DGXNGPU=4\n" in out and f'/{BASE}"\n' in out
