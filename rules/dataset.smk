# Dataset: fetch each file (from the mirror, else its url; checksum computed on the way) or make
# them all with a script, then verify all into a manifest, then unpack (and record the tree).
# Each command holds <data_dir>/<benchmark>.lock, or goes on under its campaign's hold of it
# (scripts/data/datalock.py): campaigns that share a data_dir never make one dataset at once.


rule download_file:
    output:
        f"{DATA_DIR}/{{benchmark}}/download/{{file}}",
    log:
        "logs/download_file/{benchmark}/{file}.log",
    params:
        # a changed checksum in config redoes the download (scripts/campaign/stale.py: stale_downloads)
        # --url for the mirror, then the file's url; --sha256/--md5
        sources=inputs.download_args,
        policy=inputs.download_policy_args,
        # the dataset's lock (scripts/data/datalock.py): its campaign's, or taken here
        lock=inputs.data_lock_args,
    # everything goes to the log; each retry's one line also to snakemake's stderr (fd 3 here),
    # so the console shows that a download is waiting, and why
    shell:
        "{PY} scripts.data.cli fetch {params.sources} --dest {output:q} "
        "{params.policy} {params.lock} --console-fd 3 3>&2 > {log:q} 2>&1"


# A dataset with a script and no mirror (e.g. MLPerf's download_dataset.sh): one job makes every
# file; what a failed script wrote is kept in <folder>.partial for the next attempt.
rule dataset_script:
    output:
        directory(f"{DATA_DIR}/{{benchmark}}/generated"),
    log:
        "logs/dataset_script/{benchmark}.log",
    params:
        command=lambda w: inputs.dataset_script(w.benchmark)[0],
        cwd=lambda w: inputs.dataset_script(w.benchmark)[1],
        lock=inputs.data_lock_args,
    shell:
        "{PY} scripts.data.cli script --command {params.command:q} --cwd {params.cwd:q} "
        "--output {output:q} {params.lock} > {log:q} 2>&1"


rule verify_dataset:
    input:
        inputs.dataset_inputs,
    output:
        f"{DATA_DIR}/{{benchmark}}/manifest.json",
    log:
        "logs/verify_dataset/{benchmark}.log",
    params:
        files=inputs.files_json,
        dir=inputs.dataset_files_dir,
        script=lambda w: "--made-by-script" if inputs.uses_script(w.benchmark) else "",
        lock=inputs.data_lock_args,
    shell:
        "{PY} scripts.data.cli verify --files-json {params.files} --dir {params.dir:q} "
        "--manifest {output:q} {params.script} {params.lock} > {log:q} 2>&1"


# The tree the trainer reads, read-only, and beside it the manifest of its every file (size,
# sha256, mtime): the runner checks the tree against it before each run, and every invocation
# unpacks a changed tree again before any job (scripts/campaign/actions.py: RestoreDatasetTree).
rule unpack_dataset:
    input:
        f"{DATA_DIR}/{{benchmark}}/manifest.json",
    output:
        tree=directory(f"{DATA_DIR}/{{benchmark}}/dataset"),
        manifest=f"{DATA_DIR}/{{benchmark}}/dataset.manifest.json",
    log:
        "logs/unpack_dataset/{benchmark}.log",
    params:
        files=inputs.files_json,
        dir=inputs.dataset_files_dir,
        # the most bytes the archives may unpack to (config dataset.max_unpacked_bytes)
        limit=inputs.unpack_limit_args,
        lock=inputs.data_lock_args,
    shell:
        "{PY} scripts.data.cli unpack --files-json {params.files} --dir {params.dir:q} "
        "--dest {output.tree:q} --manifest {output.manifest:q} {params.limit} {params.lock} "
        "> {log:q} 2>&1"


# The implementation's data commands (config dataset.commands): each makes one data folder,
# <data_dir>/<b>/made/FOLDER, in the image of the campaign's first system with one (named in the
# log), writing into FOLDER.partial, renamed when the command exits 0
# (scripts/run/backends/data_commands.py); link_dataset_folders then treats it as dataset.folders.
rule run_data_command:
    input:
        image=inputs.data_command_image,
    output:
        directory(f"{DATA_DIR}/{{benchmark}}/made/{{folder}}"),
    log:
        "logs/run_data_command/{benchmark}/{folder}.log",
    wildcard_constraints:
        benchmark=inputs.data_command_benchmarks_regex(),
        folder=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    params:
        args=inputs.data_command_args,
        lock=inputs.data_lock_args,
    shell:
        "{PY} scripts.run.backends.data_commands {params.args} --stamp {input.image:q} "
        "--output {output:q} {params.lock} > {log:q} 2>&1"


# Data the user already has (config dataset.folders), or that its data commands made:
# <data_dir>/<b>/dataset/NAME links to each folder, and manifest.json records each folder's
# path, file count and bytes (scripts/data/folders.py); no download, verification or unpacking.
rule link_dataset_folders:
    input:
        # the folders made by the implementation's data commands (dataset.commands), if any
        inputs.made_folders,
    output:
        tree=directory(f"{DATA_DIR}/{{benchmark}}/dataset"),
        tree_manifest=f"{DATA_DIR}/{{benchmark}}/dataset.manifest.json",
        manifest=f"{DATA_DIR}/{{benchmark}}/manifest.json",
    log:
        "logs/link_dataset_folders/{benchmark}.log",
    wildcard_constraints:
        benchmark=inputs.folder_benchmarks_regex(),
    params:
        folders=inputs.folders_args,
        lock=inputs.data_lock_args,
    shell:
        "{PY} scripts.data.cli folders {params.folders} --tree {output.tree:q} "
        "--manifest {output.manifest:q} {params.lock} > {log:q} 2>&1"


ruleorder: link_dataset_folders > unpack_dataset
ruleorder: link_dataset_folders > verify_dataset
