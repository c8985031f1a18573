# The import backend: run NN of an import system is the NN-th published result_*.txt of its
# folder (systems.<name>.import_dir/<mlperf_name>/, or a folder_aliases name), copied with a
# run.json that says where it came from (and the folder's scaling.json factor, the benchmark's
# olympic_drop, the published systems/<system>.json), and its result.json. Collecting and
# scoring are the same rules as for runs made here.


# import systems make their runs by import, never by training
ruleorder: import_run > train_run


rule import_run:
    input:
        inputs.import_source,
    output:
        log="results/{benchmark}/{system}/run_{run}/mlperf.log",
        meta="results/{benchmark}/{system}/run_{run}/run.json",
        result="results/{benchmark}/{system}/run_{run}/result.json",
    log:
        "logs/import_run/{benchmark}/{system}/run_{run}.log",
    wildcard_constraints:
        system=inputs.import_systems_regex(),
    params:
        spec=inputs.import_spec_json,
        # the benchmark's MLPerf round section (round, ruleset, olympic_drop), when it has one
        mlperf=lambda w: json_arg(BENCHMARKS[w.benchmark].get("mlperf", {})),
        result=inputs.result_args,
    shell:
        "{PY} scripts.import_logs --source {input:q} --spec {params.spec:q} "
        "--mlperf-json {params.mlperf} "
        "--log {output.log:q} --meta {output.meta:q} {params.result} > {log:q} 2>&1"
