"""Rule `analysis_table`: one LaTeX table (and its CSV) built from analysis results."""

from _job import start

log = start(snakemake)

from minima.report.figures import Look  # noqa: E402
from minima.report.kinds import named_inputs, table_kind  # noqa: E402
from minima.report.tables import write_table  # noqa: E402

spec = snakemake.params.spec
inputs = named_inputs(snakemake.input)
table = table_kind(spec["kind"]).draw(spec, inputs, Look(labels=snakemake.params.labels))
write_table(table, snakemake.output.tex, snakemake.output.csv)
log.info(
    "%s (%s): %d rows -> %s",
    snakemake.wildcards.table,
    spec["kind"],
    len(table.numbers),
    snakemake.output.tex,
)
