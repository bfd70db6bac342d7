"""AdaHessian against a float64 transcription of the published algorithm and torch-optimizer."""

import copy

import pytest
import torch
import torch_optimizer
from torch import nn
from torch.func import functional_call

from minima.optim import AdaHessian, build_train_step

SEED = 1234


class TinyConvNet(nn.Module):
    """1x6x6 input -> conv(1->2, k3) -> tanh -> linear(32->3): 119 parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.fc = nn.Linear(2 * 4 * 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.tanh(self.conv(x)).flatten(1))


def make_problem():
    torch.manual_seed(0)
    model = TinyConvNet().double()
    x = torch.randn(8, 1, 6, 6, dtype=torch.float64)
    y = torch.randint(0, 3, (8,))
    return model, x, y


def loss_fn(logits, y):
    return nn.functional.cross_entropy(logits, y)


def reference_adahessian(
    model,
    x,
    y,
    *,
    steps,
    lr,
    betas,
    eps,
    weight_decay,
    hessian_power,
    update_each=1,
    n_samples=1,
    average_conv_kernel=True,
    seed=SEED,
):
    """Straightforward float64 transcription of Yao et al. (2021), Algorithm 1.

    Dense Hessian of the flattened parameters; Hutchinson with the Rademacher draws of the
    documented contract (one flat vector of all parameters per sample, parameter order);
    D = |mean_i z_i * (H z_i)|, averaged over the spatial dims of 4-D kernels by explicit
    loops; bias-corrected moments; hessian power k; decoupled weight decay scaled by lr.
    """
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    sizes = [p.numel() for _, p in model.named_parameters()]
    w = torch.cat([p.detach().flatten() for p in model.parameters()]).clone()
    n = w.numel()

    def loss_of(flat):
        params = {nm: t.view(s) for nm, t, s in zip(names, flat.split(sizes), shapes, strict=True)}
        return loss_fn(functional_call(model, params, (x,)), y)

    gen = torch.Generator().manual_seed(seed)
    b1, b2 = betas
    m = torch.zeros(n, dtype=torch.float64)
    v = torch.zeros(n, dtype=torch.float64)
    D = None
    for t in range(1, steps + 1):
        wt = w.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(loss_of(wt), wt)
        if (t - 1) % update_each == 0:
            H = torch.autograd.functional.hessian(loss_of, w, vectorize=True)
            est = torch.zeros(n, dtype=torch.float64)
            for _ in range(n_samples):
                z = 2 * torch.randint(0, 2, (n,), generator=gen, dtype=torch.float64) - 1
                est += z * (H @ z)
            est /= n_samples
            pieces = []
            for piece, shape in zip(est.split(sizes), shapes, strict=True):
                d = piece.view(shape).abs().clone()
                if len(shape) == 4 and average_conv_kernel:
                    for o in range(shape[0]):
                        for i in range(shape[1]):
                            total = 0.0
                            for a in range(shape[2]):
                                for b in range(shape[3]):
                                    total += float(d[o, i, a, b])
                            d[o, i, :, :] = total / (shape[2] * shape[3])
                pieces.append(d.flatten())
            D = torch.cat(pieces)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * D * D
        bc1 = 1 - b1**t
        bc2 = 1 - b2**t
        denom = (v.sqrt() / bc2**0.5) ** hessian_power + eps
        w = w - lr * (m / bc1 / denom + weight_decay * w)
    return w


CASES = {
    "reference_defaults": dict(hessian_power=1.0, weight_decay=0.0),
    "power_0.5_wd": dict(hessian_power=0.5, weight_decay=1e-2),
    "update_each_3": dict(hessian_power=1.0, weight_decay=1e-3, update_each=3),
    "n_samples_3": dict(hessian_power=0.5, weight_decay=0.0, n_samples=3),
    "delayed_and_samples": dict(hessian_power=1.0, weight_decay=0.0, update_each=2, n_samples=2),
    "no_conv_averaging": dict(hessian_power=1.0, weight_decay=0.0, average_conv_kernel=False),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_matches_float64_reference(case):
    opts = dict(lr=0.1, betas=(0.9, 0.999), eps=1e-4, **CASES[case])
    model, x, y = make_problem()
    expected = reference_adahessian(copy.deepcopy(model), x, y, steps=6, **opts)
    spec = {"name": "adahessian", **opts}
    step = build_train_step(model, spec, generator=torch.Generator().manual_seed(SEED))
    for _ in range(6):
        step(model, loss_fn, x, y)
    got = torch.cat([p.detach().flatten() for p in model.parameters()])
    start = torch.cat([p.detach().flatten() for p in make_problem()[0].parameters()])
    assert not torch.allclose(got, start, atol=1e-3)  # the weights really moved
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph=True")
@pytest.mark.parametrize("hessian_power", [1.0, 0.5])
def test_matches_torch_optimizer(hessian_power, monkeypatch):
    """torch-optimizer's Adahessian draws z with torch.randint_like(p, high=2) per parameter
    from the global RNG. We patch torch.randint_like to hand out, in parameter order, the
    pieces of the flat vector our contract draws from a generator seeded SEED, so both
    optimizers see the same z. Options are passed explicitly (its default power is 0.5)."""
    opts = dict(
        lr=0.15, betas=(0.9, 0.999), eps=1e-4, weight_decay=1e-3, hessian_power=hessian_power
    )
    model, x, y = make_problem()
    theirs = copy.deepcopy(model)
    ours = AdaHessian(model.parameters(), **opts, generator=torch.Generator().manual_seed(SEED))

    params = list(theirs.parameters())
    sizes = [p.numel() for p in params]
    ref_gen = torch.Generator().manual_seed(SEED)
    queue: list[torch.Tensor] = []

    def fake_randint_like(p, high, memory_format=None):
        assert high == 2
        if not queue:
            flat = torch.randint(0, 2, (sum(sizes),), generator=ref_gen, dtype=torch.float64)
            queue.extend(flat.split(sizes))
        return queue.pop(0).view_as(p).clone()

    monkeypatch.setattr(torch, "randint_like", fake_randint_like)
    ref = torch_optimizer.Adahessian(params, **opts)
    for _ in range(5):
        for net, opt in ((model, ours), (theirs, ref)):
            opt.zero_grad()
            loss_fn(net(x), y).backward(create_graph=True)  # both optimizers' documented usage
            opt.step()
    assert not queue
    for a, b in zip(model.parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_known_diagonal_hessian():
    """Quadratic 0.5 * sum(a * w^2): z * Hz = a exactly, so D = |a| (spatial mean of |a| for a
    4-D kernel) whatever z is, and the first step is w - lr * a w / (D + eps)."""
    torch.manual_seed(0)
    a_vec = torch.tensor([2.0, -3.0, 0.5], dtype=torch.float64)
    a_conv = torch.rand(2, 1, 2, 2, dtype=torch.float64) * 4 - 2
    w_vec = nn.Parameter(torch.randn(3, dtype=torch.float64))
    w_conv = nn.Parameter(torch.randn(2, 1, 2, 2, dtype=torch.float64))
    start = (w_vec.detach().clone(), w_conv.detach().clone())
    lr, eps = 0.1, 1e-4
    opt = AdaHessian(
        [w_vec, w_conv], lr=lr, eps=eps, n_samples=2, generator=torch.Generator().manual_seed(3)
    )
    loss = 0.5 * (a_vec * w_vec**2).sum() + 0.5 * (a_conv * w_conv**2).sum()
    gv, gc = torch.autograd.grad(loss, [w_vec, w_conv], create_graph=True)
    w_vec.grad, w_conv.grad = gv, gc
    opt.step()
    d_conv = a_conv.abs().mean(dim=(2, 3), keepdim=True).expand_as(a_conv)
    torch.testing.assert_close(opt.state[w_vec]["hessian_diag"], a_vec.abs())
    torch.testing.assert_close(opt.state[w_conv]["hessian_diag"], d_conv)
    # after one step m / bc1 = g and sqrt(v / bc2) = D
    exp_vec = start[0] - lr * (a_vec * start[0]) / (a_vec.abs() + eps)
    exp_conv = start[1] - lr * (a_conv * start[1]) / (d_conv + eps)
    torch.testing.assert_close(w_vec.detach(), exp_vec)
    torch.testing.assert_close(w_conv.detach(), exp_conv)
    assert w_vec.grad.grad_fn is None  # graph released


def test_step_without_graph_raises():
    model, x, y = make_problem()
    opt = AdaHessian(model.parameters(), generator=torch.Generator().manual_seed(0))
    loss_fn(model(x), y).backward()
    with pytest.raises(RuntimeError, match="create_graph"):
        opt.step()


def test_hessian_due_follows_update_each():
    model, x, y = make_problem()
    opt = AdaHessian(model.parameters(), update_each=3, generator=torch.Generator().manual_seed(0))
    due = []
    for _ in range(7):
        due.append(opt.hessian_due())
        opt.zero_grad()
        grads = torch.autograd.grad(
            loss_fn(model(x), y), list(model.parameters()), create_graph=due[-1]
        )
        for p, g in zip(model.parameters(), grads, strict=True):
            p.grad = g
        opt.step()
    assert due == [True, False, False, True, False, False, True]


def test_state_dict_holds_moments_step_and_cached_d():
    model, x, y = make_problem()
    opt = AdaHessian(model.parameters(), update_each=2, generator=torch.Generator().manual_seed(0))
    grads = torch.autograd.grad(loss_fn(model(x), y), list(model.parameters()), create_graph=True)
    for p, g in zip(model.parameters(), grads, strict=True):
        p.grad = g
    opt.step()
    state = opt.state_dict()["state"]
    assert set(state[0]) == {"step", "exp_avg", "exp_hessian_diag_sq", "hessian_diag"}
    other = AdaHessian(model.parameters(), update_each=2)
    other.load_state_dict(opt.state_dict())
    for p in model.parameters():
        for key in ("exp_avg", "exp_hessian_diag_sq", "hessian_diag"):
            assert torch.equal(other.state[p][key], opt.state[p][key])
        assert other.state[p]["step"] == 1
    assert not other.hessian_due()
