# Paper stage: figures and tables of the training runs, the generated LaTeX sections (what was
# run, read from the runs' final.json), and the PDF compiled from paper/paper.tex. Which figures
# and tables exist is config: experiments.<exp>.figures / .tables (kinds: minima.report).


from minima.report.differences import study_differences  # noqa: E402


report: "../report/workflow.rst"


rule figure:
    """One figure of a training experiment, drawn from exactly its runs' metrics tables."""
    input:
        unpack(figure_inputs),
    output:
        pdf="results/figures/{exp}/{figure}.pdf",
        png=report(
            "results/figures/{exp}/{figure}.png",
            caption="../report/figure.rst",
            category="{exp}",
        ),
    log:
        "logs/paper/figures/{exp}/{figure}.log",
    wildcard_constraints:
        figure=_one_of(paper_spec.training_figure_names(config)),
    conda:
        "../envs/paper.yaml"
    threads: resource("paper", "threads")
    resources:
        mem_mb=resource("paper", "mem_mb"),
        runtime=resource("paper", "runtime"),
        gpu=0,
    params:
        spec=figure_spec,
        caption=figure_caption,
        labels=PAPER["labels"],
        colors=PAPER_COLORS,
    script:
        "../scripts/figure.py"


rule table:
    """One LaTeX table (booktabs, mean +- std over seeds) and its numbers as CSV."""
    input:
        unpack(table_inputs),
    output:
        tex="results/tables/{exp}/{table}.tex",
        csv=report(
            "results/tables/{exp}/{table}.csv",
            caption="../report/table.rst",
            category="{exp}",
        ),
    log:
        "logs/paper/tables/{exp}/{table}.log",
    wildcard_constraints:
        table=_one_of(paper_spec.table_names(config)),
    conda:
        "../envs/paper.yaml"
    threads: resource("paper", "threads")
    resources:
        mem_mb=resource("paper", "mem_mb"),
        runtime=resource("paper", "runtime"),
        gpu=0,
    params:
        spec=table_spec,
        caption=table_caption,
        labels=PAPER["labels"],
    script:
        "../scripts/table.py"


rule analysis_figure:
    """One figure drawn from analysis results (spectrum, landscape, eigenpairs, similarity,
    sweeps): its kind (minima.report.kinds) names exactly the files it needs."""
    input:
        unpack(analysis_figure_inputs),
    output:
        pdf="results/figures/{exp}/{figure}.pdf",
        png=report(
            "results/figures/{exp}/{figure}.png",
            caption="../report/figure.rst",
            category="{exp}",
        ),
    log:
        "logs/paper/figures/{exp}/{figure}.log",
    wildcard_constraints:
        figure=_one_of(paper_spec.analysis_names(config, "figures")),
    conda:
        "../envs/paper.yaml"
    threads: resource("paper", "threads")
    resources:
        mem_mb=resource("paper", "mem_mb"),
        runtime=resource("paper", "runtime"),
        gpu=0,
    params:
        spec=analysis_figure_spec,
        caption=figure_caption,
        labels=PAPER["labels"],
        colors=PAPER_COLORS,
    script:
        "../scripts/analysis_figure.py"


rule analysis_table:
    """One LaTeX table built from analysis results (and its numbers as CSV)."""
    input:
        unpack(analysis_table_inputs),
    output:
        tex="results/tables/{exp}/{table}.tex",
        csv=report(
            "results/tables/{exp}/{table}.csv",
            caption="../report/table.rst",
            category="{exp}",
        ),
    log:
        "logs/paper/tables/{exp}/{table}.log",
    wildcard_constraints:
        table=_one_of(paper_spec.analysis_names(config, "tables")),
    conda:
        "../envs/paper.yaml"
    threads: resource("paper", "threads")
    resources:
        mem_mb=resource("paper", "mem_mb"),
        runtime=resource("paper", "runtime"),
        gpu=0,
    params:
        spec=analysis_table_spec,
        caption=table_caption,
        labels=PAPER["labels"],
    script:
        "../scripts/analysis_table.py"


rule paper_section:
    """One experiment's LaTeX section (what was run, its tables and figures) and its facts."""
    input:
        unpack(section_inputs),
    output:
        tex="results/paper/sections/{exp}.tex",
        json="results/paper/sections/{exp}.json",
    log:
        "logs/paper/sections/{exp}.log",
    conda:
        "../envs/paper.yaml"
    threads: resource("paper", "threads")
    resources:
        mem_mb=resource("paper", "mem_mb"),
        runtime=resource("paper", "runtime"),
        gpu=0,
    params:
        title=experiment_title,
        figures=section_figures,
        tables=section_tables,
        skipped=section_skipped,
        labels=PAPER["labels"],
        findings=lambda wc: (
            f"results/paper/sections/findings_{wc.exp}.tex"
            if wc.exp in findings_experiments()
            else None
        ),
    script:
        "../scripts/paper_section.py"


rule paper_overview:
    """The "What was run" section: data, runs, seeds, hardware, time and code of every experiment."""
    input:
        facts=expand("results/paper/sections/{exp}.json", exp=paper_experiments()),
    output:
        tex="results/paper/sections/what_was_run.tex",
    log:
        "logs/paper/sections/what_was_run.log",
    conda:
        "../envs/paper.yaml"
    threads: resource("paper", "threads")
    resources:
        mem_mb=resource("paper", "mem_mb"),
        runtime=resource("paper", "runtime"),
        gpu=0,
    params:
        labels=PAPER["labels"],
        differences=study_differences(config, paper_experiments()),
    script:
        "../scripts/paper_overview.py"


rule paper:
    """The paper PDF (latexmk; a missing TeX fails this job alone, saying what to install)."""
    input:
        unpack(paper_inputs),
        findings=findings_targets(),
    output:
        pdf="results/paper/paper.pdf",
    log:
        "logs/paper/paper.log",
    conda:
        "../envs/paper.yaml"
    threads: resource("paper", "threads")
    resources:
        mem_mb=resource("paper", "mem_mb"),
        runtime=resource("paper", "runtime"),
        gpu=0,
    params:
        title=PAPER["title"],
        build_dir="results/paper/build",
    script:
        "../scripts/paper.py"
