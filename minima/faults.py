"""Fault injection for the crash-safety tests: kill the process at a named step.

Every step of a run's lifecycle that writes or renames a file calls :func:`fault_point` with
its name. When the environment variable ``MINIMA_FAULT`` names that step (``step`` or
``step@N`` for its N-th occurrence), the process sends itself SIGKILL there, the way a
``kill -9`` or a lost node would end it: no ``finally`` block, no clean-up. Unset (always,
outside tests), a fault point costs one dictionary look-up.
"""

from __future__ import annotations

import os
import signal

FAULT_ENV = "MINIMA_FAULT"
_reached: dict[str, int] = {}


def fault_point(name: str) -> None:
    """Die here if ``MINIMA_FAULT`` names this step (and this is its requested occurrence)."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    target, _, nth = spec.partition("@")
    if target != name:
        return
    _reached[name] = _reached.get(name, 0) + 1
    if _reached[name] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
