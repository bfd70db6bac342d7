"""build_train_step: first-order steps equal plain torch.optim loops, spec errors,
learning-rate control, on_gradient, state round trips, no host syncs."""

import copy
import io

import pytest
import torch
from torch import nn

from minima.optim import REGISTRY, build_train_step, resolve_spec


def make_problem():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Tanh(), nn.Flatten(), nn.Linear(32, 3)
    ).double()
    x = torch.randn(8, 1, 6, 6, dtype=torch.float64)
    y = torch.randint(0, 3, (8,))
    return model, x, y


def loss_fn(logits, y):
    return nn.functional.cross_entropy(logits, y)


FIRST_ORDER = {
    "sgd": (
        {"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3},
        lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
    ),
    "sgd_plain": ({"name": "sgd", "lr": 0.1}, lambda p: torch.optim.SGD(p, lr=0.1)),
    "adagrad": (
        {"name": "adagrad", "lr": 0.0012, "lr_decay": 0.01},
        lambda p: torch.optim.Adagrad(p, lr=0.0012, lr_decay=0.01),
    ),
    "rmsprop": (
        {"name": "rmsprop", "lr": 0.01, "alpha": 0.9, "momentum": 0.5},
        lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.9, momentum=0.5),
    ),
    "adam": (
        {"name": "adam", "lr": 0.00472, "betas": [0.675, 0.999], "weight_decay": 1e-4},
        lambda p: torch.optim.Adam(p, lr=0.00472, betas=(0.675, 0.999), weight_decay=1e-4),
    ),
}


@pytest.mark.parametrize("case", list(FIRST_ORDER), ids=list(FIRST_ORDER))
def test_first_order_equals_plain_torch_loop(case):
    spec, make = FIRST_ORDER[case]
    model, x, y = make_problem()
    plain = copy.deepcopy(model)
    step = build_train_step(model, spec)
    opt = make(plain.parameters())
    for _ in range(4):
        loss, logits = step(model, loss_fn, x, y)
        opt.zero_grad()
        ref_logits = plain(x)
        ref_loss = loss_fn(ref_logits, y)
        ref_loss.backward()
        opt.step()
        assert torch.equal(loss, ref_loss.detach()) and torch.equal(logits, ref_logits.detach())
        assert not loss.requires_grad and not logits.requires_grad
    for a, b in zip(model.state_dict().values(), plain.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert step.phase == spec["name"] and step.switch_epoch is None and step.rho is None
    assert step.on_epoch_end(0, 0.0) is None


@pytest.mark.parametrize(
    ("spec", "needles"),
    [
        ({"name": "adamw", "lr": 0.1}, ["adamw", "sgd", "adahessian"]),
        ({"lr": 0.1}, ["name"]),
        ({"name": "sgd", "lr": 0.1, "momentun": 0.9}, ["momentun", "momentum"]),
        ({"name": "adam"}, ["lr"]),
        ({"name": "adahessian", "lr": 0.1, "hessian_pow": 1}, ["hessian_pow", "hessian_power"]),
        ({"name": "sam", "base": {"name": "sgd", "lr": 0.1, "beta": 0.9}}, ["sam.base", "beta"]),
        ({"name": "sam", "base": {"name": "adahessian", "lr": 0.1}}, ["adahessian", "rmsprop"]),
        ({"name": "sam", "rh": 0.1, "base": {"name": "sgd", "lr": 0.1}}, ["'rh'", "rho"]),
        (
            {
                "name": "hybrid",
                "tl": 1.0,
                "sgd": {"lr": 0.1},
                "adahessian": {"lr": 0.1, "bets": [0.9, 0.9]},
            },
            ["hybrid.adahessian", "bets"],
        ),
        ({"name": "hybrid", "sgd": {"lr": 0.1}, "adahessian": {"lr": 0.1}}, ["tl"]),
        ({"name": "adahessian", "lr": 0.1, "eps": "1e-4"}, ["'eps'", "1e-4"]),
        ({"name": "adahessian", "lr": 0.1, "update_each": 2.5}, ["update_each"]),
        ({"name": "adam", "lr": 0.1, "betas": [0.9]}, ["betas"]),
    ],
)
def test_bad_spec_errors_name_the_key(spec, needles):
    model, _, _ = make_problem()
    with pytest.raises(ValueError) as err:
        build_train_step(model, spec)
    for needle in needles:
        assert needle in str(err.value)


def test_resolve_spec_fills_defaults():
    assert resolve_spec({"name": "sgd", "lr": 0.1}) == {
        "name": "sgd",
        "lr": 0.1,
        "momentum": 0.0,
        "weight_decay": 0.0,
        "nesterov": False,
    }
    got = resolve_spec({"name": "adahessian", "lr": 0.15, "betas": [0.9, 0.99]})
    assert got["betas"] == (0.9, 0.99) and got["hessian_power"] == 1.0 and got["eps"] == 1e-4
    assert set(REGISTRY) == {"sgd", "adagrad", "rmsprop", "adam", "adahessian", "hybrid", "sam"}


def test_set_lr_factor_and_current_lr():
    model, _, _ = make_problem()
    step = build_train_step(model, {"name": "sam", "base": {"name": "adam", "lr": 0.01}})
    step.set_lr_factor(0.1)
    step.set_lr_factor(0.25)
    assert step.current_lr == pytest.approx(0.0025)
    assert step.optimizer.base_optimizer.param_groups[0]["lr"] == pytest.approx(0.0025)


SPECS = {
    "sgd": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
    "adahessian": {"name": "adahessian", "lr": 0.1},
    "sam": {"name": "sam", "rho": 0.1, "base": {"name": "sgd", "lr": 0.1}},
    "hybrid": {"name": "hybrid", "tl": 1.0, "sgd": {"lr": 0.1}, "adahessian": {"lr": 0.1}},
}


@pytest.mark.parametrize("name", list(SPECS))
def test_on_gradient_sees_gradient_at_current_weights(name):
    model, x, y = make_problem()
    expected_model = copy.deepcopy(model)
    loss_fn(expected_model(x), y).backward()
    expected = [p.grad for p in expected_model.parameters()]
    w = [p.detach().clone() for p in model.parameters()]
    calls = []

    def on_gradient():
        assert not torch.is_grad_enabled()
        assert all(torch.equal(p, wi) for p, wi in zip(model.parameters(), w, strict=True))
        calls.append([p.grad.detach().clone() for p in model.parameters()])

    step = build_train_step(model, SPECS[name], generator=torch.Generator().manual_seed(0))
    step(model, loss_fn, x, y, on_gradient=on_gradient)
    assert len(calls) == 1
    for a, b in zip(calls[0], expected, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-15)
    assert not all(torch.equal(p, wi) for p, wi in zip(model.parameters(), w, strict=True))


ROUND_TRIP = {
    "adahessian": {"name": "adahessian", "lr": 0.05, "update_each": 2, "weight_decay": 1e-3},
    "adahessian_samples": {"name": "adahessian", "lr": 0.05, "n_samples": 2, "hessian_power": 0.5},
    "sam_sgd": {"name": "sam", "rho": 0.1, "base": {"name": "sgd", "lr": 0.1, "momentum": 0.9}},
    "asam_adam": {
        "name": "sam",
        "rho": 0.5,
        "adaptive": True,
        "base": {"name": "adam", "lr": 0.01},
    },
}


@pytest.mark.parametrize("case", list(ROUND_TRIP), ids=list(ROUND_TRIP))
def test_state_round_trip_is_bitwise(case):
    """N steps straight == k steps, save, rebuild (other generator seed), load, N - k steps."""
    spec, n, k = ROUND_TRIP[case], 5, 3

    def run(steps, state=None, seed=11, start=0):
        model, x, y = make_problem()
        step = build_train_step(model, spec, generator=torch.Generator().manual_seed(seed))
        if state is not None:
            model.load_state_dict(state["model"])
            step.load_state_dict(state["step"])
        for i in range(start, start + steps):
            step.set_lr_factor(0.5 ** (i // 2))
            step(model, loss_fn, x, y)
        return model, step

    straight, _ = run(n)
    partial, p_step = run(k)
    buf = io.BytesIO()
    torch.save({"model": partial.state_dict(), "step": p_step.state_dict()}, buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    resumed, _ = run(n - k, state=state, seed=999, start=k)
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_load_state_rejects_other_optimizer():
    model, _, _ = make_problem()
    sgd = build_train_step(model, SPECS["sgd"])
    sam = build_train_step(model, SPECS["sam"])
    with pytest.raises(ValueError, match="sgd"):
        sam.load_state_dict(sgd.state_dict())


@pytest.mark.parametrize("name", ["adahessian", "sam", "hybrid"])
def test_steps_do_not_read_tensor_values_on_host(name, monkeypatch):
    """A proxy for "no device sync" on CPU: our step code never calls .item()/.tolist()/
    bool()/float() on a tensor (torch's own first-order optimizers are not checked here)."""
    model, x, y = make_problem()
    step = build_train_step(model, SPECS[name], generator=torch.Generator().manual_seed(0))

    def forbidden(*args, **kwargs):
        raise AssertionError("host read of a tensor value inside a train step")

    for attr in ("item", "tolist", "__bool__", "__float__", "__int__"):
        monkeypatch.setattr(torch.Tensor, attr, forbidden)
    for _ in range(2):
        step(model, loss_fn, x, y)
    monkeypatch.undo()
    if name == "hybrid":
        step.on_epoch_end(0, 0.5)
        for attr in ("item", "tolist", "__bool__", "__float__", "__int__"):
            monkeypatch.setattr(torch.Tensor, attr, forbidden)
        step(model, loss_fn, x, y)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", list(SPECS))
def test_no_device_sync_on_cuda(name):
    torch.manual_seed(0)
    model, x, y = make_problem()
    model, x, y = model.cuda(), x.cuda(), y.cuda()
    step = build_train_step(model, SPECS[name], generator=torch.Generator("cuda").manual_seed(0))
    step(model, loss_fn, x, y)  # warm-up (lazy state creation)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(2):
            step(model, loss_fn, x, y)
    finally:
        torch.cuda.set_sync_debug_mode("default")
