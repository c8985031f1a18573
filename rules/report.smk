# Aggregation: every run of a benchmark into runs.csv, then one summary row per system.

# The column registries: the tables' captions (report/summary.rst, comparison.rst) are templates
# that list their columns, given to them as params.columns. A registry is a value Snakemake
# cannot represent in its params record, so it never makes a finished table outdated.
from scripts.analysis import comparison_columns, summary_columns


rule collect_runs:
    input:
        lambda w: inputs.run_results(w.benchmark),
    output:
        "results/{benchmark}/runs.csv",
    log:
        "logs/collect_runs/{benchmark}.log",
    shell:
        "{PY} scripts.analysis.tables collect --output {output:q} {input:q} > {log:q} 2>&1"


rule summarize:
    input:
        "results/{benchmark}/runs.csv",
    output:
        report(
            "results/{benchmark}/summary.csv",
            caption="../report/summary.rst",
            category="Tables",
            subcategory="{benchmark}",
        ),
    log:
        "logs/summarize/{benchmark}.log",
    params:
        max_nonconverged=lambda w: BENCHMARKS[w.benchmark]["max_nonconverged"],
        resamples=CONFIG["statistics"]["bootstrap_resamples"],
        seed=CONFIG["statistics"]["bootstrap_seed"],
        columns=summary_columns.SUMMARY,
        # the M-of-N protocol (scripts/core/window_setting.py): "" without a window
        window=inputs.window_option,
    shell:
        "{PY} scripts.analysis.tables summarize --runs {input:q} "
        "--max-nonconverged {params.max_nonconverged} {params.window}"
        "--bootstrap-resamples {params.resamples} --bootstrap-seed {params.seed} "
        "--output {output:q} > {log:q} 2>&1"


# A report while runs are still missing or failing: the finished runs only, each system's row
# marked partial. It is redone whenever the set of finished runs changes. summary.csv itself
# always waits for every run.
rule summarize_partial:
    input:
        lambda w: inputs.finished_results(w.benchmark),
    output:
        "results/{benchmark}/summary.partial.csv",
    log:
        "logs/summarize_partial/{benchmark}.log",
    params:
        expected=lambda w: json_arg(inputs.expected_runs(w.benchmark)),
        max_nonconverged=lambda w: BENCHMARKS[w.benchmark]["max_nonconverged"],
    shell:
        "{PY} scripts.analysis.tables partial --expected-json {params.expected} "
        "--max-nonconverged {params.max_nonconverged} --output {output:q} {input:q} "
        "> {log:q} 2>&1"


# Every evaluation of every run (the convergence curves of the report).
rule collect_evals:
    input:
        lambda w: inputs.run_results(w.benchmark),
    output:
        "results/{benchmark}/evals.csv",
    log:
        "logs/collect_evals/{benchmark}.log",
    shell:
        "{PY} scripts.analysis.tables evals --output {output:q} {input:q} > {log:q} 2>&1"


# Each system against the reference system (campaign.reference_system; the first system by
# name when that one has no runs of the benchmark).
rule compare_systems:
    input:
        runs="results/{benchmark}/runs.csv",
        summary="results/{benchmark}/summary.csv",
    output:
        report(
            "results/{benchmark}/comparison.csv",
            caption="../report/comparison.rst",
            category="Tables",
            subcategory="{benchmark}",
        ),
    log:
        "logs/compare_systems/{benchmark}.log",
    params:
        reference=lambda w: CONFIG["campaign"].get("reference_system") or "",
        min_effect=CONFIG["statistics"]["min_effect"],
        resamples=CONFIG["statistics"]["bootstrap_resamples"],
        seed=CONFIG["statistics"]["bootstrap_seed"],
        columns=comparison_columns.COMPARISON,
    shell:
        "{PY} scripts.analysis.tables compare --runs {input.runs:q} --summary {input.summary:q} "
        "--reference {params.reference:q} --min-effect {params.min_effect} "
        "--bootstrap-resamples {params.resamples} --bootstrap-seed {params.seed} "
        "--output {output:q} > {log:q} 2>&1"


rule plot_results:
    input:
        runs="results/{benchmark}/runs.csv",
        summary="results/{benchmark}/summary.csv",
        comparison="results/{benchmark}/comparison.csv",
        evals="results/{benchmark}/evals.csv",
    output:
        **{
            name: report(
                f"results/{{benchmark}}/plots/{name}.png",
                caption=f"../report/{name}.rst",
                category="Plots",
                subcategory="{benchmark}",
            )
            for name in PLOTS
        },
    log:
        "logs/plot_results/{benchmark}.log",
    params:
        quality=lambda w: json_arg(BENCHMARKS[w.benchmark]["quality"]),
        outdir="results/{benchmark}/plots",
    shell:
        "{PY} scripts.analysis.plots --runs {input.runs:q} --summary {input.summary:q} "
        "--comparison {input.comparison:q} --evals {input.evals:q} "
        "--quality-json {params.quality} --outdir {params.outdir:q} > {log:q} 2>&1"


# The M-of-N protocol's windows (statistics.window or a benchmark's window): every window's score,
# the median window starred. Only the report of a benchmark with a window asks for it
# (inputs.plots), so without a window there is no such job.
rule plot_windows:
    input:
        runs="results/{benchmark}/runs.csv",
        summary="results/{benchmark}/summary.csv",
    output:
        report(
            "results/{benchmark}/plots/windows.png",
            caption="../report/windows.rst",
            category="Plots",
            subcategory="{benchmark}",
        ),
    log:
        "logs/plot_windows/{benchmark}.log",
    shell:
        "{PY} scripts.analysis.window_plot --runs {input.runs:q} --summary {input.summary:q} "
        "--output {output:q} > {log:q} 2>&1"


# The systems ranked by MLPerf score, each with a bootstrap 95% interval of its score from its
# own runs, accelerator-minutes, and which neighbouring ranks overlap (scripts/analysis/leaderboard.py).
rule leaderboard:
    input:
        runs="results/{benchmark}/runs.csv",
        summary="results/{benchmark}/summary.csv",
    output:
        table=report(
            "results/{benchmark}/leaderboard.csv",
            caption="../report/leaderboard.rst",
            category="Tables",
            subcategory="{benchmark}",
        ),
        plot=report(
            "results/{benchmark}/plots/leaderboard.png",
            caption="../report/leaderboard.rst",
            category="Plots",
            subcategory="{benchmark}",
        ),
        energy_plot=report(
            "results/{benchmark}/plots/energy.png",
            caption="../report/energy.rst",
            category="Plots",
            subcategory="{benchmark}",
        ),
    log:
        "logs/leaderboard/{benchmark}.log",
    params:
        resamples=CONFIG["statistics"]["bootstrap_resamples"],
        seed=CONFIG["statistics"]["bootstrap_seed"],
    shell:
        "{PY} scripts.analysis.leaderboard --summary {input.summary:q} --runs {input.runs:q} "
        "--bootstrap-resamples {params.resamples} --bootstrap-seed {params.seed} "
        "--output {output.table:q} --plot {output.plot:q} "
        "--energy-plot {output.energy_plot:q} > {log:q} 2>&1"


# One self-contained page: the verdict, the tables, the plots (embedded), warnings, and the
# provenance of every system.
rule write_report:
    input:
        runs="results/{benchmark}/runs.csv",
        summary="results/{benchmark}/summary.csv",
        comparison="results/{benchmark}/comparison.csv",
        plots=lambda w: inputs.plots(w.benchmark),
        leaderboard="results/{benchmark}/leaderboard.csv",
        leaderboard_plot="results/{benchmark}/plots/leaderboard.png",
        results=lambda w: inputs.run_results(w.benchmark),
        # provenance of the systems that ran here (import systems have their run.json)
        environments=lambda w: inputs.environments(w.benchmark),
    output:
        report(
            "results/{benchmark}/report.html",
            caption="../report/report_html.rst",
            category="Report",
            subcategory="{benchmark}",
        ),
    log:
        "logs/write_report/{benchmark}.log",
    params:
        context=lambda w: json_arg(inputs.report_context(w.benchmark)),
    shell:
        "{PY} scripts.analysis.report --benchmark {wildcards.benchmark} "
        "--results-dir results/{wildcards.benchmark} --context-json {params.context} "
        "--output {output:q} > {log:q} 2>&1"
