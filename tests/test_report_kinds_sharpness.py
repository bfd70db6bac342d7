"""The ``sharpness`` table kind (E4): its inputs and checks, and that every cell is the mean +-
std over seeds of the analyses' tables (sharpness rows made by ``minima.sharpness`` itself)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from minima.hessian.functional import FunctionalLoss
from minima.hessian.job import SPECTRUM_TABLES
from minima.plan import ConfigError
from minima.report import spec as paper_spec
from minima.report.figures import Look
from minima.report.kinds import table_kind
from minima.report.kinds.sharpness import SHARPNESS_TABLE, significant_decimals
from minima.report.tables import format_mean_std
from minima.sharpness import ascent_sharpness
from minima.sharpness.job import SHARPNESS_TABLES
from tests.test_report_tables import body_rows, header_cells
from tests.workflow_helpers import REPO

RHOS = (0.05, 0.5)
MODELS = ["resnet18", "vgg16"]
RUNS = ["sgd", "sgd_sam"]
SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load((REPO / "config.yaml").read_text())


def _sharpness_rows(seed: int) -> pd.DataFrame:
    """sharpness.parquet as the job writes it, from ``ascent_sharpness`` on a tiny model."""
    torch.manual_seed(seed)
    model = nn.Linear(5, 3)
    x, y = torch.randn(32, 5), torch.randint(0, 3, (32,))
    fl = FunctionalLoss(model, F.cross_entropy, [(x, y)], dtype=torch.float64)
    rows = []
    for rho in RHOS:
        result = ascent_sharpness(fl, rho, steps=2, step_size=None, seed=0)
        rows.append({name: getattr(result, name) for name in SHARPNESS_TABLES["sharpness"]})
    return pd.DataFrame(rows)


def _eigenvalues(values: list[float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "index": list(range(len(values))),
            "eigenvalue": values,
            "residual": 1e-6,
            "which": "LA",
            "converged": True,
        }
    )[list(SPECTRUM_TABLES["eigenvalues"])]


def _path(root: Path, kind: str, model: str, run: str, seed: int, name: str) -> Path:
    path = root / f"results/analysis/{kind}/e4/{model}/{run}/seed{seed}/{name}"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Three seeds of 2 models x 2 runs; the top eigenvalue is listed second in the table
    (the kind takes the engine's first pair, ``index`` 0, not the first row)."""
    root = tmp_path_factory.mktemp("sharpness")
    inputs = {"sharpness": [], "eigenvalues": []}
    frames, tops = [], {}
    for m, model in enumerate(MODELS):
        for r, run in enumerate(RUNS):
            for seed in SEEDS:
                table = _sharpness_rows(100 * m + 10 * r + seed)
                path = _path(root, "sharpness", model, run, seed, "sharpness.parquet")
                table.to_parquet(path)
                inputs["sharpness"].append(str(path))
                frames.append(table.assign(model=model, run=run, seed=seed))
                top = 10.0 * (m + 1) + r + 0.5 * seed
                tops[(model, run, seed)] = top
                eig = _eigenvalues([top, top / 3]).iloc[::-1]
                path = _path(root, "spectrum", model, run, seed, "eigenvalues.parquet")
                eig.to_parquet(path)
                inputs["eigenvalues"].append(str(path))
    return root, pd.concat(frames, ignore_index=True), tops, inputs


def _spec(**changes) -> dict:
    return {"kind": "sharpness", "runs": RUNS, "models": MODELS, **changes}


def _cell(values) -> str:
    values = np.asarray(values, dtype=float)
    mean, std = values.mean(), values.std(ddof=1) if len(values) > 1 else np.nan
    return format_mean_std(mean, std, len(values), decimals=significant_decimals(mean))


def test_cells_are_mean_and_std_over_seeds_of_the_analysis_tables(results):
    _, frame, tops, inputs = results
    table = SHARPNESS_TABLE.draw(_spec(), inputs, Look())
    header = header_cells(table.tex)
    assert header == [
        "Model",
        "Optimizer",
        r"$\rho\|g\|$",
        r"ascent $\Delta L$",
        r"$\rho\|g\|$",
        r"ascent $\Delta L$",
        r"$\lambda_{\max}$",
    ]
    assert r"\multicolumn{2}{c}{$\rho = 0.05$}" in table.tex
    assert r"\multicolumn{2}{c}{$\rho = 0.5$}" in table.tex
    rows = body_rows(table.tex)
    assert [row[:2] for row in rows] == [
        ["ResNet18", "SGD"],
        ["ResNet18", "SGD+SAM"],
        ["VGG16", "SGD"],
        ["VGG16", "SGD+SAM"],
    ]
    for row, (model, run) in zip(rows, [(m, r) for m in MODELS for r in RUNS], strict=True):
        mine = frame[(frame["model"] == model) & (frame["run"] == run)]
        expected = []
        for rho in RHOS:
            at = mine[mine["rho"] == rho]
            np.testing.assert_allclose(at["first_order"], rho * at["grad_norm"])
            expected += [_cell(at["first_order"]), _cell(at["ascent"])]
        expected.append(_cell([tops[(model, run, s)] for s in SEEDS]))
        assert row[2:] == expected
    numbers = table.numbers.set_index(["model", "run", "quantity"])
    ascent = numbers.loc[("vgg16", "sgd_sam", "ascent")]
    at = frame[(frame["model"] == "vgg16") & (frame["run"] == "sgd_sam") & (frame["rho"] == 0.5)]
    chosen = ascent[ascent["rho"] == 0.5].iloc[0]
    assert chosen["mean"] == pytest.approx(at["ascent"].mean(), rel=1e-12)
    assert chosen["std"] == pytest.approx(at["ascent"].std(ddof=1), rel=1e-12)
    assert chosen["n"] == chosen["n_runs"] == 3
    assert table.notes == []


def test_without_a_spectrum_the_eigenvalue_column_is_left_out(results):
    _, frame, _, inputs = results
    table = SHARPNESS_TABLE.draw(
        _spec(models=["vgg16"]), {"sharpness": inputs["sharpness"]}, Look()
    )
    assert header_cells(table.tex) == ["Optimizer"] + [r"$\rho\|g\|$", r"ascent $\Delta L$"] * 2
    assert "lambda_max" not in set(table.numbers["quantity"])
    rows = body_rows(table.tex)
    sgd = frame[(frame["model"] == "vgg16") & (frame["run"] == "sgd") & (frame["rho"] == 0.05)]
    assert rows[0] == ["SGD", _cell(sgd["first_order"]), *rows[0][2:]]


def test_a_run_the_spectrum_does_not_cover_shows_a_dash(results):
    _, _, tops, inputs = results
    only_sgd = [p for p in inputs["eigenvalues"] if "/sgd/" in p]
    table = SHARPNESS_TABLE.draw(
        _spec(models=["resnet18"]), {**inputs, "eigenvalues": only_sgd}, Look()
    )
    rows = body_rows(table.tex)
    assert rows[0][-1] == _cell([tops[("resnet18", "sgd", s)] for s in SEEDS])
    assert rows[1][-1] == "--"
    assert table.notes == []


def test_a_skipped_seed_is_left_out_with_a_dagger_and_a_note(results, tmp_path):
    _, frame, tops, inputs = results
    empty = pd.DataFrame({c: [] for c in SHARPNESS_TABLES["sharpness"]})
    skipped = _path(tmp_path, "sharpness", "resnet18", "sgd", 2, "sharpness.parquet")
    empty.to_parquet(skipped)
    chosen = [p for p in inputs["sharpness"] if "/resnet18/sgd/" in p and "seed2" not in p]
    table = SHARPNESS_TABLE.draw(
        _spec(models=["resnet18"], runs=["sgd"]),
        {"sharpness": [*chosen, str(skipped)]},
        Look(),
    )
    sgd = frame[(frame["model"] == "resnet18") & (frame["run"] == "sgd") & (frame["seed"] < 2)]
    values = sgd[sgd["rho"] == 0.05]["first_order"].to_numpy()
    mean, std = values.mean(), values.std(ddof=1)
    cell = format_mean_std(mean, std, 2, decimals=significant_decimals(mean), n_runs=3)
    assert body_rows(table.tex)[0][1] == cell and r"\dagger" in cell
    assert table.notes == [
        r"$\dagger$ not computed (the run did not complete), left out of the mean: "
        "sharpness of 1 of 3 seeds of sgd (resnet18)."
    ]


def test_no_completed_analysis_is_an_error(tmp_path):
    empty = _path(tmp_path, "sharpness", "vgg16", "sgd", 0, "sharpness.parquet")
    pd.DataFrame({c: [] for c in SHARPNESS_TABLES["sharpness"]}).to_parquet(empty)
    with pytest.raises(ValueError, match="no completed sharpness analysis"):
        SHARPNESS_TABLE.draw(_spec(), {"sharpness": [str(empty)]}, Look())


# ---- config: inputs and checks ----


def _entry(config: dict, **changes) -> dict:
    raw = {**config["experiments"]["e4"]["tables"]["sharpness"], **changes}
    return paper_spec.with_order(config, "e4", raw)


def test_inputs_are_every_seeds_sharpness_and_eigenvalues(config):
    inputs = table_kind("sharpness").inputs(config, "e4", _entry(config))
    assert len(inputs["sharpness"]) == len(inputs["eigenvalues"]) == 4 * 2 * 3
    assert (
        inputs["sharpness"][0]
        == "results/analysis/sharpness/e4/resnet18/sgd/seed0/sharpness.parquet"
    )
    assert inputs["eigenvalues"][0] == (
        "results/analysis/spectrum/e4/resnet18/sgd/seed0/eigenvalues.parquet"
    )
    one = SHARPNESS_TABLE.inputs(config, "e4", _entry(config, runs=["adam"], seed=1))
    assert one["sharpness"] == [
        f"results/analysis/sharpness/e4/{m}/adam/seed1/sharpness.parquet" for m in MODELS[:1]
    ] + ["results/analysis/sharpness/e4/vgg16/adam/seed1/sharpness.parquet"]


def test_spectrum_section_decides_the_eigenvalue_inputs(config):
    changed = copy.deepcopy(config)
    changed["experiments"]["e4"]["analyses"]["spectrum"]["runs"] = ["sgd_sam"]
    inputs = SHARPNESS_TABLE.inputs(changed, "e4", _entry(changed))
    assert {p.split("/")[5] for p in inputs["eigenvalues"]} == {"sgd_sam"}
    del changed["experiments"]["e4"]["analyses"]["spectrum"]
    assert "eigenvalues" not in SHARPNESS_TABLE.inputs(changed, "e4", _entry(changed))
    paper_spec.check_paper(changed)  # no spectrum: still a valid table


def test_paper_config_sharpness_table_passes_its_check(config):
    paper_spec.check_paper(config)
    entry = config["experiments"]["e4"]["tables"]["sharpness"]
    SHARPNESS_TABLE.check(config, "e4", entry, "experiments.e4.tables.sharpness")


@pytest.mark.parametrize(
    ("exp", "changes", "message"),
    [
        ("e2", {}, r"experiments.e2.tables.x: a sharpness entry needs experiments.e2.analyses."),
        ("e4", {"seed": 5}, r"experiments.e4.tables.x.seed is 5; allowed: the experiment's seeds"),
    ],
)
def test_bad_entry_is_refused_naming_the_key(config, exp, changes, message):
    with pytest.raises(ConfigError, match=message):
        SHARPNESS_TABLE.check(
            config, exp, {"kind": "sharpness", **changes}, f"experiments.{exp}.tables.x"
        )


def test_runs_the_sharpness_analysis_skips_are_refused(config):
    changed = copy.deepcopy(config)
    changed["experiments"]["e4"]["analyses"]["sharpness"]["runs"] = ["sgd"]
    entry = {"kind": "sharpness", "runs": ["adam", "adam_sam"]}
    with pytest.raises(ConfigError, match=r"tables.x.runs: none of \['adam', 'adam_sam'\] is "):
        SHARPNESS_TABLE.check(changed, "e4", entry, "experiments.e4.tables.x")
