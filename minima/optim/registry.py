"""Optimizers by name: config spec -> :class:`TrainStep`.

A spec is the config's dict, e.g. ``{name: adam, lr: 0.001, betas: [0.9, 0.999]}``.
Every optimizer is one registry entry: the keys it accepts (with defaults, ``REQUIRED``
where the config must say) and a builder. Unknown names or keys raise ``ValueError``
naming the offender and the allowed values, so a typo in config never passes silently.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.optim import SGD, Adagrad, Adam, Optimizer, RMSprop

from .adahessian import AdaHessian, default_generator
from .hybrid import Hybrid
from .sam import SAM
from .train_step import TrainStep

__all__ = ["REGISTRY", "REQUIRED", "build_train_step", "resolve_spec"]


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()
"""Marks a spec key without default."""

SGD_KEYS = {"lr": REQUIRED, "momentum": 0.0, "weight_decay": 0.0, "nesterov": False}
ADAGRAD_KEYS = {"lr": REQUIRED, "lr_decay": 0.0, "weight_decay": 0.0}
RMSPROP_KEYS = {"lr": REQUIRED, "alpha": 0.99, "eps": 1e-8, "momentum": 0.0, "weight_decay": 0.0}
ADAM_KEYS = {"lr": REQUIRED, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0}
ADAHESSIAN_KEYS = {
    "lr": REQUIRED,
    "betas": (0.9, 0.999),
    "eps": 1e-4,
    "weight_decay": 0.0,
    "hessian_power": 1.0,
    "update_each": 1,
    "n_samples": 1,
    "average_conv_kernel": True,
}
HYBRID_KEYS = {"tl": REQUIRED, "sgd": REQUIRED, "adahessian": REQUIRED}
SAM_KEYS = {"rho": 0.05, "adaptive": False, "base": REQUIRED}

FIRST_ORDER: dict[str, tuple[type[Optimizer], dict[str, Any]]] = {
    "sgd": (SGD, SGD_KEYS),
    "adagrad": (Adagrad, ADAGRAD_KEYS),
    "rmsprop": (RMSprop, RMSPROP_KEYS),
    "adam": (Adam, ADAM_KEYS),
}


_FLOAT = {
    "lr",
    "momentum",
    "weight_decay",
    "lr_decay",
    "alpha",
    "eps",
    "hessian_power",
    "rho",
    "tl",
}
_INT = {"update_each", "n_samples"}
_BOOL = {"nesterov", "average_conv_kernel", "adaptive"}


def _coerce(key: str, value: Any, where: str) -> Any:
    """Type-check one value (YAML gives ``1e-4`` as a string: say so, never guess)."""
    bad = ValueError(f"{where}: key {key!r} has invalid value {value!r}")
    if key in _FLOAT:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad
        return float(value)
    if key in _INT:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if key in _BOOL:
        if not isinstance(value, bool):
            raise bad
        return value
    if key == "betas":
        if not isinstance(value, list | tuple) or len(value) != 2:
            raise bad
        return tuple(_coerce("lr", b, where) for b in value)
    return value


def _resolve(spec: dict[str, Any], keys: dict[str, Any], where: str) -> dict[str, Any]:
    """Check ``spec`` against ``keys``, fill defaults and type-check the values."""
    if not isinstance(spec, dict):
        raise ValueError(f"{where}: spec must be a mapping, got {type(spec).__name__}")
    for key in spec:
        if key not in keys:
            raise ValueError(f"{where}: unknown key {key!r}; allowed: {sorted(keys)}")
    out = {k: spec.get(k, default) for k, default in keys.items()}
    missing = [k for k, v in out.items() if v is REQUIRED]
    if missing:
        raise ValueError(f"{where}: missing required key(s) {missing}")
    return {k: _coerce(k, v, where) for k, v in out.items()}


def _name(spec: Any, allowed: list[str], where: str) -> str:
    if not isinstance(spec, dict) or "name" not in spec:
        raise ValueError(f"{where}: spec needs 'name', one of {allowed}")
    if spec["name"] not in allowed:
        raise ValueError(f"{where}: unknown optimizer name {spec['name']!r}; allowed: {allowed}")
    return spec["name"]


def _params(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def _generator(model: nn.Module, generator: torch.Generator | None) -> torch.Generator:
    return default_generator(_params(model)[0].device) if generator is None else generator


@dataclass(frozen=True)
class Entry:
    """One optimizer: how to check its spec and how to build its train step."""

    resolve: Callable[[dict[str, Any]], dict[str, Any]]
    build: Callable[[nn.Module, dict[str, Any], torch.Generator | None], TrainStep]


def _first_order_entry(name: str) -> Entry:
    cls, keys = FIRST_ORDER[name]

    def build(model: nn.Module, kw: dict[str, Any], _: torch.Generator | None) -> TrainStep:
        return TrainStep(cls(_params(model), **kw), name)

    return Entry(lambda spec: _resolve(spec, keys, name), build)


def _build_adahessian(model: nn.Module, kw: dict[str, Any], gen: torch.Generator | None):
    gen = _generator(model, gen)
    return TrainStep(AdaHessian(_params(model), **kw, generator=gen), "adahessian", generator=gen)


def _resolve_hybrid(spec: dict[str, Any]) -> dict[str, Any]:
    kw = _resolve(spec, HYBRID_KEYS, "hybrid")
    kw["sgd"] = _resolve(kw["sgd"], SGD_KEYS, "hybrid.sgd")
    kw["adahessian"] = _resolve(kw["adahessian"], ADAHESSIAN_KEYS, "hybrid.adahessian")
    return kw


def _build_hybrid(model: nn.Module, kw: dict[str, Any], gen: torch.Generator | None):
    gen = _generator(model, gen)
    params = _params(model)
    hybrid = Hybrid(
        SGD(params, **kw["sgd"]), AdaHessian(params, **kw["adahessian"], generator=gen), kw["tl"]
    )
    return TrainStep(hybrid, "hybrid", generator=gen)


def _resolve_sam(spec: dict[str, Any]) -> dict[str, Any]:
    kw = _resolve(spec, SAM_KEYS, "sam")
    base = _name(kw["base"], sorted(FIRST_ORDER), "sam.base")
    base_keys = FIRST_ORDER[base][1]
    rest = {k: v for k, v in kw["base"].items() if k != "name"}
    kw["base"] = {"name": base, **_resolve(rest, base_keys, f"sam.base ({base})")}
    return kw


def _build_sam(model: nn.Module, kw: dict[str, Any], _: torch.Generator | None) -> TrainStep:
    base = dict(kw["base"])
    cls = FIRST_ORDER[base.pop("name")][0]
    sam = SAM(_params(model), cls, rho=kw["rho"], adaptive=kw["adaptive"], **base)
    return TrainStep(sam, "sam")


REGISTRY: dict[str, Entry] = {
    "sgd": _first_order_entry("sgd"),
    "adagrad": _first_order_entry("adagrad"),
    "rmsprop": _first_order_entry("rmsprop"),
    "adam": _first_order_entry("adam"),
    "adahessian": Entry(lambda s: _resolve(s, ADAHESSIAN_KEYS, "adahessian"), _build_adahessian),
    "hybrid": Entry(_resolve_hybrid, _build_hybrid),
    "sam": Entry(_resolve_sam, _build_sam),
}


def resolve_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec with every default filled in (for metadata); ValueError if invalid."""
    name = _name(spec, sorted(REGISTRY), "optimizer")
    rest = {k: v for k, v in spec.items() if k != "name"}
    return {"name": name, **REGISTRY[name].resolve(rest)}


def build_train_step(
    model: nn.Module, spec: dict[str, Any], *, generator: torch.Generator | None = None
) -> TrainStep:
    """Build the train step that ``spec`` names for ``model``'s trainable parameters.

    Args:
        model: Its parameters (already on their device) are optimized.
        spec: Optimizer config dict (see the module docstring and the ``*_KEYS`` tables).
        generator: For AdaHessian's Rademacher draws (on the params' device); ``None``: a
            new one seeded from the global RNG. Unused by first-order optimizers.
    """
    resolved = resolve_spec(spec)
    name = resolved.pop("name")
    return REGISTRY[name].build(model, resolved, generator)
