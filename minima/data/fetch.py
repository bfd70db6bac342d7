"""Getting raw files onto disk: from ``data_root``, ``file://`` mirrors or a download.

The download itself is torchvision's (its dataset classes' ``download`` and
``download_url``, md5 checks included). This module adds what an offline machine needs:
a quick probe of every mirror and socket timeouts so a missing dataset fails within seconds,
and an error that says which config key to set and which files to put where.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from .checksums import ChecksumError, file_md5


class DatasetUnavailableError(RuntimeError):
    """The raw files of a dataset are neither on disk nor obtainable now."""


def unavailable_message(
    name: str,
    reason: str,
    expected: Sequence[tuple[str, str]],
    alternative: tuple[str, str] | None = None,
) -> str:
    """The error text for a missing dataset: dataset, reason, config keys, files and where.

    Args:
        name: Dataset name.
        reason: Why it is unavailable (one clause).
        expected: ``(path relative to data_root, md5)`` of the files that would do.
        alternative: One file that would do instead of all of ``expected`` (an archive).
    """
    lines = [
        f"Dataset {name!r} is not available: {reason}.",
        "Set the config key `data_root` to a folder that holds its raw files in torchvision's "
        "layout (then nothing is downloaded; only the md5s are verified):",
        *(f"    <data_root>/{rel}    (md5 {md5})" for rel, md5 in expected),
    ]
    if alternative is not None:
        lines += [
            "  or, instead of these, the archive:",
            f"    <data_root>/{alternative[0]}    (md5 {alternative[1]})",
        ]
    lines += [
        "or set `mirrors` to base URLs (https:// or file://) that serve these file names, "
        "or enable `download` on a machine with network access.",
    ]
    return "\n".join(lines)


def is_file_url(url: str) -> bool:
    """Whether ``url`` is a ``file://`` URL (a mirror on a local or mounted disk)."""
    return urllib.parse.urlparse(url).scheme == "file"


def file_url_path(url: str) -> Path:
    """The local path of a ``file://`` URL."""
    return Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))


def _probe(url: str, timeout: float) -> str | None:
    """``None`` if ``url`` can be fetched, else why not (one line)."""
    if is_file_url(url):
        path = file_url_path(url)
        return None if path.is_file() else f"{path} does not exist"
    request = urllib.request.Request(url, method="HEAD", headers={"User-Agent": "pytorch/vision"})
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            return None
    except urllib.error.HTTPError as err:
        return f"HTTP {err.code} {err.reason}"
    except (OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        return f"{type(reason).__name__}: {reason}"


def probe_mirrors(
    mirrors: Sequence[str], filename: str, timeout: float
) -> tuple[list[str], list[str]]:
    """Split mirrors into those that serve ``filename`` and problems, within ``timeout`` s.

    An http(s) mirror is asked for ``filename`` with a HEAD request (through the proxy
    urllib finds in the environment, redirects followed); a ``file://`` mirror must hold
    the file. The probes run in parallel daemon threads, so neither a dropped packet, a
    slow DNS lookup nor a silent proxy holds the caller longer than about ``timeout``.

    Returns:
        ``(mirrors that answered, in the given order; one line per other mirror)``.
    """
    results: dict[str, str | None] = {}

    def probe(url: str) -> None:
        results[url] = _probe(url + filename, timeout)

    threads = [threading.Thread(target=probe, args=(url,), daemon=True) for url in mirrors]
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()) + 0.1)
    reachable = [url for url in mirrors if url in results and results[url] is None]
    problems = [
        f"{url}: {results.get(url) or f'no answer within {timeout:g} s'}"
        for url in mirrors
        if url not in reachable
    ]
    return reachable, problems


@contextmanager
def socket_timeout(seconds: float) -> Iterator[None]:
    """Give every socket opened inside the block a timeout (torchvision sets none)."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def copy_verified(src: Path, dest: Path, md5: str) -> None:
    """Copy ``src`` to ``dest`` and check the copy's md5 (so the file read later is checked).

    Raises:
        ChecksumError: the copy's md5 is not ``md5``; the copy is removed.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    shutil.copyfile(src, tmp)
    actual = file_md5(tmp)
    if actual != md5:
        tmp.unlink()
        raise ChecksumError(f"checksum mismatch for {src}: expected md5 {md5}, got {actual}")
    tmp.replace(dest)


def stage_from_file_mirrors(
    mirrors: Sequence[str], files: Sequence[tuple[str, str]], dest_dir: Path
) -> None:
    """Copy files that ``file://`` mirrors hold into ``dest_dir``, md5-checked.

    torchvision's downloader cannot read ``file://`` URLs itself (its progress bar needs
    an HTTP ``Content-Length``), so local mirrors are copied here; torchvision then finds
    the files present, checks their md5 again and extracts them. Files already present
    with the right md5 are left alone; http(s) mirrors are left to torchvision.
    """
    for filename, md5 in files:
        dest = dest_dir / filename
        if dest.is_file() and file_md5(dest) == md5:
            continue
        for mirror in mirrors:
            if not is_file_url(mirror):
                continue
            src = file_url_path(mirror) / filename
            if src.is_file():
                copy_verified(src, dest, md5)
                break
