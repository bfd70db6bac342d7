"""Claims in config: every entry of config.yaml passes the start-up check, a claim naming a
missing run / quantity / analysis is refused naming the claim, and a constructed experiment's
claims get the verdicts their numbers imply (including `not run` with the reason)."""

import copy

import numpy as np
import pandas as pd
import pytest
import yaml

from minima.findings import claims as claims_mod
from minima.findings.evaluate import Runs, evaluate_claims
from minima.findings.quantities import RunData
from minima.plan import ConfigError, RunKey
from tests.workflow_helpers import REPO


@pytest.fixture(scope="module")
def config():
    return yaml.safe_load((REPO / "config.yaml").read_text())


def test_every_claim_of_config_passes_the_check(config):
    claims_mod.check_claims(config)
    ids = {c for exp in config["experiments"] for c in claims_mod.claim_entries(config, exp)}
    assert {"E1-C3", "E2-C1", "E3-C2", "E4-C1", "E5-C7", "G1", "G2"} <= ids


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"comparison": {"kind": "order", "runs": ["sgd", "lion"], "direction": "greater"}},
            r"experiments.e1.claims.E1-C3: run 'lion' is not a run of experiments.e1",
        ),
        (
            {"quantity": {"name": "flatness"}},
            r"experiments.e1.claims.E1-C3.quantity: quantity 'flatness' is not produced",
        ),
        (
            {"comparison": {"kind": "order", "runs": ["sgd", "adam"], "direction": "up"}},
            r"E1-C3.comparison.direction is 'up'; allowed for kind order",
        ),
    ],
)
def test_bad_claim_is_refused_naming_it(config, change, message):
    bad = copy.deepcopy(config)
    bad["experiments"]["e1"]["claims"]["E1-C3"].update(change)
    with pytest.raises(ConfigError, match=message):
        claims_mod.check_claims(bad)


def test_claim_needing_an_analysis_the_experiment_lacks(config):
    bad = copy.deepcopy(config)
    bad["experiments"]["e2"]["claims"]["E2-C1"]["quantity"] = {"name": "top_eigenvalue"}
    with pytest.raises(
        ConfigError,
        match=r"E2-C1.quantity: quantity 'top_eigenvalue' needs "
        r"experiments.e2.analyses.spectrum",
    ):
        claims_mod.check_claims(bad)


def _metrics(run, seed, test_acc, train_acc=1.0, epochs=2):
    return pd.DataFrame(
        {
            "experiment": "x",
            "model": "m",
            "run": run,
            "seed": seed,
            "epoch": np.arange(1, epochs + 1),
            "step": np.arange(1, epochs + 1) * 10,
            "train_acc": train_acc,
            "test_acc": test_acc,
            "train_seconds": np.arange(1, epochs + 1) * 1.0,
        }
    )


def _config(claims):
    return {
        "experiments": {
            "x": {
                "models": [{"name": "lenet5", "label": "m"}],
                "runs": {"a": {}, "b": {}, "c": {}, "p": {"pretrained": True}},
                "claims": claims,
            }
        }
    }


def test_constructed_experiment_gets_the_verdicts_its_numbers_imply():
    accs = {"a": [0.95, 0.96, 0.97], "b": [0.90, 0.905, 0.91], "c": [0.90, 0.96, 0.93]}
    data = {
        RunKey("x", "m", run, seed): RunData(metrics=_metrics(run, seed, acc))
        for run, values in accs.items()
        for seed, acc in enumerate(values)
    }
    cfg = _config(
        {
            "clear": {
                "statement": "a beats b.",
                "source": "t",
                "quantity": {"name": "test_acc"},
                "comparison": {"kind": "difference", "pairs": [["a", "b"]], "direction": "greater"},
            },
            "reverse": {
                "statement": "b beats a.",
                "source": "t",
                "quantity": {"name": "test_acc"},
                "comparison": {"kind": "difference", "pairs": [["b", "a"]], "direction": "greater"},
            },
            "overlap": {
                "statement": "c beats b.",
                "source": "t",
                "quantity": {"name": "test_acc"},
                "comparison": {"kind": "order", "runs": ["a", "c", "b"], "direction": "greater"},
            },
            "pretrained": {
                "statement": "p beats a.",
                "source": "t",
                "quantity": {"name": "test_acc"},
                "comparison": {"kind": "difference", "pairs": [["p", "a"]], "direction": "greater"},
            },
            "gap": {
                "statement": "a generalizes within 6 pp.",
                "source": "t",
                "quantity": {"name": "gen_gap"},
                "comparison": {
                    "kind": "every",
                    "runs": ["a"],
                    "direction": "less",
                    "threshold": 0.06,
                },
            },
        }
    )
    parsed = claims_mod.parse_claims(cfg, "x")
    runs = Runs(data, skipped={"p": "needs pretrained weights"})
    table, details, _ = evaluate_claims(parsed, runs, stand_in=False)
    verdict = dict(zip(table["claim"], table["verdict"], strict=True))
    assert verdict == {
        "clear": "supported",
        "reverse": "contradicted",
        "overlap": "inconclusive",
        "pretrained": "not run",
        "gap": "supported",
    }
    row = table.set_index("claim").loc["clear"]
    d = np.array(accs["a"]) - np.array(accs["b"])
    assert row["effect"] == pytest.approx(d.mean())
    assert row["method"] == "paired t over seeds" and row["n"] == 3
    assert "needs pretrained weights" in table.set_index("claim").loc["pretrained", "reason"]


def test_one_seed_between_runs_is_inconclusive_and_says_n():
    data = {
        RunKey("x", "m", "a", 0): RunData(metrics=_metrics("a", 0, 0.99)),
        RunKey("x", "m", "b", 0): RunData(metrics=_metrics("b", 0, 0.50)),
    }
    cfg = _config(
        {
            "one": {
                "statement": "a beats b.",
                "source": "t",
                "quantity": {"name": "test_acc"},
                "comparison": {"kind": "difference", "pairs": [["a", "b"]], "direction": "greater"},
            }
        }
    )
    table, _, _ = evaluate_claims(claims_mod.parse_claims(cfg, "x"), Runs(data), stand_in=True)
    row = table.iloc[0]
    assert row["verdict"] == "inconclusive" and row["n"] == 1 and "n = 1" in row["reason"]
    assert bool(row["stand_in"])


def test_reported_times_are_compared_as_ratios_to_the_reference():
    data = {}
    for seed in range(3):
        for run, seconds in (("a", 10.0 + seed), ("b", 20.0 + 2 * seed)):
            frame = _metrics(run, seed, 0.9)
            frame["train_seconds"] = seconds
            data[RunKey("x", "m", run, seed)] = RunData(metrics=frame)
    cfg = _config(
        {
            "time": {
                "statement": "b is slower.",
                "source": "t",
                "quantity": {"name": "train_seconds"},
                "comparison": {"kind": "reported"},
                "ratio_to": "a",
                "reported": [
                    {"run": "a", "mean": 5.0, "std": 0.5, "n": 4},
                    {"run": "b", "mean": 9.0, "std": 1.0, "n": 4},
                ],
            }
        }
    )
    _, _, rep = evaluate_claims(claims_mod.parse_claims(cfg, "x"), Runs(data), stand_in=False)
    b = rep.set_index("run").loc["b"]
    assert b["ours_mean"] == pytest.approx(2.0) and b["ours_std"] == pytest.approx(0.0)
    assert b["theirs_mean"] == pytest.approx(1.8)
    assert b["theirs_std"] == pytest.approx(1.8 * np.sqrt((1 / 9) ** 2 + (0.5 / 5) ** 2))
    assert b["status"] == "within spread"
