"""Rule `paper_overview`: the "What was run" section, from every experiment's facts."""

import json
from pathlib import Path

from _job import start

log = start(snakemake)

from minima.report.files import write_text  # noqa: E402
from minima.report.sections import overview_section  # noqa: E402

infos = [json.loads(Path(path).read_text()) for path in snakemake.input.facts]
tex = overview_section(
    infos, labels=snakemake.params.labels, differences=snakemake.params.differences
)
write_text(snakemake.output.tex, tex)
log.info("what was run: %s", ", ".join(i["experiment"] for i in infos))
