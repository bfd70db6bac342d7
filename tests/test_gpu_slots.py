"""GPU slots: concurrent jobs never share a GPU, a dead holder frees its slot, SLURM's GPUs win."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time

import pytest

from minima.gpu_slots import (
    GpuSlotTimeoutError,
    acquire_slot,
    claim_gpu,
    count_nvidia_devices,
    visible_devices,
)
from tests.workflow_helpers import REPO

CONTEXT = multiprocessing.get_context("spawn")  # no fork of a process that may hold threads


def _fake_job(lock_dir, devices, busy_dir, start, hold, results):
    """Take a slot, and while holding it own the GPU's 'busy' marker, which only one may hold."""
    start.wait()
    slot = acquire_slot(lock_dir, devices, timeout=60, poll_seconds=0.01)
    marker = os.path.join(busy_dir, slot.device)
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)  # fails if another holds it
    except FileExistsError:
        results.put(("shared", slot.device))
        return
    time.sleep(hold)
    os.close(fd)
    os.unlink(marker)
    slot.release()
    results.put(("ok", slot.device))


def test_concurrent_jobs_never_share_a_gpu(tmp_path):
    n_jobs, devices = 12, ["0", "1", "2"]
    busy = tmp_path / "busy"
    busy.mkdir()
    start, results = CONTEXT.Event(), CONTEXT.Queue()
    jobs = [
        CONTEXT.Process(
            target=_fake_job,
            args=(str(tmp_path / "locks"), devices, str(busy), start, 0.15, results),
        )
        for _ in range(n_jobs)
    ]
    for job in jobs:
        job.start()
    start.set()
    outcomes = [results.get(timeout=120) for _ in jobs]
    for job in jobs:
        job.join(timeout=30)
    assert all(status == "ok" for status, _ in outcomes), outcomes
    assert all(job.exitcode == 0 for job in jobs)
    # 12 jobs on 3 GPUs: every GPU was used, none by two jobs at once (checked by the markers)
    assert {device for _, device in outcomes} == set(devices)


def _hold_then_die(lock_dir, ready):
    acquire_slot(lock_dir, ["0"], timeout=10)
    ready.set()
    os.kill(os.getpid(), signal.SIGKILL)  # no release, no clean-up: the kernel drops the flock


def _hold(lock_dir, ready, stop):
    slot = acquire_slot(lock_dir, ["0"], timeout=10)
    ready.set()
    stop.wait(30)
    slot.release()


def test_slot_of_a_live_holder_stays_taken_and_a_crashed_holders_is_freed(tmp_path):
    lock_dir = str(tmp_path / "locks")
    ready, stop = CONTEXT.Event(), CONTEXT.Event()
    holder = CONTEXT.Process(target=_hold, args=(lock_dir, ready, stop))
    holder.start()
    assert ready.wait(30)
    with pytest.raises(GpuSlotTimeoutError, match=rf"pid {holder.pid}"):
        acquire_slot(lock_dir, ["0"], timeout=0.3, poll_seconds=0.05)
    stop.set()
    holder.join(30)

    ready = CONTEXT.Event()
    crashed = CONTEXT.Process(target=_hold_then_die, args=(lock_dir, ready))
    crashed.start()
    assert ready.wait(30)
    crashed.join(30)
    assert crashed.exitcode == -signal.SIGKILL
    with acquire_slot(lock_dir, ["0"], timeout=5) as slot:
        assert slot.device == "0" and slot.held
    assert not slot.held


def test_waiting_job_gets_the_gpu_once_it_is_released(tmp_path):
    waits = []
    first = acquire_slot(tmp_path, ["7"])
    # no second process needed: opening the lock file again makes a new open file description,
    # which flock treats as another holder
    with pytest.raises(GpuSlotTimeoutError):
        acquire_slot(tmp_path, ["7"], timeout=0.2, poll_seconds=0.05, on_wait=waits.append)
    assert len(waits) == 1 and "gpu7" in waits[0]
    first.release()
    second = acquire_slot(tmp_path, ["7"], timeout=1)
    assert second.device == "7"
    second.release()


def test_visible_devices_parsing():
    assert visible_devices(None) is None
    assert visible_devices("") == []
    assert visible_devices("-1") == []
    assert visible_devices("NoDevFiles") == []
    assert visible_devices("2, 3") == ["2", "3"]
    assert visible_devices("GPU-8f2a,GPU-11bc") == ["GPU-8f2a", "GPU-11bc"]


def test_count_nvidia_devices(tmp_path):
    for name in ("nvidia0", "nvidia1", "nvidiactl", "nvidia-uvm", "nvidia12", "null"):
        (tmp_path / name).touch()
    assert count_nvidia_devices(tmp_path) == 3
    assert count_nvidia_devices(tmp_path / "missing") == 0


def test_local_claims_spread_over_the_machines_gpus(tmp_path):
    claims = [claim_gpu({}, lock_dir=tmp_path, n_local_gpus=2, timeout=0) for _ in range(2)]
    assert sorted(claim.device for claim in claims) == ["0", "1"]
    assert [claim.environment() for claim in claims] == [
        {"CUDA_VISIBLE_DEVICES": claim.device} for claim in claims
    ]
    with pytest.raises(GpuSlotTimeoutError):
        claim_gpu({}, lock_dir=tmp_path, n_local_gpus=2, timeout=0)
    claims[0].release()
    again = claim_gpu({}, lock_dir=tmp_path, n_local_gpus=2, timeout=0)
    assert again.device == claims[0].device
    for claim in (again, claims[1]):
        claim.release()


def test_local_claims_keep_to_the_gpus_the_user_made_visible(tmp_path):
    environ = {"CUDA_VISIBLE_DEVICES": "2,5"}
    claims = [claim_gpu(environ, lock_dir=tmp_path, n_local_gpus=8, timeout=0) for _ in range(2)]
    assert sorted(claim.device for claim in claims) == ["2", "5"]
    hidden = claim_gpu({"CUDA_VISIBLE_DEVICES": ""}, lock_dir=tmp_path, n_local_gpus=8)
    assert hidden.device is None and hidden.environment() == {}


def test_no_gpu_on_the_machine_leaves_the_environment_alone(tmp_path):
    claim = claim_gpu({}, lock_dir=tmp_path, n_local_gpus=0)
    assert claim.device is None and claim.environment() == {} and claim.origin == "local"


def test_slurm_assignment_is_used_and_shared_out_within_one_allocation(tmp_path):
    # one SLURM GPU: use it
    single = claim_gpu(
        {"SLURM_JOB_ID": "41", "CUDA_VISIBLE_DEVICES": "0"},
        lock_dir=tmp_path,
        n_local_gpus=8,
        timeout=0,
    )
    assert single.device == "0" and single.origin == "slurm"
    # another allocation on the same node also calls its GPU "0": locks are per SLURM job
    other = claim_gpu(
        {"SLURM_JOB_ID": "42", "CUDA_VISIBLE_DEVICES": "0"},
        lock_dir=tmp_path,
        n_local_gpus=8,
        timeout=0,
    )
    assert other.device == "0"
    # two jobs inside one allocation with two GPUs: one each, never the machine's count
    environ = {"SLURM_JOB_ID": "43", "CUDA_VISIBLE_DEVICES": "0,1"}
    pair = [claim_gpu(environ, lock_dir=tmp_path, n_local_gpus=8, timeout=0) for _ in range(2)]
    assert sorted(claim.device for claim in pair) == ["0", "1"]
    with pytest.raises(GpuSlotTimeoutError):
        claim_gpu(environ, lock_dir=tmp_path, n_local_gpus=8, timeout=0)
    # SLURM gave no GPU: nothing to claim, environment left as SLURM made it
    none = claim_gpu({"SLURM_JOB_ID": "44"}, lock_dir=tmp_path, n_local_gpus=8)
    assert none.device is None and none.environment() == {}


def test_acquire_needs_devices(tmp_path):
    with pytest.raises(ValueError, match="no GPU"):
        acquire_slot(tmp_path, [])


JOB = """
import json, os, sys, types
sys.path.insert(0, {scripts!r})
from _job import start
job = types.SimpleNamespace(log=[{log!r}], rule="train", resources={{"gpu": {gpu}}})
start(job)
print(json.dumps({{"visible": os.environ.get("CUDA_VISIBLE_DEVICES"),
                  "torch_loaded": "torch" in sys.modules}}))
"""


def _run_job(tmp_path, gpu: int, env: dict[str, str]) -> dict:
    code = JOB.format(scripts=str(REPO / "scripts"), log=str(tmp_path / "job.log"), gpu=gpu)
    hidden = ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_ID")  # as on a machine of no GPU, no SLURM
    base = {key: value for key, value in os.environ.items() if key not in hidden}
    out = subprocess.run(
        [sys.executable, "-c", code], env={**base, **env}, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_job_start_exports_its_own_gpu_before_torch_is_loaded(tmp_path):
    """scripts/_job.py: a GPU job (resource gpu > 0) gets a free GPU of MINIMA_GPUS."""
    lock_dir = tmp_path / "locks"
    env = {"MINIMA_GPUS": "2", "MINIMA_GPU_LOCK_DIR": str(lock_dir), "MINIMA_GPU_WAIT": "0"}
    with acquire_slot(lock_dir, ["0"]):  # another job holds GPU 0
        job = _run_job(tmp_path, gpu=1, env=env)
    assert job == {"visible": "1", "torch_loaded": False}
    assert "GPU: GPU 1 of 0,1 (local" in (tmp_path / "job.log").read_text()
    # a CPU job takes no GPU and leaves the environment alone
    assert _run_job(tmp_path, gpu=0, env=env) == {"visible": None, "torch_loaded": False}


def test_small_jobs_share_a_gpu_up_to_its_slots_spread_over_the_gpus(tmp_path):
    """slots_per_gpu 4, one slot per job: 8 jobs on 2 GPUs, 4 each, alternating; a 9th waits."""
    take = dict(slots_per_gpu=4, need=1, timeout=0)
    slots = [acquire_slot(tmp_path, ["0", "1"], **take) for _ in range(8)]
    assert [slot.device for slot in slots[:2]] == ["0", "1"]  # the freer GPU first
    assert sorted(slot.device for slot in slots) == ["0"] * 4 + ["1"] * 4
    assert len({slot.lock_path for slot in slots}) == 8 and all(s.slots == 1 for s in slots)
    with pytest.raises(GpuSlotTimeoutError):
        acquire_slot(tmp_path, ["0", "1"], **take)
    slots[3].release()  # a slot of GPU 1 frees
    again = acquire_slot(tmp_path, ["0", "1"], **take)
    assert again.device == "1"
    for slot in (*slots, again):
        slot.release()


def test_a_whole_gpu_job_never_shares_with_small_ones(tmp_path):
    small = acquire_slot(tmp_path, ["0", "1"], slots_per_gpu=4, need=1, timeout=0)
    whole = acquire_slot(tmp_path, ["0", "1"], slots_per_gpu=4, timeout=0)  # need: all 4
    assert whole.slots == 4 and whole.device != small.device
    with pytest.raises(GpuSlotTimeoutError):  # no GPU is wholly free now
        acquire_slot(tmp_path, ["0", "1"], slots_per_gpu=4, timeout=0)
    # small jobs still fit beside the small one, never on the GPU held whole
    others = [acquire_slot(tmp_path, ["0", "1"], slots_per_gpu=4, need=1, timeout=0) for _ in "abc"]
    assert {slot.device for slot in others} == {small.device}
    with pytest.raises(GpuSlotTimeoutError):
        acquire_slot(tmp_path, ["0", "1"], slots_per_gpu=4, need=1, timeout=0)
    whole.release()
    half = acquire_slot(tmp_path, ["0", "1"], slots_per_gpu=4, need=2, timeout=0)
    assert half.device == whole.device and half.slots == 2
    for slot in (small, *others, half):
        slot.release()


def test_slot_counts_out_of_range_are_refused(tmp_path):
    with pytest.raises(ValueError, match="1 to 4 slots"):
        acquire_slot(tmp_path, ["0"], slots_per_gpu=4, need=5)
    with pytest.raises(ValueError, match="1 to 2 slots"):
        acquire_slot(tmp_path, ["0"], slots_per_gpu=2, need=0)
    with pytest.raises(ValueError, match="at least 1"):
        acquire_slot(tmp_path, ["0"], slots_per_gpu=0)


def test_shared_claim_says_how_many_slots_it_holds(tmp_path):
    claim = claim_gpu({}, lock_dir=tmp_path, n_local_gpus=1, slots_per_gpu=3, need=1, timeout=0)
    assert claim.device == "0" and claim.note.endswith("; 1 of its 3 slots")
    assert claim.environment() == {"CUDA_VISIBLE_DEVICES": "0"}
    claim.release()


def _count_jobs_on_gpus(lock_dir, busy_dir, start, results):
    """A one-slot job: while it holds its slot, one marker per job in its GPU's folder."""
    start.wait()
    slot = acquire_slot(
        lock_dir, ["0", "1"], slots_per_gpu=2, need=1, timeout=60, poll_seconds=0.01
    )
    folder = os.path.join(busy_dir, slot.device)
    os.makedirs(folder, exist_ok=True)
    marker = os.path.join(folder, str(os.getpid()))
    open(marker, "w").close()
    results.put(len(os.listdir(folder)))  # jobs on this GPU now, this one included
    time.sleep(0.2)
    os.unlink(marker)
    slot.release()


def test_concurrent_small_jobs_never_exceed_the_slots_of_a_gpu(tmp_path):
    start, results = CONTEXT.Event(), CONTEXT.Queue()
    busy = tmp_path / "busy"
    busy.mkdir()
    jobs = [
        CONTEXT.Process(
            target=_count_jobs_on_gpus, args=(str(tmp_path / "l"), str(busy), start, results)
        )
        for _ in range(8)
    ]
    for job in jobs:
        job.start()
    start.set()
    counts = [results.get(timeout=120) for _ in jobs]
    for job in jobs:
        job.join(timeout=30)
    assert all(job.exitcode == 0 for job in jobs)
    assert max(counts) <= 2  # two slots per GPU: never three jobs on one
