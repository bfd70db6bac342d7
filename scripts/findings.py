"""Rule `findings`: judge one experiment's claims from its runs' tables (minima.findings)."""

from _job import start

log = start(snakemake)

from minima.findings.claims import parse_claims  # noqa: E402
from minima.findings.figure import scatter  # noqa: E402
from minima.findings.job import findings, load_runs, load_tables  # noqa: E402
from minima.io import write_json  # noqa: E402
from minima.report.figures import save_figure  # noqa: E402
from minima.report.files import atomic_path, write_text  # noqa: E402

exp = snakemake.wildcards.exp
analyses = {k: v for k, v in snakemake.input.items() if "__" in k}
tables = load_tables(snakemake.input.get("tables", []))
data = load_runs(snakemake.input.metrics, snakemake.input.finals, analyses)
out = snakemake.output
result = findings(
    exp,
    parse_claims(snakemake.config, exp),
    data,
    models=snakemake.params.models,
    run_names=snakemake.params.runs,
    skipped=snakemake.params.skipped,
    init=snakemake.params.init,
    stand_in=snakemake.params.stand_in,
    not_testable=snakemake.params.not_testable,
    tables=tables,
    paths={
        "table": out.table,
        "reproduced": out.reproduced_tex,
        "correlation": out.correlation_tex,
        "figure": out.pdf,
    },
)
for name in ("verdicts", "reproduced", "correlation", "points"):
    with atomic_path(out[name]) as tmp:
        result[name].to_parquet(tmp, index=False)
write_text(out.csv, result["verdicts"].to_csv(index=False))
write_json(out.json, result["json"])  # strict JSON: NaN -> null, listed in non_finite
write_text(out.table, result["table_tex"])
write_text(out.reproduced_tex, result["reproduced_tex"])
write_text(out.correlation_tex, result["correlation_tex"])
write_text(out.section, result["section"])
save_figure(
    scatter(
        result["points"],
        result["correlation"],
        labels=snakemake.params.labels,
        colors=snakemake.params.colors,
    ),
    out.pdf,
    out.png,
)
counts = result["verdicts"]["verdict"].value_counts().to_dict()
log.info("%s: %d claims judged: %s", exp, len(result["verdicts"]), counts)
