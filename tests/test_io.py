"""Atomic writes: strict JSON, umask permissions, leftovers of a killed writer."""

from __future__ import annotations

import json
import os
import signal
import stat

import pytest
import torch

from minima.io import atomic_path, remove_stale_temporaries, write_json
from minima.train.checkpoint import export_weights
from tests.train_job_helpers import killed_in_child


def _strict(text: str):
    def refuse(constant: str) -> None:
        raise ValueError(f"not strict JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_non_finite_numbers_become_null_and_are_listed(tmp_path):
    path = tmp_path / "record.json"
    write_json(
        path,
        {"status": "diverged", "loss": float("nan"), "curve": [1.0, float("inf")],
         "deep": {"x": torch.tensor(float("-inf"))}, "fine": 2.5},
    )  # fmt: skip
    record = _strict(path.read_text())
    assert record["loss"] is None and record["curve"] == [1.0, None]
    assert record["deep"] == {"x": None} and record["fine"] == 2.5
    assert record["non_finite"] == {"loss": "nan", "curve[1]": "inf", "deep.x": "-inf"}


def test_finite_records_are_written_unchanged(tmp_path):
    path = tmp_path / "record.json"
    write_json(path, {"a": 1, "b": [0.5]})
    assert _strict(path.read_text()) == {"a": 1, "b": [0.5]}


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_files_get_the_umask_permissions_safetensors_included(tmp_path, umask):
    old = os.umask(umask)
    try:
        export_weights(torch.nn.Linear(2, 2), tmp_path / "w.safetensors", {})
        write_json(tmp_path / "r.json", {"a": 1})
    finally:
        os.umask(old)
    for name in ("w.safetensors", "w.json", "r.json"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o666 & ~umask, name


def test_a_kill_during_a_write_keeps_the_old_file_and_the_next_run_clears_the_leftover(tmp_path):
    path = tmp_path / "table.txt"
    path.write_text("old")
    other = tmp_path / ".other.txt.x1.tmp"  # another output's: not ours to delete
    other.write_text("")

    def write() -> None:
        with atomic_path(path, fault="table") as tmp:
            tmp.write_text("new")

    assert killed_in_child(write, "table:written") == signal.SIGKILL
    assert path.read_text() == "old"
    (leftover,) = tmp_path.glob(".table.txt.*.tmp")
    assert remove_stale_temporaries([path]) == [leftover]
    assert not leftover.exists() and other.exists()
