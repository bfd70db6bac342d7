"""Rule `spectrum`: top Hessian eigenvalues, trace and SLQ density of one run's final model."""

from _job import start

log = start(snakemake)

from _analysis import run_final_model_analysis  # noqa: E402

from minima.hessian.job import spectrum_job  # noqa: E402

run_final_model_analysis(snakemake, spectrum_job)
