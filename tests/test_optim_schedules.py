"""LR factors against torch.optim.lr_scheduler."""

import pytest
import torch

from minima.optim import lr_factor


def torch_lrs(make_scheduler, epochs, base=0.1):
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base)
    sched = make_scheduler(opt)
    lrs = []
    for _ in range(epochs):
        lrs.append(opt.param_groups[0]["lr"] / base)
        opt.step()
        sched.step()
    return lrs


def ours(spec, epochs):
    return [lr_factor(spec, e, epochs) for e in range(epochs)]


def test_multistep_epochs_and_fractions():
    ms = torch.optim.lr_scheduler.MultiStepLR
    expected = torch_lrs(lambda o: ms(o, milestones=[10, 15], gamma=0.2), 20)
    assert ours({"name": "multistep", "milestones": [10, 15], "gamma": 0.2}, 20) == (
        pytest.approx(expected, rel=1e-12)
    )
    assert ours({"name": "multistep", "milestones": [0.5, 0.75], "gamma": 0.2}, 20) == (
        pytest.approx(expected, rel=1e-12)
    )
    # the defaults: fractions 0.5 / 0.75 of the run, gamma 0.1 (160 epochs -> 80, 120)
    expected160 = torch_lrs(lambda o: ms(o, milestones=[80, 120], gamma=0.1), 160)
    assert ours({"name": "multistep"}, 160) == pytest.approx(expected160, rel=1e-12)


def test_step():
    st = torch.optim.lr_scheduler.StepLR
    expected = torch_lrs(lambda o: st(o, step_size=3, gamma=0.5), 12)
    assert ours({"name": "step", "step_size": 3, "gamma": 0.5}, 12) == pytest.approx(expected)


@pytest.mark.parametrize("eta_min_factor", [0.0, 0.1])
def test_cosine(eta_min_factor):
    cos = torch.optim.lr_scheduler.CosineAnnealingLR
    expected = torch_lrs(lambda o: cos(o, T_max=17, eta_min=0.1 * eta_min_factor), 17)
    got = ours({"name": "cosine", "eta_min_factor": eta_min_factor}, 17)
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_constant():
    assert ours({"name": "constant"}, 5) == [1.0] * 5


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ({"name": "linear"}, "linear"),
        ({"name": "step", "step": 3}, "'step'"),
        ({"name": "multistep", "milestones": [2.5]}, "2.5"),
        ({"gamma": 0.1}, "name"),
    ],
)
def test_bad_specs(spec, needle):
    with pytest.raises(ValueError, match=needle):
        lr_factor(spec, 0, 10)
