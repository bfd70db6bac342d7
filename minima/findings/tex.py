"""The LaTeX of the findings: per-experiment tables and paragraph, the at-a-glance table.

Every number in a paragraph is a cell of the experiment's findings table (the same strings,
built once in ``minima.findings.evaluate``), so the prose can be checked against the table.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pandas as pd

from minima.findings import quantities
from minima.findings.reproduced import RULE as REPRODUCED_RULE
from minima.findings.verdicts import DECISION_RULE, VERDICTS
from minima.report.latex import escape, tabular

STAND_IN_MARK = " (stand-in)"
SCATTER_CAPTION = (
    "Curvature vs generalization: one point per run, colour = optimizer; "
    "Kendall's tau over runs in each panel's title."
)


def verdict_cell(verdict: str, stand_in: bool, reason: str = "") -> str:
    """The verdict word as shown (stand-in data always marked), then why, if there is a reason."""
    word = r"\textbf{" + escape(verdict + (STAND_IN_MARK if stand_in else "")) + "}"
    return word + (r"\newline{}\footnotesize " + escape(reason) if reason else "")


def findings_table(verdicts: pd.DataFrame) -> str:
    """One experiment's claims: id, statement, the study's value, ours, the verdict."""
    rows = [
        [
            escape(r.claim),
            escape(r.statement),
            escape(r.study),
            escape(r.ours),
            verdict_cell(r.verdict, bool(r.stand_in), r.reason),
        ]
        for r in verdicts.itertuples()
    ]
    return tabular(
        ["Claim", "Statement", "Study", "Ours", "Verdict"],
        rows,
        align="lp{4.4cm}p{2.6cm}p{4.0cm}p{3.2cm}",
    )


def _num(value: object, decimals: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "--"
    value = float(value)
    return f"{value:.{decimals}g}"


def _mean_std(mean: object, std: object, scale: float) -> str:
    text = _num(float(mean) * scale)
    if std is not None and not pd.isna(std):
        text += f" ± {_num(float(std) * scale, 2)}"
    return text


def reproduced_table(reproduced: pd.DataFrame) -> str:
    """Ours (mean +- std, n) beside the study's, the difference and the within-spread status.

    Values in the quantity's display unit (accuracy in %), times as ratios to the reference.
    """
    rows = []
    for r in reproduced.itertuples():
        ratio = "ratio to" in (r.note or "")
        scale = 1.0 if ratio else quantities.display(r.quantity)[0]
        theirs_n = r.theirs_n
        rows.append(
            [
                escape(r.claim),
                escape(r.model),
                escape(r.run),
                escape(_mean_std(r.theirs_mean, r.theirs_std, scale)),
                escape("--" if theirs_n is None or pd.isna(theirs_n) else int(theirs_n)),
                escape(_mean_std(r.ours_mean, r.ours_std, scale)),
                str(int(r.ours_n)),
                escape(_num(r.difference * scale, 3)),
                escape(r.status + (f" ({r.note})" if r.note else "")),
            ]
        )
    return tabular(
        ["Claim", "Model", "Run", "Study", "n", "Ours", "n", "Diff.", "Status"],
        rows,
        align="lllrrrrrp{4cm}",
    )


def correlation_table(correlation: pd.DataFrame) -> str:
    """Kendall tau [bootstrap 95% interval] of each curvature measure with generalization."""
    rows = [
        [
            escape(quantities.label(r.measure)),
            escape(quantities.label(r.target)),
            escape(_num(r.tau, 3)),
            escape(f"[{_num(r.low, 3)}, {_num(r.high, 3)}]"),
            escape(_num(r.p_value, 3)),
            str(int(r.n)),
        ]
        for r in correlation.itertuples()
    ]
    header = ["Measure", "Against", "Kendall tau", "95% interval", "p", "runs"]
    return tabular([escape(h) for h in header], rows)


def _sentence(row: Mapping) -> str:
    text = f"{row['claim']} ({row['statement'].rstrip('.')}): {row['verdict']}"
    if row["ours"]:
        text += f"; ours: {row['ours']}"
    if row["method"]:
        text += f" ({row['method']})"
    if row["reason"]:
        text += f"; {row['reason']}"
    return text + "."


def findings_paragraph(
    experiment: str,
    verdicts: pd.DataFrame,
    *,
    stand_in: str | None,
    not_testable: Sequence[Mapping[str, str]] = (),
) -> str:
    """The findings paragraph that opens an experiment's section (verdict words verbatim)."""
    judged = verdicts[verdicts["verdict"].isin(VERDICTS)]
    counts = judged["verdict"].value_counts()
    tally = ", ".join(f"{counts[v]} {v}" for v in VERDICTS if v in counts.index)
    compared = len(verdicts) - len(judged)
    lines = [
        r"\paragraph{Findings.} "
        + escape(
            (f"On stand-in data ({stand_in}), not a result of the study: " if stand_in else "")
            + f"{len(judged)} claim{'s' if len(judged) != 1 else ''} tested ({tally or 'none'})"
            + (f"; {compared} compared with the study's numbers only. " if compared else ". ")
            + " ".join(_sentence(row) for row in verdicts.to_dict("records"))
        )
        + rf" Table~\ref{{tab:{experiment}:findings}} lists them.",
        "",
    ]
    if not_testable:
        lines += [
            r"\paragraph{Claims outside this design.} "
            + " ".join(
                escape(f"{entry['id']}: not testable with this design: needs {entry['needs']}.")
                for entry in not_testable
            ),
            "",
        ]
    return "\n".join(lines) + "\n"


def findings_floats(
    experiment: str, *, table: str, reproduced: str, correlation: str, figure: str | None
) -> str:
    """The float environments of an experiment's findings (inputs of rule-written tables)."""
    parts = [
        (
            table,
            "findings",
            "Claims of the study and their verdicts under the rule of the findings section "
            "(accuracy and its differences in %/pp; n: seeds or values per run).",
        ),
        (
            reproduced,
            "reproduced",
            "Reported vs reproduced: the study's value beside ours (mean ± std over seeds, n), "
            "the difference and whether it lies within the combined spread.",
        ),
        (
            correlation,
            "curvature",
            "Curvature vs generalization across runs: Kendall's tau with a bootstrap 95% "
            "interval over runs.",
        ),
    ]
    lines = []
    for path, name, caption in parts:
        lines += [
            r"\begin{table}[htbp]",
            r"\centering",
            rf"\caption{{{escape(caption)}}}",
            rf"\label{{tab:{experiment}:{name}}}",
            r"\small",
            rf"\fitwidth{{\input{{{path}}}}}",
            r"\end{table}",
            "",
        ]
    if figure:
        lines += [
            r"\begin{figure}[htbp]",
            r"\centering",
            rf"\fitwidth{{\includegraphics{{{figure}}}}}",
            rf"\caption{{{escape(SCATTER_CAPTION)}}}",
            rf"\label{{fig:{experiment}:curvature}}",
            r"\end{figure}",
            "",
        ]
    return "\n".join(lines) + "\n"


def glance_section(facts: Sequence[Mapping]) -> str:
    """ "Findings at a glance": the decision rule, then every built experiment's claims."""
    rows = []
    for fact in facts:
        stand_in = bool(fact["stand_in"])
        for c in fact["claims"]:
            rows.append(
                [
                    escape(c["claim"]),
                    escape(c["statement"]),
                    escape(c["study"]),
                    escape(c["ours"]),
                    verdict_cell(c["verdict"], stand_in, c["reason"]),
                ]
            )
    stand_ins = [f"{f['experiment'].upper()} ({f['stand_in']})" for f in facts if f["stand_in"]]
    lines = [
        r"\section*{Findings at a glance}\label{sec:findings}",
        escape(
            "Each claim of the studies that this design can test, judged from our runs. "
            + DECISION_RULE
            + " Reported vs reproduced: "
            + REPRODUCED_RULE
            + (
                " Verdicts marked stand-in come from stand-in data: "
                + "; ".join(stand_ins)
                + ". They test the workflow, not the study."
                if stand_ins
                else ""
            )
        ),
        "",
        r"\begin{table}[htbp]",
        r"\centering",
        r"\caption{Findings at a glance: claim, the study's value, ours, verdict.}",
        r"\label{tab:findings-at-a-glance}",
        r"\small",
        r"\fitwidth{"
        + tabular(
            ["Claim", "Statement", "Study", "Ours", "Verdict"],
            rows,
            align="lp{4.4cm}p{2.6cm}p{4.0cm}p{3.2cm}",
        ).rstrip()
        + "}",
        r"\end{table}",
        "",
    ]
    return "\n".join(lines) + "\n"
