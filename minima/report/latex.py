"""Small LaTeX helpers: escaping text and a booktabs ``tabular`` from rows of cells."""

from __future__ import annotations

from collections.abc import Sequence

_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
    # characters that pdflatex's default fonts lack
    "\u2192": r"\ensuremath{\rightarrow}",
    "\u00b1": r"\ensuremath{\pm}",
    "\u03c1": r"\ensuremath{\rho}",
    "\u03b7": r"\ensuremath{\eta}",
    "\u03b2": r"\ensuremath{\beta}",
    "\u03b1": r"\ensuremath{\alpha}",
    "\u03bb": r"\ensuremath{\lambda}",
    "\u03b8": r"\ensuremath{\theta}",
    "\u00d7": r"\ensuremath{\times}",
    "\u2016": r"\ensuremath{\|}",
    "\u2013": "--",
    "\u2014": "---",
}


def escape(text: object) -> str:
    """``text`` with LaTeX's special characters escaped (safe inside a paragraph or cell)."""
    return "".join(_SPECIAL.get(ch, ch) for ch in str(text))


def tabular(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    align: str | None = None,
    header_rows: Sequence[str] = (),
    notes: Sequence[str] = (),
) -> str:
    """A booktabs ``tabular``: cells are LaTeX already (escape text with :func:`escape`).

    Args:
        header: the column headers (last header line).
        rows: body rows, each as many cells as ``header``.
        align: column alignment, e.g. ``"llrr"`` (default: first column left, others right).
        header_rows: full header lines placed above ``header`` (e.g. multicolumn + cmidrule).
        notes: footnote lines set below the rule across the whole width.
    """
    width = len(header)
    for row in rows:
        if len(row) != width:
            raise ValueError(f"row {list(row)} has {len(row)} cells; the header has {width}")
    align = align or "l" + "r" * (width - 1)
    lines = [rf"\begin{{tabular}}{{{align}}}", r"\toprule"]
    lines += [line.rstrip() for line in header_rows]
    lines.append(" & ".join(header) + r" \\")
    lines.append(r"\midrule")
    lines += [" & ".join(row) + r" \\" for row in rows]
    lines.append(r"\bottomrule")
    lines += [rf"\multicolumn{{{width}}}{{l}}{{\footnotesize {note}}} \\" for note in notes]
    lines.append(r"\end{tabular}")
    return "\n".join(lines) + "\n"
