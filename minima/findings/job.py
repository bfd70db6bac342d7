"""The findings rule's work: read an experiment's tables, judge its claims, return outputs.

Only tables other stages wrote are read (metrics.parquet, final.json, analysis tables), so
asking for one experiment's findings plans exactly its ancestors.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from minima.findings import tex
from minima.findings.claims import Claim
from minima.findings.evaluate import Runs, correlations, evaluate_claims
from minima.findings.quantities import RunData
from minima.findings.reproduced import RULE as REPRODUCED_RULE
from minima.findings.verdicts import DECISION_RULE
from minima.report.kinds.paths import key_of


def load_tables(paths: Sequence[str]) -> dict[str, pd.DataFrame]:
    """An experiment's shared tables (lr sweep, similarity) keyed by their path below
    ``results/`` without ``.parquet`` (``minima.findings.table_quantities`` reads them so)."""
    tables = {}
    for path in paths:
        key = Path(path).as_posix().split("results/", 1)[-1].removesuffix(".parquet")
        tables[key] = pd.read_parquet(path)
    return tables


def load_runs(
    metrics: Sequence[str],
    finals: Sequence[str],
    analyses: Mapping[str, Sequence[str]],
) -> dict:
    """RunKey -> RunData from the files (analyses: ``{kind}__{stem}`` -> parquet paths)."""
    data: dict = {}
    for path in metrics:
        data.setdefault(key_of(path), RunData()).metrics = pd.read_parquet(path)
    for path in finals:
        meta = json.loads(Path(path).read_text())
        data.setdefault(key_of(path), RunData()).status = meta.get("status", "completed")
    for name, paths in analyses.items():
        kind, stem = name.split("__", 1)
        for path in paths:
            key = key_of(path, kind)
            data.setdefault(key, RunData()).tables[(kind, f"{stem}.parquet")] = pd.read_parquet(
                path
            )
    return data


def findings(
    experiment: str,
    claims: Sequence[Claim],
    data: Mapping,
    *,
    models: Sequence[str],
    run_names: Sequence[str],
    skipped: Mapping[str, str],
    init: Mapping[str, str],
    stand_in: str | None,
    not_testable: Sequence[Mapping[str, str]] = (),
    paths: Mapping[str, str] | None = None,
    tables: Mapping[str, pd.DataFrame] | None = None,
) -> dict[str, Any]:
    """Every output of one experiment's findings (frames, JSON, LaTeX snippets).

    Args:
        stand_in: a phrase saying which stand-in data the runs used (None: the paper's data).
        not_testable: ``{id, needs}`` of the claims this design cannot test (listed in prose).
        tables: the experiment's shared tables (``load_tables``) its claims read.
        paths: where the rule writes ``table``, ``reproduced``, ``correlation`` (.tex) and
            ``figure`` (.pdf): the section snippet inputs them.
    """
    runs = Runs(data, skipped=skipped, init=init, tables=tables, experiment=experiment)
    verdicts, details, reproduced = evaluate_claims(claims, runs, stand_in=stand_in is not None)
    correlation, points = correlations(runs, models, run_names)
    facts = {
        "experiment": experiment,
        "rule": DECISION_RULE,
        "reproduced_rule": REPRODUCED_RULE,
        "stand_in": stand_in,
        "claims": json.loads(verdicts.to_json(orient="records")),
        "parts": details,
        "not_testable": list(not_testable),
    }
    return {
        "verdicts": verdicts,
        "reproduced": reproduced,
        "correlation": correlation,
        "points": points,
        "json": facts,
        "table_tex": tex.findings_table(verdicts),
        "reproduced_tex": tex.reproduced_table(reproduced),
        "correlation_tex": tex.correlation_table(correlation),
        "section": tex.findings_paragraph(
            experiment, verdicts, stand_in=stand_in, not_testable=not_testable
        )
        + (tex.findings_floats(experiment, **paths) if paths else ""),
    }
