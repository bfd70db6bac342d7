"""Start-up shared by the rule scripts: import path of the library, logging into the log, and
for GPU jobs the one GPU the job may use (chosen before any script imports torch).

Snakemake puts this folder on ``sys.path`` when it runs a script, so ``from _job import start``
works in every script; the library itself stays free of Snakemake.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# Local GPU slots (docs/cluster.md). Under SLURM the GPUs SLURM assigned are used instead.
GPUS_ENV = "MINIMA_GPUS"  # GPUs of this machine; unset: counted from /dev/nvidia<N>
LOCK_DIR_ENV = "MINIMA_GPU_LOCK_DIR"  # lock folder; unset: <tmp>/minima-gpu-slots
WAIT_ENV = "MINIMA_GPU_WAIT"  # seconds a job may wait for a free GPU; unset: no limit
# Rules whose library call removes its killed predecessor's temporary files itself, once it
# holds the run's lock (a second live job must not delete the first one's writes).
OWN_CLEANUP = ("train", "sweep_train")
_gpu_claim = None  # held for the job's lifetime: its lock is the job's claim on the GPU


def start(snakemake) -> logging.Logger:
    """Send INFO and above to the rule's log file, warnings also to the terminal.

    An uncaught error writes its traceback to the log and its one-line message to the terminal,
    so a failing job says why without making the user open the log. Temporary files a killed
    run of the job left next to its outputs are removed. A job that asks for a GPU (resource
    ``gpu`` > 0) first takes one of its own (see ``minima.gpu_slots``).
    """
    log_path = Path(snakemake.log[0])
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_file = open(log_path, "w", buffering=1)  # noqa: SIM115 - lives as long as the job
    terminal = sys.stderr
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    to_file = logging.StreamHandler(log_file)
    to_file.setFormatter(fmt)
    to_terminal = logging.StreamHandler(terminal)
    to_terminal.setLevel(logging.WARNING)
    to_terminal.setFormatter(fmt)
    root = logging.getLogger()
    root.handlers[:] = [to_file, to_terminal]
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    sys.stderr = log_file

    def report(kind, value, tb):
        log_file.write("".join(traceback.format_exception(kind, value, tb)))
        terminal.write(f"{kind.__name__}: {value}\n(full traceback in {log_path})\n")

    sys.excepthook = report
    log = logging.getLogger(f"minima.{snakemake.rule}")
    if snakemake.rule not in OWN_CLEANUP:
        from minima.io import remove_stale_temporaries

        removed = remove_stale_temporaries(snakemake.output)
        if removed:
            log.info("removed temporary files of a killed job: %s", removed)
    if snakemake.resources.get("gpu", 0) > 0:
        config = getattr(snakemake, "config", None) or {}
        slots_per_gpu = config.get("resources", {}).get("slots_per_gpu", 1)
        need = snakemake.resources.get("gpu_slots") or slots_per_gpu
        _take_gpu(log, slots_per_gpu, min(need, slots_per_gpu))
    return log


def _take_gpu(log: logging.Logger, slots_per_gpu: int = 1, need: int = 1) -> None:
    """Export this job's own GPU as CUDA_VISIBLE_DEVICES (torch is not imported yet), or
    `need` of its `slots_per_gpu` slots where small jobs share GPUs (config resources)."""
    global _gpu_claim
    from minima.gpu_slots import claim_gpu, count_nvidia_devices

    n_gpus, wait = os.environ.get(GPUS_ENV), os.environ.get(WAIT_ENV)
    _gpu_claim = claim_gpu(
        os.environ,
        lock_dir=os.environ.get(LOCK_DIR_ENV) or Path(tempfile.gettempdir()) / "minima-gpu-slots",
        n_local_gpus=int(n_gpus) if n_gpus else count_nvidia_devices("/dev"),
        slots_per_gpu=slots_per_gpu,
        need=need,
        timeout=float(wait) if wait else None,
        on_wait=log.warning,
    )
    os.environ.update(_gpu_claim.environment())
    log.info("GPU: %s", _gpu_claim.note)
