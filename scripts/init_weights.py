"""Rule `init_weights`: the seeded initial weights shared by every run of one seed."""

from _job import start

log = start(snakemake)

from minima.train.job import write_initial_weights  # noqa: E402

write_initial_weights(
    snakemake.params.model,
    dataset=snakemake.params.dataset,
    seed=int(snakemake.wildcards.seed),
    path=snakemake.output.weights,
)
