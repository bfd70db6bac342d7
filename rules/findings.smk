# Findings stage: the studies' claims (config experiments.<exp>.claims) judged from the runs'
# tables, reported vs reproduced numbers, and curvature vs generalization across runs
# (minima.findings). Reads only files other stages wrote, so one experiment's findings plan
# exactly its runs and analyses.
from minima.findings import claims as findings_claims  # noqa: E402
from minima.findings import quantities as findings_quantities  # noqa: E402
from minima.report.runinfo import STAND_INS as _STAND_INS  # noqa: E402

FINDINGS_DIR = "results/findings/{exp}"
# Analysis tables the findings may read: (analysis, file stem).
FINDINGS_TABLES = (
    ("spectrum", "eigenvalues"),
    ("spectrum", "trace"),
    ("landscape", "landscape"),
    ("sharpness", "sharpness"),
    ("eigenpairs", "eigenvalues"),
    ("eigenpairs", "line_search_summary"),
)


def findings_experiments():
    """Experiments of the paper (or the build) that state claims."""
    return [
        exp for exp in paper_experiments() if findings_claims.claim_entries(config, exp)
    ]


def findings_runs(exp):
    """Runs the findings read: those the claims name and those a curvature analysis covers
    (the correlation's points), in config order."""
    named = {
        run
        for claim in findings_claims.parse_claims(config, exp)
        for run in claim.named_runs()
    }
    for analysis in ("spectrum", "landscape", "sharpness"):
        if plan.analysis_section(config, exp, analysis) is not None:
            named |= set(plan.analysis_runs(config, exp, analysis))
    return [run for run in config["experiments"][exp]["runs"] if run in named]


def findings_inputs(wildcards):
    """Metrics and final.json of each read run (not skipped), and each analysis table of
    the experiment that a claim or the correlation may read."""
    exp = wildcards.exp
    runs = set(findings_runs(exp))
    keys = [k for k in plan.run_keys(config, [exp]) if k.run in runs]
    inputs = {
        "metrics": [run_path(k, "metrics.parquet") for k in keys],
        "finals": [run_path(k, "final.json") for k in keys],
    }
    for analysis, stem in FINDINGS_TABLES:
        if plan.analysis_section(config, exp, analysis) is None:
            continue
        covered = set(plan.analysis_runs(config, exp, analysis))
        inputs[f"{analysis}__{stem}"] = [
            f"results/analysis/{analysis}/{k.path}/{stem}.parquet"
            for k in keys
            if k.run in covered
        ]
    return inputs


def findings_init(wildcards):
    """Run -> where its initial weights come from (paired comparisons share them)."""
    out = {}
    for run in config["experiments"][wildcards.exp]["runs"]:
        settings = plan.run_settings(config, wildcards.exp, run)
        source = config["experiments"][wildcards.exp]["runs"][run].get("init_from")
        out[run] = (
            f"from:{source}"
            if source
            else ("pretrained" if settings["pretrained"] else "seed")
        )
    return out


def findings_stand_in(wildcards):
    dataset = config["experiments"][wildcards.exp]["dataset"]
    return _STAND_INS.get(dataset)


def findings_not_testable(wildcards):
    entry = config["experiments"][wildcards.exp].get("not_testable") or {}
    return [{"id": cid, "needs": needs} for cid, needs in entry.items()]


def findings_targets():
    out = []
    for exp in findings_experiments():
        out += [
            f"results/findings/{exp}/verdicts.json",
            f"results/paper/sections/findings_{exp}.tex",
        ]
    if out:
        out.append("results/paper/sections/findings_glance.tex")
    return out


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
        "../envs/paper.yaml"
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
        "../envs/paper.yaml"
    threads: resource("paper", "threads")
    resources:
        mem_mb=resource("paper", "mem_mb"),
        runtime=resource("paper", "runtime"),
        gpu=0,
    script:
        "../scripts/findings_glance.py"
