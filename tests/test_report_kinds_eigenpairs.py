"""E5's paper figures and table (minima.report.kinds.eigenpairs), drawn from small synthetic
eigenpairs results in the exact column layout the jobs write (minima.hessian.job): which files
each entry needs, how bad entries are refused, and that what is drawn is the tables' numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from matplotlib.collections import PathCollection

from minima import plan
from minima.hessian.job import EIGENPAIRS_TABLES, SUBSET_CHECK_TABLES
from minima.plan import ConfigError, RunKey
from minima.report import spec as paper_spec
from minima.report.figures import Look
from minima.report.kinds import eigenpairs as kinds
from minima.report.kinds import figure_kind, table_kind
from tests.workflow_helpers import REPO

KEY = RunKey("e5", "lenet5", "rmsprop", 0)
STEPS = (0, 2, 6)
SPANS = (0.1, 1.0)
ALPHAS = np.linspace(-1.0, 1.0, 5)
LOG = np.array([-100.0, -10.0, -1.0, -0.1, 0.0, 0.1, 1.0, 10.0, 100.0])  # the step search's grid
# step -> (LA eigenvalues, SA eigenvalues): step 2's -3.0 is the most negative of all.
EIGENVALUES = {0: ([5.0, 0.5, 0.02], [-0.2, -0.01]), 2: ([40.0, 3.0, 0.8], [-3.0, 0.0]),
               6: ([120.0, 9.0, 2.5], [-1.5, 0.3])}  # fmt: skip
LOSSES = {0: 2.30, 2: 1.10, 6: 0.40}
LOOK = Look(colors={"rmsprop": "#123456"})


def _config(extra: str = "") -> dict:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config = plan.deep_merge(
        config, yaml.safe_load((REPO / "tests/configs/tiny_e5.yaml").read_text())
    )
    return plan.deep_merge(config, yaml.safe_load(extra) or {})


def _spec(config: dict, name: str, section: str = "figures", **changes) -> dict:
    entry = {**config["experiments"]["e5"][section][name], **changes}
    return paper_spec.with_order(config, "e5", entry)


def _gv(step: int, which: str, index: int) -> float:
    return 0.1 * (index + 1) * (1 if which == "LA" else -1) + 0.01 * step


def _eigenvalue_table() -> pd.DataFrame:
    rows = [
        {"step": step, "which": which, "index": i, "eigenvalue": lam, "residual": 1e-9,
         "all_converged": True, "loss": LOSSES[step]}
        for step, (la, sa) in EIGENVALUES.items()
        for which, values in (("LA", la), ("SA", sa))
        for i, lam in enumerate(values)
    ]  # fmt: skip
    return pd.DataFrame(rows)[list(EIGENPAIRS_TABLES["eigenvalues"])]


def _line_search_table(step: int) -> pd.DataFrame:
    """Exact loss: the quadratic model plus a cubic term (so the two curves differ)."""
    la, sa = EIGENVALUES[step]
    rows = []
    for which, values in (("LA", la), ("SA", sa)):
        for i, lam in enumerate(values):
            gv = _gv(step, which, i)
            grids = [("linear", span, ALPHAS * span) for span in SPANS] + [("log", 100.0, LOG)]
            for grid, span, alphas in grids:
                for alpha in alphas:
                    quad = LOSSES[step] - alpha * gv**2 + alpha**2 * gv**2 * lam / 2
                    rows.append(
                        {"step": step, "which": which, "index": i, "eigenvalue": lam, "gv": gv,
                         "grid": grid, "span": span, "alpha": alpha,
                         "loss": quad + 0.05 * alpha**3, "loss_quadratic": quad}
                    )  # fmt: skip
    return pd.DataFrame(rows)[list(EIGENPAIRS_TABLES["line_search"])]


def _summary_table() -> pd.DataFrame:
    rows = []
    for step, (la, sa) in EIGENVALUES.items():
        for which, values in (("LA", la), ("SA", sa)):
            for i, lam in enumerate(values):
                alpha_star = 0.0 if (step, which, i) == (0, "LA", 2) else 1.0 / (lam + 2.0)
                bounded = which == "SA" and lam < -1  # at the search's edge
                alpha_star = 100.0 if bounded else alpha_star
                decrease = 0.01 * (i + 1) + 0.001 * step
                rows.append(
                    {"step": step, "which": which, "index": i, "eigenvalue": lam,
                     "gv": _gv(step, which, i), "best_decrease": decrease,
                     "alpha_star": alpha_star, "loss_star": LOSSES[step] - decrease,
                     "bounded": bounded, "best_decrease_quadratic": np.nan,
                     "alpha_star_quadratic": 1 / lam if lam > 0 else np.nan}
                )  # fmt: skip
    return pd.DataFrame(rows)[list(EIGENPAIRS_TABLES["line_search_summary"])]


def _subset_check_table(converged: bool = True) -> pd.DataFrame:
    full = {"LA": [12.5, 3.25], "SA": [-0.75, -0.0001]}
    part = {"LA": [12.0, 3.5], "SA": [-0.5, -0.0003]}
    rows = []
    for which in ("LA", "SA"):
        for i in range(2):
            a, b = full[which][i], part[which][i]
            rows.append(
                {"which": which, "index": i, "eigenvalue_full": a, "eigenvalue_subset": b,
                 "abs_diff": abs(b - a), "rel_diff": abs(b - a) / abs(a),
                 "angle_deg": 3.0 + 10 * i, "principal_angle_deg": 2.0 + 5 * i,
                 "converged": converged}
            )  # fmt: skip
    return pd.DataFrame(rows)[list(SUBSET_CHECK_TABLES["table"])]


def _write(root, key: RunKey, name: str, frame: pd.DataFrame) -> str:
    path = root / kinds.analysis_file("eigenpairs", key, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path)
    return str(path)


@pytest.fixture
def results(tmp_path):
    """Synthetic eigenpairs results of the tiny E5 run, at the rules' paths below tmp_path."""
    files = {
        "eigenvalues": _write(tmp_path, KEY, "eigenvalues.parquet", _eigenvalue_table()),
        "line_search_summary": _write(
            tmp_path, KEY, "line_search_summary.parquet", _summary_table()
        ),
        "subset_check": _write(tmp_path, KEY, "subset_check.parquet", _subset_check_table()),
    }
    for step in STEPS:
        files[step] = _write(
            tmp_path, KEY, f"step{step}/line_search.parquet", _line_search_table(step)
        )
    return files


def _by_gid(fig, gid: str):
    found = [a for ax in fig.axes for a in ax.get_children() if a.get_gid() == gid]
    assert len(found) == 1, f"{gid}: {len(found)} artists"
    return found[0]


# ---- registry, inputs and checks ----


def test_kinds_are_registered():
    assert figure_kind("eigenvalues") is kinds.EIGENVALUES
    assert figure_kind("line_search") is kinds.LINE_SEARCH
    assert figure_kind("line_search_summary") is kinds.LINE_SEARCH_SUMMARY
    assert table_kind("subset_check") is kinds.SUBSET_CHECK_TABLE


def test_config_entries_pass_the_checks():
    for config in (_config(), yaml.safe_load((REPO / "config.yaml").read_text())):
        paper_spec.check_paper(config)
        for exp in ("e5", "e5_cifar10"):
            assert set(paper_spec.figures(config, exp)) >= {
                "eigenvalues",
                "line_search",
                "line_search_summary",
            }
            assert paper_spec.tables(config, exp)["subset_check"]["kind"] == "subset_check"


def test_inputs_name_exactly_the_files_of_one_seed_per_run():
    config = _config("experiments: {e5: {seeds: [3, 1]}}")
    base = "results/analysis/eigenpairs/e5/lenet5/rmsprop"
    spec = _spec(config, "eigenvalues")
    assert kinds.EIGENVALUES.inputs(config, "e5", spec) == {
        "eigenvalues": [f"{base}/seed1/eigenvalues.parquet"]  # null: the lowest seed
    }
    spec = _spec(config, "eigenvalues", seed=3)
    assert kinds.EIGENVALUES.inputs(config, "e5", spec) == {
        "eigenvalues": [f"{base}/seed3/eigenvalues.parquet"]
    }
    spec = _spec(config, "line_search_summary")
    assert kinds.LINE_SEARCH_SUMMARY.inputs(config, "e5", spec) == {
        "line_search_summary": [f"{base}/seed1/line_search_summary.parquet"]
    }
    spec = _spec(config, "subset_check", "tables")
    assert kinds.SUBSET_CHECK_TABLE.inputs(config, "e5", spec) == {
        "subset_check": [f"{base}/seed1/subset_check.parquet"]
    }
    spec = _spec(config, "line_search", step=2)  # and the summary, for the refined alpha*
    assert kinds.LINE_SEARCH.inputs(config, "e5", spec) == {
        "line_search": [f"{base}/seed1/step2/line_search.parquet"],
        "line_search_summary": [f"{base}/seed1/line_search_summary.parquet"],
    }
    spec = _spec(config, "line_search", step=None)  # null: every analysed step, the eigenvalues
    assert kinds.LINE_SEARCH.inputs(config, "e5", spec) == {
        "line_search_summary": [f"{base}/seed1/line_search_summary.parquet"],
        "eigenvalues": [f"{base}/seed1/eigenvalues.parquet"],
        "line_search": [f"{base}/seed1/step{s}/line_search.parquet" for s in STEPS],
    }


@pytest.mark.parametrize(
    ("name", "section", "changes", "message"),
    [
        (
            "line_search",
            "figures",
            {"step": 3},
            r"figures.line_search.step is 3, not an analysed checkpoint; allowed: \[0, 2, 6\]",
        ),
        (
            "eigenvalues",
            "figures",
            {"step": 2},
            r"figures.eigenvalues.step is 2, but kind eigenvalues draws every analysed "
            r"checkpoint \(\[0, 2, 6\]\)",
        ),
        (
            "line_search_summary",
            "figures",
            {"step": 0},
            r"line_search_summary.step is 0, but kind line_search_summary draws every",
        ),
        ("line_search_summary", "figures", {"zoom": None}, r"needs `zoom`"),
        ("line_search", "figures", {"seed": 5}, r"line_search.seed is 5; allowed"),
    ],
)
def test_bad_entries_are_refused_naming_the_key(name, section, changes, message):
    config = _config()
    where = f"experiments.e5.{section}.{name}"
    entry = {**config["experiments"]["e5"][section][name], **changes}
    kind = figure_kind(entry["kind"]) if section == "figures" else table_kind(entry["kind"])
    with pytest.raises(ConfigError, match=message):
        kind.check(config, "e5", entry, where)


def test_allowed_steps_follow_the_analysed_steps():
    config = _config("experiments: {e5: {analyses: {eigenpairs: {steps: [2, 6]}}}}")
    entry = {**config["experiments"]["e5"]["figures"]["line_search"], "step": 0}
    with pytest.raises(ConfigError, match=r"allowed: \[2, 6\]"):
        kinds.LINE_SEARCH.check(config, "e5", entry, "experiments.e5.figures.line_search")
    entry["step"] = 6
    kinds.LINE_SEARCH.check(config, "e5", entry, "experiments.e5.figures.line_search")


@pytest.mark.parametrize(
    ("name", "section"),
    [
        ("eigenvalues", "figures"),
        ("line_search", "figures"),
        ("line_search_summary", "figures"),
        ("subset_check", "tables"),
    ],
)
def test_missing_eigenpairs_analysis_is_refused(name, section):
    config = _config()
    entry = config["experiments"]["e5"][section][name]
    config["experiments"]["e5"]["analyses"] = {}
    kind = figure_kind(entry["kind"]) if section == "figures" else table_kind(entry["kind"])
    with pytest.raises(ConfigError, match=r"needs experiments.e5.analyses.eigenpairs"):
        kind.check(config, "e5", entry, f"experiments.e5.{section}.{name}")


# ---- what is drawn ----


def test_eigenvalues_figure_draws_log_abs_eigenvalues_and_the_loss(results):
    spec = _spec(_config(), "eigenvalues")
    fig = kinds.draw_eigenvalues(spec, {"eigenvalues": [results["eigenvalues"]]}, LOOK)
    table = _eigenvalue_table()
    for (which, index), pair in table.groupby(["which", "index"]):
        line = _by_gid(fig, f"{which}:{index}")
        np.testing.assert_array_equal(line.get_xdata(), pair["step"])
        with np.errstate(divide="ignore"):
            np.testing.assert_allclose(line.get_ydata(), np.log10(np.abs(pair["eigenvalue"])))
    np.testing.assert_allclose(_by_gid(fig, "loss").get_ydata(), [LOSSES[s] for s in STEPS])
    ax = fig.axes[0]
    assert ax.get_xscale() == "symlog" and ax.xaxis.get_transform().linthresh == 2
    # LA and SA in distinct color families, the sign in the legend
    la, sa = _by_gid(fig, "LA:0").get_color(), _by_gid(fig, "SA:0").get_color()
    assert la[2] > la[0] and sa[0] > sa[2]  # blue vs red
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any("LA(3)" in t for t in legend) and any("SA(2)" in t for t in legend)
    assert r"$\lambda > 0$" in legend and r"$\lambda < 0$" in legend
    linear = kinds.draw_eigenvalues(
        {**spec, "log_x": False}, {"eigenvalues": [results["eigenvalues"]]}, LOOK
    )
    assert linear.axes[0].get_xscale() == "linear"


def test_line_search_figure_at_the_most_negative_checkpoint(results):
    spec = _spec(_config(), "line_search", step=None)
    inputs = {
        "eigenvalues": [results["eigenvalues"]],
        "line_search": [results[s] for s in STEPS],
        "line_search_summary": [results["line_search_summary"]],
    }
    fig = kinds.draw_line_search(spec, inputs, LOOK)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == len(SPANS) + 1  # the spans, then the step search's log grid
    curve = _line_search_table(2)
    pair = curve[(curve["which"] == "SA") & (curve["index"] == 0)]  # lambda -3.0 at step 2
    panels = [("linear", 0.1), ("linear", 1.0), ("log", 100.0)]
    for ax, (grid, span) in zip(axes, panels, strict=True):
        assert "step 2" in ax.get_title("left") and "-3" in ax.get_title("left")
        part = pair[(pair["grid"] == grid) & (pair["span"] == span)].sort_values("alpha")
        exact, quadratic = (
            next(a for a in ax.lines if a.get_gid() == g) for g in ("exact", "quadratic")
        )
        np.testing.assert_allclose(exact.get_xdata(), part["alpha"])
        np.testing.assert_allclose(exact.get_ydata(), part["loss"])
        # the model drawn is L0 - alpha (g.v)^2 + alpha^2 (g.v)^2 lambda / 2 of the table
        gv, lam, alpha = -0.08, -3.0, part["alpha"].to_numpy()
        np.testing.assert_allclose(
            quadratic.get_ydata(), LOSSES[2] - alpha * gv**2 + alpha**2 * gv**2 * lam / 2
        )
        assert exact.get_color() == "#123456"
    search = axes[-1]
    assert search.get_xscale() == "symlog" and search.xaxis.get_transform().linthresh == 0.1
    assert "search" in search.get_title("left")
    star = next(a for a in search.lines if a.get_gid() == "alpha_star")  # from the summary
    # SA pair 0 at step 2: bounded, alpha* = 100, L(alpha*) = L0 - (0.01 + 0.001 * 2)
    np.testing.assert_allclose(
        [star.get_xdata()[0], star.get_ydata()[0]], [100.0, LOSSES[2] - 0.012]
    )
    assert any("bounded by the search" in t.get_text() for t in search.get_legend().get_texts())
    # a given step is drawn as asked, from its file alone (the summary is optional)
    fig = kinds.draw_line_search({**spec, "step": 6}, {"line_search": [results[6]]}, LOOK)
    assert all(
        "step 6" in ax.get_title("left") and "-1.5" in ax.get_title("left") for ax in fig.axes
    )


def test_line_search_figure_defaults_to_the_studys_checkpoint():
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    for exp in ("e5", "e5_cifar10"):
        entry = config["experiments"][exp]["figures"]["line_search"]
        assert entry["step"] == 50  # the study's t = 50, one of the analysed checkpoints
        kinds.LINE_SEARCH.check(config, exp, entry, f"experiments.{exp}.figures.line_search")
        assert config["experiments"][exp]["figures"]["line_search_summary"]["zoom"] == [1.0, 5.0]


def test_line_search_summary_points_are_the_tables(results):
    spec = _spec(_config(), "line_search_summary")
    fig = kinds.draw_line_search_summary(
        spec, {"line_search_summary": [results["line_search_summary"]]}, LOOK
    )
    table = _summary_table()
    assert kinds.summary_zooms(spec) == [1.0, 5.0]
    for which in ("LA", "SA"):
        rows = table[table["which"] == which]
        for part, inside in (
            ("zoom1", rows["eigenvalue"].abs() <= 1),
            ("zoom5", rows["eigenvalue"].abs() <= 5),
            ("all", np.ones(len(rows), dtype=bool)),
        ):
            for edge in (False, True):
                chosen = rows[inside & (rows["bounded"] == edge)]
                gid = f"decrease:{part}:{which}" + (":bounded" if edge else "")
                if edge and chosen.empty:  # no open markers where none is bounded
                    assert not [a for ax in fig.axes for a in ax.collections if a.get_gid() == gid]
                    continue
                np.testing.assert_allclose(
                    _by_gid(fig, gid).get_offsets(),
                    chosen[["eigenvalue", "best_decrease"]].to_numpy(),
                )
        free = rows[~rows["bounded"]]
        finite = free[free["alpha_star"] != 0]  # alpha* = 0: no finite 1/alpha*
        np.testing.assert_allclose(
            _by_gid(fig, f"inverse_alpha:all:{which}").get_offsets(),
            np.column_stack([finite["eigenvalue"], 1 / finite["alpha_star"]]),
        )
        # colored by step: each point's value is its step's rank
        colors = _by_gid(fig, f"decrease:all:{which}").get_array()
        np.testing.assert_array_equal(colors, np.searchsorted(STEPS, free["step"]))
    # the bounded pairs (SA, lambda -3 at step 2 and -1.5 at step 6) drawn open, 1/alpha* = 0.01
    edge = _by_gid(fig, "inverse_alpha:all:SA:bounded")
    np.testing.assert_allclose(edge.get_offsets(), [[-3.0, 0.01], [-1.5, 0.01]])
    assert edge.get_facecolors().size == 0 or (edge.get_facecolors()[:, 3] == 0).all()
    assert (
        len([a for a in fig.axes if any(isinstance(c, PathCollection) for c in a.collections)]) == 6
    )
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any("bounded by the search" in t for t in legend)
    # a single number still works: one zoom column and the whole range
    one = kinds.draw_line_search_summary(
        {**spec, "zoom": 1.0}, {"line_search_summary": [results["line_search_summary"]]}, LOOK
    )
    assert len([a for a in one.axes if a.get_label() != "<colorbar>"]) == 4


def test_subset_check_table_is_the_parquet(results):
    spec = _spec(_config(), "subset_check", "tables")
    table = kinds.build_subset_check_table(spec, {"subset_check": [results["subset_check"]]}, LOOK)
    expected = _subset_check_table().assign(model="lenet5", run="rmsprop", seed=0)
    pd.testing.assert_frame_equal(table.numbers[list(expected.columns)], expected, check_like=False)
    body = table.tex.split(r"\midrule")[1].split(r"\bottomrule")[0].strip().splitlines()
    assert len(body) == 4
    assert body[0].split(" & ")[:4] == ["LA", "1", "$12.5$", "$12$"]
    assert body[0].split(" & ")[4] == f"${0.5 / 12.5:.3g}$"
    assert body[3].split(" & ")[:4] == [
        "SA",
        "2",
        r"$-1.00 \times 10^{-4}$",
        r"$-3.00 \times 10^{-4}$",
    ]
    assert body[3].removesuffix(r" \\").split(" & ")[-2:] == ["13.0", "7.0"]
    assert r"\dagger" not in table.tex
    top = kinds.build_subset_check_table(
        {**spec, "top": 1}, {"subset_check": [results["subset_check"]]}, LOOK
    )
    assert list(top.numbers["index"]) == [0, 0]


def test_unconverged_pairs_are_marked(tmp_path):
    path = _write(tmp_path, KEY, "subset_check.parquet", _subset_check_table(converged=False))
    spec = _spec(_config(), "subset_check", "tables")
    table = kinds.build_subset_check_table(spec, {"subset_check": [path]}, LOOK)
    assert table.tex.count(r"$^\dagger$") == 4 + 1  # each pair, and the note


def test_skipped_run_draws_a_note_not_an_error(tmp_path):
    empty = {
        name: _write(tmp_path, KEY, f"{name}.parquet", pd.DataFrame({c: [] for c in columns}))
        for name, columns in EIGENPAIRS_TABLES.items()
    }
    config = _config()
    for draw, name, inputs in (
        (kinds.draw_eigenvalues, "eigenvalues", {"eigenvalues": [empty["eigenvalues"]]}),
        (
            kinds.draw_line_search,
            "line_search",
            {"eigenvalues": [empty["eigenvalues"]], "line_search": [empty["line_search"]]},
        ),
        (
            kinds.draw_line_search_summary,
            "line_search_summary",
            {"line_search_summary": [empty["line_search_summary"]]},
        ),
    ):
        fig = draw(
            _spec(config, name, **({"step": None} if name == "line_search" else {})), inputs, LOOK
        )
        texts = [t.get_text() for ax in fig.axes for t in ax.texts]
        assert any("run skipped" in t for t in texts), name


def test_step_is_read_back_from_the_path():
    path = kinds.line_search_file(KEY, 20)
    assert path == "results/analysis/eigenpairs/e5/lenet5/rmsprop/seed0/step20/line_search.parquet"
    assert kinds.step_of(path) == 20
    with pytest.raises(ValueError, match="not a step<N>/line_search.parquet"):
        kinds.step_of("results/analysis/eigenpairs/e5/lenet5/rmsprop/seed0/eigenvalues.parquet")
