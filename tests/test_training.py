"""Training loop: reproducible, resumable, honest about divergence, records every column."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn
from torch.nn import functional as F

from minima.models import first_conv, last_linear, lenet5
from minima.train.loop import LoopSettings, Split, _epoch_seed, train_eval_subset, train_loop

COLUMNS = {
    "epoch",
    "step",
    "train_loss",
    "train_acc",
    "train_eval_loss",
    "train_eval_acc",
    "train_eval_examples",
    "val_loss",
    "val_acc",
    "test_loss",
    "test_acc",
    "epoch_seconds",
    "train_seconds",
    "images_per_second",
    "grad_norm",
    "first_conv_grad_spectral",
    "last_linear_grad_spectral",
    "sam_sharpness",
    "full_grad_norm",
    "lr",
    "optimizer",
    "optimizer_switch",
}


def _splits(n_train: int = 96, seed: int = 0) -> tuple[Split, Split, Split]:
    """Learnable toy data: the label is which image quadrant is brightest."""
    generator = torch.Generator().manual_seed(seed)

    def make(n: int) -> Split:
        y = torch.randint(0, 4, (n,), generator=generator)
        x = 0.3 * torch.randn(n, 1, 28, 28, generator=generator)
        for i, label in enumerate(y.tolist()):
            r, c = divmod(label, 2)
            x[i, 0, 14 * r : 14 * r + 14, 14 * c : 14 * c + 14] += 1.0
        return Split(x, y)

    return make(n_train), make(32), make(32)


def _run(
    tmp: Path,
    optimizer: dict,
    *,
    epochs: int = 3,
    on_step=None,
    steps=(),
    seed: int = 0,
    schedule: dict | None = None,
    augment=None,
    fingerprint: str = "test",
    compile_model: bool = False,
    model=None,
    **options,
):
    torch.manual_seed(seed)
    model = lenet5(num_classes=4) if model is None else model
    train, val, test = _splits()
    settings = LoopSettings(
        seed=seed,
        epochs=epochs,
        batch_size=16,
        optimizer=optimizer,
        schedule=schedule or {"name": "constant"},
        checkpoint_steps=steps,
        grad_stats_every=2,
        progress_seconds=0,
        fingerprint=fingerprint,
        compile=compile_model,
        **{"step_stats_every": 2, **options},
    )
    result = train_loop(
        model,
        train,
        val,
        test,
        settings,
        first_conv=first_conv(model),
        last_linear=last_linear(model),
        work_dir=tmp,
        checkpoint_meta=lambda extra: extra,
        on_step=on_step,
        augment=augment,
    )
    return model, result


class KilledError(Exception):
    pass


def _kill_at(step: int):
    def hook(global_step: int) -> None:
        if global_step == step:
            raise KilledError

    return hook


SGD = {"name": "sgd", "lr": 0.05, "momentum": 0.9}
ADAHESSIAN = {"name": "adahessian", "lr": 0.05}


def test_records_every_column_and_learns(tmp_path):
    _, result = _run(tmp_path, SGD, epochs=4)
    assert result.status == "completed"
    assert len(result.rows) == 4
    assert set(result.rows[0]) >= COLUMNS
    assert result.rows[-1]["step"] == 4 * (96 // 16)
    assert result.rows[-1]["train_loss"] < result.rows[0]["train_loss"]
    for row in result.rows:
        assert row["grad_norm"] > 0 and row["first_conv_grad_spectral"] > 0
        assert row["sam_sharpness"] == pytest.approx(0.05 * row["grad_norm"])


@pytest.mark.parametrize("optimizer", [SGD, ADAHESSIAN], ids=["sgd", "adahessian"])
def test_same_seed_same_metrics(tmp_path, optimizer):
    model_a, a = _run(tmp_path / "a", optimizer)
    model_b, b = _run(tmp_path / "b", optimizer)
    strip = ("epoch_seconds", "train_seconds", "images_per_second")
    assert [{k: v for k, v in r.items() if k not in strip} for r in a.rows] == [
        {k: v for k, v in r.items() if k not in strip} for r in b.rows
    ]
    for p, q in zip(model_a.parameters(), model_b.parameters(), strict=True):
        assert torch.equal(p, q)


@pytest.mark.parametrize(
    ("optimizer", "kill_step", "steps"),
    [
        (ADAHESSIAN, 8, ()),  # killed mid-epoch 2: resumes from the end of epoch 1
        (SGD, 9, (7,)),  # killed after a mid-epoch checkpoint: resumes mid-epoch
        ({"name": "sam", "rho": 0.05, "base": SGD}, 13, ()),
    ],
    ids=["adahessian-epoch", "sgd-midepoch", "sam"],
)
def test_killed_run_resumes_to_identical_weights(tmp_path, optimizer, kill_step, steps):
    reference, straight = _run(tmp_path / "straight", optimizer, steps=steps)
    with pytest.raises(KilledError):
        _run(tmp_path / "resumed", optimizer, steps=steps, on_step=_kill_at(kill_step))
    assert (tmp_path / "resumed" / "resume.pt").exists()
    resumed_model, resumed = _run(tmp_path / "resumed", optimizer, steps=steps)
    for p, q in zip(
        reference.state_dict().values(), resumed_model.state_dict().values(), strict=True
    ):
        assert torch.equal(p, q)
    assert [r["train_loss"] for r in resumed.rows] == [r["train_loss"] for r in straight.rows]
    assert [r["grad_norm"] for r in resumed.rows] == [r["grad_norm"] for r in straight.rows]
    assert resumed.step_rows == straight.step_rows
    assert [r["train_eval_loss"] for r in resumed.rows] == [
        r["train_eval_loss"] for r in straight.rows
    ]


def test_resume_state_of_another_config_is_ignored(tmp_path):
    with pytest.raises(KilledError):
        _run(tmp_path, SGD, on_step=_kill_at(8), fingerprint="first")
    steps = []
    _, other = _run(tmp_path, SGD, epochs=2, fingerprint="second", on_step=steps.append)
    assert [r["epoch"] for r in other.rows] == [1, 2]  # started over, not resumed
    assert steps[0] == 1


def test_checkpoints_at_configured_steps(tmp_path):
    model, result = _run(tmp_path, SGD, epochs=2, steps=(0, 3, 12))
    names = [p.name for p in result.checkpoints]
    assert names == ["step0.safetensors", "step3.safetensors", "step12.safetensors"]
    last = load_file(str(tmp_path / "checkpoints" / "step12.safetensors"))
    for name, value in model.state_dict().items():
        assert torch.equal(last[name], value)  # step 12 is the end of training
    first = load_file(str(tmp_path / "checkpoints" / "step0.safetensors"))
    assert not torch.equal(
        first["conv1.weight"] if "conv1.weight" in first else next(iter(first.values())),
        next(iter(last.values())),
    )


def test_divergence_stops_cleanly(tmp_path):
    _, result = _run(tmp_path, {"name": "sgd", "lr": 1e6}, epochs=5)
    assert result.status == "diverged"
    assert result.diverged_at["epoch"] <= 2
    assert len(result.rows) == result.diverged_at["epoch"]


def test_hybrid_switch_is_recorded(tmp_path):
    hybrid = {
        "name": "hybrid",
        "tl": 10.0,
        "sgd": {"lr": 0.05, "momentum": 0.9},
        "adahessian": {"lr": 0.01},
    }
    _, result = _run(tmp_path, hybrid, epochs=3)
    assert result.switch_epoch == 1  # the first validation loss is below tl = 10
    assert result.rows[0]["optimizer"] == "sgd"
    assert result.rows[0]["optimizer_switch"] == "sgd->adahessian"
    assert [r["optimizer"] for r in result.rows[1:]] == ["adahessian", "adahessian"]


def test_schedule_sets_the_recorded_lr(tmp_path):
    schedule = {"name": "multistep", "milestones": [1, 2], "gamma": 0.1}
    _, result = _run(tmp_path, SGD, epochs=3, schedule=schedule)
    assert [r["lr"] for r in result.rows] == pytest.approx([0.05, 0.005, 0.0005])


@pytest.mark.slow
def test_compiled_loop_matches_eager(tmp_path):
    """training.compile: same numbers as eager (up to float rounding in fused kernels)."""
    eager_model, eager = _run(tmp_path / "eager", SGD, epochs=2)
    compiled_model, compiled = _run(tmp_path / "compiled", SGD, epochs=2, compile_model=True)
    for p, q in zip(eager_model.parameters(), compiled_model.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    for a, b in zip(eager.rows, compiled.rows, strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["val_acc"] == b["val_acc"]


def test_spectral_norms_are_sampled_in_every_epoch_even_short_ones():
    """every=10 steps with 6-step epochs: each epoch still records its spectral norms."""
    from torch import nn

    from minima.train.gradstats import GradientRecorder

    conv, linear = nn.Conv2d(1, 2, 3), nn.Linear(4, 3)
    model = nn.Sequential(conv, nn.Flatten(), linear)
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    recorder = GradientRecorder(model, conv, linear, every=10)
    counts = []
    for _ in range(3):
        recorder.reset()
        for _ in range(6):
            recorder()
        counts.append(recorder.spectral_count)
        assert recorder.summary()["first_conv_grad_spectral"] > 0
    # epoch 1: steps 0 (first, %10) ; epoch 2: 6 (first), 10 ; epoch 3: 12 (first)
    assert counts == [1, 2, 1]


# ---- the evaluation pass over the training split (train_eval_*) and full_grad_norm ----


class _BatchNormNet(nn.Module):
    """conv -> batch norm -> relu -> mean pool -> linear. ``momentum=0``: the running statistics
    stay at their initial (mean 0, var 1), so eval mode computes a known function."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.bn = nn.BatchNorm2d(4, momentum=0.0)
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.bn(self.conv(x))).mean(dim=(2, 3)))


def _by_hand(net: _BatchNormNet, x: torch.Tensor, *, batch_stats: bool) -> torch.Tensor:
    """The net's logits written out: batch norm by the batch's statistics or by (0, 1)."""
    h = F.conv2d(x, net.conv.weight, net.conv.bias)
    if batch_stats:
        mean = h.mean(dim=(0, 2, 3), keepdim=True)
        var = h.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    else:
        mean, var = torch.zeros(1, 4, 1, 1), torch.ones(1, 4, 1, 1)
    h = (h - mean) / torch.sqrt(var + net.bn.eps)
    h = h * net.bn.weight.view(1, 4, 1, 1) + net.bn.bias.view(1, 4, 1, 1)
    return F.linear(torch.relu(h).mean(dim=(2, 3)), net.fc.weight, net.fc.bias)


@pytest.mark.parametrize("examples", [None, 40], ids=["whole-split", "subset"])
def test_train_eval_pass_is_eval_mode_and_matches_a_direct_evaluation(tmp_path, examples):
    torch.manual_seed(0)
    net = _BatchNormNet()
    with torch.no_grad():  # conv outputs far from (0, 1), logits large: the modes differ
        net.conv.bias.fill_(2.0)
        net.fc.weight.mul_(10.0)
    model, result = _run(
        tmp_path,
        {"name": "sgd", "lr": 0.01},
        epochs=2,
        model=net,
        train_eval_examples=examples,
    )
    assert model.training  # the loop leaves the model as it trains
    train, _, _ = _splits()
    images = train_eval_subset(train, examples, seed=0)
    assert len(images) == (96 if examples is None else 40)
    if examples is not None:  # a fixed subset of distinct training images
        assert len({tuple(x.flatten().tolist()) for x in images.x}) == 40
    row = result.rows[-1]
    assert row["train_eval_examples"] == len(images)
    with torch.no_grad():
        logits_eval = _by_hand(net, images.x, batch_stats=False)
        logits_train = _by_hand(net, images.x, batch_stats=True)
    eval_loss = F.cross_entropy(logits_eval, images.y).item()
    train_mode_loss = F.cross_entropy(logits_train, images.y).item()
    assert row["train_eval_loss"] == pytest.approx(eval_loss, rel=1e-6)
    assert row["train_eval_acc"] == (logits_eval.argmax(1) == images.y).sum().item() / len(images)
    # the known difference: the data's conv outputs are far from mean 0 / var 1, so batch
    # statistics (train mode) give another loss; the pass must not be a train-mode pass
    assert abs(train_mode_loss - eval_loss) > 0.05 * eval_loss
    assert row["train_eval_loss"] != pytest.approx(train_mode_loss, rel=0.01)
    # the full gradient of the mean eval-mode loss over the same images
    model.zero_grad()
    model.eval()
    F.cross_entropy(model(images.x), images.y).backward()
    full = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()]))
    assert row["full_grad_norm"] == pytest.approx(full.item(), rel=1e-5)


def test_full_gradient_can_be_left_out(tmp_path):
    _, with_grad = _run(tmp_path / "a", SGD, epochs=1)
    _, without = _run(tmp_path / "b", SGD, epochs=1, full_grad_norm=False)
    assert math.isnan(without.rows[0]["full_grad_norm"])
    assert without.rows[0]["train_eval_loss"] == pytest.approx(
        with_grad.rows[0]["train_eval_loss"], rel=1e-6
    )


# ---- per-step records (steps.parquet) ----


def test_step_rows_hold_the_minibatch_gradient_norm_every_n_steps(tmp_path):
    """18 steps, every 4: steps 1, 5, 9, 13, 17, each the norm of the gradient of that step's
    minibatch loss at the weights before it (the checkpoint of the step before)."""
    every, steps = 4, (0, 4, 8, 12, 16)
    _, result = _run(tmp_path, SGD, epochs=3, steps=steps, step_stats_every=every)
    assert [r["step"] for r in result.step_rows] == [1, 5, 9, 13, 17]
    assert [r["epoch"] for r in result.step_rows] == [1, 1, 2, 3, 3]
    train, _, _ = _splits()
    steps_per_epoch = 96 // 16
    for row in result.step_rows:
        before = row["step"] - 1
        epoch, batch = divmod(before, steps_per_epoch)
        generator = torch.Generator().manual_seed(_epoch_seed(0, epoch))
        order = torch.randperm(96, generator=generator)
        index = order[batch * 16 : (batch + 1) * 16]
        model = lenet5(num_classes=4)
        weights = load_file(str(tmp_path / "checkpoints" / f"step{before}.safetensors"))
        model.load_state_dict(weights)
        loss = F.cross_entropy(model(train.x[index]), train.y[index])
        loss.backward()
        norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()]))
        assert row["grad_norm"] == pytest.approx(norm.item(), rel=1e-6)
        assert row["batch_loss"] == pytest.approx(loss.item(), rel=1e-6)
        assert row["sam_sharpness"] == pytest.approx(0.05 * norm.item(), rel=1e-6)
        assert row["lr"] == pytest.approx(0.05)


def test_step_rows_of_sam_use_its_rho(tmp_path):
    sam = {"name": "sam", "rho": 0.2, "base": SGD}
    _, result = _run(tmp_path, sam, epochs=1, step_stats_every=1)
    assert len(result.step_rows) == 96 // 16
    for row in result.step_rows:
        assert row["sam_sharpness"] == pytest.approx(0.2 * row["grad_norm"], rel=1e-12)
