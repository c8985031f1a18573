"""The rules' input, params and resources functions (scripts/workflow/rule_inputs.py), without
snakemake."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from snakemake.io import is_flagged

from scripts.campaign import config_checks, run_specs
from scripts.core import layout
from scripts.core.config import ConfigError
from scripts.run import spec as spec_module
from scripts.run.spec import RunSpec
from scripts.workflow.rule_inputs import PLOTS, RuleInputs
from tests.conftest import published

REPO = Path(__file__).resolve().parents[1]
V06 = published() / "mlperf-v0.6-nvidia"


def w(benchmark: str = "gnmt", system: str = "local", run: str = "01", **extra: str):
    return SimpleNamespace(benchmark=benchmark, system=system, run=run, **extra)


def inputs_for(tmp_path: Path, *overlays: object, **kwargs: object) -> RuleInputs:
    files = []
    for i, overlay in enumerate(overlays):
        if isinstance(overlay, dict):
            path = tmp_path / f"overlay{i}.yaml"
            path.write_text(yaml.safe_dump(overlay))
            files.append(path)
        else:
            files.append(REPO / str(overlay))
    config = config_checks.load_campaign(files)
    return RuleInputs(config, REPO, python="/usr/bin/python3", **kwargs)  # type: ignore[arg-type]


def test_the_default_campaign_targets_and_its_runs(tmp_path):
    inputs = inputs_for(tmp_path)
    assert inputs.campaign_targets() == [
        "results/gnmt/summary.csv",
        "results/gnmt/comparison.csv",
        "results/gnmt/report.html",
    ]
    runs = inputs.run_results("gnmt")
    assert runs[0] == "results/gnmt/local/run_01/result.json"
    assert len(runs) == inputs.config["benchmarks"]["gnmt"]["runs"]
    assert inputs.expected_runs("gnmt") == {"local": len(runs)}
    assert inputs.plots("gnmt") == [f"results/gnmt/plots/{p}.png" for p in PLOTS]
    assert inputs.environments("gnmt") == ["results/gnmt/local/environment.json"]


def test_a_benchmark_without_systems_is_one_clear_error(tmp_path):
    inputs = inputs_for(tmp_path)
    with pytest.raises(
        ConfigError, match="no system of the campaign has runs of benchmark 'gnmt-v0.6'"
    ):
        inputs.run_results("gnmt-v0.6")


def test_a_generated_dataset_is_checked_as_its_folder_and_a_fetched_one_file_by_file(tmp_path):
    inputs = inputs_for(tmp_path)
    ds = inputs.config["benchmarks"]["gnmt"]["dataset"]
    data = inputs.data_dir
    if inputs.uses_script("gnmt"):
        assert inputs.dataset_inputs(w()) == [f"{data}/gnmt/generated"]
    else:
        assert inputs.dataset_inputs(w()) == [
            f"{data}/gnmt/download/{f['name']}" for f in ds["files"]
        ]
        assert inputs.dataset_files_dir(w()) == f"{data}/gnmt/download"
    assert json.loads(shlex.split(inputs.files_json(w()))[0]) == ds.get("files", [])


def test_download_arguments_try_the_mirror_first_and_carry_the_checksums(tmp_path):
    inputs = inputs_for(tmp_path)
    files = inputs.dataset_files("gnmt")
    name = files[0]["name"]
    mirror = {"benchmarks": {"gnmt": {"dataset": {"mirror": "http://127.0.0.1:9/m"}}}}
    mirrored = inputs_for(tmp_path, mirror)
    words = shlex.split(mirrored.download_args(SimpleNamespace(benchmark="gnmt", file=name)))
    urls = [words[i + 1] for i, x in enumerate(words) if x == "--url"]
    assert urls[0] == f"http://127.0.0.1:9/m/{name}"
    assert "--sha256" in words and files[0]["sha256"] in words
    with pytest.raises(ConfigError, match="has no dataset file 'nope'"):
        inputs.dataset_file("gnmt", "nope")
    assert "--retries" in inputs.download_policy_args()


def test_a_run_spec_is_the_plan_s_for_the_run(tmp_path):
    inputs = inputs_for(tmp_path)
    spec = json.loads(inputs.run_spec_json(w(run="03")))
    expected = json.loads(
        run_specs.run_spec(
            inputs.config, "gnmt", "local", 3, python="/usr/bin/python3",
            dataset_dir=f"{inputs.data_dir}/gnmt/dataset", run_dir="results/gnmt/local/run_03",
            gpu_assign="local", prepared_dir=None,
        ).to_json()
    )  # fmt: skip
    assert spec == expected
    remote = inputs_for(tmp_path, remote_exec=True)
    assert json.loads(remote.run_spec_json(w(run="03"))) != spec  # GPUs from the scheduler
    words = shlex.split(inputs.result_args(w(run="03")))
    assert words[words.index("--result") + 1] == "results/gnmt/local/run_03/result.json"
    assert (
        json.loads(words[words.index("--quality-json") + 1])
        == inputs.config["benchmarks"]["gnmt"]["quality"]
    )


def test_train_run_s_one_param_is_the_runner_s_arguments_quoted(tmp_path):
    inputs = inputs_for(tmp_path)
    words = shlex.split(inputs.runner_args(w(run="03")))
    assert json.loads(words[words.index("--spec") + 1]) == json.loads(
        inputs.run_spec_json(w(run="03"))
    )
    assert words[words.index("--failed-dir") + 1] == "logs/failed/gnmt/local"
    assert words[words.index("--result") + 1] == "results/gnmt/local/run_03/result.json"
    assert "--image-stamp" not in words  # a local system has no image
    docker = inputs_for(tmp_path, "config/systems/docker-cpu.yaml")
    words = shlex.split(docker.runner_args(w(system="docker-cpu")))
    assert words[words.index("--image-stamp") + 1] == "results/gnmt/docker-cpu/image.json"


def test_train_run_s_command_is_the_runner_on_the_rule_s_outputs_and_environment(tmp_path):
    """rules/train.smk's one placeholder: the runner's whole command line, its --log and
    --meta the rule's outputs for these wildcards and --environment its input."""
    inputs = inputs_for(tmp_path)
    words = shlex.split(str(inputs.runner_command(w(run="03"))))
    assert words[:5] == [
        "env",
        f"PYTHONPATH={REPO}",
        "/usr/bin/python3",
        "-m",
        "scripts.run.runner",
    ]
    assert words[5:] == [
        *shlex.split(inputs.runner_args(w(run="03"))),
        "--log",
        "results/gnmt/local/run_03/mlperf.log",
        "--meta",
        "results/gnmt/local/run_03/run.json",
        "--environment",
        "results/gnmt/local/environment.json",
    ]
    rule = (REPO / "rules/train.smk").read_text()
    for line in (
        'log="results/{benchmark}/{system}/run_{run}/mlperf.log"',
        'meta="results/{benchmark}/{system}/run_{run}/run.json"',
        'environment=ancient("results/{benchmark}/{system}/environment.json")',
        '"exec {params.command} > {log:q} 2>&1"',
    ):
        assert line in rule


def test_the_spec_with_its_comparability_record_spliced_in_is_the_same_text(tmp_path):
    inputs = inputs_for(tmp_path)
    for run in ("01", "02"):
        text = inputs.run_spec_json(w(run=run))  # the second splices the record encoded once
        assert text == RunSpec.from_json(text).to_json()
    spec = RunSpec.from_json(text)
    marker = dataclasses.replace(spec, command=spec_module._SPLICE)  # a value equal to the marker
    encoded = json.dumps(spec.comparability, sort_keys=True)
    assert marker.to_json(comparability_json=encoded) == marker.to_json()


def test_train_run_asks_functions_only_where_systems_differ(tmp_path):
    inputs = inputs_for(tmp_path)
    assert inputs.train_threads() == inputs.config["systems"]["local"]["threads"]
    assert inputs.container_run_input_functions() == []  # no container system
    assert inputs.trained_systems_regex() == layout.NAME_WILDCARD
    docker = inputs_for(tmp_path, "config/systems/docker-cpu.yaml")
    (unpacked,) = docker.container_run_input_functions()
    assert is_flagged(unpacked, "unpack")  # unpack(): the function, flagged
    assert (
        unpacked.callable(w(system="docker-cpu"))["image"] == "results/gnmt/docker-cpu/image.json"
    )
    two = inputs_for(
        tmp_path, {"systems": {"wide": {"backend": "local", "threads": 3}},
                   "campaign": {"systems": ["local", "wide"]}},
    )  # fmt: skip
    threads = two.train_threads()
    assert callable(threads) and threads(w(system="wide")) == 3


def test_a_container_system_asks_its_backend_and_marks_the_image_ancient(tmp_path):
    marked = []

    def ancient(path: str) -> str:
        marked.append(path)
        return f"ancient:{path}"

    inputs = inputs_for(tmp_path, "config/systems/docker-cpu.yaml", ancient=ancient)
    job = w(system="docker-cpu")
    assert inputs.container_run_inputs(job)["image"] == "ancient:results/gnmt/docker-cpu/image.json"
    assert inputs.image_stamp_arg(job) == "--image-stamp results/gnmt/docker-cpu/image.json"
    assert inputs.environment_inputs(job) == {"image": "results/gnmt/docker-cpu/image.json"}
    words = shlex.split(inputs.environment_args(job))
    assert words[:2] == ["--backend", "docker"] and "--image-stamp" in words
    assert inputs.image_module(job) == inputs.backend_of("docker-cpu").module
    spec = json.loads(inputs.image_spec_json(job))
    assert spec  # the backend's image spec, as JSON
    build = inputs.image_build_inputs(job)
    assert all(v.startswith("ancient:build/gnmt/") for v in build.values())
    # a local system needs nothing of the kind
    local = w(system="local")
    assert inputs.container_run_inputs(local) == {}
    assert inputs.image_stamp_arg(local) == ""
    assert shlex.split(inputs.environment_args(local)) == ["--backend", "local"]


def test_resources_the_same_for_every_job_are_values_not_functions(tmp_path):
    partition = {
        "systems": {"cluster-node": {"slurm": {"partition": "gpu"}}},
        "campaign": {"systems": ["local", "cluster-node"]},
    }
    inputs = inputs_for(tmp_path, "config/systems/slurm-example.yaml", partition)
    res = inputs.job_resources("train")
    jobs = [w("gnmt", s) for s in ("local", "cluster-node")]
    assert any(callable(v) for v in res.values()) and not all(callable(v) for v in res.values())
    for name, value in res.items():
        if callable(value):
            assert len({repr(value(job)) for job in jobs}) > 1, name
        else:
            assert value is not None, name
    # the Slurm system's partition is its own; the local system has none
    partition = res["slurm_partition"]
    assert callable(partition) and partition(w(system="local")) is None
    assert partition(w(system="cluster-node")) == "gpu"


def test_train_resources_are_the_campaigns_and_a_run_outside_it_is_refused(tmp_path):
    """Only the campaign's (benchmark, system) pairs decide whether a resource is one value:
    the config's other systems (``local``, 2 threads) do not make a function of it, which
    Snakemake would call for every job it prints. A run of a pair outside the campaign is
    refused with the way to add it, so it never runs with the campaign's resources."""
    inputs = inputs_for(tmp_path, "config/systems/slurm-example.yaml")
    assert "local" in inputs.systems and inputs.systems["local"]["threads"] != 1
    res = inputs.job_resources("train")
    assert not any(callable(v) for v in res.values())
    assert res["cpus_per_task"] == inputs.systems["cluster-node"]["threads"] == 4
    assert shlex.split(inputs.runner_args(w(system="cluster-node")))[0] == "--spec"
    with pytest.raises(ConfigError) as err:
        inputs.runner_args(w(system="local"))
    assert str(err.value) == (
        "results/gnmt/local: system local has no runs of gnmt in the campaign (its systems: "
        "cluster-node); add it to the campaign (an overlay, or --config) to run it, so that "
        "its runs are checked and planned like the others"
    )
    with pytest.raises(
        ConfigError, match=r"benchmark other is not in campaign.benchmarks \(gnmt\)"
    ):
        inputs.runner_args(w(benchmark="other", system="cluster-node"))
    # the param refuses it when Snakemake evaluates it, not later when the shell is formatted
    with pytest.raises(ConfigError, match="system local has no runs of gnmt"):
        inputs.runner_command(w(system="local"))


def test_train_run_s_command_is_made_when_the_shell_is_formatted_and_once(tmp_path):
    """Snakemake evaluates every param of every job, also in a dry run that prints none
    (``-n -q``): the command line is made when the shell is formatted, once per job however
    often (``-n`` formats a printed job's shell three times), and is the same text."""
    inputs = inputs_for(tmp_path)
    made: list[str] = []

    def command_line(wildcards: SimpleNamespace) -> str:
        made.append(wildcards.run)
        return RuleInputs.command_line(inputs, wildcards)

    inputs.command_line = command_line  # type: ignore[method-assign]
    param = inputs.runner_command(w(run="03"))
    assert made == []
    shell = "exec {} > log 2>&1"
    first, second = shell.format(param), shell.format(param)
    assert made == ["03"] and first == second
    assert first == shell.format(RuleInputs.command_line(inputs, w(run="03")))
    assert str(param) == first[len("exec ") : -len(" > log 2>&1")]
    # Snakemake's own formatter, as it formats rules' shells (quoting: {params.command:q})
    from snakemake.utils import format as snakemake_format

    params = SimpleNamespace(command=param)
    assert snakemake_format("exec {params.command}", params=params) == f"exec {param}"
    assert snakemake_format("{params.command:q}", params=params) == shlex.quote(str(param))


def test_an_import_batch_holds_every_published_log_of_a_benchmark(tmp_path):
    """One batch per benchmark: its rule name, the system's folder as input, mlperf.log,
    run.json and result.json of each of the 10 runs as outputs, and a plan that names each
    run's log, folder and specification, with the round's compliance ruleset; train_run's
    constraint leaves the import system out."""
    shutil.copytree(V06 / "dgx1_ngc19.05_pytorch", tmp_path / "dgx1")
    overlay = {"systems": {"nvidia-dgx1-v0.6": {"import_dir": str(tmp_path / "dgx1")}}}
    inputs = inputs_for(tmp_path, "config/systems/nvidia-dgx1-v0.6.yaml", overlay)
    assert inputs.import_systems == ["nvidia-dgx1-v0.6"]
    trained = re.compile(inputs.trained_systems_regex())
    assert trained.fullmatch("local") and not trained.fullmatch("nvidia-dgx1-v0.6")
    [batch] = inputs.import_batches()  # the folder has gnmt only
    assert (batch.benchmark, batch.rule) == ("gnmt-v0.6", "import_gnmt_v0_6")
    assert batch.folders == (str(tmp_path / "dgx1" / "gnmt"),)
    run01 = "results/gnmt-v0.6/nvidia-dgx1-v0.6/run_01"
    assert len(batch.outputs) == 30
    # result.json first (the file collect_runs asks for), each run in order
    assert batch.outputs[:2] == (f"{run01}/result.json", f"{run01[:-1]}2/result.json")
    assert batch.outputs[10] == f"{run01}/run.json" and batch.outputs[20] == f"{run01}/mlperf.log"
    assert batch.outputs[-1] == "results/gnmt-v0.6/nvidia-dgx1-v0.6/run_10/mlperf.log"
    plan_ = batch.plan
    assert plan_["compliance_ruleset"] == "0.6.0"
    assert plan_["compliance_cache"] == ".snakemake/compliance"
    first = plan_["runs"][0]
    assert first["source"] == str(tmp_path / "dgx1" / "gnmt" / "result_0.txt")
    assert first["dir"] == run01
    assert (first["spec"]["run"], first["spec"]["mlperf_name"]) == (1, "gnmt")
    assert first["spec"]["config_fingerprint"] == plan_["runs"][9]["spec"]["config_fingerprint"]
    # the plan as a file named by its content, written once
    path = Path(inputs.import_plan_file(batch, tmp_path))
    assert json.loads(path.read_text()) == plan_
    before = path.stat().st_mtime_ns
    assert inputs.import_plan_file(batch, tmp_path) == str(path)
    assert path.stat().st_mtime_ns == before
    # a log touched (or rewritten), or a scaling.json added: another sources digest, so
    # another plan file, the job's input (the batch is redone)
    log = tmp_path / "dgx1" / "gnmt" / "result_3.txt"
    os.utime(log, ns=(log.stat().st_atime_ns, log.stat().st_mtime_ns + 1_000_000_000))
    seen = {batch.sources}
    for change in ("touched", "scaling.json"):
        if change == "scaling.json":
            (tmp_path / "dgx1" / "gnmt" / "scaling.json").write_text('{"scaling_factor": 1.0}')
        again = inputs_for(tmp_path, "config/systems/nvidia-dgx1-v0.6.yaml", overlay)
        [other] = again.import_batches()
        assert other.sources not in seen and other.plan["sources"] == other.sources
        assert other.plan["runs"] == plan_["runs"]
        assert again.import_plan_file(other, tmp_path) != str(path)
        seen.add(other.sources)
    ctx = inputs.report_context("gnmt-v0.6")
    assert set(ctx["systems"]) == {"nvidia-dgx1-v0.6"}
    assert ctx["benchmark"]["quality"]["target"] == 24.0
    assert inputs.environments("gnmt-v0.6") == []  # an import system has its run.json


def test_import_batches_hold_whole_systems_up_to_max_runs(tmp_path):
    """Two systems of 10 runs: one batch of both up to 20 runs; else one each (a system with
    more runs than max_runs is one batch, never split), named apart."""
    overlay = {
        "systems": {
            "nvidia-dgx1-v0.6": {"import_dir": str(V06 / "dgx1_ngc19.05_pytorch")},
            "nvidia-dgx2-v0.6": {"import_dir": str(V06 / "dgx2_ngc19.05_pytorch")},
        }
    }
    files = ("config/systems/nvidia-dgx1-v0.6.yaml", "config/systems/nvidia-dgx2-v0.6.yaml")
    inputs = inputs_for(tmp_path, *files, overlay)
    [both] = inputs.import_batches(max_runs=20)
    assert len(both.outputs) == 60 and len(both.folders) == 2
    for max_runs in (15, 5):
        one, two = inputs.import_batches(max_runs=max_runs)
        assert (one.rule, two.rule) == ("import_gnmt_v0_6", "import_gnmt_v0_6_2")
        assert {r["spec"]["system"] for r in one.plan["runs"]} == {"nvidia-dgx1-v0.6"}
        assert {r["spec"]["system"] for r in two.plan["runs"]} == {"nvidia-dgx2-v0.6"}
        assert set(one.outputs + two.outputs) == set(both.outputs)
        assert one.sources != two.sources


def test_no_import_system_no_batch_and_every_system_trains(tmp_path):
    inputs = inputs_for(tmp_path)
    assert inputs.import_batches() == []
    trained = re.compile(inputs.trained_systems_regex())
    assert all(trained.fullmatch(s) for s in inputs.systems)


def test_snakemake_takes_the_precomputed_parameters_of_every_wildcards_method(tmp_path):
    """Snakemake's own lookup (the name of its attribute, and what it returns) gives a bound
    method's parameters without inspecting it again for every job."""
    import inspect

    from snakemake.common import FUNC_OVERWRITE_PARAMS_ATTR, get_function_params

    from scripts.workflow.rule_inputs import SNAKEMAKE_PARAMS_ATTR

    assert FUNC_OVERWRITE_PARAMS_ATTR == SNAKEMAKE_PARAMS_ATTR
    inputs = inputs_for(tmp_path)
    checked = 0
    for name in dir(inputs):
        method = getattr(inputs, name)
        if name.startswith("_") or not inspect.ismethod(method):
            continue
        real = inspect.signature(method).parameters
        if next(iter(real), None) == "wildcards":
            assert hasattr(method, SNAKEMAKE_PARAMS_ATTR), name
            assert dict(get_function_params(method)) == dict(real), name
            checked += 1
        else:
            assert not hasattr(method, SNAKEMAKE_PARAMS_ATTR), name
    assert checked >= 19


def test_an_mlperf_benchmark_s_results_are_checked_with_its_round_s_ruleset(tmp_path):
    inputs = inputs_for(tmp_path)
    toy = shlex.split(inputs.result_args(w(run="01")))
    assert "--compliance-ruleset" not in toy  # the embedded benchmark is not MLPerf's
    v06 = shlex.split(inputs.result_args(w("gnmt-v0.6", "local", "01")))
    assert v06[v06.index("--compliance-ruleset") + 1] == "0.6.0"
    assert v06[v06.index("--compliance-cache") + 1] == ".snakemake/compliance"


def test_summarize_gets_a_window_only_where_the_m_of_n_protocol_is_set(tmp_path):
    assert inputs_for(tmp_path).window_option(w()) == ""  # the command as before the protocol
    windowed = inputs_for(tmp_path, {"statistics": {"window": 9}})
    assert windowed.window_option(w()) == "--window 9 "


def test_the_submission_rule_reads_its_plan_and_every_eligible_run(tmp_path, monkeypatch):
    """rules/submission.smk: the plan is a file named by its content (in the working folder),
    the inputs every run's files of the systems with a submission: block; a campaign with none
    is one clear error."""
    block = {"submitter": "ACME", "division": "closed", "status": "available", "system_name": "A"}
    overlay = {
        "campaign": {"benchmarks": ["gnmt", "gnmt-v0.6"]},
        "benchmarks": {"gnmt-v0.6": {"implementation": {"command": "{python} x.py"}}},
        "systems": {"local": {"submission": block}},
    }
    inputs = inputs_for(tmp_path, "config/benchmarks/mlperf-v0.6.yaml", overlay)
    monkeypatch.chdir(tmp_path)
    plan = Path(inputs.submission_plan_file())
    assert plan.parent == Path(".snakemake/submission-plans") and plan.is_file()
    assert json.loads(plan.read_text())["skipped"][0].startswith("benchmark gnmt: not an MLPerf")
    files = inputs.submission_inputs()
    runs = inputs.config["benchmarks"]["gnmt-v0.6"]["runs"]
    assert files[0] == "results/gnmt-v0.6/local/environment.json" and len(files) == 1 + 3 * runs
    run_01 = "results/gnmt-v0.6/local/run_01"
    assert files[1:4] == [f"{run_01}/{f}" for f in ("mlperf.log", "run.json", "result.json")]
    with pytest.raises(ConfigError, match="submission: nothing to submit"):
        inputs_for(tmp_path).submission_inputs()
