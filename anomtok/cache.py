"""The user cache directory and a sha256 cache keyed by (path, size, mtime), written atomically."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

__all__ = ["cache_dir", "file_sha256", "file_fingerprint", "atomic_write_bytes", "atomic_write_text", "atomic_path"]

FINGERPRINT_SPAN = 1 << 20  # bytes hashed at each end of a file by file_fingerprint


def cache_dir() -> Path:
    """``$ANOMTOK_CACHE``, else ``$XDG_CACHE_HOME/anomtok``, else ``~/.cache/anomtok``."""
    env = os.environ.get("ANOMTOK_CACHE")
    if env:
        base = Path(env)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = (Path(xdg) if xdg else Path.home() / ".cache") / "anomtok"
    base.mkdir(parents=True, exist_ok=True)
    return base


class atomic_path:
    """Context manager yielding a temporary path next to ``target``; renamed onto it on success,
    removed on error. A reader never sees a half-written file."""

    def __init__(self, target: str | os.PathLike):
        self.target = Path(target)

    def __enter__(self) -> Path:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{self.target.name}.", suffix=".tmp", dir=self.target.parent)
        os.close(fd)
        self.tmp = Path(name)
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(self.tmp, 0o666 & ~umask)  # mkstemp makes 0600; outputs are ordinary files
            os.replace(self.tmp, self.target)
        else:
            self.tmp.unlink(missing_ok=True)


def atomic_write_bytes(target: str | os.PathLike, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(target: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(target, text.encode("utf-8"))


def _hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file, remembered in the cache by (real path, size, mtime) so it is paid once."""
    p = Path(path).resolve()
    st = p.stat()
    key = f"{p}|{st.st_size}|{st.st_mtime_ns}"
    store = cache_dir() / "sha256.json"
    try:
        known = json.loads(store.read_text())
    except (OSError, ValueError):
        known = {}
    if key in known:
        return known[key]
    digest = _hash_file(p)
    known[key] = digest
    try:
        atomic_write_text(store, json.dumps(known))
    except OSError:
        pass  # a read-only cache only costs speed
    return digest


def file_fingerprint(path: str | os.PathLike) -> str:
    """A cheap identity of a file: sha256 over its size, mtime (ns) and its first and last MiB.

    Reads at most 2 MiB whatever the file's size (a 40 GB GGUF is not read in full, as a sha256
    would). It changes when the file is rewritten (mtime), resized, or its header (GGUF and
    safetensors keep the tensor table there) or tail change; use ``file_sha256`` for a proof."""
    p = Path(path)
    st = p.stat()
    h = hashlib.sha256(f"fp1|{st.st_size}|{st.st_mtime_ns}|".encode())
    with p.open("rb") as f:
        h.update(f.read(FINGERPRINT_SPAN))
        if st.st_size > 2 * FINGERPRINT_SPAN:
            f.seek(st.st_size - FINGERPRINT_SPAN)
        h.update(f.read(FINGERPRINT_SPAN))
    return "fp1:" + h.hexdigest()
