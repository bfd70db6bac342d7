"""The generated LaTeX of the paper: one section per experiment and the "What was run" section.

``paper/paper.tex`` is a fixed template; everything that depends on the config or on the runs
is written here into small files that it inputs (the showyourwork pattern): a section lists its
experiment's tables and figures (paths given by the workflow, never guessed), each caption ends
with what was run (data, seeds, epochs, hardware) as read from the runs' final.json.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from minima.report import style
from minima.report.latex import escape, tabular
from minima.report.runinfo import caption_sentence, dataset_phrase, format_duration


def _label(kind: str, experiment: str, name: str) -> str:
    return f"{kind}:{experiment}:{name}".replace("_", "-")


def _names(labels: Sequence[str], overrides: Mapping[str, str] | None) -> str:
    return ", ".join(style.display_name(label, overrides) for label in labels)


def _commits(info: Mapping[str, Any]) -> str:
    parts = []
    for code in info["commits"]:
        commit = (code.get("commit") or "unknown")[:12]
        parts.append(commit + (" (with uncommitted changes)" if code.get("dirty") else ""))
    return ", ".join(parts)


def what_was_run_paragraph(
    info: Mapping[str, Any], *, labels: Mapping[str, str] | None = None
) -> str:
    """LaTeX paragraph of one experiment's facts (``runinfo.describe_experiment``)."""
    models = ", ".join(
        f"{style.model_name(m['label'], labels)} ({m['parameters']:,} parameters)"
        if m.get("parameters")
        else style.model_name(m["label"], labels)
        for m in info["models"]
    )
    sizes = "; ".join(
        ", ".join(f"{s[k]:,} {k}" for k in ("train", "val", "test") if k in s)
        for s in info["sizes"]
    )
    seeds = len(info["seeds"])
    text = (
        f"Data: {'; '.join(info['data_descriptions'])}. Split: {sizes} images. "
        f"Model: {models}. Optimizers: {_names(info['runs'], labels)}; "
        f"{seeds} seed{'s' if seeds != 1 else ''} each ({info['n_runs']} runs, "
        f"{'/'.join(map(str, info['epochs']))} epoch{'' if info['epochs'] == [1] else 's'}, batch "
        f"{'/'.join(map(str, info['batch_sizes']))}); {info['completed']} completed"
        + (f", diverged: {', '.join(info['diverged'])}" if info["diverged"] else "")
        + f". Hardware: {', '.join(info['hardware'])}; training time "
        f"{format_duration(info['train_seconds'])} in total "
        f"({format_duration(info['job_seconds'])} of jobs)."
        + _sweep_sentence(info.get("sweeps"))
        + f" Code: {_commits(info)}."
    )
    return r"\paragraph{What was run.} " + escape(text)


def _sweep_sentence(sweeps: Mapping[str, Any] | None) -> str:
    if not sweeps:
        return ""
    return (
        f" Hyper-parameter sweeps ({', '.join(sweeps['names'])}): {sweeps['n_runs']} more runs "
        f"({sweeps['completed']} completed), training time "
        f"{format_duration(sweeps['train_seconds'])}."
    )


def experiment_section(
    info: Mapping[str, Any],
    *,
    figures: Sequence[Mapping[str, Any]] = (),
    tables: Sequence[Mapping[str, Any]] = (),
    skipped: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    findings: str | None = None,
) -> str:
    """One experiment's section: its findings, what was run, then its tables and figures.

    Args:
        info: ``runinfo.describe_experiment`` of the experiment's runs.
        figures: entries with ``name``, ``path`` (the PDF), ``caption`` and ``bands`` (lines are
            means over seeds with +-1 std bands).
        tables: entries with ``name``, ``path`` (the ``.tex`` tabular) and ``caption``.
        skipped: run -> why it was not made (said in the section, never silently dropped).
        labels: display names of runs and models (config ``paper.labels``).
        findings: the findings snippet (``minima.findings``) that opens the section, if any.
    """
    exp = info["experiment"]
    title = info.get("title") or exp
    lines = [
        rf"\section{{{escape(exp.upper())}: {escape(title)}}}\label{{sec:{exp}}}",
        *([rf"\input{{{findings}}}"] if findings else []),
        what_was_run_paragraph(info, labels=labels),
        "",
    ]
    if info["stand_in"]:
        lines += [
            r"\paragraph{Not the paper's data.} "
            + escape(
                "These runs use "
                + "; ".join(dataset_phrase(d) for d in info["datasets"])
                + ": they show that the workflow runs end to end, not what the study finds."
            ),
            "",
        ]
    for run, reason in (skipped or {}).items():
        lines += [rf"\paragraph{{Not run: {escape(run)}.}} {escape(reason)}", ""]
    sentence = escape(caption_sentence(info))
    for table in tables:
        lines += [
            r"\begin{table}[htbp]",
            r"\centering",
            rf"\caption{{{escape(table['caption'])} {sentence}}}",
            rf"\label{{{_label('tab', exp, table['name'])}}}",
            r"\small",
            rf"\fitwidth{{\input{{{table['path']}}}}}",
            r"\end{table}",
            "",
        ]
    bands = len(info["seeds"]) > 1
    for figure in figures:
        note = (
            " Lines: mean over seeds; bands: \\ensuremath{\\pm}1 std."
            if bands and figure.get("bands")
            else ""
        )
        lines += [
            r"\begin{figure}[htbp]",
            r"\centering",
            rf"\fitwidth{{\includegraphics{{{figure['path']}}}}}",
            rf"\caption{{{escape(figure['caption'])}{note} {sentence}}}",
            rf"\label{{{_label('fig', exp, figure['name'])}}}",
            r"\end{figure}",
            "",
        ]
    lines.append(r"\clearpage")
    return "\n".join(lines) + "\n"


def overview_section(
    infos: Sequence[Mapping[str, Any]],
    *,
    labels: Mapping[str, str] | None = None,
    differences: Mapping[str, Sequence[str]] | None = None,
) -> str:
    """The "What was run" section: one table row per experiment, totals, code and software,
    and where we still differ from the studies (``minima.report.differences``)."""
    header = ["Exp.", "Data", "Model", "Runs", "Seeds", "Epochs", "Hardware", "Training time"]
    rows = []
    for info in infos:
        rows.append(
            [
                escape(info["experiment"].upper()),
                escape(", ".join(info["datasets"]) + (" (stand-in)" if info["stand_in"] else "")),
                escape(", ".join(style.model_name(m["label"], labels) for m in info["models"])),
                f"{info['completed']}/{info['n_runs']}",
                str(len(info["seeds"])),
                escape("/".join(map(str, info["epochs"]))),
                escape(", ".join(info["hardware"])),
                escape(format_duration(info["train_seconds"])),
            ]
        )
    sweeps = [i["sweeps"] for i in infos if i.get("sweeps")]
    total = sum(i["train_seconds"] for i in infos) + sum(s["train_seconds"] for s in sweeps)
    jobs = sum(i["job_seconds"] for i in infos) + sum(s["job_seconds"] for s in sweeps)
    swept = sum(s["n_runs"] for s in sweeps)
    commits = {_commits(i) for i in infos}
    torch = sorted({str(v) for i in infos for v in i["torch"]})
    stand_ins = sorted({d for i in infos if i["stand_in"] for d in i["datasets"]})
    lines = [
        r"\section{What was run}\label{sec:what-was-run}",
        escape(
            "Every table and figure below was made by the workflow from the runs listed here; "
            "these facts are read from the runs' own metadata (final.json). "
            "Training time over all runs"
            + (f" (with {swept} runs of hyper-parameter sweeps)" if swept else "")
            + f": {format_duration(total)} "
            f"({format_duration(jobs)} of jobs, including data loading and evaluation). "
            f"Code: {'; '.join(sorted(commits))}. PyTorch {', '.join(torch)}."
        ),
        "",
    ]
    if stand_ins:
        lines += [
            r"\paragraph{Not the paper's data.} "
            + escape(
                "Some experiments ran on stand-ins: "
                + "; ".join(dataset_phrase(d) for d in stand_ins)
                + ". Their numbers test the workflow; they are not results of the study."
            ),
            "",
        ]
    if differences:
        lines += [r"\paragraph{Where we still differ from the studies.}", r"\begin{itemize}"]
        lines += [rf"\item {escape(text)}" for texts in differences.values() for text in texts]
        lines += [r"\end{itemize}", ""]
    lines += [
        r"\begin{table}[htbp]",
        r"\centering",
        r"\caption{What was run: completed/all runs, seeds per optimizer, epochs per run, "
        r"the hardware, and the training time summed over runs.}",
        r"\label{tab:what-was-run}",
        r"\small",
        r"\fitwidth{" + tabular(header, rows, align="lllrrrll").rstrip() + "}",
        r"\end{table}",
        "",
    ]
    return "\n".join(lines) + "\n"


def front_matter(title: str) -> str:
    """Title block inputs of the template (``\\title``, ``\\author``, ``\\date``)."""
    return (
        rf"\title{{{escape(title)}}}" + "\n"
        r"\author{Generated by the minima workflow}" + "\n"
        r"\date{}" + "\n"
    )


def body(sections: Sequence[str]) -> str:
    """The template's body: ``\\input`` of each generated section file, in order."""
    return "".join(rf"\input{{{path}}}" + "\n" for path in sections)
