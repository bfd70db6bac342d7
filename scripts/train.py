"""Rule `train`: one training run (resumable) -> final weights, metrics, checkpoints."""

from _job import start

log = start(snakemake)

from minima.train.job import RunFiles, train_run  # noqa: E402

train_run(
    snakemake.params.run,
    manifest=snakemake.input.manifest,
    split=snakemake.input.split,
    init_weights=snakemake.input.init,
    files=RunFiles(
        weights=snakemake.output.weights,
        metrics=snakemake.output.metrics,
        checkpoints=snakemake.output.checkpoints,
        work_dir=snakemake.params.work_dir,
    ),
    threads=snakemake.threads,
)
