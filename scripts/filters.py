"""Rule `filters`: the filters of one conv layer of a trained run, as an image (PDF + PNG)."""

from _job import start

log = start(snakemake)

from minima.report.figures import save_figure  # noqa: E402
from minima.similarity.job import filter_image  # noqa: E402
from minima.similarity.plots import filter_figure  # noqa: E402

wildcards = snakemake.wildcards
grid = filter_image(
    snakemake.params.model,
    snakemake.params.dataset,
    snakemake.input.weights,
    snakemake.params.layer,
)
figure = filter_figure(
    {f"{wildcards.run} ({snakemake.params.layer})": grid}, title=f"{wildcards.exp} filters"
)
save_figure(figure, snakemake.output.pdf, snakemake.output.png)
