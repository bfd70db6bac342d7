# Findings stage: the studies' claims (config experiments.<exp>.claims) judged from the runs'
# tables, reported vs reproduced numbers, and curvature vs generalization across runs
# (minima.findings). Reads only files other stages wrote, so one experiment's findings plan
# exactly its runs and analyses.
# Its input functions live in rules/common.smk (section "Findings").


rule findings:
    """One experiment's claims judged, its reported-vs-reproduced table, and Kendall tau of
    curvature vs generalization across its runs (a scatter figure and a table)."""
    input:
        unpack(findings_inputs),
    output:
        verdicts=f"{FINDINGS_DIR}/verdicts.parquet",
        json=f"{FINDINGS_DIR}/verdicts.json",
        csv=report(
            f"{FINDINGS_DIR}/verdicts.csv",
            caption="../report/findings.rst",
            category="{exp}",
            subcategory="findings",
        ),
        reproduced=f"{FINDINGS_DIR}/reproduced.parquet",
        correlation=f"{FINDINGS_DIR}/correlation.parquet",
        points=f"{FINDINGS_DIR}/points.parquet",
        table="results/tables/{exp}/findings.tex",
        reproduced_tex="results/tables/{exp}/reproduced.tex",
        correlation_tex="results/tables/{exp}/curvature_generalization.tex",
        section="results/paper/sections/findings_{exp}.tex",
        pdf="results/figures/{exp}/curvature_generalization.pdf",
        png=report(
            "results/figures/{exp}/curvature_generalization.png",
            caption="../report/findings.rst",
            category="{exp}",
            subcategory="findings",
        ),
    log:
        "logs/findings/{exp}.log",
    conda:
        "../envs/findings.yaml"
    threads: resource("paper", "threads")
    resources:
        mem_mb=resource("paper", "mem_mb"),
        runtime=resource("paper", "runtime"),
        gpu=0,
    params:
        claims=lambda wc: findings_claims.claim_entries(config, wc.exp),
        models=lambda wc: [
            plan.model_label(m) for m in config["experiments"][wc.exp]["models"]
        ],
        runs=lambda wc: findings_runs(wc.exp),
        skipped=section_skipped,
        init=findings_init,
        stand_in=findings_stand_in,
        not_testable=findings_not_testable,
        labels=PAPER["labels"],
        colors=PAPER_COLORS,
    script:
        "../scripts/findings.py"


rule findings_glance:
    """ "Findings at a glance": every built experiment's claims in one table after the title."""
    input:
        facts=expand("results/findings/{exp}/verdicts.json", exp=findings_experiments()),
    output:
        tex="results/paper/sections/findings_glance.tex",
    log:
        "logs/findings/glance.log",
    conda:
        "../envs/findings.yaml"
    threads: resource("paper", "threads")
    resources:
        mem_mb=resource("paper", "mem_mb"),
        runtime=resource("paper", "runtime"),
        gpu=0,
    script:
        "../scripts/findings_glance.py"
