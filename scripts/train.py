"""Rules `train` and `sweep_train`: one training run (resumable) -> final weights, metrics,
checkpoints. A main run fed by a sweep (`feed: true`) trains with the sweep's winning values."""

from _job import start

log = start(snakemake)

from minima.io import read_json  # noqa: E402
from minima.runs import with_runtime_settings  # noqa: E402
from minima.sweeps import apply_winner  # noqa: E402
from minima.train.job import RunFiles, train_run  # noqa: E402

# the param holds what changes the result; progress, eval batch, resume frequency: the config
run = with_runtime_settings(snakemake.params.run, snakemake.config)
if hasattr(snakemake.input, "sweep_best"):
    run = apply_winner(run, read_json(snakemake.input.sweep_best), snakemake.input.sweep_best)
    log.info("tuned by %s: %s", snakemake.input.sweep_best, run["tuned_by"]["values"])

train_run(
    run,
    manifest=snakemake.input.manifest,
    split=snakemake.input.split,
    init_weights=snakemake.input.init,
    files=RunFiles(
        weights=snakemake.output.weights,
        metrics=snakemake.output.metrics,
        checkpoints=snakemake.output.checkpoints,
        work_dir=snakemake.params.work_dir,
        steps=snakemake.output.steps if hasattr(snakemake.output, "steps") else None,
    ),
    threads=snakemake.threads,
    gpus=snakemake.resources.get("gpu", 0),
    cpu_fallback=snakemake.config.get("gpu_fallback", "fail") == "cpu",
)
