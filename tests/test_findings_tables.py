"""Claims on an experiment's shared tables (lr sweep, similarity), on derived per-epoch
quantities (epochs to a target, loss plateau, loss rises) and gain-equality claims: each
quantity on constructed tables with hand-computed values, each verdict where it must be
supported and where it must be contradicted, and the start-up checks that refuse them."""

import copy
import math

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from minima.findings import claims as claims_mod
from minima.findings import verdicts
from minima.findings.evaluate import Runs, evaluate_claims
from minima.findings.quantities import RunData, read
from minima.plan import ConfigError, RunKey
from tests.workflow_helpers import REPO

# ---- derived per-epoch quantities ----


def _epochs(**columns):
    n = len(next(iter(columns.values())))
    return RunData(metrics=pd.DataFrame({"epoch": np.arange(1, n + 1), **columns}))


def test_epochs_to_target_and_censoring():
    data = _epochs(val_acc=[0.5, 0.85, 0.91, 0.95])
    assert read("epochs_to", data, {"target": 0.9}).tolist() == [3.0]
    assert read("epochs_to", data, {"target": 0.85}).tolist() == [2.0]
    # never reached: the last epoch + 1, so such a run ranks after every run that reaches it
    assert read("epochs_to", data, {"target": 0.99}).tolist() == [5.0]


def test_plateau_epoch_is_where_95_percent_of_the_fall_is_done_for_good():
    # fall 2.0 -> 0.0; 5% of it is 0.1. Epoch 3 (0.05) is within, epoch 4 (0.2) rises out,
    # so the loss settles for good from epoch 5.
    data = _epochs(train_loss=[2.0, 1.0, 0.05, 0.2, 0.08, 0.0])
    assert read("plateau_epoch", data, {}).tolist() == [5.0]
    # share 0.5: the bound is 1.0, reached for good at epoch 2
    assert read("plateau_epoch", data, {"share": 0.5}).tolist() == [2.0]
    # a loss that ends above its start never settles: censored at epochs + 1
    assert read("plateau_epoch", _epochs(train_loss=[1.0, 0.5, 1.5]), {}).tolist() == [4.0]


def test_loss_increases_counts_epoch_to_epoch_rises():
    data = _epochs(train_loss=[1.0, 0.8, 0.85, 0.5, 0.5, 0.6])
    assert read("loss_increases", data, {}).tolist() == [2.0]  # 0.8->0.85, 0.5->0.6
    # a rise of 6.25% (0.8 -> 0.85) is under a 10% tolerance; 20% (0.5 -> 0.6) is not
    assert read("loss_increases", data, {"tolerance": 0.1}).tolist() == [1.0]


# ---- gain (equivalence) claims ----


def test_gain_equal_within_margin_supported_outside_contradicted():
    base = np.array([0.90, 0.91, 0.92, 0.905])
    noise = np.array([0.001, -0.001, 0.0005, -0.0005])
    # gains 0.010 and 0.010 + noise: the difference of gains is the noise, |mean| < margin
    same = verdicts.compare_gain(
        base + 0.01, base, base + 0.01 + noise, base, "equal", margin=0.005, paired=True
    )
    assert same.verdict == verdicts.SUPPORTED
    # gains 0.03 vs 0.01: their difference 0.02 + noise is wholly beyond the margin 0.005
    apart = verdicts.compare_gain(
        base + 0.03 + noise, base, base + 0.01, base, "equal", margin=0.005, paired=True
    )
    assert apart.verdict == verdicts.CONTRADICTED
    # wide spread: the interval straddles the margin
    wide = verdicts.compare_gain(
        base + 0.01 + 10 * noise, base, base + 0.01, base, "equal", margin=0.005, paired=True
    )
    assert wide.verdict == verdicts.INCONCLUSIVE


def test_paired_gain_interval_matches_scipy():
    rng = np.random.default_rng(3)
    a1, b1, a2, b2 = rng.normal(0.9, 0.01, size=(4, 5))
    judged = verdicts.compare_gain(a1, b1, a2, b2, "greater", paired=True)
    d = (a1 - b1) - (a2 - b2)
    half = stats.t.ppf(0.975, d.size - 1) * d.std(ddof=1) / math.sqrt(d.size)
    assert judged.effect == pytest.approx(d.mean())
    assert (judged.low, judged.high) == pytest.approx((d.mean() - half, d.mean() + half))
    assert judged.p_value == pytest.approx(stats.ttest_1samp(d, 0.0).pvalue)


def test_unpaired_gain_uses_welch_over_four_runs():
    groups = [np.array(g) for g in ([1.0, 1.2, 1.1], [0.5, 0.7], [0.4, 0.5, 0.6, 0.5], [0.3, 0.2])]
    judged = verdicts.compare_gain(*groups, "greater", paired=False)
    effect = groups[0].mean() - groups[1].mean() - groups[2].mean() + groups[3].mean()
    v = [g.var(ddof=1) / g.size for g in groups]
    df = sum(v) ** 2 / sum(vi**2 / (g.size - 1) for vi, g in zip(v, groups, strict=True))
    half = stats.t.ppf(0.975, df) * math.sqrt(sum(v))
    assert judged.effect == pytest.approx(effect)
    assert (judged.low, judged.high) == pytest.approx((effect - half, effect + half))


def test_gain_with_one_seed_is_inconclusive():
    judged = verdicts.compare_gain([1.0], [0.5], [0.7], [0.5], "equal", margin=0.1, paired=True)
    assert judged.verdict == verdicts.INCONCLUSIVE and "n = 1" in judged.reason


# ---- shared tables: constructed experiment ----


def _sweep_summary():
    """Points of a 1-D lr sweep for runs a and b (b's largest lr diverged: n = 0)."""
    rows = []
    for run, lrs, losses, accs, ns in (
        ("a", [0.01, 0.1, 1.0], [1.0, 0.2, 0.6], [0.7, 0.95, 0.8], [1, 1, 1]),
        ("b", [0.001, 0.01, 0.1], [0.5, 0.4, math.nan], [0.8, 0.9, math.nan], [1, 1, 0]),
    ):
        for point, (lr, loss, acc, n) in enumerate(zip(lrs, losses, accs, ns, strict=True)):
            rows.append(
                {
                    "model": "m",
                    "run": run,
                    "point": point,
                    "value:optimizer.lr": lr,
                    "train_loss_mean": loss,
                    "train_loss_n": n,
                    "test_acc_mean": acc,
                    "test_acc_n": n,
                }
            )
    return pd.DataFrame(rows)


def _similarity(values: np.ndarray, names=None) -> pd.DataFrame:
    """A layer x layer table (value[i, j]: layer i of network A vs layer j of network B)."""
    n = values.shape[0]
    names = names or [f"l{i}" for i in range(n)]
    return pd.DataFrame(
        [
            {
                "layer_a": names[i],
                "layer_b": names[j],
                "index_a": i,
                "index_b": j,
                "value": values[i, j],
            }
            for i in range(n)
            for j in range(n)
        ]
    )


SIM = "analysis/similarity/x/m/seed0"


def _tables():
    # 6 layers: first third = layers 0-1, last third = layers 4-5
    diag_ab = np.diag([0.9, 0.8, 0.6, 0.5, 0.3, 0.1])  # early 0.85, late 0.2
    diag_pq = np.diag([0.95, 0.9, 0.6, 0.5, 0.3, 0.1])  # first third: +0.05, +0.1 over a-b
    self_a = np.eye(6)
    for i, v in enumerate([0.9, 0.8, 0.5, 0.3, 0.1]):  # adjacent (i, i+1)
        self_a[i, i + 1] = self_a[i + 1, i] = v
    self_a[3, :] = self_a[:, 3] = 0.05  # layer 3 unlike every other layer
    self_a[3, 3] = 1.0
    opd_ab = 1.0 - diag_ab  # a distance: early layers closer (smaller)
    return {
        "sweeps/x/lr/summary": _sweep_summary(),
        f"{SIM}/a__b/cka": _similarity(diag_ab),
        f"{SIM}/a__b/opd": _similarity(opd_ab),
        f"{SIM}/p__q/cka": _similarity(diag_pq),
        f"{SIM}/p__q/opd": _similarity(1.0 - diag_pq),
        f"{SIM}/a__a/cka": _similarity(self_a, [f"l{i}" for i in range(6)]),
    }


def _claim(name, threshold, direction="greater", runs=None, **options):
    comparison = {"kind": "every", "direction": direction, "threshold": threshold}
    if runs:
        comparison["runs"] = runs
    return {
        "statement": f"{name}.",
        "source": "t",
        "quantity": {"name": name, **options},
        "comparison": comparison,
    }


def _table_config(claims):
    return {
        "experiments": {
            "x": {
                "models": [{"name": "lenet5", "label": "m"}],
                "seeds": [0],
                "runs": {r: {} for r in ("a", "b", "p", "q")},
                "sweeps": {
                    "lr": {
                        "build": True,
                        "seeds": [0],
                        "select": "val_acc",
                        "feed": False,
                        "grid": {
                            "a": {"optimizer.lr": [0.01, 0.1, 1.0]},
                            "b": {"optimizer.lr": [1]},
                        },
                    }
                },
                "analyses": {
                    "similarity": {"runs": ["a", "b", "p", "q"], "measures": ["cka", "opd"]}
                },
                "claims": claims,
            }
        }
    }


def _judge(claims, skipped=None):
    cfg = _table_config(claims)
    data = {RunKey("x", "m", r, 0): RunData() for r in ("a", "b", "p", "q")}
    runs = Runs(data, tables=_tables(), experiment="x", skipped=skipped)
    table, details, _ = evaluate_claims(claims_mod.parse_claims(cfg, "x"), runs, stand_in=False)
    parts = {d["claim"]: {p["part"]: p for p in d["parts"]} for d in details}
    return table.set_index("claim"), parts


def test_sweep_quantities_on_a_constructed_sweep():
    table, parts = _judge(
        {
            "edges": _claim("sweep_edge_loss_ratio", 2.0, runs=["a", "b"], sweep="lr"),
            "largest": _claim("sweep_largest_value_loss", 2.303, runs=["b"], sweep="lr"),
            "gap": _claim("sweep_best_gap_decades", 0.01, "less", runs=["a", "b"], sweep="lr"),
        }
    )
    edges = parts["edges"]
    # a: losses 1.0, 0.2, 0.6 -> edges 1.0/0.2 = 5 and 0.6/0.2 = 3: both above 2
    a = edges["a: every value > 2.00"]
    assert (a["low"], a["high"], a["verdict"]) == (
        pytest.approx(3.0),
        pytest.approx(5.0),
        "supported",
    )
    # b: 0.5/0.4 = 1.25 at the smallest lr, and its largest lr diverged (inf)
    b = edges["b: every value > 2.00"]
    assert b["verdict"] == "contradicted" and b["low"] == pytest.approx(1.25)
    assert b["high"] == math.inf
    assert table.loc["edges", "verdict"] == "contradicted"
    assert table.loc["largest", "verdict"] == "supported"  # diverged: beyond any threshold
    # a: the lowest loss and the best accuracy are both at lr 0.1; b: both at 0.01
    assert table.loc["gap", "verdict"] == "supported"


def test_sweep_best_gap_contradicted_when_loss_and_accuracy_disagree():
    summary = _sweep_summary()
    summary.loc[(summary["run"] == "a") & (summary["point"] == 2), "test_acc_mean"] = 0.99
    cfg = _table_config(
        {"gap": _claim("sweep_best_gap_decades", 0.01, "less", runs=["a"], sweep="lr")}
    )
    tables = {**_tables(), "sweeps/x/lr/summary": summary}
    runs = Runs({}, tables=tables, experiment="x")
    table, details, _ = evaluate_claims(claims_mod.parse_claims(cfg, "x"), runs, stand_in=False)
    assert table.iloc[0]["verdict"] == "contradicted"
    assert details[0]["parts"][0]["effect"] == pytest.approx(1.0)  # lr 0.1 vs 1.0: a decade


def test_similarity_quantities_on_constructed_tables():
    table, parts = _judge(
        {
            "early": _claim("similarity_early_minus_late", 0.0),
            "self": _claim("similarity_self_adjacent_early_minus_late", 0.0),
            "gain": _claim("similarity_pair_gain_early", 0.0, pair=["p", "q"], baseline=["a", "b"]),
            "alone": _claim(
                "similarity_layer_max",
                0.2,
                "less",
                runs_of_layer=["a"],
                layers=["l3"],
                measures=["cka"],
            ),
            "not_alone": _claim(
                "similarity_layer_max",
                0.2,
                "less",
                runs_of_layer=["a"],
                layers=["l1"],
                measures=["cka"],
            ),
        }
    )
    early = parts["early"]
    # cka a-b: 0.85 - 0.2 = 0.65; opd is a distance, so its similarity is -(1 - diag):
    # -(0.15) - -(0.8) = 0.65 too
    assert early["a vs b (cka): every value > 0.000"]["effect"] == pytest.approx(0.65)
    assert early["a vs b (opd): every value > 0.000"]["effect"] == pytest.approx(0.65)
    assert early["p vs q (cka): every value > 0.000"]["effect"] == pytest.approx(0.725)
    assert table.loc["early", "verdict"] == "supported"
    # self a: adjacent pairs (0,1)=0.9 ... over 5 pairs, thirds of 5: early {0, 1}, late {4}
    # (layer 3's row and column were overwritten with 0.05: pairs (2,3) and (3,4))
    assert parts["self"]["a vs a (cka): every value > 0.000"]["effect"] == pytest.approx(
        (0.9 + 0.8) / 2 - 0.1
    )
    # p-q over a-b on layers 0 and 1: +0.05 and +0.1, in both measures
    gain = parts["gain"]["p vs q minus a vs b (cka): every value > 0.000"]
    assert (gain["low"], gain["high"]) == (pytest.approx(0.05), pytest.approx(0.1))
    assert table.loc["gain", "verdict"] == "supported"
    assert table.loc["alone", "verdict"] == "supported"  # layer 3: 0.05 with every other
    assert table.loc["not_alone", "verdict"] == "contradicted"  # layer 1: 0.9 with layer 0


def test_similarity_claim_on_a_skipped_pair_is_not_run_with_the_reason():
    tables = {k: v for k, v in _tables().items() if "/p__q/" not in k}
    cfg = _table_config(
        {"gain": _claim("similarity_pair_gain_early", 0.0, pair=["p", "q"], baseline=["a", "b"])}
    )
    runs = Runs({}, tables=tables, experiment="x", skipped={"p": "needs pretrained weights"})
    table, _, _ = evaluate_claims(claims_mod.parse_claims(cfg, "x"), runs, stand_in=False)
    row = table.iloc[0]
    assert row["verdict"] == "not run" and "p not made: needs pretrained weights" in row["reason"]


def test_pair_gain_spans_and_a_pair_named_in_either_order():
    # a-p is kept as a__p; the claims name it p, a. Layers 0-1 are the first third of 6.
    tables = {**_tables(), f"{SIM}/a__p/cka": _similarity(np.diag([0.5, 0.5, 0.7, 0.6, 0.5, 0.4]))}
    both = {"pair": ["p", "a"], "baseline": ["a", "b"], "measures": ["cka"]}
    cfg = _table_config(
        {
            "late": _claim("similarity_pair_gain_late", 0.0, **both),
            "early": _claim("similarity_pair_gain_early", 0.0, **both),
        }
    )
    data = {RunKey("x", "m", r, 0): RunData() for r in ("a", "b", "p", "q")}
    runs = Runs(data, tables=tables, experiment="x")
    table, details, _ = evaluate_claims(claims_mod.parse_claims(cfg, "x"), runs, stand_in=False)
    parts = {d["claim"]: d["parts"][0] for d in details}
    # after the first third (layers 2-5): 0.7-0.6, 0.6-0.5, 0.5-0.3, 0.4-0.1
    assert (parts["late"]["low"], parts["late"]["high"]) == (
        pytest.approx(0.1),
        pytest.approx(0.3),
    )
    # first third (layers 0-1): 0.5-0.9, 0.5-0.8
    assert (parts["early"]["low"], parts["early"]["high"]) == (
        pytest.approx(-0.4),
        pytest.approx(-0.3),
    )
    verdicts = table.set_index("claim")["verdict"]
    assert (verdicts["late"], verdicts["early"]) == ("supported", "contradicted")


# ---- start-up checks ----


@pytest.fixture(scope="module")
def config():
    return yaml.safe_load((REPO / "config.yaml").read_text())


@pytest.mark.parametrize(
    ("exp", "cid", "change", "message"),
    [
        (
            "e1",
            "E1-C1",
            {"comparison": {"kind": "difference", "pairs": [["sgd", "adam"]], "direction": "less"}},
            r"E1-C1.quantity: 'sweep_edge_loss_ratio' is read from the experiment's shared "
            r"tables, so only comparison kind 'every'",
        ),
        (
            "e1",
            "E1-C1",
            {"quantity": {"name": "sweep_edge_loss_ratio", "sweep": "beta"}},
            r"E1-C1.quantity: quantity.sweep is 'beta'; the experiment's sweeps: \['lr'\]",
        ),
        (
            "e3",
            "E3-C5",
            {
                "quantity": {
                    "name": "similarity_pair_gain_early",
                    "pair": ["sgd", "adahessian_std_rgb"],
                    "baseline": ["sgd", "adahessian"],
                }
            },
            r"E3-C5.quantity: pairs \[\('sgd', 'adahessian_std_rgb'\)\] are not compared",
        ),
        (
            "e2",
            "E2-C5",
            {"quantity": {"name": "epochs_to", "target": 0.9, "epochs": 3}},
            r"E2-C5.quantity: options \['epochs'\] unknown; epochs_to takes",
        ),
        (
            "e4",
            "E4-C2",
            {"comparison": {"kind": "gain", "pairs": [["adam_sam", "adam"]], "direction": "equal"}},
            r"E4-C2.comparison.pairs: a gain claim needs \[\[A1, B1\], \[A2, B2\]\]",
        ),
    ],
)
def test_bad_table_or_gain_claim_is_refused_naming_it(config, exp, cid, change, message):
    bad = copy.deepcopy(config)
    bad["experiments"][exp]["claims"][cid].update(change)
    with pytest.raises(ConfigError, match=message):
        claims_mod.check_claims(bad)


def test_table_claims_plan_their_tables(config):
    """The paper's E1 and E3 claims read the lr sweep and the similarity tables they name."""
    from minima.findings.quantities import TABLE_QUANTITIES

    e1 = claims_mod.parse_claim(config, "e1", "E1-C1")
    assert TABLE_QUANTITIES[e1.quantity].paths(config, "e1", e1.quantity_spec) == [
        "sweeps/e1/lr/summary"
    ]
    e3 = claims_mod.parse_claim(config, "e3", "E3-C6")
    assert TABLE_QUANTITIES[e3.quantity].paths(config, "e3", e3.quantity_spec) == [
        "analysis/similarity/e3/resnet18/seed0/sgd__sgd/cka"
    ]


# ---- E5: line searches by eigenvalue sign, 1/alpha* vs lambda ----


def _line_searches(rows):
    frame = pd.DataFrame(rows, columns=["step", "eigenvalue", "best_decrease", "alpha_star"])
    frame["bounded"] = frame["alpha_star"].abs() >= 100.0
    return RunData(tables={("eigenpairs", "line_search_summary.parquet"): frame})


def test_negative_minus_positive_best_decrease_per_checkpoint():
    data = _line_searches(
        [
            (0, -0.5, 0.30, 4.0),
            (0, 2.0, 0.10, 0.5),
            (0, 4.0, 0.05, 0.25),
            (10, -0.1, 0.02, 9.0),
            (10, 3.0, 0.04, 0.3),
            (20, 1.0, 0.01, 1.0),  # no negative eigenvalue: no value at this checkpoint
        ]
    )
    values = read("negative_minus_positive_decrease", data, {})
    np.testing.assert_allclose(values, [0.30 - 0.075, 0.02 - 0.04])
    judged = verdicts.compare_every(values, "greater", 0.0)
    assert judged.verdict == "contradicted" and judged.n == 2  # step 10: positive pays more


def test_inverse_step_log_ratio_skips_negative_and_bounded_pairs():
    data = _line_searches(
        [
            (0, 2.0, 0.1, 0.5),  # 1/alpha* = 2 = lambda: 0
            (0, 4.0, 0.1, 0.125),  # 1/alpha* = 8 = 2 lambda: log10(2)
            (0, -1.0, 0.1, 3.0),  # negative: left out
            (0, 0.001, 0.1, 100.0),  # bounded by the search: left out
        ]
    )
    values = read("inverse_step_log_ratio", data, {})
    np.testing.assert_allclose(values, [0.0, math.log10(2)], atol=1e-12)
    assert verdicts.compare_every(values, "less", 0.35).verdict == "supported"
    assert verdicts.compare_every(values, "less", 0.25).verdict == "contradicted"
