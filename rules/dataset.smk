# Dataset: fetch each file (from the mirror, else its url; checksum computed on the way) or make
# them all with a script, then verify all into a manifest, then unpack (and record the tree).


rule download_file:
    output:
        f"{DATA_DIR}/{{benchmark}}/download/{{file}}",
    log:
        "logs/download_file/{benchmark}/{file}.log",
    params:
        # a changed checksum in config redoes the download (scripts/preflight.py: stale_downloads)
        urls=lambda w: " ".join(
            f"--url {shlex.quote(u)}" for u in dataset_sources(w.benchmark, w.file)
        ),
        hashes=lambda w: " ".join(
            f"--{a} {dataset_file(w.benchmark, w.file)[a]}"
            for a in ("sha256", "md5")
            if a in dataset_file(w.benchmark, w.file)
        ),
        policy=download_policy_args,
    # everything goes to the log; each retry's one line also to snakemake's stderr (fd 3 here),
    # so the console shows that a download is waiting, and why
    shell:
        "{PY} scripts.dataset fetch {params.urls} --dest {output:q} {params.hashes} "
        "{params.policy} --console-fd 3 3>&2 > {log:q} 2>&1"


# A dataset with a script and no mirror (e.g. MLPerf's download_dataset.sh): one job makes every
# file; what a failed script wrote is kept in <folder>.partial for the next attempt.
rule dataset_script:
    output:
        directory(f"{DATA_DIR}/{{benchmark}}/generated"),
    log:
        "logs/dataset_script/{benchmark}.log",
    params:
        command=lambda w: BENCHMARKS[w.benchmark]["dataset"]["script"]["command"],
        cwd=lambda w: dataset.expand_url(
            BENCHMARKS[w.benchmark]["dataset"]["script"]["cwd"], WORKFLOW_DIR
        ),
    shell:
        "{PY} scripts.dataset script --command {params.command:q} --cwd {params.cwd:q} "
        "--output {output:q} > {log:q} 2>&1"


rule verify_dataset:
    input:
        dataset_inputs,
    output:
        f"{DATA_DIR}/{{benchmark}}/manifest.json",
    log:
        "logs/verify_dataset/{benchmark}.log",
    params:
        files=lambda w: json_arg(dataset_files(w.benchmark)),
        dir=dataset_files_dir,
        script=lambda w: "--made-by-script" if uses_script(w.benchmark) else "",
    shell:
        "{PY} scripts.dataset verify --files-json {params.files} --dir {params.dir:q} "
        "--manifest {output:q} {params.script} > {log:q} 2>&1"


# The tree the trainer reads, read-only, and beside it the manifest of its every file (size,
# sha256, mtime): the runner checks the tree against it before each run, and every invocation
# unpacks a changed tree again before any job (scripts/preflight.py: RestoreDatasetTree).
rule unpack_dataset:
    input:
        f"{DATA_DIR}/{{benchmark}}/manifest.json",
    output:
        tree=directory(f"{DATA_DIR}/{{benchmark}}/dataset"),
        manifest=f"{DATA_DIR}/{{benchmark}}/dataset.manifest.json",
    log:
        "logs/unpack_dataset/{benchmark}.log",
    params:
        files=lambda w: json_arg(dataset_files(w.benchmark)),
        dir=dataset_files_dir,
    shell:
        "{PY} scripts.dataset unpack --files-json {params.files} --dir {params.dir:q} "
        "--dest {output.tree:q} --manifest {output.manifest:q} > {log:q} 2>&1"
