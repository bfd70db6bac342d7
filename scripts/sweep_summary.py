"""Rule `sweep_summary`: a sweep's points (mean +- std over seeds) and each run's winner."""

from _job import start

log = start(snakemake)

import pandas as pd  # noqa: E402
import torch  # noqa: E402

from minima.io import atomic_path, read_json, write_json  # noqa: E402
from minima.provenance import provenance  # noqa: E402
from minima.sweeps import final_row, summarise  # noqa: E402

rows = [
    final_row(read_json(meta), pd.read_parquet(metrics))
    for meta, metrics in zip(snakemake.input.finals, snakemake.input.metrics, strict=True)
]
summary, winners = summarise(pd.DataFrame(rows), snakemake.params.select)
with atomic_path(snakemake.output.summary) as tmp:
    summary.to_parquet(tmp, index=False)
write_json(
    snakemake.output.best,
    {
        "experiment": snakemake.wildcards.exp,
        "sweep": snakemake.wildcards.sweep,
        "select": snakemake.params.select,
        "winners": winners,
        "points": len(summary),
        "trained": len(rows),
        **provenance(torch.device("cpu")),
    },
)
for model, runs in winners.items():
    for run, winner in runs.items():
        log.info(
            "%s/%s: best %s = %.4g at %s",
            model,
            run,
            winner["select"],
            winner["mean"],
            winner["values"],
        )
