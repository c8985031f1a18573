# The environment of each system: versions, CPU, GPUs, host, the workflow's git commit.
# Runs depend on it, and its digest is part of every run's fingerprint.


rule capture_environment:
    input:
        # container systems: the image (its software is the environment)
        unpack(inputs.environment_inputs),
    output:
        "results/{benchmark}/{system}/environment.json",
    log:
        "logs/capture_environment/{benchmark}/{system}.log",
    # under Slurm it runs on a node like the runs' (same partition, constraint and GPUs)
    resources:
        **inputs.job_resources("environment"),
    params:
        # --backend NAME and the backend's own arguments (a container system: its image)
        backend=inputs.environment_args,
    shell:
        "{PY} scripts.run.environment --system {wildcards.system} {params.backend} "
        "--workflow-dir {WORKFLOW_DIR:q} --output {output:q} > {log:q} 2>&1"
