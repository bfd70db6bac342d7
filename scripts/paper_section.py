"""Rule `paper_section`: one experiment's LaTeX section and its what-was-run facts (JSON)."""

import json

from _job import start

log = start(snakemake)

from minima.report.aggregate import load_finals  # noqa: E402
from minima.report.files import write_text  # noqa: E402
from minima.report.runinfo import describe_experiment  # noqa: E402
from minima.report.sections import experiment_section  # noqa: E402

info = describe_experiment(
    load_finals(snakemake.input.finals),
    experiment=snakemake.wildcards.exp,
    title=snakemake.params.title,
    sweep_finals=load_finals(snakemake.input.sweep_finals),
)
section = experiment_section(
    info,
    figures=snakemake.params.figures,
    tables=snakemake.params.tables,
    skipped=snakemake.params.skipped,
    labels=snakemake.params.labels,
    findings=snakemake.params.findings,
)
write_text(snakemake.output.json, json.dumps(info, indent=2) + "\n")
write_text(snakemake.output.tex, section)
log.info("%s: %d runs on %s", info["experiment"], info["n_runs"], ", ".join(info["hardware"]))
