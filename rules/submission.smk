# An MLPerf submission of the campaign's runs (docs/submission.md): the systems with a
# submission: block, the MLPerf benchmarks of the campaign, every run. One job builds
# submission/<submitter>/ as mlperf-logging's package checker reads it, runs the checker for the
# round, and writes the verdict (scripts/submission/). Its inputs are the eligible runs' files
# and its plan, a file named by its content (inputs.submission_plan_file): a changed
# configuration is another plan, so the job is redone.


rule submission:
    input:
        plan=lambda w: inputs.submission_plan_file(),
        runs=lambda w: inputs.submission_inputs(),
    output:
        "submission/verdict.json",
    log:
        "logs/submission/submission.log",
    shell:
        "{PY} scripts.submission.cli --plan {input.plan:q} --output {output:q} > {log:q} 2>&1"
