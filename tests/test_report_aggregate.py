"""Runs -> one tidy frame -> means and sample stds over seeds, checked against numpy."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from minima.report import aggregate

RUNS = ("sgd", "adam")
SEEDS = (0, 1, 2)
EPOCHS = 4


def synthetic_runs(rng: np.random.Generator, diverged: tuple[str, int] | None = None):
    """Per-run metrics tables like the training loop writes (float64, seeded)."""
    tables = {}
    for run in RUNS:
        for seed in SEEDS:
            epochs = np.arange(1, EPOCHS + 1)
            frame = pd.DataFrame(
                {
                    "experiment": "e9",
                    "model": "tiny",
                    "run": run,
                    "seed": seed,
                    "epoch": epochs,
                    "step": epochs * 10,
                    "train_loss": rng.uniform(0.1, 2.0, EPOCHS),
                    "val_loss": rng.uniform(0.1, 2.0, EPOCHS),
                    "test_loss": rng.uniform(0.1, 2.0, EPOCHS),
                    "train_acc": rng.uniform(0.5, 1.0, EPOCHS),
                    "val_acc": rng.uniform(0.5, 1.0, EPOCHS),
                    "test_acc": rng.uniform(0.5, 1.0, EPOCHS),
                    "train_seconds": np.cumsum(rng.uniform(1.0, 2.0, EPOCHS)),
                    "grad_norm": rng.uniform(0.1, 5.0, EPOCHS),
                    "optimizer": run,
                    "optimizer_switch": "",
                }
            )
            if diverged == (run, seed):
                frame.loc[frame.index[-1], ["train_loss", "val_loss"]] = math.nan
            tables[(run, seed)] = frame
    return tables


@pytest.fixture
def written(tmp_path):
    rng = np.random.default_rng(0)
    tables = synthetic_runs(rng)
    paths = []
    for (run, seed), frame in tables.items():
        path = tmp_path / run / f"seed{seed}" / "metrics.parquet"
        path.parent.mkdir(parents=True)
        frame.to_parquet(path, index=False)
        paths.append(path)
    return tables, paths[::-1]  # reversed: the loader must not depend on file order


def test_load_metrics_stacks_runs_sorted_with_their_own_labels(written):
    tables, paths = written
    frame = aggregate.load_metrics(paths)
    assert len(frame) == len(RUNS) * len(SEEDS) * EPOCHS
    keys = frame[["run", "seed", "epoch"]].apply(tuple, axis=1).tolist()
    assert keys == sorted(keys)
    adam1 = frame[(frame.run == "adam") & (frame.seed == 1)].reset_index(drop=True)
    pd.testing.assert_frame_equal(adam1, tables[("adam", 1)], check_dtype=False)


def test_load_metrics_names_a_file_that_lacks_columns(tmp_path):
    path = tmp_path / "bad.parquet"
    pd.DataFrame({"epoch": [1]}).to_parquet(path)
    with pytest.raises(ValueError, match="bad.parquet.*lacks"):
        aggregate.load_metrics([path])


def test_seed_stats_equal_numpy_mean_and_sample_std(written):
    tables, paths = written
    summaries = aggregate.run_summaries(aggregate.load_metrics(paths))
    stats = aggregate.seed_stats(summaries, ["test_acc", "train_loss", "seconds_per_step"])
    for run in RUNS:
        last = [tables[(run, s)].iloc[-1] for s in SEEDS]
        expected = {
            "test_acc": np.array([r.test_acc for r in last]),
            "train_loss": np.array([r.train_loss for r in last]),
            "seconds_per_step": np.array([r.train_seconds / r.step for r in last]),
        }
        for name, values in expected.items():
            row = stats[(stats.run == run) & (stats.metric == name)].iloc[0]
            assert row["mean"] == pytest.approx(np.mean(values), rel=1e-12)
            assert row["std"] == pytest.approx(np.std(values, ddof=1), rel=1e-12)
            assert row["n"] == row["n_runs"] == len(SEEDS)


def test_best_val_acc_is_the_maximum_over_epochs(written):
    tables, paths = written
    summaries = aggregate.run_summaries(aggregate.load_metrics(paths)).set_index(["run", "seed"])
    for (run, seed), frame in tables.items():
        assert summaries.loc[(run, seed), "best_val_acc"] == frame.val_acc.max()
        assert summaries.loc[(run, seed), "epochs_run"] == EPOCHS


def test_a_diverged_run_is_counted_but_not_averaged():
    tables = synthetic_runs(np.random.default_rng(1), diverged=("sgd", 2))
    frame = pd.concat(tables.values(), ignore_index=True)
    finals = [
        {
            "run": {"experiment": "e9", "model_label": "tiny", "run": r, "seed": s},
            "status": "diverged" if (r, s) == ("sgd", 2) else "completed",
        }
        for r, s in tables
    ]
    summaries = aggregate.run_summaries(frame, finals)
    assert (summaries.status == "diverged").sum() == 1
    # without final.json the non-finite last loss marks it too
    assert (aggregate.run_summaries(frame).status == "diverged").sum() == 1
    stats = aggregate.seed_stats(summaries, ["test_acc"])
    sgd = stats[stats.run == "sgd"].iloc[0]
    kept = [tables[("sgd", s)].test_acc.iloc[-1] for s in (0, 1)]
    assert (sgd.n, sgd.n_runs) == (2, 3)
    assert sgd["mean"] == pytest.approx(np.mean(kept))
    assert sgd["std"] == pytest.approx(np.std(kept, ddof=1))


def test_one_seed_has_no_std():
    tables = synthetic_runs(np.random.default_rng(2))
    frame = tables[("adam", 0)]
    stats = aggregate.seed_stats(aggregate.run_summaries(frame), ["val_acc"])
    assert stats.iloc[0].n == 1 and math.isnan(stats.iloc[0]["std"])
    assert stats.iloc[0]["mean"] == frame.val_acc.iloc[-1]


def test_curve_stats_per_epoch_equal_numpy_and_skip_non_finite(written):
    tables, paths = written
    frame = aggregate.load_metrics(paths)
    frame.loc[(frame.run == "adam") & (frame.seed == 0) & (frame.epoch == 3), "grad_norm"] = np.inf
    curves = aggregate.curve_stats(frame, "grad_norm", by=("run",))
    assert list(dict.fromkeys(curves.run)) == ["adam", "sgd"]  # order of first appearance
    for run in RUNS:
        for epoch in range(1, EPOCHS + 1):
            values = np.array([tables[(run, s)].grad_norm.iloc[epoch - 1] for s in SEEDS])
            if (run, epoch) == ("adam", 3):
                values = values[1:]
            row = curves[(curves.run == run) & (curves.epoch == epoch)].iloc[0]
            assert row["mean"] == pytest.approx(values.mean(), rel=1e-12)
            assert row["std"] == pytest.approx(values.std(ddof=1), rel=1e-12)
            assert row["n"] == len(values)
