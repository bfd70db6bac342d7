"""Rule `sharpness`: first-order and gradient-ascent sharpness of one run's final model."""

from _job import start

log = start(snakemake)

from _analysis import run_final_model_analysis  # noqa: E402

from minima.sharpness.job import sharpness_job  # noqa: E402

run_final_model_analysis(snakemake, sharpness_job)
