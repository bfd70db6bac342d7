"""Rule `eigenpairs_subset`: draw and write E5's fixed subset of the training split."""

from _job import start

log = start(snakemake)

from minima.hessian.job import draw_subset  # noqa: E402
from minima.io import atomic_path, write_json  # noqa: E402

table, record = draw_subset(snakemake.input.split, snakemake.params.settings)
with atomic_path(snakemake.output.table) as tmp:
    table.to_parquet(tmp, index=False)
write_json(snakemake.output.meta, record)
log.info("subset of %d of %d training images", record["size"], record["n_train"])
