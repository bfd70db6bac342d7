"""Rule `eigenpairs`: eigsh LA/SA eigenpairs of one checkpoint on E5's fixed subset, and the
line searches along them."""

import time

from _job import start

log = start(snakemake)

import torch  # noqa: E402

from minima.device import resolve_device  # noqa: E402
from minima.hessian.job import eigenpairs_job, write_output  # noqa: E402
from minima.runs import with_runtime_hessian  # noqa: E402

started = time.perf_counter()
torch.set_num_threads(snakemake.threads)
device = resolve_device(snakemake.params.device)
output = eigenpairs_job(
    snakemake.params.model,
    snakemake.params.dataset,
    snakemake.input.checkpoints,
    int(snakemake.wildcards.step),
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
    {name: getattr(snakemake.output, name) for name in output.tables},
    snakemake.output.meta,
    device=device,
    seconds=time.perf_counter() - started,
)
