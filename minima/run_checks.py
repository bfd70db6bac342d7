"""Checks of one resolved run (a main run or a sweep point), before any job starts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from minima.runs import ConfigError


def check_run_settings(where: str, settings: Mapping[str, Any]) -> None:
    """The optimizer and schedule of resolved run settings are valid; ConfigError at ``where``."""
    from minima.optim import resolve_spec, validate_schedule

    try:
        resolve_spec(dict(settings["optimizer"]))
    except ValueError as error:
        raise ConfigError(f"{where}.optimizer: {error}") from None
    try:
        validate_schedule(dict(settings["schedule"]))
    except ValueError as error:
        raise ConfigError(f"{where}.schedule: {error}") from None
