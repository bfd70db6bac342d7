"""Compiling the paper: a missing TeX and a LaTeX error each say what went wrong, briefly."""

from __future__ import annotations

import shutil

import pytest

from minima.report import build

NO_TEX = shutil.which("latexmk") is None or shutil.which("pdflatex") is None


def test_missing_latexmk_names_the_packages_to_install(monkeypatch):
    monkeypatch.setattr(build.shutil, "which", lambda name: None)
    with pytest.raises(build.TexMissingError) as error:
        build.find_latexmk()
    message = str(error.value)
    assert "latexmk not found" in message
    for package in ("latexmk", "texlive-latex-recommended", "make tex"):
        assert package in message


def test_first_error_is_the_first_bang_line_with_its_line_number():
    log = "\n".join(
        [
            "(./paper.tex",
            "! Undefined control sequence.",
            "l.12 \\nosuchmacro",
            "",
            "! Emergency stop.",
        ]
    )
    assert build.first_error(log) == "! Undefined control sequence. l.12 \\nosuchmacro"
    assert build.first_error("all fine\n") is None


@pytest.mark.skipif(NO_TEX, reason="latexmk/pdflatex not installed (make tex)")
def test_latex_error_reports_its_first_error_line_and_the_log(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.tex").write_text(
        "\\documentclass{article}\n\\begin{document}\nok \\nosuchmacro\n\\end{document}\n"
    )
    with pytest.raises(build.LatexError) as error:
        build.build_pdf(tmp_path / "bad.tex", out_dir=tmp_path / "out", jobname="bad")
    message = str(error.value)
    assert "! Undefined control sequence. l.3 ok \\nosuchmacro" in message
    assert str(tmp_path / "out" / "bad.log") in message


@pytest.mark.skipif(NO_TEX, reason="latexmk/pdflatex not installed (make tex)")
def test_build_finds_inputs_on_the_search_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "gen").mkdir()
    (tmp_path / "gen" / "body.tex").write_text("Generated body.\n")
    (tmp_path / "main.tex").write_text(
        "\\documentclass{article}\n\\begin{document}\n\\input{body}\n\\end{document}\n"
    )
    pdf = build.build_pdf(
        tmp_path / "main.tex", out_dir=tmp_path / "out", search_path=[tmp_path / "gen"]
    )
    assert pdf.read_bytes()[:5] == b"%PDF-"
