"""Rule `similarity_heatmap`: one similarity table as a layer x layer heatmap (PDF + PNG)."""

from _job import start

log = start(snakemake)

import pandas as pd  # noqa: E402

from minima.report.figures import save_figure  # noqa: E402
from minima.similarity.plots import similarity_heatmap  # noqa: E402

wildcards = snakemake.wildcards
table = pd.read_parquet(snakemake.input.table)
figure = similarity_heatmap(
    table,
    value="value",
    title=f"{wildcards.exp}: {wildcards.measure}",
    label_a=wildcards.run_a,
    label_b=wildcards.run_b,
)
save_figure(figure, snakemake.output.pdf, snakemake.output.png)
