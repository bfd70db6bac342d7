"""SAM / ASAM: ascent step, base step at the perturbed gradient, rho = 0, batch-norm stats."""

import copy

import pytest
import torch
from torch import nn

from minima.optim import SAM, build_train_step, frozen_bn_stats


def make_problem(bn: bool = True):
    torch.manual_seed(0)
    layers = [nn.Linear(4, 5)] + ([nn.BatchNorm1d(5)] if bn else []) + [nn.Tanh(), nn.Linear(5, 3)]
    model = nn.Sequential(*layers).double()
    x = torch.randn(16, 4, dtype=torch.float64)
    y = torch.randint(0, 3, (16,))
    return model, x, y


def loss_fn(logits, y):
    return nn.functional.cross_entropy(logits, y)


def grads_at(model, x, y):
    model.zero_grad()
    loss_fn(model(x), y).backward()
    return [p.grad.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("adaptive", [False, True])
def test_first_step_is_the_ascent_step(adaptive):
    model, x, y = make_problem()
    rho = 0.5 if adaptive else 0.05
    opt = SAM(model.parameters(), torch.optim.SGD, rho=rho, adaptive=adaptive, lr=0.1)
    g = grads_at(model, x, y)
    w = [p.detach().clone() for p in model.parameters()]
    opt.first_step()
    if adaptive:  # ASAM: e = rho * w^2 g / (||(|w| g)|| + 1e-12)
        norm = torch.sqrt(sum(((wi.abs() * gi) ** 2).sum() for wi, gi in zip(w, g, strict=True)))
        expected = [wi + rho * wi**2 * gi / (norm + 1e-12) for wi, gi in zip(w, g, strict=True)]
    else:  # SAM: e = rho * g / (||g|| + 1e-12), the norm over all parameters together
        norm = torch.sqrt(sum((gi**2).sum() for gi in g))
        expected = [wi + rho * gi / (norm + 1e-12) for wi, gi in zip(w, g, strict=True)]
    for p, e in zip(model.parameters(), expected, strict=True):
        torch.testing.assert_close(p.detach(), e, rtol=1e-12, atol=1e-14)
    if not adaptive:
        step = torch.cat(
            [(p.detach() - wi).flatten() for p, wi in zip(model.parameters(), w, strict=True)]
        )
        torch.testing.assert_close(step.norm(), torch.tensor(rho, dtype=torch.float64))
    opt.second_step()  # restores w exactly before the base step
    lr = 0.1
    for p, wi in zip(model.parameters(), w, strict=True):
        torch.testing.assert_close(p.detach(), wi - lr * p.grad, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("adaptive", [False, True])
def test_base_step_uses_gradient_at_perturbed_point(adaptive):
    """Manual SAM with SGD(momentum, weight decay): the weight decay acts on the restored w,
    the gradient is the one at w + e."""
    model, x, y = make_problem()
    manual = copy.deepcopy(model)
    rho, lr, mom, wd = (0.3 if adaptive else 0.05), 0.1, 0.9, 1e-2
    spec = {
        "name": "sam",
        "rho": rho,
        "adaptive": adaptive,
        "base": {"name": "sgd", "lr": lr, "momentum": mom, "weight_decay": wd},
    }
    step = build_train_step(model, spec)
    bufs = None
    for _ in range(3):
        step(model, loss_fn, x, y)
        w = [p.detach().clone() for p in manual.parameters()]
        g = grads_at(manual, x, y)
        if adaptive:
            norm = torch.sqrt(
                sum(((wi.abs() * gi) ** 2).sum() for wi, gi in zip(w, g, strict=True))
            )
            e = [rho * wi**2 * gi / (norm + 1e-12) for wi, gi in zip(w, g, strict=True)]
        else:
            norm = torch.sqrt(sum((gi**2).sum() for gi in g))
            e = [rho * gi / (norm + 1e-12) for gi in g]
        perturbed = copy.deepcopy(manual)
        with torch.no_grad():
            for p, ei in zip(perturbed.parameters(), e, strict=True):
                p.add_(ei)
        g_adv = grads_at(perturbed, x, y)
        d = [ga + wd * wi for ga, wi in zip(g_adv, w, strict=True)]
        bufs = d if bufs is None else [mom * b + di for b, di in zip(bufs, d, strict=True)]
        with torch.no_grad():
            for p, wi, b in zip(manual.parameters(), w, bufs, strict=True):
                p.copy_(wi - lr * b)
    for a, b in zip(model.parameters(), manual.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "base",
    [{"name": "sgd", "lr": 0.1, "momentum": 0.9}, {"name": "adam", "lr": 0.01}],
    ids=["sgd", "adam"],
)
def test_rho_zero_equals_base_optimizer(base):
    model, x, y = make_problem()
    plain = copy.deepcopy(model)
    sam_step = build_train_step(model, {"name": "sam", "rho": 0.0, "base": base})
    base_step = build_train_step(plain, base)
    for _ in range(4):
        la, oa = sam_step(model, loss_fn, x, y)
        lb, ob = base_step(plain, loss_fn, x, y)
        assert torch.equal(la, lb) and torch.equal(oa, ob)
    for a, b in zip(model.state_dict().values(), plain.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_perturbed_pass_leaves_bn_running_stats():
    model, x, y = make_problem()
    once = copy.deepcopy(model)
    once(x)  # running stats after exactly one train-mode forward at the current weights
    step = build_train_step(model, {"name": "sam", "rho": 0.5, "base": {"name": "sgd", "lr": 0.1}})
    step(model, loss_fn, x, y)
    bn, ref = model[1], once[1]
    assert torch.equal(bn.running_mean, ref.running_mean)
    assert torch.equal(bn.running_var, ref.running_var)
    assert int(bn.num_batches_tracked) == 1
    # the check has teeth: a forward at the new weights would move the stats
    twice = copy.deepcopy(model)
    twice(x)
    assert not torch.allclose(twice[1].running_mean, ref.running_mean)


def test_frozen_bn_stats_restores_momentum_and_counter():
    bn = nn.BatchNorm1d(3, momentum=None).double()  # cumulative average: uses the counter
    x = torch.randn(8, 3, dtype=torch.float64)
    bn(x)
    mean, var = bn.running_mean.clone(), bn.running_var.clone()
    with frozen_bn_stats(bn):
        bn(x + 1.0)
    assert bn.momentum is None and int(bn.num_batches_tracked) == 1
    assert torch.equal(bn.running_mean, mean) and torch.equal(bn.running_var, var)


def test_lr_on_sam_drives_base():
    model, x, y = make_problem()
    opt = SAM(model.parameters(), torch.optim.SGD, lr=0.1, momentum=0.9)
    opt.param_groups[0]["lr"] = 0.01
    assert opt.base_optimizer.param_groups[0]["lr"] == 0.01
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    grads_at(model, x, y)
    opt.step(lambda: loss_fn(model(x), y).backward())
    sched.step()
    assert opt.base_optimizer.param_groups[0]["lr"] == pytest.approx(0.005)


def test_on_gradient_sees_unperturbed_gradient():
    model, x, y = make_problem()
    expected = grads_at(copy.deepcopy(model), x, y)
    w = [p.detach().clone() for p in model.parameters()]
    seen = []

    def on_gradient():
        seen.append([p.grad.clone() for p in model.parameters()])
        assert all(torch.equal(p, wi) for p, wi in zip(model.parameters(), w, strict=True))

    step = build_train_step(model, {"name": "sam", "base": {"name": "sgd", "lr": 0.1}})
    assert step.rho == 0.05
    step(model, loss_fn, x, y, on_gradient=on_gradient)
    assert len(seen) == 1
    for a, b in zip(seen[0], expected, strict=True):
        assert torch.equal(a, b)
