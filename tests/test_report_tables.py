"""LaTeX tables: one number format, booktabs structure, cells equal to the seed statistics."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest

from minima.report import aggregate, tables
from minima.report.figures import Look
from minima.report.latex import escape, tabular
from minima.report.metrics import metric

CELL = re.compile(r"^\$(?P<mean>-?[\d.]+)(?: \\pm (?P<std>[\d.]+))?(?P<dagger>\^\{\\dagger\})?\$$")


def body_rows(tex: str) -> list[list[str]]:
    """The cells of a booktabs tabular's body (between \\midrule and \\bottomrule)."""
    body = tex.split("\\midrule", 1)[1].split("\\bottomrule", 1)[0]
    return [
        [cell.strip() for cell in line.rstrip("\\ ").split(" & ")]
        for line in body.strip().splitlines()
    ]


def header_cells(tex: str) -> list[str]:
    head = tex.split("\\midrule", 1)[0].strip().splitlines()[-1]
    return [cell.strip() for cell in head.rstrip("\\ ").split(" & ")]


def parse_cell(cell: str) -> tuple[float, float | None, bool]:
    """(mean, std or None, dagger) of a ``$m \\pm s$`` cell."""
    match = CELL.match(cell)
    assert match, f"not a number cell: {cell!r}"
    std = match.group("std")
    return float(match.group("mean")), None if std is None else float(std), bool(match["dagger"])


def assert_cell_matches(cell: str, values: np.ndarray, name: str) -> None:
    """The cell shows mean (and sample std if several values) of ``values``, rounded."""
    info = metric(name)
    mean, std, _ = parse_cell(cell)
    tolerance = 0.5 * 10 ** (-info.decimals) + 1e-9
    assert abs(mean - values.mean() * info.scale) <= tolerance, (cell, values)
    if len(values) > 1:
        assert std is not None
        assert abs(std - values.std(ddof=1) * info.scale) <= tolerance, (cell, values)
    else:
        assert std is None


def summaries_frame(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for model in ("resnet18", "vgg16"):
        for run in ("sgd", "sgd_sam", "adam"):
            for s in range(3):
                rows.append(
                    {
                        "experiment": "e4",
                        "model": model,
                        "run": run,
                        "seed": s,
                        "test_acc": rng.uniform(0.8, 0.95),
                        "train_loss": rng.uniform(0.01, 0.3),
                        "seconds_per_step": rng.uniform(0.05, 0.2),
                        "status": "completed",
                    }
                )
    return pd.DataFrame(rows)


def test_mean_std_format():
    assert tables.format_mean_std(0.971234, 0.003121, 3, decimals=2, scale=100) == (
        r"$97.12 \pm 0.31$"
    )
    assert tables.format_mean_std(0.971234, math.nan, 1, decimals=2, scale=100) == "$97.12$"
    assert tables.format_mean_std(1.23456, 0.1, 2, decimals=3) == r"$1.235 \pm 0.100$"
    assert tables.format_mean_std(math.nan, math.nan, 0, decimals=2) == "--"
    cell = tables.format_mean_std(0.5, 0.1, 2, decimals=1, scale=100, n_runs=3)
    assert cell == r"$50.0 \pm 10.0^{\dagger}$"


def test_summary_table_cells_equal_numpy_statistics_in_row_order():
    frame = summaries_frame()
    metrics = ["test_acc", "train_loss", "seconds_per_step"]
    runs = ["adam", "sgd", "sgd_sam"]
    table = tables.summary_table(frame, metrics, runs=runs, models=["vgg16", "resnet18"])
    header = header_cells(table.tex)
    assert header == [
        "Model",
        "Optimizer",
        r"Test acc. (\%)",
        "Train loss (cross-entropy)",
        "Time/iter. (ms)",
    ]
    rows = body_rows(table.tex)
    assert [row[:2] for row in rows] == [
        [model, name] for model in ("VGG16", "ResNet18") for name in ("Adam", "SGD", "SGD+SAM")
    ]
    for row in rows:
        model = {"VGG16": "vgg16", "ResNet18": "resnet18"}[row[0]]
        run = {"Adam": "adam", "SGD": "sgd", "SGD+SAM": "sgd_sam"}[row[1]]
        chosen = frame[(frame.model == model) & (frame.run == run)]
        for cell, name in zip(row[2:], metrics, strict=True):
            assert_cell_matches(cell, chosen[name].to_numpy(), name)
    assert table.tex.count("\\toprule") == table.tex.count("\\bottomrule") == 1


def test_by_model_table_has_a_column_per_model():
    frame = summaries_frame(1)
    table = tables.by_model_table(frame, "test_acc", look=Look(labels={"sgd_sam": "SAM (SGD)"}))
    assert header_cells(table.tex) == ["Optimizer", "ResNet18", "VGG16"]
    assert r"\multicolumn{2}{c}{Test acc. (\%)}" in table.tex
    rows = body_rows(table.tex)
    assert [row[0] for row in rows] == ["SGD", "SAM (SGD)", "Adam"]
    for row, run in zip(rows, ["sgd", "sgd_sam", "adam"], strict=True):
        for cell, model in zip(row[1:], ["resnet18", "vgg16"], strict=True):
            values = frame[(frame.run == run) & (frame.model == model)].test_acc.to_numpy()
            assert_cell_matches(cell, values, "test_acc")


def test_diverged_seeds_get_a_dagger_and_a_note():
    frame = summaries_frame(2)
    frame.loc[(frame.run == "adam") & (frame.model == "vgg16") & (frame.seed == 0), "status"] = (
        "diverged"
    )
    table = tables.by_model_table(frame, "test_acc")
    rows = {row[0]: row for row in body_rows(table.tex)}
    assert parse_cell(rows["Adam"][2])[2] and not parse_cell(rows["Adam"][1])[2]
    kept = frame[(frame.run == "adam") & (frame.model == "vgg16") & (frame.seed > 0)]
    assert_cell_matches(rows["Adam"][2], kept.test_acc.to_numpy(), "test_acc")
    assert "1 of 3 seeds of adam (vgg16)" in table.tex


def test_hyperparameter_table_reads_settings_from_final_json():
    frame = summaries_frame(3)
    frame = frame[frame.model == "resnet18"]
    finals = [
        {
            "run": {
                "experiment": "e4",
                "model_label": "resnet18",
                "run": run,
                "seed": 0,
                "batch_size": 128,
                "epochs": 200,
                "optimizer": optimizer,
            }
        }
        for run, optimizer in [
            ("sgd", {"name": "sgd", "momentum": 0.9, "lr": 0.1}),
            ("sgd_sam", {"name": "sam", "rho": 0.05, "base": {"name": "sgd", "lr": 0.1}}),
            ("adam", {"name": "adam", "betas": [0.9, 0.999], "lr": 0.001}),
        ]
    ]
    table = tables.hyperparameter_table(frame, finals, ["test_acc"])
    rows = {row[0]: row for row in body_rows(table.tex)}
    assert rows["SGD"][1] == r"$\eta$ 0.1, momentum 0.9"  # lr first, whatever the JSON order
    assert rows["SGD+SAM"][1] == r"$\rho$ 0.05 over SGD: $\eta$ 0.1"
    assert rows["Adam"][1] == r"$\eta$ 0.001, $(\beta_1, \beta_2)$ (0.9, 0.999)"
    assert rows["SGD"][2:4] == ["128", "200"]


def test_hybrid_is_described_phase_by_phase():
    text = tables.describe_optimizer(
        {
            "name": "hybrid",
            "adahessian": {"lr": 0.001, "hessian_power": 1.0},
            "sgd": {"lr": 0.005, "momentum": 0.9},
            "tl": 1.0,
        }
    )
    assert text.index("SGD:") < text.index("then AdaHessian:")
    assert text.startswith("Hybrid: switch below val.\\ loss 1; SGD")


def test_escape_and_tabular_shape():
    assert escape("a_b & 50% #1 {x}") == r"a\_b \& 50\% \#1 \{x\}"
    assert escape("ρ‖g‖") == r"\ensuremath{\rho}\ensuremath{\|}g\ensuremath{\|}"
    with pytest.raises(ValueError, match="cells"):
        tabular(["a", "b"], [["1"]])


def test_written_table_numbers_csv_matches(tmp_path):
    frame = summaries_frame(4)
    table = tables.summary_table(frame, ["test_acc"])
    tables.write_table(table, tmp_path / "t.tex", tmp_path / "t.csv")
    back = pd.read_csv(tmp_path / "t.csv")
    expected = aggregate.seed_stats(frame, ["test_acc"])
    np.testing.assert_allclose(back["mean"], expected["mean"], rtol=1e-12)
    assert (tmp_path / "t.tex").read_text() == table.tex
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv", "t.tex"]  # no temp files
