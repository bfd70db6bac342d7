"""Rule `download`: a dataset's raw files (downloaded, or found under data_root), verified."""

from _job import start

log = start(snakemake)

import torch  # noqa: E402

from minima.data import prepare_dataset, write_manifest  # noqa: E402
from minima.provenance import provenance  # noqa: E402

manifest = prepare_dataset(
    snakemake.wildcards.dataset,
    snakemake.params.raw_dir,
    data_root=snakemake.params.data_root,
    download=snakemake.params.download,
    mirrors=snakemake.params.mirrors,
    embedded_dir=snakemake.params.embedded_dir,
)
log.info("%s ready under %s (%s)", manifest["dataset"], manifest["root"], manifest["source"])
write_manifest(snakemake.output.manifest, {**manifest, **provenance(torch.device("cpu"))})
