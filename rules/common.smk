# Configuration loading and validation, and every input function and helper of the rules.

import json
import re
import shlex
import shutil
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger

from scripts import backends, campaign, cluster, dataset, import_logs, result_json
from scripts import formats, hashing, layout, locks, plan, seals
from scripts.backends import container as containers
from scripts.backends import image as images
from scripts import config as cfg
from scripts.run_training import GRACE_S

WORKFLOW_DIR = Path(workflow.basedir)


def _config_sources():
    """(file, data) for every config file in merge order, to name the file behind an error."""
    files = [WORKFLOW_DIR / f for f in DEFAULT_CONFIGFILES]
    files += [Path(f) for f in workflow.config_settings.configfiles]
    return [(str(f), cfg.load_yaml(f) or {}) for f in files if Path(f).exists()]


try:
    _SOURCES = _config_sources()
    CONFIG = cfg.load_and_validate(config, _SOURCES)
    plan.check_campaign(CONFIG, _SOURCES)
except cfg.ConfigError as exc:
    raise WorkflowError(str(exc)) from None

BENCHMARKS = CONFIG["benchmarks"]
SYSTEMS = CONFIG["systems"]
DATA_DIR = CONFIG["data_dir"].rstrip("/")
# the python (and so the environment) that runs snakemake also runs the rules' scripts
PY = f"env PYTHONPATH={shlex.quote(str(WORKFLOW_DIR))} {shlex.quote(sys.executable)} -m"


# names as the schema has them; (?!\n): a target ending in a newline is no rule's output
# (Python's $ also matches before a final newline)
wildcard_constraints:
    benchmark=r"[A-Za-z0-9][A-Za-z0-9_.-]*(?!\n)",
    system=r"[A-Za-z0-9][A-Za-z0-9_.-]*(?!\n)",
    run=r"\d\d+",
    file=r"[A-Za-z0-9][A-Za-z0-9_.-]*(?!\n)",


def json_arg(value):
    """A value as one quoted shell word of JSON."""
    return shlex.quote(json.dumps(value, sort_keys=True))


def dataset_files(benchmark):
    # an import-only benchmark has no dataset
    return BENCHMARKS[benchmark].get("dataset", {}).get("files", [])


def uses_script(benchmark):
    """A dataset made by its script: it has one and no mirror (a mirror wins)."""
    ds = BENCHMARKS[benchmark]["dataset"]
    return bool(ds.get("script")) and not ds.get("mirror")


def dataset_folder(benchmark):
    """Where a benchmark's dataset files are: fetched into download/, or made by its script."""
    sub = "generated" if uses_script(benchmark) else "download"
    return f"{DATA_DIR}/{benchmark}/{sub}"


def dataset_files_dir(wildcards):
    return dataset_folder(wildcards.benchmark)


def dataset_inputs(wildcards):
    """What verify_dataset checks: the script's folder, or every fetched file."""
    if uses_script(wildcards.benchmark):
        return [dataset_files_dir(wildcards)]
    return [
        f"{DATA_DIR}/{wildcards.benchmark}/download/{f['name']}"
        for f in dataset_files(wildcards.benchmark)
    ]


def dataset_sources(benchmark, name):
    """The URLs download_file tries, in order: the mirror, then the file's url."""
    mirror = BENCHMARKS[benchmark]["dataset"].get("mirror")
    return dataset.sources(dataset_file(benchmark, name), mirror, WORKFLOW_DIR)


def download_policy_args(wildcards):
    d = CONFIG["download"]
    return (
        f"--retries {d['retries']} --backoff-s {d['backoff_s']} --timeout-s {d['timeout_s']}"
        + ("" if d["progress"] else " --no-progress")
    )


def dataset_file(benchmark, name):
    for f in dataset_files(benchmark):
        if f["name"] == name:
            return f
    raise WorkflowError(f"benchmark {benchmark!r} has no dataset file {name!r}")


def run_ids(benchmark):
    return plan.run_ids(BENCHMARKS[benchmark]["runs"])


def campaign_systems():
    return plan.campaign_systems(CONFIG)


def benchmark_systems(benchmark):
    """The systems of the campaign with runs of this benchmark (an import system only where
    it has the benchmark's logs; other systems where the benchmark has an implementation).
    """
    return plan.benchmark_systems(CONFIG, benchmark)


def system_run_ids(benchmark, system):
    return plan.system_run_ids(CONFIG, benchmark, system)


def run_results(benchmark):
    """Every result.json of a benchmark: each system that has its runs x each run."""
    systems = benchmark_systems(benchmark)
    if not systems:
        raise WorkflowError(
            f"no system of the campaign has runs of benchmark {benchmark!r}: it needs an "
            "implementation (for a local system) or an import system with a folder of its "
            "result_*.txt"
        )
    return [
        f"results/{benchmark}/{system}/run_{run}/result.json"
        for system in systems
        for run in system_run_ids(benchmark, system)
    ]


def campaign_targets():
    """Per campaign benchmark: the tables, and the report with its plots."""
    return [
        f"results/{b}/{name}"
        for b in CONFIG["campaign"]["benchmarks"]
        for name in ("summary.csv", "comparison.csv", "report.html")
    ]


def run_spec_json(wildcards):
    spec = plan.run_spec(
        CONFIG,
        wildcards.benchmark,
        wildcards.system,
        layout.parse_run_id(wildcards.run),
        python=sys.executable,
        dataset_dir=f"{DATA_DIR}/{wildcards.benchmark}/dataset",
        run_dir=f"results/{wildcards.benchmark}/{wildcards.system}/run_{wildcards.run}",
        # a cluster job (e.g. Slurm via profiles/slurm) has its GPUs from the scheduler
        gpu_assign="scheduler" if workflow.remote_exec else "local",
        prepared_dir=(
            prepared_dir(wildcards.benchmark, wildcards.system)
            if needs_prepare(wildcards.benchmark, wildcards.system)
            else None
        ),
    )
    return spec.to_json()


# ---------------------------------------------------------------------------------------------
# Backends (scripts/backends/): what a system's runs need beyond the dataset and environment;
# for container backends (rules/image.smk) images, sources, wheels, prepared data.


def backend_of(system):
    """The system's backend: every rule asks it, none names it."""
    return backends.get(SYSTEMS[system]["backend"])


def container_cfg(benchmark):
    return BENCHMARKS[benchmark].get("implementation", {}).get("container") or {}


def image_stamp(benchmark, system):
    return containers.image_stamp(benchmark, system)


def prepared_dir(benchmark, system):
    return containers.prepared_dir(CONFIG, benchmark, system)


def needs_prepare(benchmark, system):
    return backend_of(system).needs_prepare(CONFIG, benchmark)


def image_spec(benchmark, system):
    try:
        return images.image_spec(CONFIG, benchmark, system, WORKFLOW_DIR)
    except cfg.ConfigError as exc:
        raise WorkflowError(str(exc)) from None


def prepare_command(benchmark, system):
    """The data preparation command, with the run command's placeholders (run 1's values)."""
    options = containers.run_options(CONFIG, benchmark, system)
    context = plan.command_context(
        CONFIG,
        benchmark,
        system,
        1,
        python=options["python"],
        dataset_dir=options["dataset_mount"],
        run_dir=options["run_mount"],
    )
    return plan.render_command(container_cfg(benchmark)["prepare"]["command"], context)


def image_build_inputs(wildcards):
    """What the build needs from other rules: the fetched source (git) or the wheels."""
    cont, inputs = container_cfg(wildcards.benchmark), {}
    source = cont.get("source") or {}
    if source.get("git"):
        inputs["source"] = ancient(f"build/{wildcards.benchmark}/source")
    if cont.get("wheels"):
        inputs["wheels"] = ancient(f"build/{wildcards.benchmark}/wheels")
    return inputs


def container_run_inputs(wildcards):
    """What a run needs from its backend (a container backend: the image and the prepared
    data). ancient(): a rebuilt image does not by itself redo finished runs;
    check_comparability stops instead.
    """
    needed = backend_of(wildcards.system).run_inputs(
        CONFIG, wildcards.benchmark, wildcards.system
    )
    return {name: ancient(path) for name, path in needed.items()}


def image_stamp_arg(wildcards):
    backend = backend_of(wildcards.system)
    return shlex.join(backend.runner_args(wildcards.benchmark, wildcards.system))


def image_module(wildcards):
    """The module whose command line builds and uses the system's images."""
    return backend_of(wildcards.system).module


def environment_inputs(wildcards):
    """A container system's environment is its image's: captured again when it changes."""
    return backend_of(wildcards.system).environment_inputs(
        wildcards.benchmark, wildcards.system
    )


def environment_image_args(wildcards):
    backend = backend_of(wildcards.system)
    return shlex.join(
        backend.environment_args(CONFIG, wildcards.benchmark, wildcards.system)
    )


def image_pairs():
    """(benchmark, system) of every system of the campaign whose runs need an image."""
    return [
        (b, s)
        for b in BENCHMARKS
        for s in benchmark_systems(b)
        if backend_of(s).has_image()
    ]


def check_images():
    """An image stamp that no longer matches the config (or whose image is gone) is removed,
    so the image is rebuilt; a fetched source at another commit is fetched again. When
    finished runs used the image and it would change, stop instead and say what to do.
    """
    root = Path.cwd()
    dry = campaign.is_dry_run(sys.argv)
    for benchmark in {b for b, _ in image_pairs()}:
        source = container_cfg(benchmark).get("source") or {}
        src = root / "build" / benchmark / "source"
        if source.get("git") and src.is_dir():
            head = campaign.git_head(src)
            if head != source["commit"]:
                logger.warning(
                    f"{src.relative_to(root)} is at {head}, not at the configured commit "
                    f"{source['commit']}: it is fetched again"
                )
                if not dry:
                    shutil.rmtree(src)
    for benchmark, system in image_pairs():
        stamp = root / image_stamp(benchmark, system)
        if not stamp.exists():
            continue
        why = backend_of(system).stale_reason(stamp, image_spec(benchmark, system))
        if not why:
            continue
        finished = [
            r
            for r in run_ids(benchmark)
            if (campaign.run_dir(root, benchmark, system, r) / "run.json").exists()
        ]
        if finished:
            raise WorkflowError(
                f"{stamp.relative_to(root)}: {why}.\n  Runs {', '.join(finished)} of "
                f"{benchmark}/{system} ran in that image, and a rebuilt image would not be the "
                f"same; nothing was run. Restore the image (e.g. {backend_of(system).name} load), "
                "or move the old runs aside (kept) and start anew:\n"
                f"    python -m scripts.campaign archive results/{benchmark}/{system}"
            )
        if dry:
            logger.warning(
                f"{stamp.relative_to(root)} is out of date ({why}); a real run rebuilds it"
            )
            continue
        logger.warning(f"Rebuilding the image of {benchmark}/{system}: {why}")
        stamp.unlink()


def job_resources(job):
    """The resources of a system's jobs (scripts/cluster.py): Slurm's partition, account,
    nodes, CPUs, memory, time, constraint, GPUs... for the Slurm executor, and `gpu`, which
    --resources gpu=N caps on one machine. None leaves one out. A resource with the same value
    for every benchmark and system is given as that value: Snakemake inspects the signature of
    every resource function for every job, which made the dry run of 10,000 runs take 30 s.
    """

    def values(benchmark, system):
        sys_ = SYSTEMS[system]
        timeout = sys_["timeout_s"] or BENCHMARKS[benchmark]["timeout_s"]
        return cluster.job_resources(sys_, timeout_s=timeout, grace_s=GRACE_S, job=job)

    def resource(name):
        return lambda wildcards: values(wildcards.benchmark, wildcards.system)[name]

    table = [values(b, s) for b in BENCHMARKS for s in SYSTEMS]
    out = {}
    for name in cluster.RESOURCE_NAMES:
        distinct = {repr(row[name]) for row in table}
        if len(distinct) > 1:
            out[name] = resource(name)
        elif table[0][name] is not None:
            out[name] = table[0][name]
    return out


def set_local_rules():
    """Under a cluster executor only the rules of config cluster_rules are cluster jobs; every
    other rule (downloads, verification, parsing, reports) runs where snakemake runs."""
    names = {r.name for r in workflow.rules}
    unknown = sorted(set(CONFIG["cluster_rules"]) - names)
    if unknown:
        raise WorkflowError(
            f"cluster_rules names {', '.join(map(repr, unknown))}, which is not a rule of "
            f"the workflow; rules: {', '.join(sorted(names))}"
        )
    workflow.localrules(*sorted(names - set(CONFIG["cluster_rules"])))


def main_invocation():
    """The snakemake the user started, not a job step of a cluster or subprocess executor:
    only it checks the campaign before the plan is built."""
    return not (workflow.remote_exec or workflow.subprocess_exec)


def result_args(wildcards):
    """What train_run and import_run need to write result.json in the same job."""
    bench = BENCHMARKS[wildcards.benchmark]
    out = f"results/{wildcards.benchmark}/{wildcards.system}/run_{wildcards.run}/result.json"
    return (
        f"--result {shlex.quote(out)} --quality-json {json_arg(bench['quality'])} "
        f"--time-to-train {shlex.quote(bench['log']['time_to_train'])}"
    )


def parse_unparsed_runs():
    """A run whose result.json is missing but whose log and run.json exist is parsed here,
    before the plan is built: train_run makes all three files, and Snakemake would otherwise
    train the run again for its result.json. A dry run only says so."""
    root = Path.cwd()
    for benchmark in BENCHMARKS:
        systems = benchmark_systems(benchmark)
        found = campaign.unparsed_runs(
            root, benchmark, systems, {s: system_run_ids(benchmark, s) for s in systems}
        )
        if not found:
            continue
        names = ", ".join(str(d.relative_to(root)) for d in found)
        if campaign.is_dry_run(sys.argv):
            logger.warning(
                f"A real run re-parses these runs' logs (no training): {names}"
            )
            continue
        logger.warning(f"Re-parsing the logs of runs without result.json: {names}")
        bench = BENCHMARKS[benchmark]
        for d in (
            d.relative_to(root) for d in found
        ):  # relative, as the jobs write them
            result_json.write_result(
                d / "mlperf.log",
                d / "run.json",
                bench["quality"],
                bench["log"]["time_to_train"],
                d / "result.json",
            )
        # the tables built from the result files go and are rebuilt (Snakemake redoes neither
        # a job whose input only became newer, nor one whose intermediate output is missing)
        for table in ("runs.csv", "evals.csv", "summary.csv"):
            (root / "results" / benchmark / table).unlink(missing_ok=True)


def remove_stale_derived_files():
    """Missing run files, or a changed dataset checksum, make derived files stale: remove them
    so they are rebuilt (scripts/campaign.py says why). A dry run only warns."""
    root = Path.cwd()
    stale = []
    for benchmark in BENCHMARKS:
        stale += campaign.stale_downloads(
            root / DATA_DIR / benchmark, dataset_files(benchmark)
        )
        systems = benchmark_systems(benchmark)
        stale += campaign.stale_derived_files(
            root,
            benchmark,
            systems,
            {s: system_run_ids(benchmark, s) for s in systems},
        )
    if not stale:
        return
    if campaign.is_dry_run(sys.argv):
        logger.warning(
            "These derived files are out of date and a real run will rebuild them:\n"
            + campaign.describe_stale(stale, root)
        )
        return
    logger.warning(
        "Removing derived files that no longer match the runs on disk (they are rebuilt):\n"
        + campaign.describe_stale(stale, root)
    )
    campaign.remove_stale(stale)


def check_locks():
    """Take the folder for this invocation (scripts/locks.py): a second snakemake, seen or
    not (another host, container or PID namespace), is told who holds it; locks left by a
    killed one on this host are removed so the plain command resumes. --nolock and dry runs
    take and check nothing (--unlock clears our record and runs no check: see below)."""
    root = Path.cwd()
    if "--nolock" in sys.argv or campaign.is_dry_run(sys.argv):
        return
    try:
        removed = locks.hold(root, sys.argv)
    except locks.Locked as exc:
        raise WorkflowError(str(exc)) from None
    if removed:
        logger.warning(removed)


def check_seals():
    """Stop, naming the run, if a finished run's log changed since it was sealed; a corrupt
    result.json of an intact run is named and removed, so parse_unparsed_runs re-parses it
    (scripts/seals.py). A dry run only says so."""
    root = Path()  # the working directory: messages name results/... relative to it
    checks = [
        seals.check_system(root, b, s, system_run_ids(b, s))
        for b in BENCHMARKS
        for s in benchmark_systems(b)
    ]
    message = seals.tampered_message(checks)
    if message:
        raise WorkflowError(message)
    unsealed = seals.unsealed_message(checks)
    if unsealed:
        logger.warning(unsealed)
    dry = campaign.is_dry_run(sys.argv)
    for c in checks:
        for run, why in sorted(c.corrupt_results.items()):
            logger.warning(
                f"{why}: {'a real run re-parses' if dry else 're-parsing'} it from its "
                "intact log (no training)"
            )
            if not dry:
                (c.run_dir(root, run) / "result.json").unlink(missing_ok=True)


def refresh_seal_cache():
    """After a successful invocation: check the runs it made once more, so their seals are
    in the cache and the next no-op invocation reads no run.json (bench/seal_check.py).
    """
    for b in BENCHMARKS:
        for s in benchmark_systems(b):
            seals.check_system(Path(), b, s, system_run_ids(b, s))


def remake_dataset_files(benchmark):
    """How restore_dataset_trees makes missing dataset files again: the benchmark's dataset
    script, or each file's download (as the rules do)."""
    folder = Path(dataset_folder(benchmark))
    if uses_script(benchmark):
        script = BENCHMARKS[benchmark]["dataset"]["script"]
        cwd = Path(dataset.expand_url(script["cwd"], WORKFLOW_DIR))
        return lambda names: dataset.run_script(script["command"], cwd, folder)
    d = CONFIG["download"]
    policy = dataset.Policy(
        retries=d["retries"],
        backoff_s=d["backoff_s"],
        timeout_s=d["timeout_s"],
        progress=d["progress"],
    )

    def fetch(names):
        for name in names:
            f = dataset_file(benchmark, name)
            expected = {a: f[a] for a in dataset.HASHES if a in f}
            dataset.fetch(
                dataset_sources(benchmark, name), folder / name, expected, policy
            )

    return fetch


def restore_dataset_trees():
    """A dataset tree (the folder the trainer reads) that differs from its manifest, has none
    or is missing, while its files were verified, is unpacked again before the plan is built
    (scripts/dataset.py: restore_tree says why Snakemake cannot). A dry run only warns.
    """
    dry = campaign.is_dry_run(sys.argv)
    for benchmark in BENCHMARKS:
        if not dataset_files(benchmark):
            continue
        tree = Path(DATA_DIR) / benchmark / "dataset"
        folder = Path(dataset_folder(benchmark))
        try:
            done = dataset.restore_tree(
                tree,
                dataset_files(benchmark),
                folder,
                remake_dataset_files(benchmark),
                dry_run=dry,
                # looked for only when the tree or its verification is gone (then Snakemake
                # would make them again in its plan and retrain every finished run after them)
                runs_used_it=(
                    not tree.is_dir() or not tree.with_name("manifest.json").exists()
                )
                and any(Path("results", benchmark).glob("*/run_*/run.json")),
            )
        except dataset.DatasetError as exc:
            raise WorkflowError(f"{tree} cannot be unpacked again: {exc}") from None
        if done:
            logger.warning(done)


def check_comparability():
    """Stop, naming the runs, if finished runs were made under a different configuration,
    dataset or environment than the current ones: never redo or mix them silently."""
    root = Path.cwd()
    problems = []
    for benchmark in BENCHMARKS:
        for system in benchmark_systems(benchmark):
            current = plan.current_state(
                plan.comparability(CONFIG, benchmark, system),
                manifest=root / DATA_DIR / benchmark / "manifest.json",
                environment=root / "results" / benchmark / system / "environment.json",
                dataset_tree=root / DATA_DIR / benchmark / "dataset.manifest.json",
            )
            bad = plan.incomparable_runs(
                root, benchmark, system, system_run_ids(benchmark, system), current
            )
            if bad:
                problems.append(plan.incomparable_message(benchmark, system, bad))
    if problems:
        raise WorkflowError(
            "finished runs would no longer be comparable; nothing was run:\n  "
            + "\n  ".join(problems)
        )


def load_time_checks():
    check_locks()
    check_seals()
    try:
        check_comparability()
    except cfg.ConfigError as exc:
        raise WorkflowError(str(exc)) from None
    check_images()
    parse_unparsed_runs()
    remove_stale_derived_files()
    restore_dataset_trees()


if main_invocation() and "--unlock" in sys.argv:
    # --unlock only clears the locks: no check may stop it, or Snakemake's lock files stay
    # while our record is gone (and the next invocation could no longer name the holder)
    locks.unlock(Path.cwd())  # Snakemake removes its own lock files
elif main_invocation():
    try:
        load_time_checks()
    except formats.NewerFormat as exc:
        # a file of a newer workflow (scripts/formats.py): nothing is run or changed
        raise WorkflowError(str(exc)) from None


onsuccess:
    if main_invocation():
        refresh_seal_cache()


def finished_results(benchmark):
    """The result.json files that exist now (for the partial report)."""
    return [f for f in run_results(benchmark) if Path(f).exists()]


# ---------------------------------------------------------------------------------------------
# Import systems and the report.

# the plots of the report (scripts/plots.py makes results/<benchmark>/plots/<name>.png)
PLOTS = ("runs", "drift", "ecdf", "mean_ci", "speedup", "quality")

IMPORT_SYSTEMS = sorted(s for s, v in SYSTEMS.items() if v["backend"] == "import")


def import_systems_regex():
    """A wildcard constraint that matches exactly the import systems (nothing if none)."""
    return "|".join(re.escape(s) for s in IMPORT_SYSTEMS) or "(?!)"


def import_source(wildcards):
    """The published result_N.txt that is run NN of an import system."""
    folder = plan.import_folder(CONFIG, wildcards.benchmark, wildcards.system)
    if folder is None:
        raise WorkflowError(
            f"system {wildcards.system!r} has no folder of {wildcards.benchmark!r} results"
        )
    return str(import_logs.source_of(folder, layout.parse_run_id(wildcards.run)))


def import_spec_json(wildcards):
    record = plan.comparability(CONFIG, wildcards.benchmark, wildcards.system)
    bench = BENCHMARKS[wildcards.benchmark]
    return json.dumps(
        {
            "benchmark": wildcards.benchmark,
            "system": wildcards.system,
            "run": layout.parse_run_id(wildcards.run),
            "scale": bench["scale"],
            "mlperf_name": bench.get("mlperf_name"),
            "config_fingerprint": hashing.canonical_sha256(record),
            "comparability": record,
        },
        sort_keys=True,
    )


def report_context(benchmark):
    """What the report needs from the configuration: the benchmark, the systems and the
    reference system."""
    bench = BENCHMARKS[benchmark]
    return {
        "benchmark": {
            k: bench.get(k)
            for k in ("description", "scale", "runs", "max_nonconverged", "quality")
        },
        "reference_system": CONFIG["campaign"].get("reference_system"),
        "statistics": CONFIG["statistics"],
        "systems": {
            s: {
                k: SYSTEMS[s].get(k)
                for k in ("description", "backend", "threads", "gpus", "import_dir")
            }
            for s in benchmark_systems(benchmark)
        },
    }
