# Dataset: download each file (checksum computed on the way), verify all, unpack.


rule download_file:
    output:
        f"{DATA_DIR}/{{benchmark}}/download/{{file}}",
    log:
        "logs/download_file/{benchmark}/{file}.log",
    params:
        # a changed checksum in config redoes the download (common.smk: remove_stale_derived_files)
        url=lambda w: dataset.expand_url(
            dataset_file(w.benchmark, w.file)["url"], WORKFLOW_DIR
        ),
        hashes=lambda w: " ".join(
            f"--{a} {dataset_file(w.benchmark, w.file)[a]}"
            for a in ("sha256", "md5")
            if a in dataset_file(w.benchmark, w.file)
        ),
    shell:
        "{PY} scripts.dataset fetch --url {params.url:q} --dest {output:q} {params.hashes} "
        "> {log:q} 2>&1"


rule verify_dataset:
    input:
        lambda w: [
            f"{DATA_DIR}/{w.benchmark}/download/{f['name']}"
            for f in dataset_files(w.benchmark)
        ],
    output:
        f"{DATA_DIR}/{{benchmark}}/manifest.json",
    log:
        "logs/verify_dataset/{benchmark}.log",
    params:
        files=lambda w: json_arg(dataset_files(w.benchmark)),
        dir=lambda w: f"{DATA_DIR}/{w.benchmark}/download",
    shell:
        "{PY} scripts.dataset verify --files-json {params.files} --dir {params.dir:q} "
        "--manifest {output:q} > {log:q} 2>&1"


rule unpack_dataset:
    input:
        f"{DATA_DIR}/{{benchmark}}/manifest.json",
    output:
        directory(f"{DATA_DIR}/{{benchmark}}/dataset"),
    log:
        "logs/unpack_dataset/{benchmark}.log",
    params:
        files=lambda w: json_arg(dataset_files(w.benchmark)),
        dir=lambda w: f"{DATA_DIR}/{w.benchmark}/download",
    shell:
        "{PY} scripts.dataset unpack --files-json {params.files} --dir {params.dir:q} "
        "--dest {output:q} > {log:q} 2>&1"
