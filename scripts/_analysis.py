"""The body shared by the `spectrum`, `landscape` and `sharpness` scripts (after `_job.start`)."""

import time

import torch

from minima.device import resolve_device
from minima.hessian.job import write_output
from minima.runs import with_runtime_hessian


def run_final_model_analysis(snakemake, job) -> None:
    """The body shared by the `spectrum`, `landscape` and `sharpness` scripts: run ``job``
    (a ``minima`` job function) on one run's final model and write its tables and metadata."""
    started = time.perf_counter()
    torch.set_num_threads(snakemake.threads)
    device = resolve_device(snakemake.params.device)
    output = job(
        snakemake.params.model,
        snakemake.params.dataset,
        snakemake.input.weights,
        snakemake.input.final,
        manifest=snakemake.input.manifest,
        split=snakemake.input.split,
        std_scale=snakemake.params.std_scale,
        settings=snakemake.params.settings,
        hessian=with_runtime_hessian(
            snakemake.params.hessian, snakemake.config, snakemake.resources.get("mem_mb")
        ),
        device=device,
    )
    write_output(
        output,
        {name: getattr(snakemake.output, name) for name in output.tables},
        snakemake.output.meta,
        device=device,
        seconds=time.perf_counter() - started,
    )
