"""E5's eigenpair quantities (minima.findings.eigenpair_quantities) on constructed tables:
values worked out by hand, the verdicts they imply (a claim that holds is supported, one that
fails contradicted), the edge cases (no checkpoint near the step, no negative eigenvalue, a
missing sign, a diverged value), and the start-up check of the claims that read them."""

import copy
import math

import numpy as np
import pandas as pd
import pytest
import yaml

from minima.findings import claims as claims_mod
from minima.findings import verdicts
from minima.findings.evaluate import Runs, evaluate_claims
from minima.findings.quantities import RunData, read
from minima.plan import ConfigError, RunKey
from tests.workflow_helpers import REPO

L0 = 1.0
GV = 0.1  # g.v of the most negative pair: (g.v)^2 = 0.01


def _quadratic(alpha: float, lam: float, gv: float = GV) -> float:
    return L0 - alpha * gv**2 + alpha**2 * gv**2 * lam / 2


def _line(step, which, index, lam, deviation, gv=GV):
    """Rows of one pair's line search: exact = quadratic + deviation[alpha]."""
    return [
        {
            "step": step,
            "which": which,
            "index": index,
            "eigenvalue": lam,
            "gv": gv,
            "alpha": alpha,
            "loss": _quadratic(alpha, lam, gv) + extra,
            "loss_quadratic": _quadratic(alpha, lam, gv),
        }
        for alpha, extra in deviation.items()
    ]


def _curves(*lines) -> RunData:
    table = pd.DataFrame([row for line in lines for row in line])
    return RunData(tables={("eigenpairs", "line_search.parquet"): table})


# Along lambda = -0.5, gv = 0.1: the model's change -0.01 alpha - 0.0025 alpha^2 is
# -0.001025 at alpha = 0.1, 0.000975 at -0.1 (largest |change| for |alpha| <= 0.1: 0.001025);
# the model at alpha = +1 is 0.9875, at -1 it is 1.0075.
FOLLOWS = {-1.0: 0.0025, -0.1: 0.00002, -0.05: 0.00001, 0.0: 0.0, 0.05: 0.00001, 0.1: 0.00004,
           1.0: 0.0325}  # fmt: skip
DEPARTS = {-1.0: -0.0025, -0.1: 0.00002, -0.05: 0.0, 0.0: 0.0, 0.05: 0.0, 0.1: 0.0002,
           1.0: 0.05}  # fmt: skip


def _checkpoint(step, deviation):
    """A positive pair (exact = model), the most negative pair (``deviation``) and a less
    negative one far from its model (never the one read)."""
    return [
        *_line(step, "LA", 0, 2.0, {a: 0.0 for a in deviation}),
        *_line(step, "SA", 0, -0.5, deviation),
        *_line(step, "SA", 1, -0.1, {a: 0.5 for a in deviation}),
    ]


def test_quadratic_model_error_along_the_most_negative_eigenvector():
    data = _curves(_checkpoint(0, DEPARTS), _checkpoint(50, FOLLOWS), _checkpoint(100, FOLLOWS))
    every = read("quadratic_model_error", data, {"span": 0.1})
    np.testing.assert_allclose(every, [0.0002 / 0.001025, 0.00004 / 0.001025, 0.00004 / 0.001025])
    at_50 = read("quadratic_model_error", data, {"step": 50, "span": 0.1})
    np.testing.assert_allclose(at_50, [0.00004 / 0.001025])
    assert verdicts.compare_every(at_50, "less", 0.1).verdict == "supported"
    assert verdicts.compare_every(every, "less", 0.1).verdict == "contradicted"  # step 0


def test_exact_minus_quadratic_at_the_span_ends():
    data = _curves(_checkpoint(0, DEPARTS), _checkpoint(50, FOLLOWS))
    values = read("exact_minus_quadratic_at_span", data, {"span": 1.0})
    # the worse side: step 0 falls below the model at -1; step 50 lies above on both sides
    np.testing.assert_allclose(values, [-0.0025, 0.0025])
    at_50 = read("exact_minus_quadratic_at_span", data, {"step": 50})  # span: 1 by default
    assert verdicts.compare_every(at_50, "greater", 0.0).verdict == "supported"
    assert verdicts.compare_every(values, "greater", 0.0).verdict == "contradicted"


def test_the_checkpoint_nearest_the_step_and_none_too_far():
    data = _curves(_checkpoint(0, DEPARTS), _checkpoint(50, FOLLOWS), _checkpoint(100, DEPARTS))
    near = read("quadratic_model_error", data, {"step": 40, "span": 0.1})
    np.testing.assert_allclose(near, [0.00004 / 0.001025])  # step 50
    tie = read("quadratic_model_error", data, {"step": 75, "span": 0.1})
    np.testing.assert_allclose(tie, [0.00004 / 0.001025])  # 50 and 100 tie: the earlier
    far = read("quadratic_model_error", data, {"step": 1000, "max_offset": 100})
    assert far.size == 0
    judged = verdicts.compare_every(far, "less", 0.1)
    assert judged.verdict == "inconclusive" and "no value" in judged.reason


def test_a_checkpoint_without_negative_curvature_has_no_value():
    positive = _line(20, "LA", 0, 2.0, {-1.0: 0.0, 0.0: 0.0, 1.0: 0.0})
    positive += _line(20, "SA", 0, 0.3, {-1.0: 0.0, 0.0: 0.0, 1.0: 0.0})
    data = _curves(positive, _checkpoint(50, FOLLOWS))
    values = read("exact_minus_quadratic_at_span", data, {})
    assert math.isnan(values[0]) and values[1] == pytest.approx(0.0025)
    judged = verdicts.compare_every(values, "greater", 0.0)
    assert judged.verdict == "supported" and judged.n == 1  # the NaN is no value, not a pass
    alone = read("exact_minus_quadratic_at_span", data, {"step": 20})
    assert verdicts.compare_every(alone, "greater", 0.0).verdict == "inconclusive"


def test_diverged_losses_along_the_line():
    overflow = {**FOLLOWS, 0.05: math.inf}
    data = _curves(_checkpoint(50, overflow))
    assert read("quadratic_model_error", data, {"span": 0.1})[0] == math.inf
    # beyond the span: not read by the small-step error
    far = {**FOLLOWS, 1.0: math.nan}
    data = _curves(_checkpoint(50, far))
    np.testing.assert_allclose(read("quadratic_model_error", data, {}), [0.00004 / 0.001025])
    # an overflowed exact loss lies above the model: the other side decides
    np.testing.assert_allclose(read("exact_minus_quadratic_at_span", data, {}), [0.0025])
    one_sided = {a: d for a, d in FOLLOWS.items() if a > -1.0}
    data = _curves(_checkpoint(50, one_sided))
    assert math.isnan(read("exact_minus_quadratic_at_span", data, {})[0])


def _eigenvalues(steps, la, sa=None, loss=None) -> RunData:
    """Two LA and (given ``sa``) two SA pairs per step: LA(1) = la, SA(1) = sa, the second
    pair of each half of it (so LA(1) is the largest, SA(1) the smallest)."""
    loss = loss if loss is not None else [1.0] * len(steps)
    rows = []
    for i, step in enumerate(steps):
        rows += [(step, "LA", 0, la[i], loss[i]), (step, "LA", 1, la[i] / 2, loss[i])]
        if sa is not None:
            rows += [(step, "SA", 0, sa[i], loss[i]), (step, "SA", 1, sa[i] / 2, loss[i])]
    frame = pd.DataFrame(rows, columns=["step", "which", "index", "eigenvalue", "loss"])
    return RunData(tables={("eigenpairs", "eigenvalues.parquet"): frame})


STEPS = [0, 1000, 2000, 5000, 8000]


def test_eigenvalue_relative_change_after_a_step():
    data = _eigenvalues(STEPS, [1.0, 3.0, 4.0, 4.2, 4.1], [-1.0, -0.5, -0.10, -0.11, -0.12])
    values = read("eigenvalue_relative_change", data, {"after": 2000})
    np.testing.assert_allclose(values, [0.2 / 4.0, 0.1 / 4.2, 0.01 / 0.10, 0.01 / 0.11])
    assert verdicts.compare_every(values, "less", 0.2).verdict == "supported"
    everything = read("eigenvalue_relative_change", data, {})
    assert everything[0] == pytest.approx(2.0)  # 1 -> 3 early on
    assert verdicts.compare_every(everything, "less", 0.2).verdict == "contradicted"
    la = read("eigenvalue_relative_change", data, {"after": 2000, "which": "LA"})
    np.testing.assert_allclose(la, [0.2 / 4.0, 0.1 / 4.2])


def test_eigenvalue_relative_change_missing_sign_zero_and_too_few():
    data = _eigenvalues(STEPS, [1.0, 3.0, 4.0, 0.0, 4.1])  # no SA pairs; LA(1) = 0 once
    values = read("eigenvalue_relative_change", data, {"after": 2000})
    np.testing.assert_allclose(values, [1.0, math.inf])  # 4 -> 0, then 0 -> 4.1: infinite
    assert verdicts.compare_every(values, "less", 0.2).verdict == "contradicted"
    last = read("eigenvalue_relative_change", data, {"after": 8000})  # one checkpoint
    assert last.size == 0 and verdicts.compare_every(last, "less", 0.2).verdict == "inconclusive"
    with pytest.raises(ValueError, match="which"):
        read("eigenvalue_relative_change", data, {"which": ["LM"]})


def test_subset_loss_decrease_after_a_step():
    falling = _eigenvalues(STEPS, [4.0] * 5, loss=[2.3, 0.5, 0.30, 0.25, 0.24])
    values = read("subset_loss_decrease", falling, {"after": 2000})
    np.testing.assert_allclose(values, [0.05 / 0.30, 0.01 / 0.25])
    assert verdicts.compare_every(values, "greater", 0.0).verdict == "supported"
    flat = _eigenvalues(STEPS, [4.0] * 5, loss=[2.3, 0.5, 0.30, 0.31, math.nan])
    values = read("subset_loss_decrease", flat, {"after": 2000})
    np.testing.assert_allclose(values, [-0.01 / 0.30, -math.inf])  # rose, then diverged
    assert verdicts.compare_every(values, "greater", 0.0).verdict == "contradicted"


def test_eigenvalue_spikes_over_both_neighbours():
    steps = [0, 10, 20, 50, 100, 200]
    spiky = _eigenvalues(
        steps, [1.0, 1.2, 5.0, 1.3, 1.4, 1.5], [-0.1, -0.1, -0.1, -0.5, -0.3, -0.1]
    )
    # LA(1): 5.0 > 2 x 1.2 and > 2 x 1.3; SA(1): 0.5 > 2 x 0.1 but not > 2 x 0.3
    values = read("eigenvalue_spikes", spiky, {"factor": 2.0})
    np.testing.assert_array_equal(values, [1.0])
    assert verdicts.compare_every(values, "greater", 0.0).verdict == "supported"
    np.testing.assert_array_equal(read("eigenvalue_spikes", spiky, {"factor": 1.5}), [2.0])
    rising = _eigenvalues(steps[:4], [1.0, 3.0, 9.0, 27.0])  # a trend is no spike
    values = read("eigenvalue_spikes", rising, {})
    np.testing.assert_array_equal(values, [0.0])
    assert verdicts.compare_every(values, "greater", 0.0).verdict == "contradicted"


def test_eigenvalue_spikes_need_three_finite_checkpoints():
    two = _eigenvalues([0, 10], [1.0, 5.0])
    assert read("eigenvalue_spikes", two, {}).size == 0
    gap = _eigenvalues([0, 10, 20, 50], [1.0, math.nan, 5.0, 1.0])  # only 1, NaN, 5 / NaN, 5, 1
    assert read("eigenvalue_spikes", gap, {}).size == 0


def _summary(rows) -> RunData:
    frame = pd.DataFrame(rows, columns=["step", "eigenvalue", "best_decrease"])
    return RunData(tables={("eigenpairs", "line_search_summary.parquet"): frame})


EARLY_LATE = [
    (0, -0.5, 0.2),
    (10, -0.1, 0.05),
    (0, 2.0, 0.01),
    (10, 10.0, 0.002),
    (0, 5.0, 0.0),  # alpha* = 0: no decrease, left out
    (100, -0.45, 0.1),  # nearest early: -0.5 (0.2): ratio 0.5
    (100, -0.12, 0.06),  # nearest early: -0.1 (0.05): ratio 1.2
    (100, 3.0, 0.004),  # nearest early: 2.0 (0.01; not 5.0): ratio 0.4
    (100, 9.0, 0.001),  # nearest early: 10.0 (0.002): ratio 0.5
    (100, 20.0, 0.0005),  # nearest early: 10.0: ratio 0.25
]


def test_early_late_decrease_at_matched_eigenvalues():
    data = _summary(EARLY_LATE)
    values = read("early_late_decrease_log_ratio", data, {"early": 10, "late": 100})
    negative = abs((math.log10(0.5) + math.log10(1.2)) / 2)  # median of two
    positive = abs(math.log10(0.4))  # median of 0.25, 0.4, 0.5
    np.testing.assert_allclose(values, [negative, positive])
    factor_2 = math.log10(2)
    assert verdicts.compare_every(values[:1], "less", factor_2).verdict == "supported"
    assert verdicts.compare_every(values, "less", factor_2).verdict == "contradicted"


def test_early_late_defaults_missing_sign_and_bad_groups():
    data = _summary(EARLY_LATE)
    # default: the first checkpoint (0) against the last (100). Step 0's only negative pair
    # is -0.5 (0.2): ratios 0.1 / 0.2 and 0.06 / 0.2. Its only positive pair with a decrease
    # is 2.0 (0.01; 5.0 has none, else 9.0 and 20.0 would match it): ratios 0.4, 0.1, 0.05
    values = read("early_late_decrease_log_ratio", data, {})
    negative = abs((math.log10(0.1 / 0.2) + math.log10(0.06 / 0.2)) / 2)
    positive = abs(math.log10(0.001 / 0.01))  # the median ratio, 0.1
    np.testing.assert_allclose(values, [negative, positive])
    no_negative_late = _summary([r for r in EARLY_LATE if not (r[0] == 100 and r[1] < 0)])
    only = read("early_late_decrease_log_ratio", no_negative_late, {"early": 10, "late": 100})
    np.testing.assert_allclose(only, [abs(math.log10(0.4))])
    backwards = read("early_late_decrease_log_ratio", data, {"early": 100, "late": 10})
    assert backwards.size == 0


def _subset_check(rel_diff, angles) -> RunData:
    frame = pd.DataFrame(
        {
            "which": ["LA", "LA", "SA", "SA"],
            "index": [0, 1, 0, 1],
            "rel_diff": rel_diff,
            "principal_angle_deg": angles,
        }
    )
    return RunData(tables={("eigenpairs", "subset_check.parquet"): frame})


def test_subset_check_gaps_and_angles():
    data = _subset_check([0.05, 0.1, 0.3, math.inf], [10.0, 30.0, 20.0, math.nan])
    la = read("subset_eigenvalue_gap", data, {"which": "LA"})
    np.testing.assert_allclose(la, [0.05, 0.1])
    assert verdicts.compare_every(la, "less", 0.2).verdict == "supported"
    both = read("subset_eigenvalue_gap", data, {})
    assert verdicts.compare_every(both, "less", 0.2).verdict == "contradicted"
    angles = read("subset_principal_angle", data, {})
    np.testing.assert_allclose(angles, [10.0, 30.0, 20.0, 90.0])  # not computed: orthogonal
    assert verdicts.compare_every(angles[:3], "less", 45.0).verdict == "supported"
    assert verdicts.compare_every(angles, "less", 45.0).verdict == "contradicted"


# ---- through the claims machinery ----


def _config(claims):
    return {
        "experiments": {
            "x": {
                "models": [{"name": "lenet5", "label": "m"}],
                "runs": {"r": {}, "s": {}},
                "claims": claims,
            }
        }
    }


def test_configured_claims_get_the_verdicts_their_tables_imply():
    data = {
        RunKey("x", "m", "r", 0): _curves(_checkpoint(0, DEPARTS), _checkpoint(50, FOLLOWS)),
        RunKey("x", "m", "s", 0): _curves(_checkpoint(50, DEPARTS)),
    }
    claim = {
        "statement": "At t = 50 the model errs by less than 10%.",
        "source": "Fig. 1",
        "quantity": {"name": "quadratic_model_error", "step": 50, "span": 0.1},
    }
    cfg = _config(
        {
            "holds": {
                **claim,
                "comparison": {
                    "kind": "every",
                    "runs": ["r"],
                    "direction": "less",
                    "threshold": 0.1,
                },
            },  # fmt: skip
            "fails": {
                **claim,
                "comparison": {
                    "kind": "every",
                    "runs": ["s"],
                    "direction": "less",
                    "threshold": 0.1,
                },
            },  # fmt: skip
        }
    )
    table, _, _ = evaluate_claims(claims_mod.parse_claims(cfg, "x"), Runs(data), stand_in=False)
    rows = table.set_index("claim")
    assert rows.loc["holds", "verdict"] == "supported"
    assert rows.loc["holds", "effect"] == pytest.approx(0.00004 / 0.001025)
    assert rows.loc["fails", "verdict"] == "contradicted"
    assert rows.loc["fails", "effect"] == pytest.approx(0.0002 / 0.001025)


@pytest.fixture(scope="module")
def config():
    return yaml.safe_load((REPO / "config.yaml").read_text())


E5_NEW = ("E5-C1", "E5-C1-large", "E5-C2", "E5-C2-large", "E5-C6", "E5-C6-loss", "E5-C10",
          "E5-C10-angles", "E5-C12")  # fmt: skip


def test_config_judges_the_e5_claims_and_keeps_the_untestable_ones(config):
    claims_mod.check_claims(config)
    e5 = config["experiments"]["e5"]
    assert set(E5_NEW) <= set(e5["claims"])
    assert "E5-C11" in config["experiments"]["e5_cifar10"]["claims"]
    judged = {"E5-C1", "E5-C2", "E5-C6", "E5-C10", "E5-C11", "E5-C12"}
    assert not judged & set(e5.get("not_testable") or {})
    assert {"E5-C9-rotation", "E5-C13"} <= set(e5["not_testable"])
    for cid in E5_NEW:  # each statement states its rule's number
        assert any(ch.isdigit() for ch in e5["claims"][cid]["statement"]), cid


@pytest.mark.parametrize(
    ("exp", "cid", "change", "message"),
    [
        (
            "e5",
            "E5-C10",
            {
                "comparison": {
                    "kind": "every",
                    "runs": ["adam"],
                    "direction": "less",
                    "threshold": 0.2,
                }
            },  # fmt: skip
            r"experiments.e5.claims.E5-C10: run 'adam' is not a run of experiments.e5",
        ),
        (
            "e5",
            "E5-C1",
            {"quantity": {"name": "quadratic_model_error", "step": 50, "factor": 2}},
            r"experiments.e5.claims.E5-C1.quantity: options \['factor'\] unknown; "
            r"quadratic_model_error takes \['at', 'step', 'max_offset', 'span'\]",
        ),
        (
            "e5_cifar10",
            "E5-C11",
            {"quantity": {"name": "eigenvalue_spikes", "after": 2000}},
            r"experiments.e5_cifar10.claims.E5-C11.quantity: options \['after'\] unknown",
        ),
        (  # an option's value, not only its name, is checked before any job runs
            "e5_cifar10",
            "E5-C11",
            {"quantity": {"name": "eigenvalue_spikes", "factor": 2.0, "which": ["LA", "LM"]}},
            r"experiments.e5_cifar10.claims.E5-C11.quantity: quantity option which: \['LM'\] "
            r"unknown; allowed \['LA', 'SA'\]",
        ),
        (
            "e5",
            "E5-C1",
            {"quantity": {"name": "quadratic_model_error", "step": "fifty"}},
            r"experiments.e5.claims.E5-C1.quantity: quantity option step: 'fifty' is not a number",
        ),
    ],
)
def test_bad_e5_claim_is_refused_naming_it(config, exp, cid, change, message):
    bad = copy.deepcopy(config)
    bad["experiments"][exp]["claims"][cid].update(change)
    with pytest.raises(ConfigError, match=message):
        claims_mod.check_claims(bad)


def test_claim_on_tables_its_experiment_does_not_make_is_refused(config):
    """The subset check and the line searches exist only where analyses.eigenpairs runs."""
    bad = copy.deepcopy(config)
    bad["experiments"]["e4"]["claims"]["E5-C10"] = copy.deepcopy(
        config["experiments"]["e5"]["claims"]["E5-C10"]
    )
    with pytest.raises(
        ConfigError,
        match=r"experiments.e4.claims.E5-C10.quantity: quantity 'subset_eigenvalue_gap' needs "
        r"experiments.e4.analyses.eigenpairs",
    ):
        claims_mod.check_claims(bad)
