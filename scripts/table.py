"""Rule `table`: one LaTeX table (and its numbers as CSV) from its runs' metrics and metadata."""

from _job import start

log = start(snakemake)

from minima.report.aggregate import load_finals, load_metrics, run_summaries  # noqa: E402
from minima.report.figures import Look  # noqa: E402
from minima.report.tables import training_table, write_table  # noqa: E402

finals = load_finals(snakemake.input.finals)
summaries = run_summaries(load_metrics(snakemake.input.metrics), finals)
look = Look(labels=snakemake.params.labels)
table = training_table(summaries, finals, snakemake.params.spec, look)
write_table(table, snakemake.output.tex, snakemake.output.csv)
log.info("%s: %d runs -> %s", snakemake.wildcards.table, len(summaries), snakemake.output.tex)
