# Rebuilds the paper of PAPER_SPEC: data -> training runs -> analyses -> figures -> PDF.
# Everything the workflow does is decided by config.yaml (validated on start-up); the rules
# only say which files come from which, and what each job needs.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "rules/common.smk"
include: "rules/cluster.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/sweep.smk"
include: "rules/similarity.smk"
include: "rules/hessian.smk"
include: "rules/findings.smk"
include: "rules/paper.smk"


rule all:
    default_target: True
    input:
        all_targets(),
        findings_targets(),
