"""What a quantity is, and the tables of one run it is read from.

Kept apart from ``minima.findings.quantities`` (the registry) so that modules of quantities
(e.g. ``minima.findings.eigenpair_quantities``) can build entries the registry imports.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass
class RunData:
    """One run's tables: its metrics (per epoch) and the analysis tables that were asked for."""

    metrics: pd.DataFrame | None = None
    tables: dict[tuple[str, str], pd.DataFrame] = field(default_factory=dict)
    status: str = "completed"

    def table(self, analysis: str, name: str) -> pd.DataFrame:
        try:
            return self.tables[(analysis, name)]
        except KeyError:
            raise KeyError(f"{analysis}/{name} was not loaded for this run") from None


@dataclass(frozen=True)
class Quantity:
    """A named number per run (or per checkpoint) and where it comes from."""

    label: str
    analysis: str | None  # None: metrics.parquet
    files: tuple[str, ...]
    read: Callable[[RunData, Mapping], np.ndarray]
    per: str = "run"  # run | checkpoint | eigenpair
    decimals: int = 3
    scale: float = 1.0
    unit: str = ""
    options: tuple[str, ...] = ()  # keys of the claim's quantity entry besides name and at
    # Checks the option values at start-up, before any job runs (ValueError naming the
    # option and what it allows); None: the values are read as they come.
    check: Callable[[Mapping], object] | None = None
