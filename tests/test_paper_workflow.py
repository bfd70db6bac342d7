"""The paper stage as a workflow: partial rebuilds, and the tiny paper built end to end."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from minima.report import style
from minima.report.metrics import metric
from minima.report.spec import TRAINING_FIGURE_KINDS, TRAINING_TABLE_KINDS
from tests.test_report_tables import assert_cell_matches, body_rows, header_cells
from tests.workflow_helpers import REPO, planned_jobs, snakemake

TINY = ("tests/configs/tiny.yaml",)
TINY_PAPER = ("tests/configs/tiny.yaml", "tests/configs/tiny_paper.yaml")
PDF = "results/paper/paper.pdf"
NO_TEX = shutil.which("latexmk") is None or shutil.which("pdflatex") is None


def merged_config(*files: str) -> dict:
    """config.yaml with the given files merged over it (as Snakemake merges them)."""

    def merge(base: dict, over: dict) -> dict:
        for key, value in over.items():
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                merge(base[key], value)
            else:
                base[key] = value
        return base

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    for name in files:
        merge(config, yaml.safe_load((REPO / name).read_text()))
    return config


def entry_counts(config: dict, experiments: tuple[str, ...]) -> dict[str, int]:
    """How many figures/tables the experiments list, by the rule that draws them."""
    counts = dict.fromkeys(("figure", "analysis_figure", "table", "analysis_table"), 0)
    for exp in experiments:
        entries = config["experiments"][exp]
        for entry in (entries.get("figures") or {}).values():
            training = entry["kind"] in TRAINING_FIGURE_KINDS
            counts["figure" if training else "analysis_figure"] += 1
        for entry in (entries.get("tables") or {}).values():
            counts["table" if entry["kind"] in TRAINING_TABLE_KINDS else "analysis_table"] += 1
    return counts


def trained_runs(output: str) -> set[str]:
    return set(re.findall(r"wildcards: exp=\w+, model=\w+, run=([\w.+-]+), seed=\d+", output))


def test_one_figure_plans_exactly_its_ancestors(tmp_path):
    result = snakemake(tmp_path, "-n", "results/figures/e3/normalization.pdf")
    assert planned_jobs(result.stdout) == {
        "download": 1,
        "split": 1,
        "init_weights": 1,
        "train": 2,
        "figure": 1,
    }
    assert trained_runs(result.stdout) == {"adahessian", "adahessian_std_rgb"}


def test_one_table_plans_its_runs_and_nothing_of_other_experiments(tmp_path):
    result = snakemake(tmp_path, "-n", "results/tables/e4/test_acc.tex")
    jobs = planned_jobs(result.stdout)
    assert jobs == {"download": 1, "split": 1, "init_weights": 6, "train": 24, "table": 1}
    assert set(re.findall(r"wildcards: exp=(\w+)", result.stdout)) == {"e4"}


def test_pdf_is_in_rule_all_only_when_paper_build_is_set(tmp_path):
    without = planned_jobs(snakemake(tmp_path, "-n", configfiles=TINY).stdout)
    assert "paper" not in without
    # every listed entry of the built experiments (e1, e2), each by the rule of its kind:
    # E1's density, three landscapes, two lr-sweep figures and the per-step gradient norms,
    # its spectrum and sweep tables
    counts = entry_counts(merged_config(*TINY), ("e1", "e2"))
    assert counts == {"figure": 4, "analysis_figure": 7, "table": 3, "analysis_table": 2}
    assert {rule: without[rule] for rule in counts} == counts
    with_pdf = planned_jobs(snakemake(tmp_path, "-n", configfiles=TINY_PAPER).stdout)
    assert with_pdf["paper"] == 1 and with_pdf["paper_section"] == 2
    assert with_pdf["paper_overview"] == 1


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    if NO_TEX:
        pytest.skip("latexmk/pdflatex not installed: the PDF cannot be built (make tex)")
    workdir = tmp_path_factory.mktemp("paper")
    # the paper target: its figures, tables, sections and the runs they need (not the analyses
    # of rule all, which other stages test)
    snakemake(workdir, PDF, configfiles=TINY_PAPER, timeout=1800)  # ~10 min on 2 idle cores
    return workdir


def run_tables(workdir: Path, exp: str) -> pd.DataFrame:
    """Last epoch of every run of ``exp``, read straight from the metrics tables."""
    frames = [
        pd.read_parquet(p)
        for p in sorted(workdir.glob(f"results/runs/{exp}/*/*/seed*/metrics.parquet"))
    ]
    table = pd.concat(frames, ignore_index=True)
    last = table.sort_values("epoch").groupby(["model", "run", "seed"]).tail(1).copy()
    last["seconds_per_step"] = last["train_seconds"] / last["step"]
    return last


@pytest.mark.slow
def test_tiny_paper_pdf_has_every_figure_and_table(built):
    config = merged_config(*TINY_PAPER)
    pdf = built / "results/paper/paper.pdf"
    assert pdf.read_bytes()[:5] == b"%PDF-"
    aux = (built / "results/paper/build/paper.aux").read_text()
    n_figures = sum(len(config["experiments"][e]["figures"]) for e in ("e1", "e2"))
    n_tables = sum(len(config["experiments"][e]["tables"]) for e in ("e1", "e2"))
    assert n_figures == 4 + 7  # training + analysis kinds
    # + one curvature-vs-generalization scatter per experiment (findings)
    assert aux.count("\\@writefile{lof}") == n_figures + 2
    assert n_tables == 3 + 2
    # + "What was run", findings at a glance, and per experiment: findings, reproduced, tau
    assert aux.count("\\@writefile{lot}") == n_tables + 1 + 1 + 3 * 2
    if shutil.which("pdftotext"):
        text = subprocess.run(
            ["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True
        ).stdout
        assert f"Figure {n_figures + 2}:" in text and f"Figure {n_figures + 3}:" not in text
        assert "Findings at a glance" in text and "stand-in" in text
        assert "mnist10k" in text and "not full MNIST" in text  # says what was run
        assert "2 seeds" in text and "(CPU)" in text


@pytest.mark.slow
def test_tiny_paper_tables_equal_aggregates_of_the_run_tables(built):
    config = merged_config(*TINY_PAPER)
    checked = 0
    for exp in ("e1", "e2"):
        last = run_tables(built, exp)
        runs = list(config["experiments"][exp]["runs"])
        for name, entry in config["experiments"][exp]["tables"].items():
            if entry["kind"] not in TRAINING_TABLE_KINDS:
                continue  # analysis tables: test below and the kinds' own tests
            tex = (built / f"results/tables/{exp}/{name}.tex").read_text()
            rows = body_rows(tex)
            assert [row[0] for row in rows] == [style.display_name(r) for r in runs]
            metrics = entry["metrics"]
            header = header_cells(tex)
            columns = [header.index(metric(m).header().replace("%", "\\%")) for m in metrics]
            for row, run in zip(rows, runs, strict=True):
                for column, name_ in zip(columns, metrics, strict=True):
                    values = last[last.run == run][name_].to_numpy(dtype=float)
                    assert len(values) == len(config["experiments"][exp]["seeds"])
                    assert_cell_matches(row[column], values, name_)
                    checked += 1
    assert checked == 4 * 1 + 5 * 3 + 5 * 2


@pytest.mark.slow
def test_tiny_paper_analysis_entries_come_from_their_analyses(built):
    # the landscape figures draw the lowest seed's model; the findings read every seed's
    # landscape (E1-C8/C9 compare runs over seeds): one landscape per (run, seed)
    landscapes = sorted(
        built.glob("results/analysis/landscape/e1/lenet5/*/seed*/landscape.parquet")
    )
    runs = list(merged_config(*TINY_PAPER)["experiments"]["e1"]["runs"])
    assert sorted((p.parent.parent.name, p.parent.name) for p in landscapes) == sorted(
        (run, f"seed{seed}") for run in runs for seed in (0, 1)
    )
    for name in ("landscape", "landscape_gradient", "landscape_random"):
        assert (built / f"results/figures/e1/{name}.pdf").stat().st_size > 0
    # the spectrum table is the mean +- std over both seeds of each run's top eigenvalue
    numbers = pd.read_csv(built / "results/tables/e1/spectrum.csv")
    for run in runs:
        tops = [
            pd.read_parquet(
                built / f"results/analysis/spectrum/e1/lenet5/{run}/seed{seed}/eigenvalues.parquet"
            )["eigenvalue"].max()
            for seed in (0, 1)
        ]
        cell = numbers[(numbers["run"] == run) & (numbers["quantity"] == "lambda_1")].iloc[0]
        assert cell["n"] == 2
        assert cell["mean"] == pytest.approx(np.mean(tops), rel=1e-9)
        assert cell["std"] == pytest.approx(np.std(tops, ddof=1), rel=1e-9)


@pytest.mark.slow
def test_tiny_paper_findings_prose_numbers_are_table_cells(built):
    from tests.test_findings_tex import check_paragraph_against_table

    for exp in ("e1", "e2"):
        section = (built / f"results/paper/sections/findings_{exp}.tex").read_text()
        table = (built / f"results/tables/{exp}/findings.tex").read_text()
        assert check_paragraph_against_table(section, table) > 0
        facts = json.loads((built / f"results/findings/{exp}/verdicts.json").read_text())
        ids = {c["claim"] for c in facts["claims"]}
        assert ids == set(merged_config(*TINY_PAPER)["experiments"][exp]["claims"])
        assert facts["stand_in"] and all(c["stand_in"] for c in facts["claims"])
        words = {"supported", "contradicted", "inconclusive", "not run"}
        for c in facts["claims"]:  # a verdict word, or (numbers only) a reproduction status
            assert c["verdict"] in words or c["verdict"].startswith("not judged: stand-in")
        assert "On stand-in data" in section and "not testable with this design: needs" in section
    glance = (built / "results/paper/sections/findings_glance.tex").read_text()
    assert "E1-C3" in glance and "E2-C1" in glance and "(stand-in)" in glance


@pytest.mark.slow
def test_tiny_paper_report_groups_figures_by_experiment(built):
    snakemake(built, "--report", "report.html", PDF, configfiles=TINY_PAPER, timeout=300)
    html = (built / "report.html").read_text()
    for exp, figure in (("e1", "grad_norm"), ("e2", "per_optimizer")):
        assert f"results/figures/{exp}/{figure}.png" in html
    assert re.search(r'"e1"', html) and re.search(r'"e2"', html)
    assert "results/findings/e1/verdicts.csv" in html  # the findings are in the report too


@pytest.mark.slow
def test_missing_tex_fails_only_the_paper_job_saying_what_to_install(built, tmp_path):
    # a PATH with every tool of this machine except latexmk and pdflatex
    shadow = tmp_path / "bin"
    shadow.mkdir()
    for folder in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(folder):
            continue
        for tool in os.listdir(folder):
            target = shadow / tool
            if tool not in ("latexmk", "pdflatex") and not target.exists():
                target.symlink_to(Path(folder) / tool)
    (built / "results/paper/paper.pdf").unlink()
    env_path = os.environ["PATH"]
    os.environ["PATH"] = str(shadow)
    try:
        result = snakemake(built, PDF, configfiles=TINY_PAPER, check=False, timeout=300)
    finally:
        os.environ["PATH"] = env_path
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "latexmk not found" in output and "texlive-latex-recommended" in output
    assert "latexmk not found" in (built / "logs/paper/paper.log").read_text()
    assert re.search(r"Error in rule paper\b", output)
    assert not re.search(r"Error in rule (?!paper\b)", output)
    assert (built / "results/figures/e2/per_optimizer.pdf").exists()
