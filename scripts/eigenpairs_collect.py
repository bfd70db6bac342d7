"""Rule `eigenpairs_collect`: one run's per-checkpoint eigenvalue, line-search and
line-search summary tables as one table each, sorted by step."""

from _job import start

log = start(snakemake)

from minima.hessian.job import collect_steps  # noqa: E402
from minima.io import atomic_path  # noqa: E402

for name in ("eigenvalues", "line_search", "line_search_summary"):
    table = collect_steps(getattr(snakemake.input, name))
    with atomic_path(getattr(snakemake.output, name)) as tmp:
        table.to_parquet(tmp, index=False)
