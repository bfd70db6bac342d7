"""One GPU per job when one machine runs several GPU jobs at once.

Snakemake limits how many GPU jobs run at once (``--resources gpu=N``) but does not say which
GPU each one gets, so every job would land on GPU 0. A job therefore takes a *slot*: an
exclusive ``flock`` on a per-GPU lock file, tried GPU by GPU, and exports the GPU it holds as
``CUDA_VISIBLE_DEVICES`` before torch initializes CUDA. The kernel drops a ``flock`` when its
holder exits, however it exits (crash, ``kill -9``), so a slot can never stay taken by a dead job.

Under SLURM the job uses the GPUs SLURM assigned (its ``CUDA_VISIBLE_DEVICES``). When one SLURM
job runs several of our jobs (a Snakemake group job: N runs, N GPUs), they share out those GPUs
with the same locks, in a lock folder private to that SLURM job: GPU ids are per allocation, so
two allocations on one node may both call their GPU "0".

Small jobs may share a GPU: with ``slots_per_gpu`` S > 1 each GPU has S slot lock files and a
job takes ``need`` of them on one GPU (1: a quarter of the GPU when S = 4; S: the whole GPU), so
up to S LeNet runs share a GPU while a ResNet run holds one alone. A job goes to the GPU with
the most free slots, which spreads jobs over the GPUs before stacking them.

Pure standard library (no torch import: it must run before CUDA is initialized).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

VISIBLE = "CUDA_VISIBLE_DEVICES"


class GpuSlotTimeoutError(TimeoutError):
    """No GPU slot became free in time (more GPU jobs at once than GPUs?)."""


def visible_devices(value: str | None) -> list[str] | None:
    """The entries of a ``CUDA_VISIBLE_DEVICES`` value (indices or UUIDs).

    ``None`` when the variable is unset (every GPU visible); ``[]`` when it hides all GPUs
    (empty, or CUDA's ``-1`` / SLURM's ``NoDevFiles``).
    """
    if value is None:
        return None
    entries = [entry.strip() for entry in value.split(",") if entry.strip()]
    if not entries or entries[0] in ("-1", "NoDevFiles"):
        return []
    return entries


def count_nvidia_devices(dev_dir: str | Path) -> int:
    """Number of NVIDIA GPUs by their device nodes (``nvidia0``, ``nvidia1``, ...) in ``dev_dir``.

    Counted without CUDA, which must not be initialized before the slot is chosen.
    """
    pattern = re.compile(r"nvidia\d+")
    try:
        return sum(1 for name in os.listdir(dev_dir) if pattern.fullmatch(name))
    except FileNotFoundError:
        return 0


@dataclass
class GpuSlot:
    """An exclusively held GPU: ``device`` is its entry for ``CUDA_VISIBLE_DEVICES``."""

    device: str
    lock_path: Path
    _fd: int | None = field(default=None, repr=False)
    _more_fds: list[int] = field(default_factory=list, repr=False)  # further slots held

    @property
    def held(self) -> bool:
        return self._fd is not None

    @property
    def slots(self) -> int:
        """Slots of the GPU this job holds (1 without sharing)."""
        return 0 if self._fd is None else 1 + len(self._more_fds)

    def release(self) -> None:
        """Give the GPU back (also happens on process exit, however the process ends)."""
        for fd in self._more_fds:
            os.close(fd)
        self._more_fds = []
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor drops the flock
            self._fd = None

    def __enter__(self) -> GpuSlot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _lock_name(device: str, host: str, slot: int | None = None) -> str:
    # the host in the name keeps machines apart should the folder be on a shared file system
    name = f"{host}-gpu{device}" if slot is None else f"{host}-gpu{device}-slot{slot}"
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    return f"{safe}.lock"


def slot_paths(lock_dir: Path, device: str, host: str, slots_per_gpu: int) -> list[Path]:
    """The lock files of one GPU's slots (one file, named by the GPU, without sharing)."""
    if slots_per_gpu == 1:
        return [lock_dir / _lock_name(device, host)]
    return [lock_dir / _lock_name(device, host, slot) for slot in range(slots_per_gpu)]


def _make_lock_dir(lock_dir: Path) -> None:
    """Create the folder writable by every user, since users share a machine's GPUs."""
    if lock_dir.is_dir():
        return
    lock_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(PermissionError):  # made by another user in the meantime
        os.chmod(lock_dir, 0o1777)


def _try_lock(path: Path) -> int | None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        os.close(fd)
        if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return None
        raise
    # who holds it, for the message of a job left waiting
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _holders(paths: Sequence[Path]) -> str:
    parts = []
    for path in paths:
        try:
            pid = path.read_text().strip() or "?"
        except OSError:
            pid = "?"
        parts.append(f"{path.name} (pid {pid})")
    return ", ".join(parts)


def _take(devices: Sequence[str], paths: Sequence[Sequence[Path]], need: int) -> GpuSlot | None:
    """``need`` free slots of the GPU with the most free slots (the first such GPU), or None."""
    best_device, best_held = None, []
    for device, slot_files in zip(devices, paths, strict=True):
        held = [(path, fd) for path in slot_files if (fd := _try_lock(path)) is not None]
        if len(held) >= need and len(held) > len(best_held):
            held, (best_device, best_held) = best_held, (device, held)
        for _, fd in held:  # slots of a GPU not chosen
            os.close(fd)
        if len(best_held) == len(slot_files):
            break  # a wholly free GPU: none can be freer
    if best_device is None:
        return None
    for _, fd in best_held[need:]:
        os.close(fd)
    (first_path, first_fd), *more = best_held[:need]
    return GpuSlot(best_device, first_path, first_fd, [fd for _, fd in more])


def acquire_slot(
    lock_dir: str | Path,
    devices: Sequence[str],
    *,
    slots_per_gpu: int = 1,
    need: int | None = None,
    timeout: float | None = None,
    poll_seconds: float = 0.2,
    host: str | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> GpuSlot:
    """Hold a free GPU of ``devices`` (entries of ``CUDA_VISIBLE_DEVICES``), or ``need`` of the
    ``slots_per_gpu`` slots of one.

    Args:
        lock_dir: Folder of the lock files (created if missing); local to the machine.
        devices: GPUs to choose from, in order of preference among equally free ones.
        slots_per_gpu: Jobs of one slot each that may share a GPU (1: no sharing).
        need: Slots this job takes on its GPU, 1 to ``slots_per_gpu`` (default: all of them,
            the GPU to itself).
        timeout: Seconds to wait for a free GPU; ``None`` waits for ever.
        poll_seconds: Pause between rounds while every GPU is held.
        host: Machine name in the lock file names (default: this host's name).
        on_wait: Called once, with a message naming the holders, when the job has to wait.

    Raises:
        ValueError: ``devices`` is empty, or ``need`` is not within 1 to ``slots_per_gpu``.
        GpuSlotTimeoutError: No GPU became free within ``timeout``.
    """
    if not devices:
        raise ValueError("no GPU to choose from")
    if slots_per_gpu < 1:
        raise ValueError(f"slots_per_gpu must be at least 1, not {slots_per_gpu}")
    need = slots_per_gpu if need is None else need
    if not 1 <= need <= slots_per_gpu:
        raise ValueError(f"a job takes 1 to {slots_per_gpu} slots of a GPU, not {need}")
    lock_dir = Path(lock_dir)
    _make_lock_dir(lock_dir)
    host = host or socket.gethostname()
    per_gpu = [slot_paths(lock_dir, device, host, slots_per_gpu) for device in devices]
    paths = [path for slot_files in per_gpu for path in slot_files]
    deadline = None if timeout is None else time.monotonic() + timeout
    warned = False
    while True:
        slot = _take(devices, per_gpu, need)
        if slot is not None:
            return slot
        if deadline is not None and time.monotonic() >= deadline:
            raise GpuSlotTimeoutError(
                f"all {len(devices)} GPU slot(s) in {lock_dir} stayed taken for {timeout} s: "
                f"{_holders(paths)}; run fewer GPU jobs at once (--resources gpu_slots=N) "
                "than there are GPU slots"
            )
        if on_wait is not None and not warned:
            on_wait(f"waiting for a free GPU; all are held: {_holders(paths)}")
            warned = True
        time.sleep(poll_seconds)


@dataclass
class GpuClaim:
    """The GPU a job will use, and why.

    ``device`` is what to export as ``CUDA_VISIBLE_DEVICES`` (``None``: leave the environment
    as it is: no GPU to hand out); ``slot`` holds its lock for as long as the job runs.
    """

    device: str | None
    origin: str
    note: str
    slot: GpuSlot | None = None

    def environment(self) -> dict[str, str]:
        """The variables to set before torch starts."""
        return {} if self.device is None else {VISIBLE: self.device}

    def release(self) -> None:
        if self.slot is not None:
            self.slot.release()


def claim_gpu(
    environ: Mapping[str, str],
    *,
    lock_dir: str | Path,
    n_local_gpus: int,
    slots_per_gpu: int = 1,
    need: int | None = None,
    timeout: float | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> GpuClaim:
    """Choose (and lock) the one GPU a GPU job runs on.

    Args:
        environ: The job's environment (``SLURM_JOB_ID``, ``CUDA_VISIBLE_DEVICES``).
        lock_dir: Folder for the lock files; under SLURM a sub-folder per SLURM job is used.
        n_local_gpus: GPUs of this machine, used outside SLURM when ``CUDA_VISIBLE_DEVICES``
            is unset (set, it lists the GPUs to share out).
        slots_per_gpu: Jobs that may share one GPU (config resources.slots_per_gpu).
        need: Slots of its GPU this job takes (default: all, the GPU to itself).
        timeout: Seconds to wait for a free GPU (``None``: for ever).
        on_wait: Called once with a message if the job has to wait.
    """
    preset = visible_devices(environ.get(VISIBLE))
    job_id = environ.get("SLURM_JOB_ID")
    if job_id is not None:
        if not preset:
            return GpuClaim(None, "slurm", f"SLURM job {job_id} was assigned no GPU")
        lock_dir = Path(lock_dir) / f"slurm-{re.sub(r'[^A-Za-z0-9_.-]', '_', job_id)}"
        origin, candidates = "slurm", preset
    else:
        origin = "local"
        candidates = preset if preset is not None else [str(i) for i in range(n_local_gpus)]
        if not candidates:
            return GpuClaim(None, origin, "no GPU on this machine (or all hidden)")
    slot = acquire_slot(
        lock_dir,
        candidates,
        slots_per_gpu=slots_per_gpu,
        need=need,
        timeout=timeout,
        on_wait=on_wait,
    )
    note = f"GPU {slot.device} of {','.join(candidates)} ({origin}; lock {slot.lock_path})"
    if slots_per_gpu > 1:
        note += f"; {slot.slots} of its {slots_per_gpu} slots"
    return GpuClaim(slot.device, origin, note, slot)
