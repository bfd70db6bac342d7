"""A training job's guards: the resume fingerprint covers its inputs, one live job per run,
file permissions and leftovers, and no GPU job that trains on the CPU by accident."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from minima.data import manifest_root, write_manifest, write_split
from minima.device import NoGpuError, check_gpu_job, parse_driver_version
from minima.io import read_json, sha256_file
from minima.train.job import train_run
from minima.train.lock import RunLockedError, run_lock
from tests.train_job_helpers import (
    TRAIN_SIZE,
    killed_in_child,
    make_inputs,
    run_files,
    tiny_run,
)
from tests.workflow_helpers import REPO

LABEL = "e1/lenet5/sgd/seed0"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    return make_inputs(tmp_path_factory.mktemp("inputs"))


def test_retrained_init_source_makes_a_killed_dependent_run_start_over(tmp_path, inputs, caplog):
    """init_from: the source is retrained with another lr while its dependent run is killed
    mid-way; the dependent's rerun must drop its resume state and checkpoints, start from the
    new weights and end exactly as a clean run from them."""
    source = run_files(tmp_path / "source")
    train_run(tiny_run(epochs=1), **inputs, files=source)
    dependent = {**inputs, "init_weights": source.weights}
    files = run_files(tmp_path / "dependent")
    run = tiny_run(run="sgd_from_sgd", init_from="sgd")
    killed_in_child(lambda: train_run(run, **dependent, files=files), "resume:replaced@2")
    assert (Path(files.work_dir) / "checkpoints" / "step4.safetensors").exists()
    old_step4 = sha256_file(Path(files.work_dir) / "checkpoints" / "step4.safetensors")

    retrained = tiny_run(epochs=1, optimizer={"name": "sgd", "lr": 0.01})
    shutil.rmtree(tmp_path / "source")
    train_run(retrained, **inputs, files=source)
    with caplog.at_level(logging.INFO, logger="minima.train"):
        meta = train_run(run, **dependent, files=files)
    why = [r.getMessage() for r in caplog.records if "deleting" in r.getMessage()]
    assert len(why) == 1 and "init_weights differ(s)" in why[0], why
    assert not any("resuming" in r.getMessage() for r in caplog.records)

    clean = run_files(tmp_path / "clean")
    train_run(run, **dependent, files=clean)
    assert Path(files.weights).read_bytes() == Path(clean.weights).read_bytes()
    step4 = Path(files.checkpoints) / "step4.safetensors"
    assert sha256_file(step4) == sha256_file(Path(clean.checkpoints) / "step4.safetensors")
    assert sha256_file(step4) != old_step4  # the abandoned start's checkpoint is gone
    assert meta["init_weights"]["sha256"] == sha256_file(source.weights)


@pytest.mark.parametrize("changed", ["split", "dataset_manifest", "run_config"])
def test_any_changed_input_discards_the_work_folder(tmp_path, inputs, changed, caplog):
    files = run_files(tmp_path / "run")
    killed_in_child(lambda: train_run(tiny_run(), **inputs, files=files), "resume:replaced@2")
    new_inputs, run = dict(inputs), tiny_run()
    if changed == "run_config":
        run = tiny_run(optimizer={"name": "sgd", "lr": 0.02})
    elif changed == "split":  # drawn with another seed
        new_inputs["split"] = tmp_path / "splits" / "e1_seed1.npz"
        write_split(
            "mnist10k",
            manifest_root(inputs["manifest"]),
            new_inputs["split"],
            seed=1,
            val_size=32,
            train_size=TRAIN_SIZE,
            test_size=32,
        )
    else:  # the same files, prepared again (a re-download)
        new_inputs["manifest"] = inputs["manifest"].with_name("again.json")
        write_manifest(
            new_inputs["manifest"],
            {
                **read_json(inputs["manifest"]),
                "root": str(manifest_root(inputs["manifest"]).absolute()),
                "again": True,
            },
        )
    with caplog.at_level(logging.WARNING, logger="minima.train"):
        train_run(run, **new_inputs, files=files)
    why = [r.getMessage() for r in caplog.records if "deleting" in r.getMessage()]
    assert len(why) == 1 and f"its {changed} differ(s)" in why[0], why


def test_outputs_get_the_umask_permissions_and_leftover_temporaries_go(tmp_path, inputs):
    files = run_files(tmp_path / "run")
    killed_in_child(
        lambda: train_run(tiny_run(), **inputs, files=files), "checkpoint.weights:written@2"
    )
    leftovers = list((tmp_path / "run").rglob("*.tmp"))
    assert leftovers  # what a kill -9 during a write leaves
    stray = tmp_path / "run" / ".final.safetensors.k1lled.tmp"
    stray.write_bytes(b"")
    old = os.umask(0o027)
    try:
        train_run(tiny_run(), **inputs, files=files)
    finally:
        os.umask(old)
    assert not list((tmp_path / "run").rglob("*.tmp"))
    written = [files.weights, files.sidecar, files.metrics, *Path(files.checkpoints).iterdir()]
    assert {oct(stat.S_IMODE(os.stat(p).st_mode)) for p in written} == {oct(0o640)}
    files = run_files(tmp_path / "run022")
    old = os.umask(0o022)
    try:
        train_run(tiny_run(), **inputs, files=files)
    finally:
        os.umask(old)
    written = [files.weights, files.sidecar, files.metrics, *Path(files.checkpoints).iterdir()]
    assert {oct(stat.S_IMODE(os.stat(p).st_mode)) for p in written} == {oct(0o644)}


HOLD = """
import sys, time
from minima.train.lock import run_lock
with run_lock(sys.argv[1], "e1/lenet5/sgd/seed0"):
    print("held", flush=True)
    time.sleep(60)
"""


def test_second_live_job_on_a_run_refuses_at_once_naming_the_holder(tmp_path, inputs):
    files = run_files(tmp_path / "run")
    Path(files.work_dir).mkdir(parents=True)
    marker = Path(files.work_dir) / ".resume.pt.abc.tmp"  # the live job's write in progress
    marker.write_bytes(b"x")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(files.lock)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        with pytest.raises(RunLockedError) as error:
            train_run(tiny_run(), **inputs, files=files)
        assert time.monotonic() - started < 5
        message = str(error.value)
        assert LABEL in message and f"pid {holder.pid}" in message
        assert socket.gethostname() in message and str(files.lock) in message
        assert marker.exists() and not Path(files.weights).exists()  # nothing touched
    finally:
        holder.kill()
        holder.wait()
    train_run(tiny_run(), **inputs, files=files)  # the holder died: its lock is stale
    assert Path(files.sidecar).exists() and not files.lock.exists()


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.parametrize(
    ("host", "pid", "age", "taken"),
    [
        ("here", "dead", 0, True),  # same host, holder gone
        ("elsewhere", 1, 10, False),  # another host, fresh heartbeat: may be alive
        ("elsewhere", 1, 3600, True),  # another host, no heartbeat for an hour: stale
    ],
    ids=["same-host-dead-pid", "other-host-fresh", "other-host-stale"],
)
def test_lock_left_by_a_dead_holder_is_taken_over(tmp_path, host, pid, age, taken, caplog):
    lock = tmp_path / ".partial.lock"
    record = {
        "pid": _dead_pid() if pid == "dead" else pid,
        "host": socket.gethostname() if host == "here" else "node-17.cluster",
        "started": "2026-01-01T00:00:00+00:00",
    }
    lock.write_text(json.dumps(record))
    os.utime(lock, (time.time() - age, time.time() - age))
    if not taken:
        refused = pytest.raises(RunLockedError, match=r"node-17\.cluster.*last heartbeat 10 s ago")
        with refused, run_lock(lock, LABEL):
            pass
        assert read_json(lock) == record  # left alone
        return
    with caplog.at_level(logging.WARNING, logger="minima.train"), run_lock(lock, LABEL) as mine:
        assert read_json(lock)["pid"] == os.getpid() == mine["pid"]
    assert any("stale lock" in r.getMessage() for r in caplog.records)
    assert not lock.exists()


def test_gpu_job_without_cuda_fails_at_once_saying_what_torch_sees(tmp_path, inputs, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    files = run_files(tmp_path / "run")
    with pytest.raises(NoGpuError) as error:
        train_run(tiny_run(device="auto"), **inputs, files=files, gpus=1)
    message = str(error.value)
    assert "asked for 1 GPU(s)" in message
    assert f"torch {torch.__version__}" in message
    assert "torch.cuda.is_available() = False" in message
    assert "NVIDIA driver:" in message and "gpu_fallback: cpu" in message
    build = torch.version.cuda
    assert (f"built for CUDA {build}" if build else "CPU-only build") in message
    assert not (tmp_path / "run").exists()  # not even the lock file
    monkeypatch.setattr(torch.version, "cuda", None)
    with pytest.raises(NoGpuError, match="a CPU-only build, no CUDA"):
        check_gpu_job(2, "cuda")


@pytest.mark.parametrize(
    ("gpus", "device", "fallback"),
    [(0, "auto", False), (1, "cpu", False), (1, "auto", True)],
    ids=["no-gpu-asked", "device-cpu", "fallback-key"],
)
def test_cpu_is_used_only_when_the_config_says_so(monkeypatch, gpus, device, fallback):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    check_gpu_job(gpus, device, cpu_fallback=fallback)  # no error


@pytest.mark.parametrize(
    "text",
    [
        "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 22:23:56 UTC 2024",
        "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  550.54.15  Release Build",
    ],
    ids=["proprietary", "open"],
)
def test_driver_version_is_read_from_the_kernel_module_line(text):
    assert parse_driver_version(text + "\nGCC version:  gcc version 12.3.0\n") == "550.54.15"


def test_gpu_provenance_records_torch_cuda_and_driver_versions(monkeypatch):
    import minima.provenance as provenance

    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index: "NVIDIA H200")
    monkeypatch.setattr(torch.backends.cudnn, "version", lambda: 90100)
    monkeypatch.setattr(torch.version, "cuda", "12.6")
    monkeypatch.setattr(provenance, "nvidia_driver_version", lambda: "550.54.15")
    monkeypatch.setattr(provenance, "_cuda_driver_api", lambda: 12040)
    info = provenance.device_description(torch.device("cuda", 0))
    assert info == {
        "device": "cuda:0",
        "name": "NVIDIA H200",
        "cuda": "12.6",
        "cudnn": 90100,
        "driver": "550.54.15",
        "cuda_runtime_driver": 12040,
    }
