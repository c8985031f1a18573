# The import backend: run NN of an import system is the NN-th published result_*.txt of its
# folder (systems.<name>.import_dir/<mlperf_name>/, or a folder_aliases name), copied with a
# run.json that says where it came from (and the folder's scaling.json factor, the benchmark's
# olympic_drop, the published systems/<system>.json), and its result.json. Collecting and
# scoring are the same rules as for runs made here.
#
# One job per benchmark imports every run of its import systems (rule import_<benchmark>):
# a job per log spent 0.17 s starting Python for 25 ms of work. The job shares the logs over
# its threads' processes; its plan (each run's source, folder and specification) is a file
# named by its content (inputs.import_plan_file), and params.sources, a digest of every log's
# size and mtime, redoes it when a log changes. Asking for one imported run imports them all:
# the compliance verdicts are cached, so that takes a few ms per unchanged log.


for _batch in inputs.import_batches():

    rule:
        name:
            _batch.rule
        input:
            _batch.folders,
        output:
            _batch.outputs,
        log:
            f"logs/import/{_batch.benchmark}/{_batch.rule}.log",
        threads: IMPORT_THREADS
        params:
            plan=inputs.import_plan_file(_batch),
            sources=_batch.sources,
        shell:
            "{PY} scripts.import_logs batch --plan {params.plan:q} --workers {threads} "
            "> {log:q} 2>&1"
