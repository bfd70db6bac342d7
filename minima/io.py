"""Atomic file writes: a job killed mid-write never leaves a half-written output behind.

Every writer goes to a temporary file in the destination's folder and renames it into place
(``os.replace`` is atomic on one file system), so a reader sees the old file or the new one.
A ``kill -9`` during the write leaves the temporary file (``.<name>.<random>.tmp``) behind;
:func:`remove_stale_temporaries` clears those when the job runs again. Files get the
permissions the umask gives, like any file the user creates. JSON is written strictly: a
non-finite number becomes ``null`` and the record says where (key ``non_finite``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from minima.faults import fault_point

TMP_SUFFIX = ".tmp"


@contextlib.contextmanager
def atomic_path(destination: str | os.PathLike[str], *, fault: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``destination``; rename it there if the block succeeds.

    ``fault`` names this write for fault injection (steps ``<fault>:written``, before the
    rename, and ``<fault>:replaced``, after it; see ``minima.faults``).
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{destination.name}.", suffix=TMP_SUFFIX, dir=destination.parent
    )
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # after the write: mkstemp makes 0600, and some writers (safetensors) recreate the file
        os.chmod(tmp_path, 0o666 & ~_umask())
        if fault:
            fault_point(f"{fault}:written")
        os.replace(tmp_path, destination)
        if fault:
            fault_point(f"{fault}:replaced")
    finally:
        tmp_path.unlink(missing_ok=True)


def remove_stale_temporaries(destinations: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Delete the temporary files a killed writer of ``destinations`` left; return them.

    Call it only where no other live process writes these destinations (a job, after taking
    its run's lock), since a live writer's temporary file looks the same.
    """
    removed = []
    for destination in destinations:
        destination = Path(destination)
        if destination.parent.is_dir():
            for tmp in destination.parent.glob(f".{destination.name}.*{TMP_SUFFIX}"):
                tmp.unlink(missing_ok=True)
                removed.append(tmp)
    return removed


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(
    path: str | os.PathLike[str], data: Mapping[str, Any], *, fault: str | None = None
) -> None:
    """Write ``data`` as indented, key-sorted, strict JSON, atomically.

    NaN and infinities are not JSON: each becomes ``null``, and the key ``non_finite`` maps
    its dotted key path to what it was (``"nan"``, ``"inf"``, ``"-inf"``), so a reader knows
    a missing number from a non-finite one (the record's own status says why, e.g. diverged).
    """
    plain = json.loads(json.dumps(data, default=_json_default))
    replaced: dict[str, str] = {}
    clean = _finite(plain, "", replaced)
    if replaced:
        clean["non_finite"] = {**clean.get("non_finite", {}), **replaced}
    text = json.dumps(clean, indent=2, sort_keys=True, allow_nan=False)
    with atomic_path(path, fault=fault) as tmp:
        tmp.write_text(text + "\n")


def _finite(value: Any, where: str, replaced: dict[str, str]) -> Any:
    """``value`` with every non-finite float replaced by None (recorded in ``replaced``)."""
    if isinstance(value, float) and not math.isfinite(value):
        replaced[where or "."] = str(value)
        return None
    if isinstance(value, dict):
        return {
            k: _finite(v, f"{where}.{k}" if where else str(k), replaced) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_finite(v, f"{where}[{i}]", replaced) for i, v in enumerate(value)]
    return value


def read_json(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a JSON file into a dict."""
    return json.loads(Path(path).read_text())


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
