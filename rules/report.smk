# Aggregation: every run of a benchmark into runs.csv, then one summary row per system.


rule collect_runs:
    input:
        lambda w: run_results(w.benchmark),
    output:
        "results/{benchmark}/runs.csv",
    log:
        "logs/collect_runs/{benchmark}.log",
    shell:
        "{PY} scripts.results collect --output {output:q} {input:q} > {log:q} 2>&1"


rule summarize:
    input:
        "results/{benchmark}/runs.csv",
    output:
        "results/{benchmark}/summary.csv",
    log:
        "logs/summarize/{benchmark}.log",
    params:
        max_nonconverged=lambda w: BENCHMARKS[w.benchmark]["max_nonconverged"],
    shell:
        "{PY} scripts.results summarize --runs {input:q} "
        "--max-nonconverged {params.max_nonconverged} --output {output:q} > {log:q} 2>&1"
