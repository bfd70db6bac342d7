"""E1's spectrum in the paper: the density figure and the spectrum table, from result files
laid out as the `spectrum` rule writes them."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from minima.plan import ConfigError
from minima.report import spec as paper_spec
from minima.report.figures import Look
from minima.report.kinds import figure_kind, table_kind

REPO = Path(__file__).resolve().parent.parent
WHY = "the run did not complete: status 'diverged' at step 7"


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load((REPO / "config.yaml").read_text())


def _write(root: Path, path: str, frame: pd.DataFrame | dict) -> str:
    target = root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(frame, dict):
        target.write_text(json.dumps(frame))
    else:
        frame.to_parquet(target, index=False)
    return str(target)


def test_density_inputs_are_every_analysed_run_of_the_shown_seed(config):
    spec = paper_spec.entry(config, "e1", "figures", "density")
    inputs = figure_kind("density").inputs(config, "e1", spec)
    assert len(inputs["density"]) == 4 * 3  # 4 optimizers x 3 seeds (seed: null)
    spec["seed"] = 1
    inputs = figure_kind("density").inputs(config, "e1", spec)
    assert inputs["density"][0] == "results/analysis/spectrum/e1/lenet5/sgd/seed1/density.parquet"
    assert len(inputs["density"]) == 4


def test_density_panels_draw_the_lowest_seed_clipped_to_the_floor(config, tmp_path):
    spec = paper_spec.entry(config, "e1", "figures", "density")
    inputs = figure_kind("density").inputs(config, "e1", spec)
    x = np.linspace(-1, 10, 50)
    files = {"density": [], "meta": []}
    for path, meta in zip(inputs["density"], inputs["meta"], strict=True):
        seed = int(path.split("seed")[1][0])
        density = np.exp(-((x - seed) ** 2)) + (1e-12 if seed else 0.0)
        files["density"].append(_write(tmp_path, path, pd.DataFrame({"x": x, "density": density})))
        files["meta"].append(_write(tmp_path, meta, {"status": "computed"}))
    fig = figure_kind("density").draw(spec, files, Look())
    shown = [ax for ax in fig.axes if ax.get_visible()]
    titles = [ax.get_title(loc="left") for ax in shown]
    assert titles == ["SGD", "AdaGrad", "Adam", "AdaHessian"]
    line = shown[0].get_lines()[0]
    # seed 0's density (its peak at 0), its tails clipped to the floor where the axis starts
    np.testing.assert_allclose(line.get_xdata(), x)
    np.testing.assert_allclose(line.get_ydata(), np.maximum(np.exp(-(x**2)), 1e-8))
    assert shown[0].get_ylim()[0] == pytest.approx(1e-8)
    assert shown[0].get_yscale() == "log"


def test_spectrum_table_is_mean_and_std_over_seeds(config, tmp_path):
    spec = paper_spec.entry(config, "e1", "tables", "spectrum")
    inputs = table_kind("spectrum").inputs(config, "e1", spec)
    rng = np.random.default_rng(0)
    values = {}
    files = {"eigenvalues": [], "meta": []}
    for eig, meta in zip(inputs["eigenvalues"], inputs["meta"], strict=True):
        top = np.sort(rng.uniform(1, 100, 5))  # ascending: the table must sort them
        trace = float(rng.uniform(100, 1000))
        values[eig] = (top[::-1], trace)
        frame = pd.DataFrame({"index": range(5), "eigenvalue": top})
        files["eigenvalues"].append(_write(tmp_path, eig, frame))
        files["meta"].append(_write(tmp_path, meta, {"trace": {"estimate": trace}}))
    table = table_kind("spectrum").draw(spec, files, Look())
    numbers = table.numbers.set_index(["run", "quantity"])
    for run in ("sgd", "adam"):
        mine = [v for k, v in values.items() if f"/{run}/" in k]
        lam1 = np.array([top[0] for top, _ in mine])
        traces = np.array([t for _, t in mine])
        assert numbers.loc[(run, "lambda_1"), "mean"] == pytest.approx(lam1.mean())
        assert numbers.loc[(run, "lambda_1"), "std"] == pytest.approx(lam1.std(ddof=1))
        assert numbers.loc[(run, "trace"), "mean"] == pytest.approx(traces.mean())
    header = table.tex.split("\\midrule")[0]
    assert r"$\lambda_{3}$" in header and "lambda_{4}" not in header  # top: 3


def test_a_skipped_analysis_is_left_out_of_the_table(config, tmp_path):
    spec = paper_spec.entry(config, "e1", "tables", "spectrum")
    spec["runs"] = ["sgd"]
    spec["seed"] = None
    inputs = table_kind("spectrum").inputs(config, "e1", spec)
    files = {"eigenvalues": [], "meta": []}
    for i, (eig, meta) in enumerate(zip(inputs["eigenvalues"], inputs["meta"], strict=True)):
        frame = pd.DataFrame({"index": [0], "eigenvalue": [float(i + 1)]})
        files["eigenvalues"].append(_write(tmp_path, eig, frame))
        status = {"status": "skipped", "reason": WHY} if i == 2 else {"trace": None}
        files["meta"].append(_write(tmp_path, meta, status))
    table = table_kind("spectrum").draw(spec, files, Look())
    row = table.numbers.set_index("quantity").loc["lambda_1"]
    assert row["n"] == 2 and row["mean"] == pytest.approx(1.5)
    # the footnote says which run and seed is left out, and why
    note = "Left out: SGD (LeNet-5), seed 2: the run did not complete: status 'diverged' at step 7."
    assert table.notes == [note]
    assert rf"\footnotesize {note}" in table.tex


def test_a_diverged_runs_density_panel_says_so(config, tmp_path):
    spec = paper_spec.entry(config, "e1", "figures", "density")
    spec["seed"] = 0
    inputs = figure_kind("density").inputs(config, "e1", spec)
    x = np.linspace(-1, 10, 50)
    files = {"density": [], "meta": []}
    for path, meta in zip(inputs["density"], inputs["meta"], strict=True):
        diverged = "/adam/" in path
        frame = pd.DataFrame({"x": [] if diverged else x, "density": [] if diverged else x * 0 + 1})
        files["density"].append(_write(tmp_path, path, frame))
        status = {"status": "skipped", "reason": WHY} if diverged else {"status": "computed"}
        files["meta"].append(_write(tmp_path, meta, status))
    fig = figure_kind("density").draw(spec, files, Look())
    shown = {ax.get_title(loc="left"): ax for ax in fig.axes if ax.get_visible()}
    assert list(shown) == ["SGD", "AdaGrad", "Adam", "AdaHessian"]  # the panel stays
    assert not shown["Adam"].get_lines()
    assert [t.get_text() for t in shown["Adam"].texts] == [f"not drawn (seed 0):\n{WHY}"]
    assert not shown["SGD"].texts and len(shown["SGD"].get_lines()) == 1


def test_density_entry_needs_a_density_analysis(config):
    changed = copy.deepcopy(config)
    changed["experiments"]["e1"]["analyses"]["spectrum"]["density"] = None
    raw = changed["experiments"]["e1"]["figures"]["density"]
    with pytest.raises(ConfigError, match="analyses.spectrum.density is null"):
        figure_kind("density").check(changed, "e1", raw, "experiments.e1.figures.density")
    with pytest.raises(ConfigError, match="needs experiments.e2.analyses.spectrum"):
        figure_kind("density").check(config, "e2", raw, "x")
