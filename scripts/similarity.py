"""Rule `similarity`: layer x layer similarity of two trained runs, as a tidy table + JSON."""

import time

from _job import start

log = start(snakemake)

from minima.device import resolve_device  # noqa: E402
from minima.io import atomic_path, write_json  # noqa: E402
from minima.provenance import provenance  # noqa: E402
from minima.similarity.job import compare_runs  # noqa: E402

started = time.perf_counter()
device = resolve_device(snakemake.params.device)
table = compare_runs(
    snakemake.wildcards.measure,
    snakemake.params.model,
    snakemake.params.dataset,
    snakemake.input.weights_a,
    snakemake.input.weights_b,
    manifest=snakemake.input.manifest,
    split=snakemake.input.split,
    settings=snakemake.params.settings,
    device=device,
)
with atomic_path(snakemake.output.table) as tmp:
    table.to_parquet(tmp, index=False)
write_json(
    snakemake.output.meta,
    {
        "measure": snakemake.wildcards.measure,
        "runs": [snakemake.wildcards.run_a, snakemake.wildcards.run_b],
        "weights": [snakemake.input.weights_a, snakemake.input.weights_b],
        "settings": snakemake.params.settings,
        "seconds": time.perf_counter() - started,
        **provenance(device),
    },
)
