"""Rule `findings_glance`: the "Findings at a glance" table of every built experiment."""

import json
from pathlib import Path

from _job import start

log = start(snakemake)

from minima.findings.tex import glance_section  # noqa: E402
from minima.report.files import write_text  # noqa: E402

facts = [json.loads(Path(path).read_text()) for path in snakemake.input.facts]
write_text(snakemake.output.tex, glance_section(facts))
log.info("findings at a glance: %d claims", sum(len(f["claims"]) for f in facts))
