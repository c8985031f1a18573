# One job per training run (benchmark x system x run index), then its parse into result.json.


rule train_run:
    # ancient(): a re-verified dataset or re-captured environment does not by itself redo
    # finished runs; if its content changed, check_comparability() stops with the runs named
    input:
        # docker systems: the image stamp and prepared data, ancient() as well
        unpack(container_run_inputs),
        dataset=ancient(f"{DATA_DIR}/{{benchmark}}/dataset"),
        manifest=ancient(f"{DATA_DIR}/{{benchmark}}/manifest.json"),
        environment=ancient("results/{benchmark}/{system}/environment.json"),
    output:
        log="results/{benchmark}/{system}/run_{run}/mlperf.log",
        meta="results/{benchmark}/{system}/run_{run}/run.json",
    log:
        "logs/train_run/{benchmark}/{system}/run_{run}.log",
    threads: lambda w: SYSTEMS[w.system]["threads"]
    # the system's slurm: config as Slurm job resources, and gpu= for --resources gpu=N
    resources:
        **job_resources("train"),
    params:
        spec=run_spec_json,
        failed_dir="logs/failed/{benchmark}/{system}",
        image=image_stamp_arg,
    # exec: the runner replaces the shell, so it notices when snakemake itself dies
    shell:
        "exec {PY} scripts.run_training --spec {params.spec:q} --log {output.log:q} "
        "--meta {output.meta:q} --failed-dir {params.failed_dir:q} "
        "--dataset-manifest {input.manifest:q} --environment {input.environment:q} "
        "{params.image} > {log:q} 2>&1"


rule parse_run:
    input:
        log="results/{benchmark}/{system}/run_{run}/mlperf.log",
        meta="results/{benchmark}/{system}/run_{run}/run.json",
    output:
        "results/{benchmark}/{system}/run_{run}/result.json",
    log:
        "logs/parse_run/{benchmark}/{system}/run_{run}.log",
    params:
        quality=lambda w: json_arg(BENCHMARKS[w.benchmark]["quality"]),
        time_to_train=lambda w: BENCHMARKS[w.benchmark]["log"]["time_to_train"],
    shell:
        "{PY} scripts.results parse --log {input.log:q} --meta {input.meta:q} "
        "--quality-json {params.quality} --time-to-train {params.time_to_train} "
        "--output {output:q} > {log:q} 2>&1"
