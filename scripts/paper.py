"""Rule `paper`: compile paper/paper.tex with the generated sections into the paper PDF."""

import shutil
from pathlib import Path

from _job import start

log = start(snakemake)

from minima.report.build import build_pdf  # noqa: E402
from minima.report.files import atomic_path, write_text  # noqa: E402
from minima.report.sections import body, front_matter  # noqa: E402

build_dir = Path(snakemake.params.build_dir)
write_text(build_dir / "front.tex", front_matter(snakemake.params.title))
glance = [p for p in snakemake.input.findings if p.endswith("findings_glance.tex")]
write_text(build_dir / "glance.tex", rf"\input{{{glance[0]}}}" + "\n" if glance else "")
write_text(build_dir / "body.tex", body([snakemake.input.overview, *snakemake.input.sections]))
pdf = build_pdf(snakemake.input.template, out_dir=build_dir, search_path=[build_dir])
with atomic_path(snakemake.output.pdf) as tmp:
    shutil.copyfile(pdf, tmp)
log.info("paper -> %s (LaTeX log: %s)", snakemake.output.pdf, build_dir / "paper.log")
