"""Rule `split`: an experiment's fixed train/val/test indices and the train split's stats."""

from _job import start

log = start(snakemake)

from minima.data import manifest_root, write_split  # noqa: E402

data = snakemake.params.data
if int(snakemake.wildcards.seed) != data["split_seed"]:
    raise ValueError(
        f"{snakemake.output.split}: seed {snakemake.wildcards.seed} is not "
        f"experiments.{snakemake.wildcards.exp}.data.split_seed ({data['split_seed']})"
    )
sizes = write_split(
    snakemake.wildcards.dataset,
    manifest_root(snakemake.input.manifest),
    snakemake.output.split,
    seed=data["split_seed"],
    val_size=data["val_size"],
    train_size=data["train_size"],
    test_size=data["test_size"],
)
log.info("split of %s for %s: %s", snakemake.wildcards.dataset, snakemake.wildcards.exp, sizes)
