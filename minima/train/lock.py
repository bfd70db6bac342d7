"""One live job per run: a lock file that names its holder, and refuses a second job at once.

Two jobs training the same run (a second Snakemake after ``--unlock`` while the first one's
SLURM job still runs) would overwrite each other's resume state and outputs. The first job
therefore holds ``<run>/.lock``: an exclusive ``flock`` (dropped by the kernel however the
holder dies) plus a JSON record of pid, host and start time, whose modification time a
background thread refreshes (the heartbeat). A second job refuses with the run and the holder.

A lock left by a dead holder is stale and taken over: on the same host when its pid is gone,
from another host (where ``flock`` may not reach, e.g. some NFS set-ups) when its heartbeat is
older than ``stale_seconds``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger("minima.train")

HEARTBEAT_SECONDS = 30.0
STALE_SECONDS = 300.0


class RunLockedError(RuntimeError):
    """Another live job holds the run."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _holder(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}


def _describe(holder: dict[str, Any], age: float | None) -> str:
    beat = f", last heartbeat {age:.0f} s ago" if age is not None else ""
    return (
        f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')} "
        f"(started {holder.get('started', '?')}{beat})"
    )


@contextlib.contextmanager
def run_lock(
    path: str | Path,
    run: str,
    *,
    heartbeat_seconds: float = HEARTBEAT_SECONDS,
    stale_seconds: float = STALE_SECONDS,
) -> Iterator[dict[str, Any]]:
    """Hold the lock file ``path`` of run ``run`` for the block; yield the record written.

    Raises:
        RunLockedError: a live job holds it; the message names the run and the holder.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    host = socket.gethostname()
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = _holder(path)
            raise RunLockedError(
                f"run {run} is being trained by another live job: {_describe(holder, None)} "
                f"holds {path}. Wait for it to end (or stop it) before running this one again."
            ) from None
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break  # ours: not a file its last holder unlinked before we locked it
        os.close(fd)
    try:
        holder = _holder(path)
        if holder and holder.get("pid") != os.getpid():
            age = time.time() - os.fstat(fd).st_mtime
            if holder.get("host") == host and _pid_alive(int(holder.get("pid", -1))):
                pass  # same host, flock free, pid alive: a reused pid, the holder is gone
            elif holder.get("host") != host and age < stale_seconds:
                raise RunLockedError(
                    f"run {run} is being trained by another job: {_describe(holder, age)} "
                    f"holds {path}. If that job is dead, delete the file, or wait "
                    f"{stale_seconds - age:.0f} s for the lock to go stale."
                )
            log.warning("run %s: taking over the stale lock of %s", run, _describe(holder, age))
        record = {
            "pid": os.getpid(),
            "host": host,
            "run": run,
            "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        stop = threading.Event()
        beat = threading.Thread(
            target=_heartbeat, args=(fd, stop, heartbeat_seconds), name="run-lock", daemon=True
        )
        beat.start()
        try:
            yield record
        finally:
            stop.set()
            beat.join()
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    finally:
        os.close(fd)


def _heartbeat(fd: int, stop: threading.Event, every: float) -> None:
    while not stop.wait(every):
        with contextlib.suppress(OSError):
            os.utime(fd)
