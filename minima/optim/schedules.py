"""Learning-rate schedules as a multiplicative factor per epoch.

``lr_factor(spec, epoch, epochs)`` is the factor applied to the base lr during epoch
``epoch`` (0-based), i.e. what torch's scheduler gives after ``epoch`` calls of
``scheduler.step()``. A closed form (no scheduler object) keeps resumption trivial and
applies equally to every inner optimizer of a train step (hybrid's two phases).

Specs (every key except ``name`` optional):

- ``{name: constant}``
- ``{name: multistep, milestones: [0.5, 0.75], gamma: 0.1}``: ``MultiStepLR``. A float
  milestone below 1 is a fraction of ``epochs`` (rounded to the nearest epoch,
  halves up), anything
  else an epoch number.
- ``{name: step, step_size: 30, gamma: 0.1}``: ``StepLR``.
- ``{name: cosine, eta_min_factor: 0.0}``: ``CosineAnnealingLR`` with ``T_max = epochs`` and
  ``eta_min = eta_min_factor * lr``.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["SCHEDULES", "lr_factor", "resolve_milestones", "validate_schedule"]

SCHEDULES: dict[str, dict[str, Any]] = {
    "constant": {},
    "multistep": {"milestones": [0.5, 0.75], "gamma": 0.1},
    "step": {"step_size": 30, "gamma": 0.1},
    "cosine": {"eta_min_factor": 0.0},
}


def validate_schedule(spec: dict[str, Any]) -> dict[str, Any]:
    """Check ``spec`` and fill defaults; ValueError names an unknown name or key."""
    if "name" not in spec:
        raise ValueError(f"schedule spec needs 'name', one of {sorted(SCHEDULES)}")
    name = spec["name"]
    if name not in SCHEDULES:
        raise ValueError(f"schedule name {name!r} unknown; allowed: {sorted(SCHEDULES)}")
    allowed = SCHEDULES[name]
    for key in spec:
        if key != "name" and key not in allowed:
            raise ValueError(f"schedule {name!r}: unknown key {key!r}; allowed: {sorted(allowed)}")
    return {"name": name, **allowed, **{k: v for k, v in spec.items() if k != "name"}}


def resolve_milestones(milestones: list[float | int], epochs: int) -> list[int]:
    """Epoch numbers of the milestones (floats below 1 are fractions of ``epochs``)."""
    out = []
    for m in milestones:
        if isinstance(m, float) and m < 1.0:
            out.append(math.floor(m * epochs + 0.5))  # nearest, halves up
        elif float(m) == int(m):
            out.append(int(m))
        else:
            raise ValueError(f"milestone {m!r} is neither a fraction < 1 nor an epoch number")
    return sorted(out)


def lr_factor(spec: dict[str, Any], epoch: int, epochs: int) -> float:
    """Factor multiplying the base lr during ``epoch`` (0-based) of ``epochs``."""
    s = validate_schedule(spec)
    name = s["name"]
    if name == "constant":
        return 1.0
    if name == "multistep":
        passed = sum(1 for m in resolve_milestones(s["milestones"], epochs) if m <= epoch)
        return float(s["gamma"]) ** passed
    if name == "step":
        return float(s["gamma"]) ** (epoch // int(s["step_size"]))
    # cosine
    eta = float(s["eta_min_factor"])
    return eta + (1.0 - eta) * (1.0 + math.cos(math.pi * epoch / epochs)) / 2.0
