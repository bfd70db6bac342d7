"""Curvature analyses through the workflow (rules/hessian.smk): what is planned, tiny end-to-end
runs of E1 (spectrum, landscapes and their figures; native and PyHessian engines), E4
(sharpness, top eigenvalue) and E5 (eigenpairs per checkpoint, subset check, line searches),
and how the jobs answer bad input (diverged run, wrong checkpoint, oversized subset, eigsh not
converging)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from minima import plan
from minima.hessian.job import (
    EIGENPAIRS_TABLES,
    SPECTRUM_TABLES,
    eigenpairs_job,
    spectrum_job,
    training_batches,
)
from minima.report import spec as paper_spec
from minima.report.figures import Look
from minima.report.kinds import eigenpairs as eigenpairs_kinds
from minima.report.kinds.landscape import LANDSCAPE
from tests.workflow_helpers import REPO, planned_jobs, snakemake

TINY = ("tests/configs/tiny.yaml",)
TINY_E5 = ("tests/configs/tiny_e5.yaml",)
E5 = "results/analysis/eigenpairs/e5/lenet5/rmsprop/seed0"
E5_RUN = "results/runs/e5/lenet5/rmsprop/seed0"
E5_STEPS = (0, 2, 6)
E5_FIGURES = ("eigenvalues", "line_search", "line_search_summary")  # config.yaml's e5 entries
PDF = "results/paper/paper.pdf"
NO_TEX = shutil.which("latexmk") is None or shutil.which("pdflatex") is None


def _extra_config(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


# ---- plans (dry runs) ----


def test_one_runs_spectrum_plans_only_its_ancestors(tmp_path):
    target = "results/analysis/spectrum/e1/lenet5/adam/seed0/spectrum.json"
    result = snakemake(tmp_path, "-n", target, configfiles=TINY)
    assert planned_jobs(result.stdout) == {
        "download": 1,
        "split": 1,
        "init_weights": 1,
        "train": 1,
        "spectrum": 1,
    }
    assert set(re.findall(r"run=([\w.+-]+)", result.stdout)) == {"adam"}


def test_paper_config_plans_every_curvature_job_with_either_backend(tmp_path):
    jobs = planned_jobs(snakemake(tmp_path, "-n").stdout)
    assert jobs["spectrum"] == 4 * 3 + 4 * 2 * 3  # E1 runs x seeds + E4 runs x models x seeds
    assert jobs["landscape"] == 4 * 3
    assert jobs["sharpness"] == 4 * 3 + 4 * 2 * 3  # E1 (as E4, for G4) + E4 runs x models x seeds
    assert jobs["eigenpairs"] == 10 + 10  # E5 and E5 on CIFAR-10: one per checkpoint step
    assert jobs["subset_check"] == jobs["eigenpairs_subset"] == jobs["eigenpairs_collect"] == 2
    pyhessian = _extra_config(tmp_path, "pyhessian.yaml", "hessian: {backend: pyhessian}\n")
    assert planned_jobs(snakemake(tmp_path, "-n", configfiles=(pyhessian,)).stdout) == jobs


def _merged_config(*files: str, extra: str = "") -> dict:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    for name in files:
        config = plan.deep_merge(config, yaml.safe_load((REPO / name).read_text()))
    return plan.deep_merge(config, yaml.safe_load(extra) or {})


def test_tiny_configs_plan_the_analysed_runs_and_steps():
    config = _merged_config(*TINY)
    plan.check_plan(config)
    assert plan.analysis_runs(config, "e1", "spectrum") == ["sgd", "adagrad", "adam", "adahessian"]
    assert plan.analysis_runs(config, "e2", "spectrum") == []
    adam = plan.analysis_settings(config, "e1", "landscape", "adam")["directions"]
    sgd = plan.analysis_settings(config, "e1", "landscape", "sgd")["directions"]
    assert set(adam) == {"eigen", "gradient_eigen", "random"} and set(sgd) == {"eigen", "random"}
    assert "runs" not in adam["eigen"]  # which runs is not a setting of the job
    config = _merged_config(*TINY_E5)
    plan.check_plan(config)
    assert plan.eigenpair_steps(config, "e5", "rmsprop") == list(E5_STEPS)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            "experiments: {e5: {analyses: {eigenpairs: {steps: [0, 7]}}}}",
            r"eigenpairs.steps names \[7\], which run rmsprop does not checkpoint "
            r"\(its checkpoints.steps: \[0, 2, 6\]\)",
        ),
        (
            "experiments: {e5: {analyses: {eigenpairs: {examples: 10}}}}",
            "give exactly one of fraction or examples",
        ),
        (
            "experiments: {e5: {analyses: {eigenpairs: {runs: [adam]}}}}",
            r"analyses.eigenpairs.runs names \['adam'\]; allowed: runs of e5: \['rmsprop'\]",
        ),
        (
            "experiments: {e4: {analyses: {landscape: {runs: null, examples: 10, "
            "subset_seed: 0, points_1d: 3, points_2d: 3, seed: 0, directions: "
            "{gradient_eigen: {span: [-1, 1], runs: [adamw]}}}}}}",
            r"landscape.directions.gradient_eigen.runs names \['adamw'\]",
        ),
    ],
)
def test_bad_analysis_config_is_refused_naming_the_key(extra, message):
    with pytest.raises(plan.ConfigError, match=message):
        plan.check_plan(_merged_config(*TINY_E5, extra=extra))


# ---- E1: spectrum and landscapes, native then PyHessian ----


def _check_spectrum(folder: Path, backend: str, n_examples: int) -> tuple[pd.DataFrame, dict]:
    meta = _json(folder / "spectrum.json")
    assert meta["status"] == "computed" and meta["backend"] == backend
    assert meta["data"]["n_examples"] == n_examples == meta["data"]["subset"]["size"]
    assert meta["versions"]["torch"] and meta["hardware"]["device"] == "cpu"
    assert meta["seconds"] > 0 and meta["settings"]["seed"] == 0
    eig = pd.read_parquet(folder / "eigenvalues.parquet")
    assert list(eig["index"]) == [0, 1]
    if backend == "native":  # Lanczos: largest algebraic, converged
        assert (np.diff(eig["eigenvalue"]) <= 0).all() and eig["converged"].all()
        assert (eig["residual"] <= 1e-4 * eig["eigenvalue"].abs().max()).all()
    else:  # power iteration: largest magnitude (60 iterations need not converge)
        assert (np.diff(np.abs(eig["eigenvalue"])) <= 0).all()
    trace = pd.read_parquet(folder / "trace.parquet")
    assert len(trace) == meta["trace"]["n_probes"] == 8
    assert meta["trace"]["estimate"] == pytest.approx(trace["sample"].mean(), rel=1e-12)
    if meta.get("engine_path", "").startswith("joint"):
        assert meta["n_hvp"]["total"] == sum(
            meta["n_hvp"][k] for k in ("density", "eigen", "trace")
        )
        assert meta["errors"]["trace_stderr"] == meta["trace"]["stderr"]
    density = pd.read_parquet(folder / "density.parquet")
    assert len(density) == 400 and (np.diff(density["x"]) > 0).all()
    assert (density["density"] >= 0).all()
    assert np.trapezoid(density["density"], density["x"]) == pytest.approx(1.0, abs=1e-6)
    nodes = pd.read_parquet(folder / "density_nodes.parquet")
    assert sorted(nodes["probe"].unique()) == [0, 1]
    np.testing.assert_allclose(nodes.groupby("probe")["weight"].sum(), 1.0, atol=1e-6)
    # Ritz values never exceed the largest eigenvalue (up to float32 HVP rounding), and the
    # converged top eigenvalue is nearly reached by the SLQ's outermost node.
    top = eig["eigenvalue"].max()
    assert nodes["node"].max() <= top + 1e-4 * abs(top)
    assert nodes["node"].max() >= top - 0.05 * abs(top)
    return eig, meta


def _check_landscape(folder: Path, directions: set[str]) -> None:
    table = pd.read_parquet(folder / "landscape.parquet")
    meta = _json(folder / "landscape.json")
    assert meta["status"] == "computed" and meta["data"]["n_examples"] == 128
    assert set(table["directions"]) == directions == set(meta["directions"])
    grid = np.linspace(-1.0, 1.0, 5)
    for name, group in table.groupby("directions"):
        line1, line2 = (group[group["slice"] == s] for s in ("d1", "d2"))
        plane = group[group["slice"] == "plane"]
        np.testing.assert_allclose(line1["alpha"], grid)
        assert (line1["beta"] == 0).all() and (line2["alpha"] == 0).all()
        np.testing.assert_allclose(line2["beta"], grid)
        assert len(plane) == 4 * 4
        assert sorted(set(plane["alpha"])) == pytest.approx(np.linspace(-1, 1, 4))
        # every slice passes through the trained weights, where the loss is the metadata's
        centre = group[(group["alpha"] == 0) & (group["beta"] == 0)]
        np.testing.assert_allclose(centre["loss"], meta["loss"], rtol=1e-5)
        assert group["accuracy"].between(0, 1).all() and np.isfinite(group["loss"]).all()
        if name == "eigen":
            assert len(meta["directions"][name]["eigenvalues"]) == 2
    if "gradient_eigen" in directions:
        assert -1 <= meta["directions"]["gradient_eigen"]["cosine"] <= 1


# The E1 landscape figures drawn from the two analysed runs only (the paper's show all four).
LANDSCAPE_FIGURES = ("landscape", "landscape_gradient", "landscape_random")
FIGURE_RUNS = (
    "experiments: {e1: {figures: {landscape: {runs: [sgd, adam]}, "
    "landscape_random: {runs: [sgd, adam]}}}}\n"
)


def _check_landscape_figures(workdir: Path, config: dict) -> None:
    """Each figure was drawn, from exactly the files its kind names, and what it draws is
    those files' lines (the kind drawn again here, in process, from the workflow's files)."""
    shown = {"landscape": 2, "landscape_gradient": 1, "landscape_random": 2}
    for name in LANDSCAPE_FIGURES:
        for suffix in ("pdf", "png"):
            assert (workdir / f"results/figures/e1/{name}.{suffix}").stat().st_size > 0
        spec = paper_spec.entry(config, "e1", "figures", name)
        inputs = {
            key: [str(workdir / path) for path in paths]
            for key, paths in LANDSCAPE.inputs(config, "e1", spec).items()
        }
        assert len(inputs["landscape"]) == shown[name]
        figure = LANDSCAPE.draw(spec, inputs, Look())
        lines = [ax for ax in figure.axes if ax.get_title(loc="left")]
        assert len(lines) == len([ax for ax in figure.axes if ax.name == "3d"]) == shown[name]
        for ax, path in zip(lines, inputs["landscape"], strict=True):
            table = pd.read_parquet(path)
            table = table[(table["directions"] == spec["directions"]) & (table["slice"] == "d1")]
            (d1,) = [line for line in ax.get_lines() if line.get_gid() == "d1"]
            np.testing.assert_array_equal(d1.get_ydata(), table.sort_values("alpha")["loss"])


@pytest.mark.slow
def test_tiny_e1_spectrum_and_landscapes_native_then_pyhessian(tmp_path):
    analysis = "results/analysis"
    targets = [
        f"{analysis}/{kind}/e1/lenet5/{run}/seed0/{kind}.json"
        for kind in ("spectrum", "landscape")
        for run in ("sgd", "adam")
    ]
    figure_runs = _extra_config(tmp_path, "figure_runs.yaml", FIGURE_RUNS)
    figures = [f"results/figures/e1/{name}.pdf" for name in LANDSCAPE_FIGURES]
    result = snakemake(tmp_path, *targets, *figures, configfiles=(*TINY, figure_runs), timeout=600)
    # the figures need no analysis beyond the targets' (no other run, no other seed)
    assert planned_jobs(result.stdout + result.stderr)["landscape"] == 2
    _check_landscape_figures(tmp_path, _merged_config(*TINY, extra=FIGURE_RUNS))
    spectra = {}
    for run in ("sgd", "adam"):
        spectra[run] = _check_spectrum(
            tmp_path / analysis / "spectrum" / "e1" / "lenet5" / run / "seed0", "native", 256
        )
        assert spectra[run][1]["which"] == "LA"
    landscape = tmp_path / analysis / "landscape" / "e1" / "lenet5"
    _check_landscape(landscape / "sgd" / "seed0", {"eigen", "random"})
    _check_landscape(landscape / "adam" / "seed0", {"eigen", "gradient_eigen", "random"})

    # The same rule through PyHessian: only the asked-for spectrum reruns (its params changed).
    pyhessian = _extra_config(tmp_path, "pyhessian.yaml", "hessian: {backend: pyhessian}\n")
    result = snakemake(tmp_path, targets[0], configfiles=(*TINY, pyhessian), timeout=600)
    assert planned_jobs(result.stdout + result.stderr) == {"spectrum": 1}
    eig, meta = _check_spectrum(
        tmp_path / analysis / "spectrum" / "e1" / "lenet5" / "sgd" / "seed0", "pyhessian", 256
    )
    assert meta["which"] == "LM"
    native_eig, native_meta = spectra["sgd"]
    # Largest-magnitude (power iteration) vs largest-algebraic (Lanczos): the same top
    # eigenvalue at a trained model; Hutchinson estimates agree within their errors.
    assert eig["eigenvalue"].iloc[0] == pytest.approx(native_eig["eigenvalue"].iloc[0], rel=1e-3)
    a, b = meta["trace"], native_meta["trace"]
    assert abs(a["estimate"] - b["estimate"]) <= 4 * np.hypot(a["stderr"], b["stderr"])


# ---- E5 eigenpairs and E4 sharpness ----


@pytest.fixture(scope="module")
def e5_results(tmp_path_factory):
    """One tiny E5 + E4 workflow run shared by the tests below."""
    work = tmp_path_factory.mktemp("e5")
    targets = [
        f"{E5}/eigenvalues.parquet",
        f"{E5}/line_search.parquet",
        f"{E5}/line_search_summary.parquet",
        f"{E5}/subset_check.parquet",
        "results/analysis/sharpness/e4/lenet5/sgd_sam/seed0/sharpness.json",
        "results/analysis/spectrum/e4/lenet5/sgd_sam/seed0/spectrum.json",
        *(f"results/figures/e5/{name}.pdf" for name in E5_FIGURES),
        "results/tables/e5/subset_check.tex",
        "results/findings/e4/verdicts.json",
        "results/findings/e5/verdicts.json",
    ]
    if not NO_TEX:  # E4's and E5's claims through the paper rule too (their findings sections)
        targets.append(PDF)
    snakemake(work, *targets, configfiles=TINY_E5, timeout=1200)
    return work


@pytest.mark.slow
def test_e5_subset_is_fixed_and_recorded(e5_results):
    subset = pd.read_parquet(e5_results / E5 / "subset.parquet")
    record = _json(e5_results / E5 / "subset.json")
    assert record["size"] == len(subset) == 24 and record["n_train"] == 96
    positions = subset["position"].to_numpy()
    assert (np.diff(positions) > 0).all() and positions.max() < 96
    for step in E5_STEPS:  # every checkpoint used exactly these examples
        meta = _json(e5_results / E5 / f"step{step}" / "eigenpairs.json")
        assert meta["data"]["subset"]["sha256"] == record["sha256"]
        assert meta["data"]["n_examples"] == 24


@pytest.mark.slow
def test_e5_eigenpairs_at_every_checkpoint(e5_results):
    collected = pd.read_parquet(e5_results / E5 / "eigenvalues.parquet")
    assert sorted(collected["step"].unique()) == list(E5_STEPS)
    for step in E5_STEPS:
        folder = e5_results / E5 / f"step{step}"
        meta = _json(folder / "eigenpairs.json")
        assert meta["status"] == "computed" and meta["converged"] and meta["messages"] == []
        assert meta["backend"].startswith("native (scipy eigsh")
        assert meta["versions"]["scipy"] and meta["hardware"]["device"] == "cpu"
        eig = pd.read_parquet(folder / "eigenvalues.parquet")
        la, sa = eig[eig["which"] == "LA"], eig[eig["which"] == "SA"]
        assert len(la) == 4 and len(sa) == 2
        assert (np.diff(la["eigenvalue"]) <= 0).all() and (np.diff(sa["eigenvalue"]) >= 0).all()
        assert sa["eigenvalue"].max() <= la["eigenvalue"].min()
        assert (eig["residual"] <= 1e-4 * eig["eigenvalue"].abs().max()).all()
        assert (eig["loss"] == meta["loss"]).all()
        pd.testing.assert_frame_equal(
            collected[collected["step"] == step].reset_index(drop=True), eig
        )


@pytest.mark.slow
def test_e5_line_searches_exact_vs_quadratic(e5_results):
    summary_all = pd.read_parquet(e5_results / E5 / "line_search_summary.parquet")
    assert sorted(summary_all["step"].unique()) == list(E5_STEPS)
    curve_all = pd.read_parquet(e5_results / E5 / "line_search.parquet")  # the findings read it
    assert sorted(curve_all["step"].unique()) == list(E5_STEPS)
    for step in E5_STEPS:
        folder = e5_results / E5 / f"step{step}"
        loss0 = _json(folder / "eigenpairs.json")["loss"]
        curve = pd.read_parquet(folder / "line_search.parquet")
        assert list(curve.columns) == list(EIGENPAIRS_TABLES["line_search"])
        assert len(curve_all[curve_all["step"] == step]) == len(curve)
        # pairs x (spans x points + the search's log grid: 4 decades x 2 per sign, and 0)
        assert len(curve) == 6 * (2 * 7 + 19)
        linear = curve[curve["grid"] == "linear"]
        assert sorted(linear["span"].unique()) == [0.1, 1.0]
        assert (curve.loc[curve["grid"] == "log", "alpha"].abs().max()) == 100.0
        at_zero = curve[curve["alpha"] == 0]
        np.testing.assert_allclose(at_zero["loss"], loss0, rtol=1e-10)
        np.testing.assert_allclose(at_zero["loss_quadratic"], loss0, rtol=1e-12)
        # near theta the second-order model is the exact loss up to a third-order remainder
        near = curve[(curve["span"] == 0.1) & (curve["alpha"].abs() < 0.05)]
        change = (near["loss"] - loss0).abs().max()
        np.testing.assert_allclose(near["loss"], near["loss_quadratic"], rtol=0, atol=0.1 * change)
        summary = pd.read_parquet(folder / "line_search_summary.parquet")
        assert len(summary) == 6 and (summary["best_decrease"] >= 0).all()
        # the refined alpha* does at least as well as every point of the search grid
        grid_best = curve[curve["grid"] == "log"].groupby(["which", "index"])["loss"].min()
        refined = summary.set_index(["which", "index"])["loss_star"]
        assert (refined <= grid_best.loc[refined.index] + 1e-12).all()
        np.testing.assert_allclose(summary["best_decrease"], loss0 - summary["loss_star"])
        assert (summary["bounded"] == (summary["alpha_star"].abs() == 100.0)).all()
        positive = summary["eigenvalue"] > 0
        np.testing.assert_allclose(
            summary.loc[positive, "alpha_star_quadratic"], 1 / summary.loc[positive, "eigenvalue"]
        )
        assert summary.loc[~positive, "alpha_star_quadratic"].isna().all()


@pytest.mark.slow
def test_e5_subset_check_table(e5_results):
    table = pd.read_parquet(e5_results / E5 / "subset_check.parquet")
    meta = _json(e5_results / E5 / "subset_check.json")
    assert meta["status"] == "computed" and meta["k"] == 2
    assert meta["data_full"]["n_examples"] == 96 and meta["data_subset"]["n_examples"] == 24
    assert sorted(table["which"]) == ["LA", "LA", "SA", "SA"]
    assert table["angle_deg"].between(0, 90).all()
    assert table["principal_angle_deg"].between(0, 90).all()
    np.testing.assert_allclose(
        table["abs_diff"], (table["eigenvalue_full"] - table["eigenvalue_subset"]).abs()
    )


@pytest.mark.slow
def test_e5_paper_figures_and_subset_check_table(e5_results):
    for name in E5_FIGURES:
        for ext in ("pdf", "png"):
            assert (e5_results / f"results/figures/e5/{name}.{ext}").stat().st_size > 0
    tex = (e5_results / "results/tables/e5/subset_check.tex").read_text()
    assert tex.startswith(r"\begin{tabular}") and tex.count(r" \\") == 1 + 4  # header, pairs
    numbers = pd.read_csv(e5_results / "results/tables/e5/subset_check.csv")
    table = pd.read_parquet(e5_results / E5 / "subset_check.parquet")
    np.testing.assert_allclose(numbers["eigenvalue_full"], table["eigenvalue_full"])
    np.testing.assert_allclose(numbers["angle_deg"], table["angle_deg"])
    assert set(numbers["run"]) == {"rmsprop"} and set(numbers["seed"]) == {0}
    # step null, on the job's own tables: the checkpoint with the most negative eigenvalue,
    # and the curve drawn is that pair's exact loss
    config = _merged_config(*TINY_E5)
    spec = paper_spec.entry(config, "e5", "figures", "line_search")
    inputs = {
        name: [str(e5_results / path) for path in paths]
        for name, paths in eigenpairs_kinds.LINE_SEARCH.inputs(config, "e5", spec).items()
    }
    fig = eigenpairs_kinds.draw_line_search(spec, inputs, Look())
    eig = pd.read_parquet(e5_results / E5 / "eigenvalues.parquet")
    lowest = eig.loc[eig["eigenvalue"].idxmin()]
    curve = pd.read_parquet(e5_results / E5 / f"step{lowest['step']}/line_search.parquet")
    pair = curve[(curve["which"] == lowest["which"]) & (curve["index"] == lowest["index"])]
    for ax, span in zip(fig.axes, sorted(curve["span"].unique()), strict=True):
        assert f"step {lowest['step']}," in ax.get_title("left")
        exact = next(line for line in ax.lines if line.get_gid() == "exact")
        np.testing.assert_allclose(exact.get_ydata(), pair[pair["span"] == span]["loss"])


@pytest.mark.slow
def test_e4_e5_findings_from_their_analyses(e5_results):
    from tests.test_findings_tex import check_paragraph_against_table

    e5 = json.loads((e5_results / "results/findings/e5/verdicts.json").read_text())
    c7 = next(c for c in e5["claims"] if c["claim"] == "E5-C7")
    smallest = pd.read_parquet(e5_results / E5 / "eigenvalues.parquet")
    smallest = smallest[smallest["which"] == "SA"].groupby("step")["eigenvalue"].min()
    assert c7["n"] == len(E5_STEPS) == len(smallest)  # one value per checkpoint
    assert c7["verdict"] == ("supported" if (smallest < 0).all() else "contradicted")
    assert c7["high"] == pytest.approx(smallest.max())
    # every E5 claim configured for this build has its verdict (config.yaml's and the tiny
    # overrides' options: minima.findings.eigenpair_quantities)
    configured = _merged_config(*TINY_E5)["experiments"]["e5"]["claims"]
    verdict = {c["claim"]: c for c in e5["claims"]}
    assert set(verdict) == set(configured)
    judged = {"supported", "contradicted", "inconclusive"}
    for cid, entry in configured.items():
        if entry["comparison"]["kind"] != "reported":
            assert verdict[cid]["verdict"] in judged, (cid, verdict[cid])
    subset = pd.read_parquet(e5_results / E5 / "subset_check.parquet")
    c10 = verdict["E5-C10"]
    assert c10["n"] == len(subset) and c10["high"] == pytest.approx(subset["rel_diff"].max())
    loss = pd.read_parquet(e5_results / E5 / "eigenvalues.parquet").groupby("step")["loss"].first()
    falls = loss.loc[2] > loss.loc[6]  # E5-C6-loss from step 2 on: steps 2 and 6
    assert verdict["E5-C6-loss"]["verdict"] == ("supported" if falls else "contradicted")
    e4 = json.loads((e5_results / "results/findings/e4/verdicts.json").read_text())
    assert {"E4-C1", "E4-C3", "G2"} <= {c["claim"] for c in e4["claims"]}
    tau = pd.read_parquet(e5_results / "results/findings/e4/correlation.parquet")
    assert {"top_eigenvalue", "trace", "sharpness_first_order", "sharpness_ascent"} <= set(
        tau["measure"]
    )
    for exp in ("e4", "e5"):
        section = (e5_results / f"results/paper/sections/findings_{exp}.tex").read_text()
        table = (e5_results / f"results/tables/{exp}/findings.tex").read_text()
        check_paragraph_against_table(section, table)


@pytest.mark.slow
@pytest.mark.skipif(NO_TEX, reason="latexmk/pdflatex not installed: no PDF (make tex)")
def test_e4_e5_claims_reach_the_paper(e5_results):
    """The paper rule's PDF of the tiny E4 + E5 build states every claim of theirs (in the
    findings paragraphs), and that E4 ran on stand-in data."""
    pdf = e5_results / PDF
    assert pdf.read_bytes()[:5] == b"%PDF-"
    if not shutil.which("pdftotext"):
        pytest.skip("pdftotext (poppler-utils) not installed: the PDF's text cannot be read")
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True).stdout
    text = re.sub(r"-\s+", "-", " ".join(text.split()))  # ids broken at a line's hyphen
    assert "Findings at a glance" in text
    for exp in ("e4", "e5"):
        facts = json.loads((e5_results / f"results/findings/{exp}/verdicts.json").read_text())
        for claim in facts["claims"]:
            assert f"{claim['claim']} (" in text, claim["claim"]  # in its findings paragraph
    assert "stand-in" in text  # E4 ran on generated images: said so


@pytest.mark.slow
def test_e4_sharpness_and_top_eigenvalue(e5_results):
    folder = e5_results / "results/analysis/sharpness/e4/lenet5/sgd_sam/seed0"
    table = pd.read_parquet(folder / "sharpness.parquet")
    ascent = pd.read_parquet(folder / "ascent.parquet")
    meta = _json(folder / "sharpness.json")
    assert meta["status"] == "computed" and meta["data"]["n_examples"] == 100
    assert list(table["rho"]) == [0.05, 0.5]
    np.testing.assert_allclose(table["first_order"], table["rho"] * table["grad_norm"])
    assert (table["ascent"] >= table["sam_point"]).all()
    assert len(ascent) == 2 * (3 + 1)  # rho x (SAM's point + 3 ascent steps)
    best = ascent.groupby("rho")["increase"].max()
    np.testing.assert_allclose(best.to_numpy(), table["ascent"].to_numpy())
    spectrum = e5_results / "results/analysis/spectrum/e4/lenet5/sgd_sam/seed0"
    eig = pd.read_parquet(spectrum / "eigenvalues.parquet")
    assert len(eig) == 1
    trace = pd.read_parquet(spectrum / "trace.parquet")  # as E1's (G4): one sample per probe
    assert len(trace) == 8 and list(trace.columns) == list(SPECTRUM_TABLES["trace"])
    for name in ("density", "density_nodes"):  # not asked for: empty, with columns
        empty = pd.read_parquet(spectrum / f"{name}.parquet")
        assert len(empty) == 0 and list(empty.columns) == list(SPECTRUM_TABLES[name])
    spectrum_meta = _json(spectrum / "spectrum.json")
    assert spectrum_meta["trace"] is not None and spectrum_meta["density"] is None


# ---- bad input, on the tiny E5 run's files ----


def _e5_job_args(work: Path, **settings_changes) -> dict:
    config = {
        "la": 2,
        "sa": 1,
        "dtype": "float64",
        "tol": 1e-6,
        "maxiter": None,
        "ncv": None,
        "seed": 0,
        "line_search": {
            "spans": [0.1],
            "points": 3,
            "search": {"min": 1e-3, "max": 1e3, "per_decade": 2, "rtol": 1e-6},
        },
    }
    config.update(settings_changes)
    return {
        "manifest": work / "results/data/mnist10k/manifest.json",
        "split": work / "results/data/mnist10k/splits/e5_seed0.npz",
        "std_scale": 1.0,
        "settings": config,
        "hessian": {
            "batch_size": 500,
            "hvp_method": "auto",
            "cache_graph": "auto",
            "chunk_size": 4,
        },
        "device": torch.device("cpu"),
    }


def _diverged_final(work: Path, tmp_path: Path) -> Path:
    meta = _json(work / E5_RUN / "final.json")
    meta.update({"status": "diverged", "diverged_at": 4})
    path = tmp_path / "final.json"
    path.write_text(json.dumps(meta))
    return path


@pytest.mark.slow
def test_diverged_run_gives_empty_tables_and_says_why(e5_results, tmp_path):
    work = e5_results
    final = _diverged_final(work, tmp_path)
    checkpoints = tmp_path / "checkpoints"  # the run stopped before step 6
    checkpoints.mkdir()
    shutil.copy(work / E5_RUN / "checkpoints" / "step2.safetensors", checkpoints)
    args = _e5_job_args(work)
    out = eigenpairs_job(
        {"name": "lenet5"}, "mnist10k", checkpoints, 6, final, work / E5 / "subset.parquet", **args
    )
    assert out.meta["status"] == "skipped" and "diverged" in out.meta["reason"]
    assert "step 4" in out.meta["reason"]
    for name, columns in EIGENPAIRS_TABLES.items():
        assert len(out.tables[name]) == 0 and list(out.tables[name].columns) == list(columns)
    args["settings"] = {"examples": None, "subset_seed": 0}
    args["hessian"] = {**args["hessian"], "backend": "native", "dtype": "float32"}
    out = spectrum_job(
        {"name": "lenet5"}, "mnist10k", work / E5_RUN / "final.safetensors", final, **args
    )
    assert out.meta["status"] == "skipped" and "diverged" in out.meta["reason"]
    assert all(len(t) == 0 for t in out.tables.values())


@pytest.mark.slow
def test_missing_checkpoint_of_a_completed_run_is_an_error(e5_results):
    work = e5_results
    with pytest.raises(FileNotFoundError, match=r"no checkpoint at step 3 \(it wrote"):
        eigenpairs_job(
            {"name": "lenet5"},
            "mnist10k",
            work / E5_RUN / "checkpoints",
            3,
            work / E5_RUN / "final.json",
            work / E5 / "subset.parquet",
            **_e5_job_args(work),
        )


@pytest.mark.slow
def test_checkpoint_of_another_model_is_refused_naming_keys(e5_results):
    work = e5_results
    with pytest.raises(ValueError, match="does not fit the model .*shape mismatches .*weight"):
        eigenpairs_job(
            {"name": "lenet_big"},
            "mnist10k",
            work / E5_RUN / "checkpoints",
            0,
            work / E5_RUN / "final.json",
            work / E5 / "subset.parquet",
            **_e5_job_args(work),
        )


@pytest.mark.slow
def test_subset_larger_than_the_training_split_is_refused(e5_results):
    args = _e5_job_args(e5_results)
    with pytest.raises(ValueError, match="subset of 1000 samples requested .* only 96"):
        training_batches(
            "mnist10k",
            args["manifest"],
            args["split"],
            torch.device("cpu"),
            std_scale=1.0,
            batch_size=100,
            examples=1000,
        )


@pytest.mark.slow
def test_eigsh_not_converging_is_reported_not_raised(e5_results):
    work = e5_results
    args = _e5_job_args(work, la=3, sa=0, maxiter=1, ncv=6, tol=1e-14)
    with pytest.warns(RuntimeWarning, match="ARPACK converged"):
        out = eigenpairs_job(
            {"name": "lenet5"},
            "mnist10k",
            work / E5_RUN / "checkpoints",
            6,
            work / E5_RUN / "final.json",
            work / E5 / "subset.parquet",
            **args,
        )
    assert out.meta["status"] == "computed" and out.meta["converged"] is False
    assert out.meta["eigsh"]["LA"]["converged"] is False and out.meta["messages"]
    n = out.meta["eigsh"]["LA"]["n_converged"]
    assert n < 3 and len(out.tables["eigenvalues"]) == n
    assert not out.tables["eigenvalues"]["all_converged"].any()
