"""Rule `figure`: one figure of a training experiment, from its runs' metrics tables."""

from _job import start

log = start(snakemake)

from minima.report.aggregate import load_metrics  # noqa: E402
from minima.report.figures import Look, save_figure, training_figure  # noqa: E402

frame = load_metrics(snakemake.input.metrics)
look = Look(labels=snakemake.params.labels, colors=snakemake.params.colors)
figure = training_figure(frame, snakemake.params.spec, look)
save_figure(figure, snakemake.output.pdf, snakemake.output.png)
log.info(
    "%s: %d runs, %d rows -> %s",
    snakemake.wildcards.figure,
    frame.groupby(["model", "run", "seed"]).ngroups,
    len(frame),
    snakemake.output.pdf,
)
