# One job per training run (benchmark x system x run index): it trains and parses the log into
# result.json (a deleted result.json is re-parsed before the plan is built: common.smk).


rule train_run:
    # ancient(): a re-verified dataset or re-captured environment does not by itself redo
    # finished runs; if its content changed, the load-time check (scripts/campaign/preflight.py) stops
    # with the runs named
    input:
        # container systems: the image stamp and prepared data, ancient() as well
        unpack(inputs.container_run_inputs),
        dataset=ancient(f"{DATA_DIR}/{{benchmark}}/dataset"),
        manifest=ancient(f"{DATA_DIR}/{{benchmark}}/manifest.json"),
        environment=ancient("results/{benchmark}/{system}/environment.json"),
    output:
        log="results/{benchmark}/{system}/run_{run}/mlperf.log",
        meta="results/{benchmark}/{system}/run_{run}/run.json",
        result="results/{benchmark}/{system}/run_{run}/result.json",
    log:
        "logs/train_run/{benchmark}/{system}/run_{run}.log",
    # an import system's runs are its batch's outputs (import.smk), never trained
    wildcard_constraints:
        system=inputs.trained_systems_regex(),
    threads: inputs.threads
    # the system's slurm: config as Slurm job resources, and gpu= for --resources gpu=N
    resources:
        **inputs.job_resources("train"),
    params:
        spec=inputs.run_spec_json,
        failed_dir="logs/failed/{benchmark}/{system}",
        image=inputs.image_stamp_arg,
        result=inputs.result_args,
    # exec: the runner replaces the shell, so it notices when snakemake itself dies
    shell:
        "exec {PY} scripts.run.runner --spec {params.spec:q} --log {output.log:q} "
        "--meta {output.meta:q} --failed-dir {params.failed_dir:q} "
        "--dataset-manifest {input.manifest:q} --environment {input.environment:q} "
        "{params.image} {params.result} > {log:q} 2>&1"
