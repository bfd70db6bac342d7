"""Rule `landscape`: 1D and 2D loss surfaces of one run's final model."""

from _job import start

log = start(snakemake)

from _analysis import run_final_model_analysis  # noqa: E402

from minima.landscape.job import landscape_job  # noqa: E402

run_final_model_analysis(snakemake, landscape_job)
