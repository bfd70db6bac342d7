"""Atomic writes for the report stage: the torch-free writers of :mod:`minima.io`."""

from minima.io import atomic_path, write_text

__all__ = ["atomic_path", "write_text"]
