"""The training loop: device-resident data, one epoch record per epoch, resumable at any save.

Data lives on the device as normalized tensors and is shuffled by index there, so no batch is
copied from the host. Per-step values stay on the device and are read once per epoch (and at
most once per ``progress_seconds`` for the progress line). Everything random comes from
generators seeded by (seed, epoch), plus the optimizer's own generator, so a run with the same
seed on the same machine repeats exactly, and a resumed run continues exactly.

Two records come out: one row per epoch (``rows``: running means over the epoch's batches in
train mode, an evaluation pass over the training split in eval mode, validation and test
passes, gradient statistics) and one row every ``step_stats_every`` steps (``step_rows``: the
minibatch gradient norm, rho times it, the minibatch loss, the learning rate).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from minima.optim import build_train_step
from minima.optim.schedules import lr_factor
from minima.train.checkpoint import export_weights, load_resume_state, save_resume_state
from minima.train.gradstats import GradientRecorder, StepRecorder

log = logging.getLogger("minima.train")

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


@dataclass
class Split:
    """One split on the device: normalized images (N, C, H, W) and int64 labels (N,)."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass
class LoopSettings:
    """What the loop needs from a resolved run config (see ``minima.plan.resolve_run``)."""

    seed: int
    epochs: int
    batch_size: int
    optimizer: dict[str, Any]
    schedule: dict[str, Any]
    checkpoint_steps: Sequence[int] = ()
    checkpoint_every_epochs: int | None = None
    eval_batch_size: int = 1000
    grad_stats_every: int = 10
    progress_seconds: float = 30.0
    resume_every_epochs: int = 1
    sharpness_rho: float = 0.05
    step_stats_every: int = 10
    train_eval_examples: int | None = 10000
    full_grad_norm: bool = True
    compile: bool = False
    fingerprint: str = ""
    labels: dict[str, Any] = field(default_factory=dict)


@dataclass
class LoopResult:
    """How the loop ended and what it recorded."""

    status: str  # "completed" | "diverged"
    rows: list[dict[str, Any]]
    steps: int
    checkpoints: list[Path]
    train_seconds: float
    switch_epoch: int | None
    diverged_at: dict[str, Any] | None = None
    step_rows: list[dict[str, Any]] = field(default_factory=list)


def _epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch * 7919 + 17) % (2**63 - 1)


def evaluate(model: nn.Module, split: Split, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed cross-entropy and number correct over ``split`` (device tensors, no sync)."""
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=split.y.device)
    correct = torch.zeros((), dtype=torch.int64, device=split.y.device)
    with torch.no_grad():
        for start in range(0, len(split), batch_size):
            x, y = split.x[start : start + batch_size], split.y[start : start + batch_size]
            logits = model(x)
            loss_sum += F.cross_entropy(logits, y, reduction="sum").double()
            correct += (logits.argmax(dim=1) == y).sum()
    model.train(was_training)
    return loss_sum, correct


def evaluate_with_gradient(
    model: nn.Module, split: Split, batch_size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`evaluate` plus the norm of the full gradient of the mean loss over ``split``.

    Eval mode (batch norm uses its running statistics), so the gradient is that of the loss
    the pass reports, the one the curvature analyses take the Hessian of. Gradients are summed
    in buffers of their own: the parameters' ``.grad`` (the optimizer's) is left untouched.
    """
    was_training = model.training
    model.eval()
    device = split.y.device
    params = [p for p in model.parameters() if p.requires_grad]
    total = [torch.zeros_like(p) for p in params]
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    n = max(len(split), 1)
    for start in range(0, len(split), batch_size):
        x, y = split.x[start : start + batch_size], split.y[start : start + batch_size]
        logits = model(x)
        batch_sum = F.cross_entropy(logits, y, reduction="sum")
        grads = torch.autograd.grad(batch_sum / n, params, materialize_grads=True)
        torch._foreach_add_(total, grads)
        loss_sum += batch_sum.detach().double()
        correct += (logits.detach().argmax(dim=1) == y).sum()
    model.train(was_training)
    norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(total))).double()
    return loss_sum, correct, norm


def train_eval_subset(train: Split, examples: int | None, seed: int) -> Split:
    """The training images of the per-epoch evaluation pass: all of them, or a fixed subset of
    ``examples`` drawn once from ``seed`` on the CPU (the same images on every device and in
    every epoch), in index order."""
    if examples is None or examples >= len(train):
        return train
    generator = torch.Generator().manual_seed(_epoch_seed(seed, -2))
    index = torch.randperm(len(train), generator=generator)[:examples].sort().values
    index = index.to(train.y.device)
    return Split(train.x[index], train.y[index])


def train_loop(
    model: nn.Module,
    train: Split,
    val: Split,
    test: Split,
    settings: LoopSettings,
    *,
    first_conv: nn.Conv2d,
    last_linear: nn.Linear,
    work_dir: Path,
    checkpoint_meta: Callable[[dict[str, Any]], dict[str, Any]],
    augment: Augment | None = None,
    on_step: Callable[[int], None] | None = None,
) -> LoopResult:
    """Train ``model`` for ``settings.epochs`` epochs, resuming from ``work_dir`` if it can.

    ``work_dir`` holds the resume state and the step checkpoints until the run completes.
    ``checkpoint_meta(extra)`` returns the sidecar metadata of an exported checkpoint.
    ``on_step(global_step)`` is a hook called after every step (tests use it to kill a run).
    """
    device = train.x.device
    work_dir.mkdir(parents=True, exist_ok=True)
    ckpt_dir = work_dir / "checkpoints"
    ckpt_dir.mkdir(exist_ok=True)
    state_path = work_dir / "resume.pt"

    optim_generator = torch.Generator(device=device)
    optim_generator.manual_seed(_epoch_seed(settings.seed, -1))
    step_fn = build_train_step(model, settings.optimizer, generator=optim_generator)
    forward_model = _maybe_compile(model, settings)
    recorder = GradientRecorder(model, first_conv, last_linear, settings.grad_stats_every)
    rho = step_fn.rho if step_fn.rho is not None else settings.sharpness_rho
    step_recorder = StepRecorder(settings.step_stats_every, rho)
    train_eval = train_eval_subset(train, settings.train_eval_examples, settings.seed)

    n_train = len(train)
    steps_per_epoch = max(1, n_train // settings.batch_size)  # drop_last: equal batch sizes
    checkpoint_steps = set(settings.checkpoint_steps)
    rows: list[dict[str, Any]] = []
    step_rows: list[dict[str, Any]] = []
    exported: list[Path] = []
    start_epoch, start_batch, global_step, train_seconds = 0, 0, 0, 0.0
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    seen = 0
    data_generator = torch.Generator(device=device)
    saved_generator_state = None

    resume = load_resume_state(state_path, settings.fingerprint)
    if resume is not None:
        model.load_state_dict(resume["model"])
        step_fn.load_state_dict(resume["optimizer"])
        recorder.load_state_dict(resume["recorder"])
        torch.set_rng_state(resume["torch_rng"])
        start_epoch, start_batch = resume["epoch"], resume["batch"]
        global_step, train_seconds = resume["global_step"], resume["train_seconds"]
        rows = resume["rows"]
        step_rows = resume["step_rows"]
        step_recorder.load_state_dict(resume["step_recorder"], device)
        exported = [Path(p) for p in resume["exported"]]
        loss_sum.copy_(resume["loss_sum"])
        correct.copy_(resume["correct"])
        seen = resume["seen"]
        saved_generator_state = resume["data_generator"]
        log.info(
            "resuming at epoch %d, batch %d (step %d) from %s",
            start_epoch + 1,
            start_batch,
            global_step,
            state_path,
        )
    elif 0 in checkpoint_steps:
        exported.append(_export(model, ckpt_dir, 0, 0, checkpoint_meta))

    def save_state(epoch: int, batch: int) -> None:
        save_resume_state(
            state_path,
            {
                "fingerprint": settings.fingerprint,
                "model": model.state_dict(),
                "optimizer": step_fn.state_dict(),
                "recorder": recorder.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "epoch": epoch,
                "batch": batch,
                "global_step": global_step,
                "train_seconds": train_seconds,
                "rows": rows,
                "step_rows": step_rows,
                "step_recorder": step_recorder.state_dict(),
                "exported": [str(p) for p in exported],
                "loss_sum": loss_sum,
                "correct": correct,
                "seen": seen,
                "data_generator": data_generator.get_state(),
            },
        )

    model.train()
    status, diverged_at = "completed", None
    for epoch in range(start_epoch, settings.epochs):
        step_fn.set_lr_factor(lr_factor(settings.schedule, epoch, settings.epochs))
        data_generator.manual_seed(_epoch_seed(settings.seed, epoch))
        order = torch.randperm(n_train, generator=data_generator, device=device)
        first_batch = start_batch if epoch == start_epoch else 0
        if first_batch == 0:
            loss_sum.zero_()
            correct.zero_()
            seen = 0
            recorder.reset()
        elif saved_generator_state is not None:
            data_generator.set_state(saved_generator_state)
        epoch_start = time.perf_counter()
        last_progress = epoch_start
        for batch in range(first_batch, steps_per_epoch):
            index = order[batch * settings.batch_size : (batch + 1) * settings.batch_size]
            x, y = train.x[index], train.y[index]
            if augment is not None:
                x = augment(x, data_generator)
            loss, logits = step_fn(forward_model, F.cross_entropy, x, y, on_gradient=recorder)
            loss_sum += loss.double() * y.shape[0]
            correct += (logits.argmax(dim=1) == y).sum()
            seen += int(y.shape[0])
            global_step += 1
            if step_recorder.wants(global_step):
                step_recorder.record(
                    global_step, epoch + 1, recorder.last_norm, loss, step_fn.current_lr
                )
            if global_step in checkpoint_steps:
                exported.append(_export(model, ckpt_dir, global_step, epoch + 1, checkpoint_meta))
                save_state(epoch, batch + 1)
            if on_step is not None:
                on_step(global_step)
            now = time.perf_counter()
            if settings.progress_seconds and now - last_progress >= settings.progress_seconds:
                last_progress = now
                running = (loss_sum / max(seen, 1)).item()
                log.info(
                    "epoch %d/%d  batch %d/%d  loss %.4f  %.0f img/s",
                    epoch + 1,
                    settings.epochs,
                    batch + 1,
                    steps_per_epoch,
                    running,
                    seen / max(now - epoch_start, 1e-9),
                )
                if not math.isfinite(running):
                    break
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        epoch_seconds = time.perf_counter() - epoch_start
        train_seconds += epoch_seconds

        val_loss, val_correct = evaluate(forward_model, val, settings.eval_batch_size)
        test_loss, test_correct = evaluate(forward_model, test, settings.eval_batch_size)
        if settings.full_grad_norm:  # batches of the training size: the memory training needs
            fit_loss, fit_correct, full_grad = evaluate_with_gradient(
                forward_model, train_eval, settings.batch_size
            )
            full_grad_norm = full_grad.item()
        else:
            fit_loss, fit_correct = evaluate(forward_model, train_eval, settings.eval_batch_size)
            full_grad_norm = math.nan
        step_rows += [{**settings.labels, **r} for r in step_recorder.flush()]
        train_loss = (loss_sum / max(seen, 1)).item()
        val_mean = val_loss.item() / max(len(val), 1)
        grads = recorder.summary()
        lr = step_fn.current_lr
        phase = step_fn.phase
        switch = step_fn.on_epoch_end(epoch + 1, val_mean)
        row = {
            **settings.labels,
            "epoch": epoch + 1,
            "step": global_step,
            "train_loss": train_loss,
            "train_acc": correct.item() / max(seen, 1),
            "train_eval_loss": fit_loss.item() / max(len(train_eval), 1),
            "train_eval_acc": fit_correct.item() / max(len(train_eval), 1),
            "train_eval_examples": len(train_eval),
            "val_loss": val_mean,
            "val_acc": val_correct.item() / max(len(val), 1),
            "test_loss": test_loss.item() / max(len(test), 1),
            "test_acc": test_correct.item() / max(len(test), 1),
            "epoch_seconds": epoch_seconds,
            "train_seconds": train_seconds,
            "images_per_second": seen / max(epoch_seconds, 1e-9),
            **grads,
            "sam_sharpness": rho * grads["grad_norm"],
            "full_grad_norm": full_grad_norm,
            "lr": lr,
            "optimizer": phase,
            "optimizer_switch": switch or "",
        }
        rows.append(row)
        log.info(
            "epoch %d/%d  train loss %.4f acc %.4f (eval pass: %.4f, %.4f)  val loss %.4f "
            "acc %.4f  test acc %.4f  %.0f img/s  %.1f s%s",
            epoch + 1,
            settings.epochs,
            row["train_loss"],
            row["train_acc"],
            row["train_eval_loss"],
            row["train_eval_acc"],
            row["val_loss"],
            row["val_acc"],
            row["test_acc"],
            row["images_per_second"],
            epoch_seconds,
            f"  optimizer switch {switch}" if switch else "",
        )
        if not (math.isfinite(train_loss) and math.isfinite(val_mean)):
            status = "diverged"
            diverged_at = {
                "epoch": epoch + 1,
                "step": global_step,
                "train_loss": train_loss,
                "val_loss": val_mean,
            }
            log.warning("run diverged at epoch %d (train loss %s): stopping", epoch + 1, train_loss)
            break
        every = settings.checkpoint_every_epochs
        if every and (epoch + 1) % every == 0 and global_step not in checkpoint_steps:
            exported.append(_export(model, ckpt_dir, global_step, epoch + 1, checkpoint_meta))
        if (epoch + 1) % settings.resume_every_epochs == 0 or epoch + 1 == settings.epochs:
            save_state(epoch + 1, 0)

    return LoopResult(
        status=status,
        rows=rows,
        steps=global_step,
        checkpoints=exported,
        train_seconds=train_seconds,
        switch_epoch=step_fn.switch_epoch,
        diverged_at=diverged_at,
        step_rows=step_rows,
    )


# Optimizers whose step differentiates through the backward pass (Hessian-vector products):
# torch.compile's graphs do not support that double backward, so they run eager.
_DOUBLE_BACKWARD = ("adahessian", "hybrid")


def _maybe_compile(model: nn.Module, settings: LoopSettings) -> nn.Module:
    """``torch.compile(model)`` when asked for and possible; the weights stay shared."""
    if not settings.compile:
        return model
    if settings.optimizer["name"] in _DOUBLE_BACKWARD:
        log.warning(
            "compile: %s needs a double backward, which compiled graphs do not support; "
            "training eagerly",
            settings.optimizer["name"],
        )
        return model
    return torch.compile(model)


def _export(
    model: nn.Module,
    ckpt_dir: Path,
    step: int,
    epoch: int,
    checkpoint_meta: Callable[[dict[str, Any]], dict[str, Any]],
) -> Path:
    path = ckpt_dir / f"step{step}.safetensors"
    export_weights(model, path, checkpoint_meta({"step": step, "epoch": epoch}))
    return path
