"""Rule `subset_check`: LA(k)/SA(k) of E5's fixed subset vs the whole training split, once at
the final model."""

import time

from _job import start

log = start(snakemake)

import torch  # noqa: E402

from minima.device import resolve_device  # noqa: E402
from minima.hessian.job import subset_check_job, write_output  # noqa: E402
from minima.runs import with_runtime_hessian  # noqa: E402

started = time.perf_counter()
torch.set_num_threads(snakemake.threads)
device = resolve_device(snakemake.params.device)
output = subset_check_job(
    snakemake.params.model,
    snakemake.params.dataset,
    snakemake.input.weights,
    snakemake.input.final,
    snakemake.input.subset,
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
    {"table": snakemake.output.table},
    snakemake.output.meta,
    device=device,
    seconds=time.perf_counter() - started,
)
