"""Judge an experiment's claims from its runs' tables (no files: ``job`` reads and writes).

Every verdict follows the one rule of ``minima.findings.verdicts``; the reproduction rows
follow ``minima.findings.reproduced``; the curvature-vs-generalization table follows
``minima.findings.correlation``. A claim whose runs were skipped or diverged is ``not run``,
with the reason, and never disappears.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from minima.findings import quantities, verdicts
from minima.findings.claims import Claim
from minima.findings.correlation import rank_correlation
from minima.findings.quantities import RunData
from minima.findings.reproduced import compare_reported, ratio_of_reported
from minima.findings.table_quantities import TABLE_QUANTITIES, Context
from minima.plan import RunKey

VERDICT_COLUMNS = (
    "claim",
    "statement",
    "source",
    "kind",
    "quantity",
    "verdict",
    "effect",
    "low",
    "high",
    "p_value",
    "n",
    "method",
    "reason",
    "study",
    "ours",
    "stand_in",
)
REPRODUCED_COLUMNS = (
    "claim",
    "model",
    "run",
    "quantity",
    "theirs_mean",
    "theirs_std",
    "theirs_n",
    "ours_mean",
    "ours_std",
    "ours_n",
    "difference",
    "error",
    "status",
    "note",
)
CORRELATION_COLUMNS = (
    "measure",
    "target",
    "tau",
    "p_value",
    "low",
    "high",
    "n",
    "train_column",
)


class Runs:
    """An experiment's runs' data, with what is known about the runs that are missing."""

    def __init__(
        self,
        data: Mapping[RunKey, RunData],
        *,
        skipped: Mapping[str, str] | None = None,
        init: Mapping[str, str] | None = None,
        tables: Mapping[str, pd.DataFrame] | None = None,
        experiment: str = "",
    ) -> None:
        self.data = dict(data)
        self.skipped = dict(skipped or {})
        self.init = dict(init or {})
        self.tables = dict(tables or {})  # the experiment's shared tables (table_quantities)
        self.experiment = experiment

    def seeds(self, model: str) -> tuple[int, ...]:
        return tuple(sorted({k.seed for k in self.data if k.model == model}))

    def completed(self, model: str, run: str) -> dict[int, RunData]:
        return {
            k.seed: d
            for k, d in sorted(self.data.items(), key=lambda kv: kv[0].seed)
            if k.model == model and k.run == run and d.status == "completed"
        }

    def missing(self, model: str, run: str) -> str:
        """Why (model, run) has no completed seed ('' when it has one)."""
        if run in self.skipped:
            return f"{run} not made: {self.skipped[run]}"
        if self.completed(model, run):
            return ""
        seeds = [k.seed for k in self.data if k.model == model and k.run == run]
        if seeds:
            return f"{run} ({model}): no completed seed (diverged: seeds {sorted(seeds)})"
        return f"{run} ({model}): no results"

    def paired(self, a: str, b: str) -> bool:
        """Runs that start from the same weights seed by seed (their init group is shared)."""
        return self.init.get(a, "seed") == self.init.get(b, "seed") and not self.init.get(
            a, "seed"
        ).startswith("from:")

    def per_seed(self, name: str, spec: Mapping, model: str, run: str) -> dict[int, np.ndarray]:
        return {s: quantities.read(name, d, spec) for s, d in self.completed(model, run).items()}


def _scalar_per_seed(values: Mapping[int, np.ndarray]) -> dict[int, float]:
    return {s: float(v[-1]) if v.size else math.nan for s, v in values.items()}


def _fmt(value: float, name: str, *, diff: bool = False, ratio: bool = False) -> str:
    if not math.isfinite(value):
        return "--"
    if ratio:
        return f"{value:.2f}"
    scale, decimals, _ = quantities.display(name)
    number = value * scale
    if abs(number) >= 1e4 or (number != 0 and abs(number) < 10 ** (-decimals)):
        return f"{number:+.2e}" if diff else f"{number:.2e}"
    return f"{number:+.{decimals}f}" if diff else f"{number:.{decimals}f}"


def _unit(name: str, *, diff: bool) -> str:
    _, _, unit = quantities.display(name)
    return "pp" if diff and unit == "%" else unit


def _judge_pair(claim: Claim, runs: Runs, model: str, a: str, b: str) -> dict[str, Any]:
    label = f"{a} {'>' if claim.direction == 'greater' else '<'} {b}"
    if claim.kind == "ratio":
        label = f"{a}/{b} {'>' if claim.direction == 'greater' else '<'} {claim.threshold:g}"
    reason = runs.missing(model, a) or runs.missing(model, b)
    if reason:
        return {
            "model": model,
            "part": label,
            **verdicts.Judgement(verdicts.NOT_RUN, reason=reason).as_dict(),
        }
    va = _scalar_per_seed(runs.per_seed(claim.quantity, claim.quantity_spec, model, a))
    vb = _scalar_per_seed(runs.per_seed(claim.quantity, claim.quantity_spec, model, b))
    paired = runs.paired(a, b)
    if paired:
        seeds = sorted(set(va) & set(vb))
        xa, xb = [va[s] for s in seeds], [vb[s] for s in seeds]
    else:
        xa, xb = list(va.values()), list(vb.values())
    if claim.kind == "ratio":
        judged = verdicts.compare_ratio(
            xa, xb, claim.direction, threshold=claim.threshold, paired=paired
        )
    else:
        judged = verdicts.compare_difference(xa, xb, claim.direction, paired=paired)
    return {"model": model, "part": label, **judged.as_dict()}


def _judge_every(claim: Claim, runs: Runs, model: str) -> list[dict[str, Any]]:
    parts = []
    sign = ">" if claim.direction == "greater" else "<"
    shown = _fmt(claim.threshold, claim.quantity)
    for run in claim.runs:
        label = f"{run}: every value {sign} {shown}"
        reason = runs.missing(model, run)
        if reason:
            judged = verdicts.Judgement(verdicts.NOT_RUN, reason=reason)
        else:
            values = runs.per_seed(claim.quantity, claim.quantity_spec, model, run)
            flat = np.concatenate(list(values.values())) if values else np.array([])
            judged = verdicts.compare_every(flat, claim.direction, claim.threshold, shown=shown)
        parts.append({"model": model, "part": label, **judged.as_dict()})
    return parts


def _judge_table_every(claim: Claim, runs: Runs, model: str) -> list[dict[str, Any]]:
    """An every-claim on a shared-table quantity: one judged part per swept run or compared
    pair and measure, each as an every-claim on its values."""
    quantity = TABLE_QUANTITIES[claim.quantity]
    ctx = Context(runs.experiment, model, claim.runs, runs.skipped, runs.seeds(model))
    sign = ">" if claim.direction == "greater" else "<"
    shown = _fmt(claim.threshold, claim.quantity)
    parts = []
    for label, values in quantity.read_parts(runs.tables, claim.quantity_spec, ctx):
        if isinstance(values, str):
            judged = verdicts.Judgement(verdicts.NOT_RUN, reason=values)
        else:
            judged = verdicts.compare_every(values, claim.direction, claim.threshold, shown=shown)
        parts.append(
            {"model": model, "part": f"{label}: every value {sign} {shown}", **judged.as_dict()}
        )
    return parts


def _judge_gain(claim: Claim, runs: Runs, model: str) -> dict[str, Any]:
    """The gain A1 - B1 against A2 - B2 (equal within the margin, or greater / less)."""
    (a1, b1), (a2, b2) = claim.pairs
    sign = {"equal": "=", "greater": ">", "less": "<"}[claim.direction]
    label = f"({a1} - {b1}) {sign} ({a2} - {b2})"
    names = (a1, b1, a2, b2)
    reason = next((r for r in (runs.missing(model, n) for n in names) if r), "")
    if reason:
        judged = verdicts.Judgement(verdicts.NOT_RUN, reason=reason)
        return {"model": model, "part": label, **judged.as_dict()}
    values = [
        _scalar_per_seed(runs.per_seed(claim.quantity, claim.quantity_spec, model, n))
        for n in names
    ]
    paired = all(runs.paired(a1, n) for n in names[1:])
    if paired:
        seeds = sorted(set.intersection(*(set(v) for v in values)))
        lists = [[v[s] for s in seeds] for v in values]
    else:
        lists = [list(v.values()) for v in values]
    judged = verdicts.compare_gain(*lists, claim.direction, margin=claim.margin, paired=paired)
    row = {"model": model, "part": label, **judged.as_dict()}
    if claim.direction == "equal":  # the margin itself is in the claim's statement
        row["method"] += ", equivalence test within the stated margin"
    return row


def _points(runs: Runs, name: str, spec: Mapping, models: Sequence[str], run_names: Sequence[str]):
    """(model, run, seed, value) of every completed run (one value per run)."""
    rows = []
    for model in models:
        for run in run_names:
            for seed, data in runs.completed(model, run).items():
                try:
                    values = quantities.read(name, data, spec)
                except KeyError:
                    continue
                value = float(values[-1]) if values.size else math.nan
                rows.append({"model": model, "run": run, "seed": seed, name: value})
    return pd.DataFrame(rows, columns=["model", "run", "seed", name])


def _judge_correlation(claim: Claim, runs: Runs) -> list[dict[str, Any]]:
    x = _points(runs, claim.quantity, claim.quantity_spec, claim.models, claim.runs)
    y = _points(runs, claim.against, {}, claim.models, claim.runs)
    both = x.merge(y, on=["model", "run", "seed"])
    result = rank_correlation(both[claim.quantity], both[claim.against])
    label = f"tau({claim.quantity}, {claim.against})"
    if result["n"] < 3 or not math.isfinite(result["tau"]):
        judged = verdicts.Judgement(
            verdicts.INCONCLUSIVE,
            result["tau"],
            n=int(result["n"]),
            method="Kendall tau",
            reason=f"{result['n']} runs with both values: too few, or no variation, to rank",
        )
    else:
        if claim.direction == "none":
            decided = verdicts.decide(result["low"], result["high"], 0.0, "greater")
            verdict = (
                verdicts.CONTRADICTED if decided != verdicts.INCONCLUSIVE else verdicts.INCONCLUSIVE
            )
        else:
            direction = "greater" if claim.direction == "positive" else "less"
            verdict = verdicts.decide(result["low"], result["high"], 0.0, direction)
        judged = verdicts.Judgement(
            verdict,
            result["tau"],
            result["low"],
            result["high"],
            result["p_value"],
            int(result["n"]),
            "Kendall tau, bootstrap over runs",
        )
    return [{"model": "all", "part": label, **judged.as_dict()}]


def judge_claim(claim: Claim, runs: Runs) -> list[dict[str, Any]]:
    """The judged parts of one claim (pairs along an order, per model)."""
    if claim.kind == "reported":
        return []
    if claim.kind == "correlation":
        return _judge_correlation(claim, runs)
    parts: list[dict[str, Any]] = []
    for model in claim.models:
        if claim.kind == "every" and quantities.is_table_quantity(claim.quantity):
            parts += _judge_table_every(claim, runs, model)
        elif claim.kind == "every":
            parts += _judge_every(claim, runs, model)
        elif claim.kind == "gain":
            parts.append(_judge_gain(claim, runs, model))
        else:
            parts += [_judge_pair(claim, runs, model, a, b) for a, b in claim.pairs]
    return parts


def _ours_text(claim: Claim, parts: Sequence[Mapping[str, Any]]) -> str:
    """The effect of each judged part, as the findings table shows it."""
    texts = []
    ratio = claim.kind == "ratio"
    name = claim.quantity
    for part in parts:
        prefix = (
            f"{part['model']}: " if len(claim.models) > 1 and part["model"] != "all" else ""
        ) + (f"{part['part']}: " if len(parts) > 1 else "")
        if part["verdict"] == verdicts.NOT_RUN:
            texts.append(prefix + "not run")
            continue
        if claim.kind == "correlation":
            body = f"tau {part['effect']:.2f}" if math.isfinite(part["effect"]) else "tau --"
            if math.isfinite(part["low"]):
                body += f" [{part['low']:.2f}, {part['high']:.2f}]"
        elif claim.kind == "every":
            body = f"{_fmt(part['low'], name)} to {_fmt(part['high'], name)}"
        else:
            fmt = {"diff": not ratio, "ratio": ratio}
            body = _fmt(part["effect"], name, **fmt)
            if math.isfinite(part["low"]):
                low, high = _fmt(part["low"], name, **fmt), _fmt(part["high"], name, **fmt)
                body += f" [{low}, {high}]"
            unit = "" if ratio else _unit(name, diff=True)
            body += f" {unit}" if unit else ""
        texts.append(f"{prefix}{body}, n = {part['n']}")
    return "; ".join(texts)


def _study_text(claim: Claim) -> str:
    if not claim.reported:
        return "no number"
    out = []
    for entry in claim.reported:
        std = entry.get("std")
        value = _fmt(entry["mean"], claim.quantity, ratio=bool(claim.ratio_to) and False)
        out.append(
            f"{entry['run']} {value}"
            + (f" ± {_fmt(std, claim.quantity)}" if std is not None else "")
        )
    return "; ".join(out)


def _summary(parts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A claim's row: the combined verdict and, for a single part, its numbers."""
    verdict = verdicts.combine([p["verdict"] for p in parts])
    reasons = "; ".join(dict.fromkeys(p["reason"] for p in parts if p["reason"]))
    if len(parts) == 1:
        p = parts[0]
        return {
            **{k: p[k] for k in ("effect", "low", "high", "p_value", "n", "method")},
            "verdict": verdict,
            "reason": reasons,
        }
    methods = ", ".join(dict.fromkeys(p["method"] for p in parts if p["method"]))
    return {
        "verdict": verdict,
        "effect": math.nan,
        "low": math.nan,
        "high": math.nan,
        "p_value": math.nan,
        "n": min((p["n"] for p in parts), default=0),
        "method": methods,
        "reason": reasons,
    }


def reproduced_rows(claim: Claim, runs: Runs, *, stand_in: bool) -> list[dict[str, Any]]:
    """Ours beside each number the study reports for this claim's quantity."""
    rows = []
    by_run = {(e.get("model") or claim.models[0], e["run"]): e for e in claim.reported}
    ref = None
    if claim.ratio_to:
        ref = next((e for (m, r), e in by_run.items() if r == claim.ratio_to), None)
    for (model, run), entry in by_run.items():
        values = _scalar_per_seed(runs.per_seed(claim.quantity, claim.quantity_spec, model, run))
        theirs_mean, theirs_std = float(entry["mean"]), entry.get("std")
        if claim.ratio_to:
            ref_values = _scalar_per_seed(
                runs.per_seed(claim.quantity, claim.quantity_spec, model, claim.ratio_to)
            )
            values = {s: v / ref_values[s] for s, v in values.items() if s in ref_values}
            theirs_mean, theirs_std = ratio_of_reported(
                theirs_mean, theirs_std, float(ref["mean"]), ref.get("std")
            )
        ours = np.array(list(values.values()), float)
        ours = ours[np.isfinite(ours)]
        row = {
            "claim": claim.id,
            "model": model,
            "run": run,
            "quantity": claim.quantity,
            "theirs_mean": theirs_mean,
            "theirs_std": theirs_std,
            "theirs_n": entry.get("n"),
            "ours_mean": float(ours.mean()) if ours.size else math.nan,
            "ours_std": float(ours.std(ddof=1)) if ours.size > 1 else None,
            "ours_n": int(ours.size),
        }
        reason = runs.missing(model, run)
        if reason or not ours.size:
            row.update(difference=math.nan, error=math.nan, status="not run", note=reason)
        else:
            row.update(
                compare_reported(
                    row["ours_mean"],
                    row["ours_std"],
                    row["ours_n"],
                    theirs_mean,
                    theirs_std,
                    entry.get("n"),
                    n_test=claim.test_images,
                    stand_in=stand_in,
                )
            )
            if claim.ratio_to:
                row["note"] = "; ".join(filter(None, [f"ratio to {claim.ratio_to}", row["note"]]))
        rows.append(row)
    return rows


def _reproduction_summary(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A claim that is only a study's number: its row says the reproduction status (the
    within-spread rule), which is not one of the verdict words and is never counted as one."""
    statuses = list(dict.fromkeys(r["status"] for r in rows)) or ["not run"]
    return {
        "verdict": "; ".join(statuses),
        "effect": math.nan,
        "low": math.nan,
        "high": math.nan,
        "p_value": math.nan,
        "n": min((r["ours_n"] for r in rows), default=0),
        "method": "within-spread rule",
        "reason": "; ".join(dict.fromkeys(r["note"] for r in rows if r["note"])),
    }


def evaluate_claims(
    claims: Sequence[Claim], runs: Runs, *, stand_in: bool
) -> tuple[pd.DataFrame, list[dict[str, Any]], pd.DataFrame]:
    """(verdicts table, per-claim parts for the JSON, reproduced table)."""
    rows, details, reproduced = [], [], []
    for claim in claims:
        parts = judge_claim(claim, runs)
        rep = reproduced_rows(claim, runs, stand_in=stand_in)
        summary = _summary(parts) if parts else _reproduction_summary(rep)
        reproduced += rep
        ours = (
            _ours_text(claim, parts)
            if parts
            else "; ".join(
                f"{r['run']} {_fmt(r['ours_mean'], claim.quantity, ratio=bool(claim.ratio_to))}"
                for r in rep
            )
        )
        rows.append(
            {
                "claim": claim.id,
                "statement": claim.statement,
                "source": claim.source,
                "kind": claim.kind,
                "quantity": claim.quantity,
                **summary,
                "study": _study_text(claim),
                "ours": ours,
                "stand_in": stand_in,
            }
        )
        details.append({"claim": claim.id, "parts": parts})
    return (
        pd.DataFrame(rows, columns=VERDICT_COLUMNS),
        details,
        pd.DataFrame(reproduced, columns=REPRODUCED_COLUMNS),
    )


def correlations(
    runs: Runs, models: Sequence[str], run_names: Sequence[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Kendall tau of every available curvature measure with test error and the gap.

    Returns (correlation table, the points: one row per completed run and every value).
    """
    points = None
    for name in (*quantities.CURVATURE_MEASURES, *quantities.GENERALIZATION):
        frame = _points(runs, name, {}, models, run_names)
        if frame[name].notna().sum() == 0:
            continue
        points = (
            frame
            if points is None
            else points.merge(frame, on=["model", "run", "seed"], how="outer")
        )
    rows = []
    if points is None:
        return pd.DataFrame(columns=CORRELATION_COLUMNS), pd.DataFrame()
    train_columns = {
        quantities.train_acc_column(d.metrics) for d in runs.data.values() if d.metrics is not None
    }
    train_column = "/".join(sorted(train_columns))
    for measure in quantities.CURVATURE_MEASURES:
        if measure not in points:
            continue
        for target in quantities.GENERALIZATION:
            if target not in points:
                continue
            result = rank_correlation(points[measure], points[target])
            rows.append(
                {"measure": measure, "target": target, **result, "train_column": train_column}
            )
    return pd.DataFrame(rows, columns=CORRELATION_COLUMNS), points
