"""Hybrid: SGD-momentum until val loss < tl, then AdaHessian; switch epoch and state."""

import copy
import io
import math

import torch
from torch import nn

from minima.optim import build_train_step

SPEC = {
    "name": "hybrid",
    "tl": 1.0,
    "sgd": {"lr": 0.005, "momentum": 0.9},
    "adahessian": {"lr": 0.001, "betas": [0.9, 0.999], "hessian_power": 1.0},
}


def make_problem():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Tanh(), nn.Flatten(), nn.Linear(32, 3)).double()
    x = torch.randn(8, 1, 6, 6, dtype=torch.float64)
    y = torch.randint(0, 3, (8,))
    return model, x, y


def loss_fn(logits, y):
    return nn.functional.cross_entropy(logits, y)


def test_switches_at_first_epoch_below_tl():
    model, _, _ = make_problem()
    step = build_train_step(model, SPEC, generator=torch.Generator().manual_seed(0))
    events = [step.on_epoch_end(e, v) for e, v in enumerate([2.0, 1.0, math.nan, 0.7, 0.2])]
    assert events == [None, None, None, "sgd->adahessian", None]  # 1.0 == tl is not below
    assert step.switch_epoch == 3 and step.phase == "adahessian"
    assert step.current_lr == 0.001


def test_steps_sgd_momentum_then_adahessian():
    model, x, y = make_problem()
    sgd_model, ah_model = copy.deepcopy(model), None
    step = build_train_step(model, SPEC, generator=torch.Generator().manual_seed(7))
    assert step.phase == "sgd" and step.current_lr == 0.005
    sgd = torch.optim.SGD(sgd_model.parameters(), lr=0.005, momentum=0.9)
    for _ in range(3):
        step(model, loss_fn, x, y)
        sgd.zero_grad()
        loss_fn(sgd_model(x), y).backward()
        sgd.step()
    for a, b in zip(model.parameters(), sgd_model.parameters(), strict=True):
        assert torch.equal(a, b)

    assert step.on_epoch_end(0, 0.5) == "sgd->adahessian"
    ah_model = copy.deepcopy(model)
    ah_spec = {"name": "adahessian", **SPEC["adahessian"]}
    ah = build_train_step(ah_model, ah_spec, generator=torch.Generator().manual_seed(7))
    for _ in range(3):
        step(model, loss_fn, x, y)
        ah(ah_model, loss_fn, x, y)
    for a, b in zip(model.parameters(), ah_model.parameters(), strict=True):
        assert torch.equal(a, b)
    # and not what SGD would have done
    for _ in range(3):
        sgd.zero_grad()
        loss_fn(sgd_model(x), y).backward()
        sgd.step()
    assert not all(
        torch.equal(a, b) for a, b in zip(model.parameters(), sgd_model.parameters(), strict=True)
    )


def test_lr_factor_applies_to_both_phases():
    model, _, _ = make_problem()
    step = build_train_step(model, SPEC, generator=torch.Generator().manual_seed(0))
    step.set_lr_factor(0.1)
    step.set_lr_factor(0.5)  # relative to the base lr, never compounding
    assert step.current_lr == 0.005 * 0.5
    step.on_epoch_end(0, 0.1)
    assert step.current_lr == 0.001 * 0.5


def test_state_round_trip_bitwise():
    def run(steps_before, steps_after, state=None, seed=7):
        model, x, y = make_problem()
        step = build_train_step(model, SPEC, generator=torch.Generator().manual_seed(seed))
        if state is not None:
            model.load_state_dict(state["model"])
            step.load_state_dict(state["step"])
        for i in range(steps_before):
            step(model, loss_fn, x, y)
            if i == 1:
                step.on_epoch_end(4, 0.5)
        buf = io.BytesIO()
        torch.save({"model": model.state_dict(), "step": step.state_dict()}, buf)
        buf.seek(0)
        saved = torch.load(buf, weights_only=True)
        for _ in range(steps_after):
            step(model, loss_fn, x, y)
        return model, step, saved

    straight, s_step, _ = run(5, 0)
    _, _, saved = run(3, 0)
    resumed, r_step, _ = run(0, 2, state=saved, seed=999)
    assert r_step.phase == "adahessian" and r_step.switch_epoch == 4 == s_step.switch_epoch
    for a, b in zip(straight.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)
