# Images of the container backends (docker, podman: scripts/backends/container.py): the
# implementation's source and the wheels its image installs (scripts/backends/image.py), the
# image build (one per benchmark x system, its stamp a file target, by the system's engine),
# and the implementation's one-time data preparation inside the image.
# When the image's inputs change, scripts/preflight.py (RebuildImage) removes the stamp so
# it is rebuilt.


rule fetch_source:
    output:
        directory("build/{benchmark}/source"),
    log:
        "logs/fetch_source/{benchmark}.log",
    params:
        git=lambda w: container_cfg(w.benchmark)["source"]["git"],
        commit=lambda w: container_cfg(w.benchmark)["source"]["commit"],
        subdir=lambda w: container_cfg(w.benchmark)["source"].get("subdir") or "",
    shell:
        "{PY} scripts.backends.image fetch-source --git {params.git:q} "
        "--commit {params.commit:q} --subdir {params.subdir:q} --dest {output:q} > {log:q} 2>&1"


rule fetch_wheels:
    input:
        lambda w: f"{WORKFLOW_DIR}/{container_cfg(w.benchmark)['wheels']}",
    output:
        directory("build/{benchmark}/wheels"),
    log:
        "logs/fetch_wheels/{benchmark}.log",
    params:
        constraints=f"{WORKFLOW_DIR}/requirements.txt",
    shell:
        "{PY} scripts.backends.image fetch-wheels --requirements {input:q} "
        "--constraints {params.constraints:q} --dest {output:q} > {log:q} 2>&1"


rule build_image:
    input:
        unpack(image_build_inputs),
    output:
        "results/{benchmark}/{system}/image.json",
    log:
        "logs/build_image/{benchmark}/{system}.log",
    params:
        spec=lambda w: image_spec(w.benchmark, w.system).to_json(),
        context="build/{benchmark}/{system}/context",
        module=image_module,
    shell:
        "{PY} {params.module} build --spec {params.spec:q} "
        "--context {params.context:q} --stamp {output:q} > {log:q} 2>&1"


rule prepare_data:
    input:
        dataset=ancient(f"{DATA_DIR}/{{benchmark}}/dataset"),
        image="results/{benchmark}/{system}/image.json",
    output:
        directory(f"{DATA_DIR}/{{benchmark}}/prepared/{{system}}"),
    log:
        "logs/prepare_data/{benchmark}/{system}.log",
    params:
        options=lambda w: json_arg(
            containers.run_options(CONFIG, w.benchmark, w.system)
        ),
        command=lambda w: prepare_command(w.benchmark, w.system),
        name=lambda w: f"mlperf-{w.benchmark}-{w.system}-prepare",
        module=image_module,
    shell:
        "{PY} {params.module} prepare --options {params.options} --stamp {input.image:q} "
        "--command {params.command:q} --dataset-dir {input.dataset:q} --output {output:q} "
        "--name {params.name:q} > {log:q} 2>&1"
