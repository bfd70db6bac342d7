"""What the jobs used against what the config asks for: Snakemake's benchmark files summarized
per rule family and experiment, with a verdict on each request.

Every training and analysis rule writes a benchmark file (Snakemake's format: a TSV with
``s`` wall seconds, ``max_rss`` MB, ``cpu_time`` seconds, ...) to
``results/benchmarks/<rule>/<experiment>/...``. For each (family, experiment) the summary gives
the jobs measured, the largest resident memory, wall time and CPU time of any of them, and the
request of config ``resources`` (minima.cluster_resources), and says:

- memory *too tight* when the largest RSS exceeds 80 % of ``mem_mb`` (a larger input or another
  node's libraries may push it over), *too loose* below 25 %;
- time *too tight* when the longest wall time exceeds 80 % of ``runtime``, *too loose* below
  10 % (a scheduler backfills short requests sooner);
- threads *too loose* when CPU time / (wall time x threads) is below 25 % with threads > 1.

Suggested values (1.5 x the largest RSS, 2 x the longest wall time, rounded up) come with each
verdict that is not *ok*. GPU memory is not in Snakemake's benchmark files and is not judged.

    python -m minima.resource_usage [--config config.yaml [more.yaml ...]] [--benchmarks DIR]
"""

from __future__ import annotations

import argparse
import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from minima.cluster_resources import RULE_FAMILIES, family_resources

MEMORY_TIGHT, MEMORY_LOOSE = 0.8, 0.25
TIME_TIGHT, TIME_LOOSE = 0.8, 0.1
CPU_LOOSE = 0.25


@dataclass(frozen=True)
class Measurement:
    """One benchmark file: the job's rule, experiment and what it used."""

    rule: str
    experiment: str
    wall_s: float
    max_rss_mb: float
    cpu_s: float


@dataclass
class FamilyUsage:
    """The jobs of one rule family and experiment, against the config's request."""

    family: str
    experiment: str
    jobs: int
    max_rss_mb: float
    max_wall_s: float
    max_cpu_s: float
    cpu_efficiency: float  # CPU time / (wall time x threads), over all the jobs
    request: dict[str, int]
    memory: str
    time: str
    threads: str
    suggestion: dict[str, int]


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:  # "NA" when psutil could not measure (very short jobs)
        return math.nan


def read_benchmark(path: Path, root: Path) -> Measurement:
    """A benchmark TSV under ``root/<rule>/<experiment>/``; repeats: the largest of each."""
    rule, experiment = path.relative_to(root).parts[:2]
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    if not rows:
        raise ValueError(f"{path}: no measurement")

    def largest(column: str) -> float:
        values = [_number(row[column]) for row in rows]
        finite = [value for value in values if not math.isnan(value)]
        return max(finite) if finite else math.nan

    return Measurement(rule, experiment, largest("s"), largest("max_rss"), largest("cpu_time"))


def read_benchmarks(root: str | Path) -> list[Measurement]:
    """Every benchmark file of a rule with config resources (RULE_FAMILIES) under ``root``."""
    root = Path(root)
    return [
        read_benchmark(path, root)
        for path in sorted(root.rglob("*.tsv"))
        if path.relative_to(root).parts[0] in RULE_FAMILIES
    ]


def _verdict(used: float, requested: float, tight: float, loose: float) -> str:
    if math.isnan(used):
        return "not measured"
    if used > tight * requested:
        return "too tight"
    if used < loose * requested:
        return "too loose"
    return "ok"


def _round_up(value: float, step: int) -> int:
    return max(step, int(math.ceil(value / step) * step))


def summarize(
    measurements: Sequence[Measurement], resources: Mapping[str, Any]
) -> list[FamilyUsage]:
    """Usage per (family, experiment), in family then experiment order, with verdicts."""
    grouped: dict[tuple[str, str], list[Measurement]] = {}
    for item in measurements:
        grouped.setdefault((RULE_FAMILIES[item.rule], item.experiment), []).append(item)
    summary = []
    for (family, exp), items in sorted(grouped.items()):
        request = family_resources(resources, family, exp)
        rss = max((m.max_rss_mb for m in items if not math.isnan(m.max_rss_mb)), default=math.nan)
        wall = max(m.wall_s for m in items)
        cpu = max((m.cpu_s for m in items if not math.isnan(m.cpu_s)), default=math.nan)
        total_wall = sum(m.wall_s for m in items)
        total_cpu = sum(m.cpu_s for m in items if not math.isnan(m.cpu_s))
        efficiency = total_cpu / (total_wall * request["threads"]) if total_wall > 0 else math.nan
        memory = _verdict(rss, request["mem_mb"], MEMORY_TIGHT, MEMORY_LOOSE)
        time = _verdict(wall, request["runtime"] * 60, TIME_TIGHT, TIME_LOOSE)
        threads = (
            "too loose"
            if request["threads"] > 1 and not math.isnan(efficiency) and efficiency < CPU_LOOSE
            else "ok"
        )
        suggestion = {}
        if memory in ("too tight", "too loose"):
            suggestion["mem_mb"] = _round_up(1.5 * rss, 500)
        if time in ("too tight", "too loose"):
            suggestion["runtime"] = _round_up(2 * wall / 60, 5)
        if threads == "too loose":
            suggestion["threads"] = max(1, math.ceil(efficiency * request["threads"] * 2))
        summary.append(
            FamilyUsage(
                family, exp, len(items), rss, wall, cpu, efficiency,
                {key: request[key] for key in ("threads", "mem_mb", "runtime", "gpu")},
                memory, time, threads, suggestion,
            )
        )  # fmt: skip
    return summary


def format_summary(summary: Sequence[FamilyUsage]) -> str:
    """A Markdown table of the summary, with the rule behind the verdicts."""
    lines = [
        "| family | experiment | jobs | max RSS MB / mem_mb | max wall min / runtime | "
        "max CPU min | CPU use of threads | memory | time | threads | suggested |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in summary:
        suggested = ", ".join(f"{k}: {v}" for k, v in row.suggestion.items()) or "-"
        lines.append(
            f"| {row.family} | {row.experiment} | {row.jobs} "
            f"| {row.max_rss_mb:.0f} / {row.request['mem_mb']} "
            f"| {row.max_wall_s / 60:.1f} / {row.request['runtime']} "
            f"| {row.max_cpu_s / 60:.1f} | {row.cpu_efficiency:.0%} of {row.request['threads']} "
            f"| {row.memory} | {row.time} | {row.threads} | {suggested} |"
        )
    lines += [
        "",
        f"Memory too tight above {MEMORY_TIGHT:.0%} of mem_mb, too loose below "
        f"{MEMORY_LOOSE:.0%}; time too tight above {TIME_TIGHT:.0%} of runtime, too loose below "
        f"{TIME_LOOSE:.0%}; threads too loose below {CPU_LOOSE:.0%} CPU use. Largest job of each "
        "row; suggestions: 1.5 x RSS, 2 x wall time. GPU memory is not measured.",
    ]
    return "\n".join(lines)


def _deep_merge(base: dict, extra: Mapping) -> dict:
    """Merge as Snakemake merges config files: nested mappings key by key, the rest replaced."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def merged_config(config_files: Sequence[str | Path]) -> dict:
    """The config of the given files, each merged over the ones before it (as Snakemake does)."""
    config: dict = {}
    for path in config_files:
        config = _deep_merge(config, yaml.safe_load(Path(path).read_text()) or {})
    return config


def load_resources(config_files: Sequence[str | Path]) -> dict:
    """Config ``resources`` of the given files, each merged over the ones before it."""
    return merged_config(config_files)["resources"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", nargs="+", default=["config.yaml"], help="config files")
    parser.add_argument("--benchmarks", default="results/benchmarks", help="benchmark folder")
    args = parser.parse_args(argv)
    measurements = read_benchmarks(args.benchmarks)
    if not measurements:
        print(f"no benchmark files under {args.benchmarks}: run the workflow first")
        return 1
    print(format_summary(summarize(measurements, load_resources(args.config))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
