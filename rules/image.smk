# Images of the container backends (docker, podman: scripts/run/backends/container.py): the
# implementation's source and the wheels its image installs (scripts/run/backends/image.py), the
# image build (one per benchmark x system, its stamp a file target, by the system's engine),
# and the implementation's one-time data preparation inside the image.
# When the image's inputs change, scripts/campaign/actions.py (RebuildImage) removes the stamp so
# it is rebuilt.


rule fetch_source:
    output:
        directory("build/{benchmark}/source"),
    log:
        "logs/fetch_source/{benchmark}.log",
    params:
        # --git, --commit, --subdir
        source=inputs.source_args,
    shell:
        "{PY} scripts.run.backends.image fetch-source {params.source} --dest {output:q} > {log:q} 2>&1"


rule fetch_wheels:
    input:
        inputs.wheels_requirements,
    output:
        directory("build/{benchmark}/wheels"),
    log:
        "logs/fetch_wheels/{benchmark}.log",
    params:
        constraints=f"{WORKFLOW_DIR}/requirements.txt",
    shell:
        "{PY} scripts.run.backends.image fetch-wheels --requirements {input:q} "
        "--constraints {params.constraints:q} --dest {output:q} > {log:q} 2>&1"


rule build_image:
    input:
        unpack(inputs.image_build_inputs),
    output:
        "results/{benchmark}/{system}/image.json",
    log:
        "logs/build_image/{benchmark}/{system}.log",
    params:
        spec=inputs.image_spec_json,
        context="build/{benchmark}/{system}/context",
        module=inputs.image_module,
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
        options=inputs.run_options_json,
        command=inputs.prepare_command,
        name=lambda w: f"mlperf-{w.benchmark}-{w.system}-prepare",
        module=inputs.image_module,
    shell:
        "{PY} {params.module} prepare --options {params.options} --stamp {input.image:q} "
        "--command {params.command:q} --dataset-dir {input.dataset:q} --output {output:q} "
        "--name {params.name:q} > {log:q} 2>&1"


# A pyxis system (scripts/run/backends/pyxis.py): the built image as the squashfs file that
# srun --container-image takes, imported by enroot from the docker engine (where snakemake runs)
# under a temporary name, then renamed (enroot refuses an existing output).
rule import_sqsh:
    input:
        image="results/{benchmark}/{system}/image.json",
    output:
        "results/{benchmark}/{system}/image.sqsh.json",
    log:
        "logs/import_sqsh/{benchmark}/{system}.log",
    params:
        sqsh="build/{benchmark}/{system}/image.sqsh",
    shell:
        "{PY} scripts.run.backends.pyxis import-sqsh --image-stamp {input.image:q} "
        "--sqsh {params.sqsh:q} --stamp {output:q} > {log:q} 2>&1"
