"""Compile the paper with latexmk, saying clearly why when it cannot.

TeX is a system tool, not a Python package: when latexmk is missing the paper job fails with
the Debian packages to install (``make tex``); when LaTeX fails it reports the log's first
``!`` error line and the log's path, instead of a screen of TeX output.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

# The minimal Debian/Ubuntu packages that build the paper (booktabs, graphicx, caption, float,
# hyperref, geometry) -- what `make tex` installs.
DEBIAN_PACKAGES = ("latexmk", "texlive-latex-base", "texlive-latex-recommended")


class TexMissingError(RuntimeError):
    """latexmk (or pdflatex) is not installed."""


class LatexError(RuntimeError):
    """LaTeX stopped on an error; the message holds its first ``!`` line and the log path."""


def install_hint() -> str:
    """What to run to get a TeX that builds the paper."""
    return (
        "install TeX Live: `sudo apt-get install --no-install-recommends "
        + " ".join(DEBIAN_PACKAGES)
        + "` (or `make tex`); on other systems install latexmk and a TeX Live with booktabs"
    )


def find_latexmk() -> str:
    """Path of latexmk (and check that pdflatex is there too)."""
    latexmk, pdflatex = shutil.which("latexmk"), shutil.which("pdflatex")
    if latexmk is None or pdflatex is None:
        missing = "latexmk" if latexmk is None else "pdflatex"
        raise TexMissingError(
            f"{missing} not found, so the paper PDF cannot be built: {install_hint()}"
        )
    return latexmk


def first_error(log_text: str) -> str | None:
    """The first ``!`` error of a TeX log, with the ``l.<n>`` line that locates it."""
    lines = log_text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("!"):
            where = next((w.strip() for w in lines[i + 1 : i + 12] if w.startswith("l.")), "")
            return f"{line.strip()} {where}".strip()
    return None


def build_pdf(
    tex: str | Path,
    *,
    out_dir: str | Path,
    search_path: Sequence[str | Path] = (),
    jobname: str = "paper",
    timeout: float = 600,
) -> Path:
    """Run latexmk on ``tex``; returns the PDF in ``out_dir``.

    Runs in the current directory, so paths in the LaTeX are relative to it. ``search_path``
    folders are searched by ``\\input`` before TeX's own (TEXINPUTS).

    Raises:
        TexMissingError: no latexmk/pdflatex (message says what to install).
        LatexError: LaTeX failed (message: first error line and the log's path).
    """
    latexmk = find_latexmk()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    extra = os.pathsep.join(str(Path(p).resolve()) for p in search_path)
    env["TEXINPUTS"] = extra + os.pathsep + env.get("TEXINPUTS", "")
    command = [
        latexmk,
        "-pdf",
        "-interaction=nonstopmode",
        "-halt-on-error",
        f"-outdir={out_dir}",
        f"-jobname={jobname}",
        str(tex),
    ]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)
    log = out_dir / f"{jobname}.log"
    pdf = out_dir / f"{jobname}.pdf"
    if result.returncode != 0 or not pdf.exists():
        text = log.read_text(errors="replace") if log.exists() else ""
        error = first_error(text) or (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise LatexError(f"LaTeX failed: {error}\n(full LaTeX log: {log})")
    return pdf
