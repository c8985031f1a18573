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


# A report while runs are still missing or failing: the finished runs only, each system's row
# marked partial. It is redone whenever the set of finished runs changes. summary.csv itself
# always waits for every run.
rule summarize_partial:
    input:
        lambda w: finished_results(w.benchmark),
    output:
        "results/{benchmark}/summary.partial.csv",
    log:
        "logs/summarize_partial/{benchmark}.log",
    params:
        expected=lambda w: json_arg(
            {s: BENCHMARKS[w.benchmark]["runs"] for s in campaign_systems()}
        ),
        max_nonconverged=lambda w: BENCHMARKS[w.benchmark]["max_nonconverged"],
    shell:
        "{PY} scripts.results partial --expected-json {params.expected} "
        "--max-nonconverged {params.max_nonconverged} --output {output:q} {input:q} "
        "> {log:q} 2>&1"
