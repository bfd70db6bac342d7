"""Crash safety of a training job, by fault injection: the job is killed (SIGKILL to itself,
see ``minima.faults``) at every step that writes or renames a file, and the rerun must end
with exactly the outputs of an uninterrupted run, no temporary file left, and never a
``final.json`` that contradicts the files next to it."""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path

import pandas as pd
import pytest

from minima.io import read_json, sha256_file
from minima.train.job import RunFiles, train_run
from tests.train_job_helpers import killed_in_child, make_inputs, run_files, tiny_run

WALL_TIME_COLUMNS = ["epoch_seconds", "train_seconds", "images_per_second"]
WALL_TIME_KEYS = ("created", "job_seconds", "train_seconds")

# Every write or rename of a run's life, in order (``@N``: its N-th occurrence). The eight
# steps: checkpoints at 0, 3 (mid epoch 1, followed by a resume save), 4 and 8; resume states
# at step 3 (@1), epoch 1's end (@2) and the finished run (@3).
FAULTS = [
    "fingerprint:written",
    "fingerprint:replaced",
    "checkpoint.weights:written",  # step 0
    "checkpoint.weights:replaced",
    "checkpoint.sidecar:written",
    "checkpoint.sidecar:replaced@2",  # step 3, before its resume save
    "resume:written",  # the mid-epoch save after step 3
    "resume:replaced",
    "checkpoint.weights:replaced@3",  # step 4 (every_epochs), before epoch 1's resume save
    "resume:written@2",
    "resume:replaced@2",
    "resume:written@3",  # the finished run's state
    "resume:replaced@3",
    "finish:start",
    "finish:old_final_removed",
    "finish:checkpoint_linked@2",
    "finish:checkpoint_linked@4",
    "finish.metrics:written",
    "finish.metrics:replaced",
    "finish.steps:written",
    "finish.steps:replaced",
    "final.weights:written",
    "final.weights:replaced",
    "final.sidecar:written",
    "final.sidecar:replaced",
    "finish:work_dir_removed",
]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    return make_inputs(tmp_path_factory.mktemp("inputs"))


@pytest.fixture(scope="module")
def reference(inputs, tmp_path_factory) -> RunFiles:
    """An uninterrupted run."""
    files = run_files(tmp_path_factory.mktemp("reference") / "run")
    train_run(tiny_run(), **inputs, files=files)
    return files


def snakemake_cleanup(files: RunFiles) -> None:
    """What Snakemake does after a failed job: delete every declared output."""
    for path in (files.weights, files.sidecar, files.metrics, files.steps):
        Path(path).unlink(missing_ok=True)
    shutil.rmtree(files.checkpoints, ignore_errors=True)


def assert_consistent(files: RunFiles) -> None:
    """If ``final.json`` exists, everything it describes is in place and matches it."""
    if not files.sidecar.exists():
        return
    meta = read_json(files.sidecar)
    assert meta["sha256"] == sha256_file(files.weights)
    assert Path(files.metrics).exists() and Path(files.steps).exists()
    listed = sorted(meta["checkpoints"])
    assert sorted(p.name for p in Path(files.checkpoints).glob("*.safetensors")) == listed
    for name in listed:
        ckpt = Path(files.checkpoints) / name
        assert read_json(ckpt.with_suffix(".json"))["sha256"] == sha256_file(ckpt)


def without(record: dict, keys: tuple[str, ...]) -> dict:
    return {k: v for k, v in record.items() if k not in keys}


def assert_same_outputs(files: RunFiles, reference: RunFiles) -> None:
    """Byte-identical weights and checkpoints; sidecars and metrics equal but for wall times."""
    assert Path(files.weights).read_bytes() == Path(reference.weights).read_bytes()
    assert without(read_json(files.sidecar), WALL_TIME_KEYS) == without(
        read_json(reference.sidecar), WALL_TIME_KEYS
    )
    pd.testing.assert_frame_equal(
        pd.read_parquet(files.metrics).drop(columns=WALL_TIME_COLUMNS),
        pd.read_parquet(reference.metrics).drop(columns=WALL_TIME_COLUMNS),
    )
    pd.testing.assert_frame_equal(pd.read_parquet(files.steps), pd.read_parquet(reference.steps))
    ours = sorted(p.name for p in Path(files.checkpoints).iterdir())
    assert ours == sorted(p.name for p in Path(reference.checkpoints).iterdir())
    for name in ours:
        mine, theirs = Path(files.checkpoints) / name, Path(reference.checkpoints) / name
        if name.endswith(".json"):
            assert without(read_json(mine), WALL_TIME_KEYS) == without(
                read_json(theirs), WALL_TIME_KEYS
            )
        else:
            assert mine.read_bytes() == theirs.read_bytes()
    run_dir = Path(files.weights).parent
    assert not list(run_dir.rglob("*.tmp"))
    assert not Path(files.work_dir).exists() and not files.lock.exists()


# Snakemake deletes a failed job's outputs; with --keep-incomplete (or a library caller) they
# stay: that matters only once _finish has begun writing them.
CASES = [(fault, True) for fault in FAULTS] + [
    (fault, False) for fault in FAULTS if fault.startswith(("finish", "final"))
]


@pytest.mark.parametrize(
    ("fault", "cleanup"),
    CASES,
    ids=[f"{f}-{'outputs-deleted' if c else 'outputs-kept'}" for f, c in CASES],
)
def test_kill_at_every_step_then_rerun_matches_an_uninterrupted_run(
    tmp_path, inputs, reference, fault, cleanup
):
    files = run_files(tmp_path / "run")
    if fault.startswith("finish:old_final"):  # a rerun over an older run's outputs
        shutil.copytree(Path(reference.weights).parent, tmp_path / "run")
        Path(files.checkpoints, "step3.safetensors").unlink()  # unlike the new outputs
    run = tiny_run()
    assert killed_in_child(lambda: train_run(run, **inputs, files=files), fault) == signal.SIGKILL
    assert_consistent(files)
    if cleanup:
        snakemake_cleanup(files)
    train_run(run, **inputs, files=files)
    assert_same_outputs(files, reference)


def test_final_json_lists_exactly_the_checkpoints_after_a_kill_while_linking(
    tmp_path, inputs, reference
):
    """The break of the issue: killed while the outputs were put in place, Snakemake deleted
    them, and the rerun 'completed' with an empty checkpoints folder."""
    files = run_files(tmp_path / "run")
    killed_in_child(
        lambda: train_run(tiny_run(), **inputs, files=files), "finish:checkpoint_linked"
    )
    snakemake_cleanup(files)
    assert (Path(files.work_dir) / "checkpoints" / "step8.safetensors").exists()  # kept there
    meta = train_run(tiny_run(), **inputs, files=files)
    assert meta["checkpoints"] == [f"step{s}.safetensors" for s in (0, 3, 4, 8)]
    assert_consistent(files)


def test_missing_checkpoint_in_work_folder_refuses_to_finish(tmp_path, inputs):
    files = run_files(tmp_path / "run")
    killed_in_child(lambda: train_run(tiny_run(), **inputs, files=files), "resume:replaced@3")
    Path(files.work_dir, "checkpoints", "step3.safetensors").unlink()
    with pytest.raises(RuntimeError, match=r"step3\.safetensors.*missing.*delete that folder"):
        train_run(tiny_run(), **inputs, files=files)
    assert not files.sidecar.exists()


def test_sidecars_are_strict_json_with_non_finite_numbers_as_null(tmp_path, inputs):
    """A diverged run: its NaN losses become null, and the record says where and why."""
    files = run_files(tmp_path / "run")
    run = tiny_run(optimizer={"name": "sgd", "lr": 1.0e6})
    train_run(run, **inputs, files=files)

    def refuse(constant: str) -> None:
        raise ValueError(f"not strict JSON: {constant}")

    records = [files.sidecar, *Path(files.checkpoints).glob("*.json")]
    for path in records:
        json.loads(path.read_text(), parse_constant=refuse)
    meta = read_json(files.sidecar)
    assert meta["status"] == "diverged"
    assert meta["diverged_at"]["train_loss"] is None
    assert meta["non_finite"]["diverged_at.train_loss"] == "nan"


@pytest.mark.slow
def test_snakemake_rerun_after_a_kill_while_finishing_restores_every_output(tmp_path, monkeypatch):
    """The workflow-level case: the train job is killed while it links the checkpoints,
    Snakemake deletes its outputs, and the next invocation finishes from the work folder
    (no retraining) with exactly the checkpoints that final.json lists."""
    from tests.workflow_helpers import snakemake

    target = "results/runs/e1/lenet5/sgd/seed0/final.safetensors"
    configs = ("tests/configs/tiny.yaml",)
    monkeypatch.setenv("MINIMA_FAULT", "finish:checkpoint_linked@2")
    killed = snakemake(tmp_path, target, configfiles=configs, check=False)
    assert killed.returncode != 0
    run_dir = tmp_path / "results/runs/e1/lenet5/sgd/seed0"
    files = run_files(run_dir)
    assert not files.sidecar.exists() and not Path(files.checkpoints).exists()  # deleted
    kept = sorted(p.name for p in (run_dir / ".partial/checkpoints").glob("*.safetensors"))
    assert kept == ["step0.safetensors", "step4.safetensors", "step8.safetensors"]

    monkeypatch.delenv("MINIMA_FAULT")
    snakemake(tmp_path, target, configfiles=configs)
    log = (tmp_path / "logs/train/e1/lenet5/sgd/seed0.log").read_text()
    assert "resuming at epoch 2, batch 0 (step 8)" in log  # the finished state, not retrained
    assert read_json(files.sidecar)["checkpoints"] == kept
    assert_consistent(files)
    assert not list(run_dir.rglob("*.tmp")) and not Path(files.work_dir).exists()
