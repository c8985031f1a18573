"""Bad inputs get one clear message, never a traceback: config files that are missing, folders,
not YAML, or targets written after --configfile; non-finite numbers; names with a newline."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts.campaign import config_checks
from scripts.core import config as cfg
from scripts.core import config_files
from tests.conftest import copy_workflow, fake_campaign, snakemake
from tests.test_config import error_of

TARGET = "results/gnmt/summary.csv"


def short_error(proc: subprocess.CompletedProcess[str], *expected: str) -> str:
    """The run failed with a short stderr holding every ``expected`` text, no traceback."""
    assert proc.returncode != 0
    err = proc.stderr
    assert "Traceback" not in err and 'File "' not in err, err
    assert len(err.splitlines()) <= 3, err
    for text in expected:
        assert text in err, err
    return err


# ---------------------------------------------------------------------------------------------
# Config files: missing, a folder, a YAML error, a target after --configfile


def test_a_yaml_error_names_file_line_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("benchmarks:\n  gnmt:\n    runs: [1\n")
    with pytest.raises(cfg.ConfigError) as info:
        cfg.load_yaml(bad)
    msg = str(info.value)
    assert msg.startswith(f"{bad}, line 4, column 1: YAML syntax error: expected ',' or ']'")
    assert "while parsing a flow sequence at line 3, column 11" in msg
    tab = tmp_path / "tab.yaml"
    tab.write_text("a:\n\tb: 1\n")
    with pytest.raises(cfg.ConfigError, match=r"tab.yaml, line 2, column 1: .*'\\t'"):
        cfg.load_yaml(tab)


def test_missing_and_folder_config_files_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(cfg.ConfigError, match=r"^\S*nope.yaml \(a config file\) does not exist$"):
        cfg.load_yaml(tmp_path / "nope.yaml")
    with pytest.raises(cfg.ConfigError, match=r"is a folder, not a YAML file$"):
        cfg.load_yaml(tmp_path)


@pytest.mark.parametrize(
    ("value", "target"),
    [
        ("results/gnmt/summary.csv", True),
        ("results/gnmt/report.html", True),
        ("results/gnmt/local/run_01/result.json", True),
        ("data/gnmt-v0.6/manifest.json", True),
        ("plots.png", True),
        ("my.yaml", False),
        ("config/systems/dgx1.yaml", False),
        ("site.json", False),
        ("results/overlay.yaml", False),
    ],
)
def test_what_looks_like_a_target(value: str, target: bool) -> None:
    assert config_files.looks_like_target(value) is target


def test_a_config_file_that_is_not_a_mapping_is_named(tmp_path: Path) -> None:
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    (tmp_path / "empty.yaml").write_text("")
    (tmp_path / "ok.json").write_text('{"benchmarks": {"gnmt": {"runs": 3}}}')
    problems = config_files.configfile_problems(
        [tmp_path / "list.yaml", tmp_path / "empty.yaml", tmp_path / "ok.json"]
    )
    assert problems == [
        f"{tmp_path / name} (given with --configfile): a config file must be a mapping of keys "
        f"at the top level, found {found}"
        for name, found in (("list.yaml", "list"), ("empty.yaml", "nothing"))
    ]


def test_status_names_a_bad_overlay_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from scripts.campaign import status

    bad = tmp_path / "bad.yaml"
    bad.write_text("systems: {local: [\n")
    assert status.main(["--configfile", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {bad}, line 2, column 1: YAML syntax error: ")
    assert len(err.splitlines()) == 1


# ---------------------------------------------------------------------------------------------
# Hostile config files: an alias bomb, a key given twice, a file over the size limit

# "billion laughs": 9 lines of 9 aliases each, 9**9 = 387,420,489 strings once expanded
ALIAS_BOMB = 'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n' + "".join(
    f"{new}: &{new} [{', '.join([f'*{old}'] * 9)}]\n" for old, new in pairwise("abcdefghi")
)
DUPLICATE_KEY = "benchmarks:\n  gnmt:\n    runs: 2\n    timeout_s: 60\n\n\n    runs: 7\n"


def test_an_alias_bomb_is_refused_in_one_line_and_never_expanded(tmp_path: Path) -> None:
    import tracemalloc  # the bytes allocated while reading it

    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(ALIAS_BOMB)
    assert len(ALIAS_BOMB) == 414
    tracemalloc.start()
    try:
        with pytest.raises(cfg.ConfigError) as info:
            cfg.read_config_file(bomb, "given with --configfile")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(info.value) == (
        f"{bomb}, line 2, column 8: YAML alias *a: anchors and aliases are not accepted in "
        "config files (an alias bomb would expand to billions of values); write the value out"
    )
    assert peak < 256 << 10  # what 414 bytes of YAML take, not 387 million strings
    assert config_files.configfile_problems([bomb]) == [str(info.value)]


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("base: &b {x: 1}\nother:\n  <<: *b\n  y: 2\n", "line 3, column 7: YAML alias *b"),
        ("a: &a [1, *a]\n", "line 1, column 11: YAML alias *a"),
        ("x: &s text\ny: *s\n", "line 2, column 4: YAML alias *s"),
        ("a: &e {}\nb: [*e]\n", "line 2, column 5: YAML alias *e"),
    ],
    ids=["merge-key", "recursive", "scalar", "empty-mapping"],
)
def test_every_alias_is_refused(tmp_path: Path, text: str, where: str) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(text)
    with pytest.raises(cfg.ConfigError, match=re.escape(f"{path}, {where}: anchors and aliases")):
        cfg.load_yaml(path)


def test_an_anchor_without_an_alias_and_an_inline_merge_are_plain_yaml(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("a: &unused 1\nb: {<<: {x: 1, y: 2}, x: 3}\n")
    assert cfg.load_yaml(path) == {"a": 1, "b": {"x": 3, "y": 2}}


def test_a_key_given_twice_in_a_mapping_names_the_key_and_both_lines(tmp_path: Path) -> None:
    dup = tmp_path / "dup.yaml"
    dup.write_text(DUPLICATE_KEY)
    with pytest.raises(cfg.ConfigError) as info:
        cfg.load_yaml(dup)
    assert str(info.value) == (
        f"{dup}: key 'runs' is given twice in one mapping, at line 3 and line 7 (YAML would "
        "keep the second silently); keep one"
    )
    flow = tmp_path / "flow.yaml"
    flow.write_text("systems: {local: {threads: 2}, local: {threads: 4}}\n")
    with pytest.raises(cfg.ConfigError, match=r"key 'local' is given twice .* line 1 and line 1"):
        cfg.load_yaml(flow)
    js = tmp_path / "dup.json"  # JSON keeps the last silently too
    js.write_text('{"benchmarks": {"gnmt": {"runs": 2,\n "runs": 7}}}')
    with pytest.raises(cfg.ConfigError, match=r"key 'runs' is given twice .* line 1 and line 2"):
        cfg.load_yaml(js)
    same = tmp_path / "same.yaml"  # the same key in two mappings is no duplicate
    same.write_text("a: {runs: 1}\nb: {runs: 2}\n")
    assert cfg.load_yaml(same) == {"a": {"runs": 1}, "b": {"runs": 2}}


def test_a_config_file_over_the_size_limit_is_refused_before_it_is_parsed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("a: 1\n" + "#" * cfg.MAX_CONFIG_BYTES)
    monkeypatch.setattr(cfg, "_strict_load", lambda *a: pytest.fail("parsed"))
    monkeypatch.setattr(cfg.json, "loads", lambda *a, **k: pytest.fail("parsed"))
    with pytest.raises(cfg.ConfigError) as info:
        cfg.read_config_file(big, "given with --configfile")
    assert str(info.value) == (
        f"{big} (given with --configfile) is {cfg.MAX_CONFIG_BYTES + 5} bytes: a config file "
        "may have at most 1048576 bytes (1 MiB); not read"
    )
    # a file whose size says nothing (a device) is read no further than the limit
    with pytest.raises(cfg.ConfigError, match=r"^/dev/zero \(a config file\) is over 1048576"):
        cfg.read_config_file("/dev/zero")


def test_every_shipped_config_file_is_far_under_the_limit_and_reads_strictly() -> None:
    files = sorted((cfg.WORKFLOW_DIR / "config").rglob("*.yaml"))
    assert len(files) > 20
    for path in files:  # the largest, the schema, is 29 KiB; a round's definitions 5.4 KiB
        assert path.stat().st_size < cfg.MAX_CONFIG_BYTES // 10, path
        assert cfg.read_config_file(path) == yaml.safe_load(path.read_text()), path


@pytest.mark.parametrize("text", ["[" * 100_000, "[" * 100_000 + "]" * 100_000])
def test_values_nested_too_deeply_are_one_line(tmp_path: Path, text: str) -> None:
    deep = tmp_path / "deep.yaml"
    deep.write_text(text)
    with pytest.raises(cfg.ConfigError, match=r"deep.yaml \(a config file\): values nested too"):
        cfg.load_yaml(deep)


@pytest.fixture(scope="module")
def wf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One copy of the workflow for the command-line cases (none of them writes anything)."""
    wf = copy_workflow(tmp_path_factory.mktemp("messages") / "wf")
    (wf / "bad.yaml").write_text("benchmarks:\n  gnmt:\n    runs: [1\n")
    (wf / "small.yaml").write_text("benchmarks:\n  gnmt:\n    runs: 3\n")
    (wf / "bomb.yaml").write_text(ALIAS_BOMB)
    (wf / "dup.yaml").write_text(DUPLICATE_KEY)
    (wf / "big.yaml").write_text("#" * (cfg.MAX_CONFIG_BYTES + 1))
    return wf


@pytest.mark.workflow
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--configfile", "nope.yaml"],
            ["error: nope.yaml (given with --configfile) does not exist"],
        ),
        (["--configfile", "config"], ["error: config (given with --configfile) is a folder"]),
        (
            ["--configfile", "bad.yaml"],
            ["error: bad.yaml, line 4, column 1: YAML syntax error", "line 3, column 11"],
        ),
        (
            ["--configfile", "small.yaml", TARGET],
            [f"error: {TARGET} was given to --configfile but is a target: targets go before "],
        ),
        (
            ["--configfile", "bomb.yaml"],
            ["error: bomb.yaml, line 2, column 8: YAML alias *a: anchors and aliases are not"],
        ),
        (
            ["--configfile", "dup.yaml"],
            ["error: dup.yaml: key 'runs' is given twice in one mapping, at line 3 and line 7"],
        ),
        (
            ["--configfile", "big.yaml"],
            ["error: big.yaml (given with --configfile) is 1048577 bytes: a config file may"],
        ),
    ],
    ids=[
        "missing",
        "folder",
        "yaml-error",
        "target-after-configfile",
        "alias-bomb",
        "duplicate-key",
        "too-large",
    ],
)
def test_snakemake_says_what_is_wrong_with_a_configfile_in_one_line(
    wf: Path, args: list[str], expected: list[str]
) -> None:
    proc = snakemake(wf, "-n", "--cores", "1", *(args if TARGET in args else [TARGET, *args]))
    short_error(proc, *expected)
    assert not (wf / "results").exists() and not (wf / ".snakemake" / "locks").exists()


@pytest.mark.workflow
def test_a_yaml_error_in_a_default_config_file_names_it(tmp_path: Path) -> None:
    wf = copy_workflow(tmp_path / "wf")
    config = wf / "config/config.yaml"
    # the error is at the end of the file: the line after the appended one
    line = len(config.read_text().splitlines()) + 2
    with config.open("a") as fh:
        fh.write("statistics: {min_effect: [\n")
    proc = snakemake(wf, TARGET, "-n", "--cores", "1")
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr  # snakemake prints a Snakefile's error on stdout
    assert "Traceback" not in out and "config_files.py" not in out
    assert re.search(rf"config/config\.yaml, line {line}, column 1: YAML syntax error", out), out


# ---------------------------------------------------------------------------------------------
# Non-finite numbers


@pytest.mark.parametrize(
    ("overlay", "expected"),
    [
        ({"benchmarks": {"gnmt": {"timeout_s": float("inf")}}}, "benchmarks.gnmt.timeout_s: .inf"),
        (
            {"benchmarks": {"gnmt": {"quality": {"target": float("nan")}}}},
            "benchmarks.gnmt.quality.target: .nan",
        ),
        ({"systems": {"local": {"timeout_s": float("-inf")}}}, "systems.local.timeout_s: -.inf"),
        (
            {"benchmarks": {"gnmt": {"implementation": {"hyperparameters": {"lr": float("nan")}}}}},
            "benchmarks.gnmt.implementation.hyperparameters.lr: .nan",
        ),
    ],
)
def test_non_finite_numbers_are_refused_with_file_and_key(
    overlay: dict[str, Any], expected: str
) -> None:
    msg = error_of(("inf.yaml", overlay))
    assert f"inf.yaml: {expected} is not a finite number" in msg


@pytest.mark.workflow
def test_snakemake_refuses_timeout_inf_before_any_job(wf: Path) -> None:
    (wf / "inf.yaml").write_text("benchmarks:\n  gnmt:\n    timeout_s: .inf\n")
    proc = snakemake(wf, TARGET, "-n", "--cores", "1", "--configfile", "inf.yaml")
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "OverflowError" not in out and "Traceback" not in out
    assert "inf.yaml: benchmarks.gnmt.timeout_s: .inf is not a finite number" in out


@pytest.mark.workflow
def test_a_system_named_summary_csv_is_one_message_not_a_child_io_exception(wf: Path) -> None:
    (wf / "clash.yaml").write_text(
        "systems:\n  summary.csv: {backend: local}\n"
        "campaign: {systems: [summary.csv], reference_system: summary.csv}\n"
    )
    proc = snakemake(wf, TARGET, "-n", "--cores", "1", "--configfile", "clash.yaml")
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "ChildIOException" not in out and "Traceback" not in out
    assert "clash.yaml: systems: 'summary.csv' is refused: a system's runs go in " in out


# ---------------------------------------------------------------------------------------------
# Schema patterns match the whole string, in Python (jsonschema: re.search) and ECMA-262

# a valid example of every pattern of the schema
EXAMPLES = {
    "^config_[A-Za-z0-9_.-]+[.]sh$(?!\\n)": "config_GB200_002x04x032.sh",
    "^/[^\\n,:]*$(?!\\n)": "/datasets/open-images-v6",
    "^(?!/)(?!.*(^|/)[.][.](/|$))[^\\n]*$(?!\\n)": "DATADIR/data",
    "^[A-Za-z_][A-Za-z0-9_]*$(?!\\n)": "train_run",
    "^[A-Za-z0-9][A-Za-z0-9_.-]*$(?!\\n)": "dgx1-v0.6",
    "^[A-Za-z][A-Za-z0-9_]*$(?!\\n)": "lr",
    "^(https?|file)://\\S+$(?!\\n)": "https://example.invalid/a.tar",
    "^[0-9a-f]{64}$(?!\\n)": "0" * 64,
    "^[0-9a-f]{32}$(?!\\n)": "0" * 32,
    "^[0-9a-f]{40}$(?!\\n)": "0" * 40,
    "^[a-z0-9][a-z0-9_./-]*$(?!\\n)": "mlperf/gnmt",
    "^/[^\\n]*$(?!\\n)": "/data",
    "^[A-Za-z0-9-]+$(?!\\n)": "GPU-0",
    "^[0-9]+[bkmgBKMG]?$(?!\\n)": "8g",
    "^[a-z]+$(?!\\n)": "memlock",
    "^-?[0-9]+(:-?[0-9]+)?$(?!\\n)": "-1:-1",
    "^/dev/\\S+$(?!\\n)": "/dev/infiniband/uverbs0",
    "^(seccomp|apparmor|label|no-new-privileges)([=:][^\\n]*)?$(?!\\n)": "seccomp=unconfined",
    "^[0-9]+\\.[0-9]+$(?!\\n)": "5.0",  # an MLPerf round (benchmarks.<b>.mlperf.round)
    "^[0-9]+\\.[0-9]+\\.[0-9]+$(?!\\n)": "5.0.0",  # its mlperf-logging ruleset
    # the system names the schema refuses: the benchmark's own outputs (tables, report, plots)
    "^(?:[Pp][Ll][Oo][Tt][Ss]|.*\\.(?:[Cc][Ss][Vv]|[Hh][Tt][Mm][Ll]))$(?!\\n)": "Summary.csv",
}


def schema_patterns(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["pattern"]} if isinstance(node.get("pattern"), str) else set()
        return found.union(*(schema_patterns(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(schema_patterns(v) for v in node))
    return set()


def test_every_schema_pattern_matches_the_whole_string_only() -> None:
    patterns = schema_patterns(cfg.load_schema())
    assert patterns == set(EXAMPLES)  # a new pattern needs an example here
    for pattern, example in EXAMPLES.items():
        assert re.search(pattern, example), pattern
        for bad in (example + "\n", "\n" + example, example + "\nx", example + " \n"):
            assert not re.search(pattern, bad), (pattern, bad)


def test_the_patterns_mean_the_same_in_ecma_262() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("no node to check ECMA-262 regular expressions")
    cases = [(p, s) for p, e in EXAMPLES.items() for s in (e, e + "\n", e + "\nx", "x" + e)]
    script = (
        "const cases = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
        "console.log(JSON.stringify(cases.map(([p, s]) => new RegExp(p, 'u').test(s))));"
    )
    out = subprocess.run(
        [node, "-e", script], input=json.dumps(cases), capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == [bool(re.search(p, s)) for p, s in cases]


@pytest.mark.parametrize(
    "overlay",
    [
        {"systems": {"local\n": {"backend": "local"}}},
        {"campaign": {"benchmarks": ["gnmt\n"]}},
        {"benchmarks": {"gnmt": {"implementation": {"hyperparameters": {"lr\n": 1}}}}},
        {"systems": {"local": {"env": {"PATH\n": "x"}}}},
    ],
)
def test_a_name_ending_in_a_newline_is_refused(overlay: dict[str, Any]) -> None:
    assert "nl.yaml" in error_of(("nl.yaml", yaml.safe_load(yaml.safe_dump(overlay))))


# ---------------------------------------------------------------------------------------------
# A full disk (a real tmpfs in a mount namespace of its own)


def _in_full_disk(tmp_path: Path, setup: str, command: str) -> subprocess.CompletedProcess[str]:
    """Run ``setup`` then ``command`` (bash) in a mount namespace where ``$FULL`` is a 4 MiB
    tmpfs (room for a copy of the workflow); ``fill`` fills it up. Skips where this machine
    cannot make one."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare")
    full = tmp_path / "full"
    full.mkdir()
    script = (
        f"set -e; FULL={shlex.quote(str(full))}; fill() {{ head -c 8m /dev/zero > $FULL/filler "
        "2>/dev/null || true; }; "
        'mount -t tmpfs -o size=4m tmpfs "$FULL" || exit 77; '
        f"{setup}; set +e; {command}"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAKEMAKE")}
    proc = subprocess.run(
        ["unshare", "-m", "bash", "-c", script], capture_output=True, text=True, env=env
    )
    if proc.returncode == 77 or "unshare failed" in proc.stderr:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    return proc


@pytest.mark.workflow
def test_a_full_disk_is_one_line_before_snakemake_writes_anything(tmp_path: Path) -> None:
    wf = copy_workflow(tmp_path / "src")
    snake = f"{shlex.quote(sys.executable)} -m snakemake {TARGET} --cores 1"
    proc = _in_full_disk(
        tmp_path, f'cp -a {shlex.quote(str(wf))} "$FULL/wf"; fill', f'cd "$FULL/wf"; {snake}'
    )
    short_error(proc, "error: the disk of ", "/full/wf is full (", "room for its log and locks")


@pytest.mark.workflow
def test_a_disk_full_during_a_run_keeps_nothing_half_written(tmp_path: Path) -> None:
    """results/ on a full disk: the run fails, its partial log is removed (the attempt's log is
    kept under logs/failed/), and no result or table is left behind."""
    wf = copy_workflow(tmp_path / "wf")
    overlay = fake_campaign(wf, runs=2, faults={"epoch_s": 0})
    prep = snakemake(
        wf, "data/fake/dataset", "results/fake/local/environment.json", "--cores", "1",
        "--configfile", str(overlay),
    )  # fmt: skip
    assert prep.returncode == 0, prep.stderr[-3000:]
    keep = tmp_path / "keep"
    shutil.copytree(wf / "results", keep)
    target = "results/fake/summary.csv"
    snake = f"{shlex.quote(sys.executable)} -m snakemake {target} --cores 1 --configfile fake.yaml"
    proc = _in_full_disk(
        tmp_path,
        f'cp -a {shlex.quote(str(keep))}/. "$FULL"/; fill; cd {shlex.quote(str(wf))}; '
        'mount --bind "$FULL" results',
        f"{snake}; echo EXIT=$?; find results -type f | sort",
    )
    assert "EXIT=1" in proc.stdout, proc.stdout + proc.stderr
    left = [line for line in proc.stdout.splitlines() if line.startswith("results/")]
    assert left == ["results/fake/local/environment.json", "results/filler"]
    kept = sorted((wf / "logs/failed/fake/local").glob("run_*.attempt1.*.log"))
    assert len(kept) == 2
    for run in ("01", "02"):
        out = (wf / f"logs/train_run/fake/local/run_{run}.log").read_text()
        assert re.search(
            rf"/results/fake/local/run_{run} is full \(\d+ KiB free\) while writing "
            rf"results/fake/local/run_{run}/mlperf.log; ",
            out,
        ), out


@pytest.mark.workflow
def test_a_target_ending_in_a_newline_is_no_rules_output(wf: Path) -> None:
    name = config_checks.load_campaign()["benchmarks"]["gnmt"]["dataset"]["files"][0]["name"]
    proc = snakemake(wf, f"data/gnmt/download/{name}\n", "-n", "--cores", "1")
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert f"No rule to produce data/gnmt/download/{name}\n" in out and "Traceback" not in out
