# The environment of each system: versions, CPU, GPUs, host, the workflow's git commit.
# Runs depend on it, and its digest is part of every run's fingerprint.


rule capture_environment:
    input:
        # container systems: the image (its software is the environment)
        unpack(environment_inputs),
    output:
        "results/{benchmark}/{system}/environment.json",
    log:
        "logs/capture_environment/{benchmark}/{system}.log",
    # under Slurm it runs on a node like the runs' (same partition, constraint and GPUs)
    resources:
        **job_resources("environment"),
    params:
        backend=lambda w: SYSTEMS[w.system]["backend"],
        image=environment_image_args,
    shell:
        "{PY} scripts.environment --system {wildcards.system} --backend {params.backend} "
        "--workflow-dir {WORKFLOW_DIR:q} --output {output:q} {params.image} > {log:q} 2>&1"
