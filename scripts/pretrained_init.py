"""Rule `pretrained_init`: ImageNet-pretrained ResNet18 weights with a fresh, seeded head."""

from _job import start

log = start(snakemake)

from minima.train.job import write_pretrained_weights  # noqa: E402

write_pretrained_weights(
    snakemake.params.model,
    dataset=snakemake.params.dataset,
    seed=int(snakemake.wildcards.seed),
    source=snakemake.input.source,
    path=snakemake.output.weights,
)
