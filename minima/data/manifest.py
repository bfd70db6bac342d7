"""Dataset manifests: where a prepared dataset's raw files are, portable across directories.

The ``download`` rule writes ``results/data/<dataset>/manifest.json`` next to the raw folder.
Its ``root`` is stored relative to the manifest's own folder when the raw files live under
it, so a results tree still works when it is moved, copied to a cluster, or read from
another working directory (a job started from the repository root reading a scratch run).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from minima.io import read_json, write_json


def write_manifest(path: str | Path, manifest: dict[str, Any]) -> None:
    """Write ``manifest`` to ``path`` atomically, its ``root`` relative to ``path``'s folder."""
    path = Path(path)
    root = Path(manifest["root"]).absolute()
    folder = path.parent.absolute()
    if root == folder or folder in root.parents:
        manifest = {**manifest, "root": os.path.relpath(root, folder)}
    else:
        manifest = {**manifest, "root": str(root)}
    write_json(path, manifest)


def manifest_root(path: str | Path) -> Path:
    """The raw-file folder that the manifest at ``path`` describes (relative roots resolved)."""
    path = Path(path)
    root = Path(read_json(path)["root"])
    return root if root.is_absolute() else path.parent / root
