# The import backend: run NN of an import system is the NN-th published result_*.txt of its
# folder (systems.<name>.import_dir/<mlperf_name>/, or a folder_aliases name), copied with a
# run.json that says where it came from (and the folder's scaling.json factor, the benchmark's
# olympic_drop, the published systems/<system>.json), and its result.json. Collecting and
# scoring are the same rules as for runs made here.
#
# One job imports a batch of a benchmark's import systems (whole systems, up to 100 runs: rule
# import_<benchmark>, import_<benchmark>_2...): a job per log spent 0.17 s starting Python for
# 25 ms of work. The job shares the logs over its threads' processes. Its input is its plan
# (each run's source, folder and specification, and a digest of every log's size and mtime),
# a file named by its content (inputs.import_plan_file): a changed log or configuration is
# another plan, so another input, and the job is redone. Asking for one imported run imports
# its batch: the compliance verdicts are cached, so that takes a few ms per unchanged log.


for _batch in inputs.import_batches():

    rule:
        name:
            _batch.rule
        input:
            plan=inputs.import_plan_file(_batch),
        output:
            _batch.outputs,
        log:
            f"logs/import/{_batch.benchmark}/{_batch.rule}.log",
        threads: IMPORT_THREADS
        shell:
            "{PY} scripts.run.published.cli batch --plan {input.plan:q} --workers {threads} "
            "> {log:q} 2>&1"
