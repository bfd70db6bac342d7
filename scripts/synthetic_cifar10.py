"""Rule `synthetic_cifar10`: generated images in CIFAR-10's on-disk format (never a result)."""

from _job import start

log = start(snakemake)

import torch  # noqa: E402

from minima.data import prepare_dataset, write_manifest  # noqa: E402
from minima.provenance import provenance  # noqa: E402

manifest = prepare_dataset(
    "cifar10_synthetic", snakemake.params.raw_dir, synthetic=snakemake.params.synthetic
)
log.info("generated %s under %s", manifest["dataset"], manifest["root"])
write_manifest(snakemake.output.manifest, {**manifest, **provenance(torch.device("cpu"))})
