"""The ``landscape`` figure kind (E1): which files it plans, how it checks its entry, and that
what it draws is the landscape table (tables made by the job's own ``surface_table``)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
import yaml
from matplotlib.contour import ContourSet
from torch import nn

from minima.hessian.functional import FunctionalLoss
from minima.landscape.job import COLUMNS, surface_table
from minima.plan import ConfigError
from minima.report import spec as paper_spec
from minima.report import style
from minima.report.figures import Look
from minima.report.kinds import figure_kind
from minima.report.kinds.landscape import DIRECTION_NAMES, LANDSCAPE, loss_levels
from tests.workflow_helpers import REPO

RUNS = ["sgd", "adagrad", "adam", "adahessian"]
LOOK = Look(colors={run: style.color_for(run) for run in RUNS})


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load((REPO / "config.yaml").read_text())


def _fl(seed: int, scale: float) -> FunctionalLoss:
    """A tiny softmax regression labelling its own data: near a minimum whose loss is
    smaller, and rises faster, the larger ``scale`` (its weights' size)."""
    torch.manual_seed(seed)
    model = nn.Linear(4, 3)
    with torch.no_grad():
        model.weight.mul_(scale)
        x = torch.randn(24, 4)
        y = model(x).argmax(1)
    return FunctionalLoss(model, F.cross_entropy, [(x, y)], dtype=torch.float64)


def _landscape(seed: int, scale: float, span: float) -> pd.DataFrame:
    """A landscape table in the job's layout: every direction pair, lines and plane."""
    fl = _fl(seed, scale)
    gen = torch.Generator().manual_seed(seed)
    frames = []
    for name in ("eigen", "gradient_eigen", "random"):
        d1, d2 = (torch.randn(fl.n_params, generator=gen, dtype=torch.float64) for _ in range(2))
        table = surface_table(
            fl, d1, d2, span=(-span, span), points_1d=9, points_2d=6, chunk_size=8
        )
        frames.append(table.assign(directions=name))
    return pd.concat(frames, ignore_index=True)[list(COLUMNS)]


def _write(root: Path, run: str, seed: int, table: pd.DataFrame, meta: dict) -> tuple[str, str]:
    folder = root / f"results/analysis/landscape/e1/lenet5/{run}/seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    table.to_parquet(folder / "landscape.parquet")
    (folder / "landscape.json").write_text(json.dumps(meta))
    return str(folder / "landscape.parquet"), str(folder / "landscape.json")


def _meta(eigenvalues: list[float]) -> dict:
    return {
        "status": "computed",
        "directions": {
            "eigen": {"eigenvalues": eigenvalues},
            "gradient_eigen": {"eigenvalues": eigenvalues[:1], "grad_norm": 0.5, "cosine": 0.25},
            "random": {"seeds": [0, 1]},
        },
    }


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> tuple[Path, dict[str, pd.DataFrame], dict[str, list[str]]]:
    """Seed-0 landscapes of four runs (adam: a sharp minimum whose loss spans decades, sgd: a
    near-flat one), plus a seed-1 landscape of sgd that must not be drawn."""
    root = tmp_path_factory.mktemp("landscape")
    settings = {"sgd": (0.1, 0.2), "adagrad": (1.0, 1.0), "adam": (20.0, 3.0), "adahessian": (2, 1)}
    tables, inputs = {}, {"landscape": [], "meta": []}
    for i, (run, (scale, span)) in enumerate(settings.items()):
        tables[run] = _landscape(i, scale, span)
        table, meta = _write(root, run, 0, tables[run], _meta([10.0 * (i + 1), 2.0]))
        inputs["landscape"].append(table)
        inputs["meta"].append(meta)
    table, meta = _write(root, "sgd", 1, _landscape(9, 5.0, 1.0), _meta([1.0, 0.5]))
    inputs["landscape"].insert(0, table)
    inputs["meta"].insert(0, meta)
    return root, tables, inputs


def _spec(directions: str, runs: list[str] = RUNS) -> dict:
    return {"kind": "landscape", "directions": directions, "runs": runs, "models": ["lenet5"]}


def _rows(fig) -> list[tuple]:
    """(lines, contour, surface) axes of each row, top to bottom."""
    flat = [ax for ax in fig.axes if ax.name != "3d" and ax.get_label() != "<colorbar>"]
    lines, contours = flat[0::2], flat[1::2]
    surfaces = [ax for ax in fig.axes if ax.name == "3d"]
    return list(zip(lines, contours, surfaces, strict=True))


def _filled(ax) -> ContourSet:
    (filled,) = [c for c in ax.collections if isinstance(c, ContourSet) and c.filled]
    return filled


@pytest.mark.parametrize("directions", ["eigen", "random"])
def test_one_row_per_run_whose_lines_are_the_tables_lines(results, directions):
    _, tables, inputs = results
    fig = LANDSCAPE.draw(_spec(directions), inputs, LOOK)
    rows = _rows(fig)
    assert [row[0].get_title(loc="left") for row in rows] == [LOOK.name(r) for r in RUNS]
    for run, (lines, _, _) in zip(RUNS, rows, strict=True):
        table = tables[run][tables[run]["directions"] == directions]
        drawn = {line.get_gid(): line for line in lines.get_lines()}
        for part, coordinate, linestyle in (("d1", "alpha", "-"), ("d2", "beta", "--")):
            expected = table[table["slice"] == part].sort_values(coordinate)
            np.testing.assert_array_equal(drawn[part].get_xdata(), expected[coordinate])
            np.testing.assert_array_equal(drawn[part].get_ydata(), expected["loss"])
            assert drawn[part].get_linestyle() == linestyle
            assert drawn[part].get_color() == LOOK.colors[run]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == list(DIRECTION_NAMES[directions])


def test_lowest_seed_is_drawn(results):
    _, tables, inputs = results
    (lines, _, _) = _rows(LANDSCAPE.draw(_spec("eigen", ["sgd"]), inputs, LOOK))[0]
    sgd = tables["sgd"]
    expected = sgd[(sgd["directions"] == "eigen") & (sgd["slice"] == "d1")]["loss"]
    drawn = {line.get_gid(): line for line in lines.get_lines()}
    np.testing.assert_array_equal(drawn["d1"].get_ydata(), expected)


def test_loss_axis_is_logarithmic_only_when_the_loss_spans_a_decade(results):
    _, tables, inputs = results
    rows = dict(zip(RUNS, _rows(LANDSCAPE.draw(_spec("eigen"), inputs, LOOK)), strict=True))
    for run in ("sgd", "adam"):
        lines = tables[run][
            (tables[run]["directions"] == "eigen") & (tables[run]["slice"] != "plane")
        ]["loss"]
        spans = lines.max() / lines.min() >= 10
        assert spans == (run == "adam")  # the fixture's sharp and flat minima
        assert rows[run][0].get_yscale() == ("log" if spans else "linear")


def test_contour_levels_are_log_spaced_and_bracket_the_plane(results):
    _, tables, inputs = results
    rows = _rows(LANDSCAPE.draw(_spec("gradient_eigen", ["adam"]), inputs, LOOK))
    assert len(rows) == 1
    _, contour, surface = rows[0]
    adam = tables["adam"]
    plane = adam[(adam["directions"] == "gradient_eigen") & (adam["slice"] == "plane")]
    levels = _filled(contour).levels
    assert levels[0] == pytest.approx(plane["loss"].min(), rel=1e-12)
    assert levels[-1] == pytest.approx(plane["loss"].max(), rel=1e-12)
    np.testing.assert_allclose(np.diff(np.log(levels)), np.log(levels[1] / levels[0]))
    # the contour is drawn over the table's (alpha, beta) grid
    assert contour.get_xlim() == (plane["alpha"].min(), plane["alpha"].max())
    assert contour.get_ylim() == (plane["beta"].min(), plane["beta"].max())
    assert contour.get_xlabel() == r"$\alpha$: gradient"
    assert contour.get_ylabel() == r"$\beta$: top eigenvector"
    assert "cos(g, $v_1$) = 0.25" in contour.get_title()
    # the surface's height is log10 of the loss (it spans decades): its z range holds it
    low, high = surface.get_zlim()
    assert low <= np.log10(plane["loss"].min()) and np.log10(plane["loss"].max()) <= high
    assert "log" in surface.get_title()


def test_loss_levels_fall_back_to_linear_for_non_positive_values():
    levels, norm = loss_levels(np.array([[-1.0, 0.5], [2.0, np.nan]]))
    assert levels[0] == -1.0 and levels[-1] == 2.0
    np.testing.assert_allclose(np.diff(levels), 3.0 / (len(levels) - 1))
    assert type(norm).__name__ == "Normalize"


def test_a_skipped_run_gets_a_row_saying_why(results, tmp_path):
    _, tables, _ = results
    empty = pd.DataFrame({c: [] for c in COLUMNS})
    reason = "the run did not complete: status 'diverged' at step 40"
    skipped = _write(tmp_path, "adahessian", 0, empty, {"status": "skipped", "reason": reason})
    done = _write(tmp_path, "sgd", 0, tables["sgd"], _meta([1.0, 0.5]))
    inputs = {"landscape": [done[0], skipped[0]], "meta": [done[1], skipped[1]]}
    fig = LANDSCAPE.draw(_spec("eigen", ["sgd", "adahessian"]), inputs, LOOK)
    assert len([ax for ax in fig.axes if ax.name == "3d"]) == 1
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert any(reason in text for text in texts)


# ---- config: inputs and checks ----


def _entry(config: dict, name: str, **changes) -> dict:
    raw = {**config["experiments"]["e1"]["figures"][name], **changes}
    return paper_spec.with_order(config, "e1", raw)


def test_inputs_are_one_seed_of_the_runs_the_pair_covers(config):
    inputs = figure_kind("landscape").inputs(config, "e1", _entry(config, "landscape"))
    assert inputs["landscape"] == [
        f"results/analysis/landscape/e1/lenet5/{run}/seed0/landscape.parquet" for run in RUNS
    ]
    assert inputs["meta"] == [p.replace(".parquet", ".json") for p in inputs["landscape"]]
    gradient = _entry(config, "landscape_gradient", runs=None, seed=2)
    assert LANDSCAPE.inputs(config, "e1", gradient)["landscape"] == [
        "results/analysis/landscape/e1/lenet5/adam/seed2/landscape.parquet"
    ]


def test_paper_config_landscape_entries_pass_their_checks(config):
    paper_spec.check_paper(config)
    for name in ("landscape", "landscape_gradient", "landscape_random"):
        entry = config["experiments"]["e1"]["figures"][name]
        LANDSCAPE.check(config, "e1", entry, f"experiments.e1.figures.{name}")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"directions": None},
            r"experiments.e1.figures.x.directions is required for a landscape figure; "
            r"allowed: \['eigen', 'gradient_eigen', 'random'\]",
        ),
        ({"directions": "hessian"}, r"directions is 'hessian'; allowed: \['eigen', "),
        (
            {"directions": "gradient_eigen", "runs": ["sgd", "adagrad"]},
            r"analyses.landscape.directions.gradient_eigen covers runs \['adam'\], none of the "
            r"shown runs \['sgd', 'adagrad'\]",
        ),
        ({"seed": 7}, r"experiments.e1.figures.x.seed is 7; allowed: the experiment's seeds"),
    ],
)
def test_bad_entry_is_refused_naming_the_key_and_allowed_values(config, changes, message):
    entry = {"kind": "landscape", "directions": "eigen", **changes}
    with pytest.raises(ConfigError, match=message):
        LANDSCAPE.check(config, "e1", entry, "experiments.e1.figures.x")


def test_pair_not_computed_by_the_experiment_is_refused(config):
    changed = copy.deepcopy(config)
    del changed["experiments"]["e1"]["analyses"]["landscape"]["directions"]["random"]
    with pytest.raises(ConfigError, match=r"allowed: \['eigen', 'gradient_eigen'\]"):
        paper_spec.check_paper(changed)
    del changed["experiments"]["e1"]["analyses"]["landscape"]
    with pytest.raises(ConfigError, match=r"needs experiments.e1.analyses.landscape"):
        paper_spec.check_paper(changed)
