"""Rule `analysis_figure`: one figure of the paper drawn from analysis results by its kind."""

from _job import start

log = start(snakemake)

from minima.report.figures import Look, save_figure  # noqa: E402
from minima.report.kinds import figure_kind, named_inputs  # noqa: E402

spec = snakemake.params.spec
inputs = named_inputs(snakemake.input)
look = Look(labels=snakemake.params.labels, colors=snakemake.params.colors)
figure = figure_kind(spec["kind"]).draw(spec, inputs, look)
save_figure(figure, snakemake.output.pdf, snakemake.output.png)
log.info(
    "%s (%s): %s -> %s",
    snakemake.wildcards.figure,
    spec["kind"],
    {name: len(paths) for name, paths in inputs.items()},
    snakemake.output.pdf,
)
