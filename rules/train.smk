# One job per training run (benchmark x system x run index): it trains and parses the log into
# result.json (a deleted result.json is re-parsed before the plan is built: common.smk).


rule train_run:
    # ancient(): a re-verified dataset or re-captured environment does not by itself redo
    # finished runs; if its content changed, the load-time check (scripts/campaign/preflight.py) stops
    # with the runs named
    input:
        # container systems: the image stamp and prepared data, ancient() as well (none where
        # no system has a container: an input function costs every job of a dry run)
        *inputs.container_run_input_functions(),
        # the unpacked tree and its verified manifest: patterns, or a function where a
        # benchmark says dataset: none (its runs take no dataset input)
        *inputs.dataset_run_input_functions(),
        **inputs.dataset_run_input_patterns(),
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
    # one number where every system has the same (a function is asked for every job)
    threads: inputs.train_threads()
    # the system's slurm: config as Slurm job resources, and gpu= for --resources gpu=N
    resources:
        **inputs.job_resources("train"),
    # one param, the runner's command line quoted by inputs.command_line: python -m
    # scripts.run.runner with --spec, --failed-dir, --dataset-manifest (none for dataset:
    # none), the backend's arguments (the image stamp), what result.json needs, and --log,
    # --meta (the outputs above) and --environment (the input above). Snakemake evaluates each
    # param of every job, also in a dry run that prints none, and formats the shell three
    # times for each job that -n prints: one param, one placeholder, made when the shell is
    # formatted and once (inputs.runner_command)
    params:
        command=inputs.runner_command,
    # exec: the runner replaces the shell, so it notices when snakemake itself dies
    shell:
        "exec {params.command} > {log:q} 2>&1"
