"""The user cache directory and a sha256 cache keyed by (path, size, mtime), written atomically."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path

__all__ = [
    "cache_dir",
    "file_sha256",
    "file_fingerprint",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_path",
    "make_temp",
    "commit_temp",
    "remove_stale_temps",
]

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


TEMP_SUFFIX = ".tmp"
# ".{name}.{pid}.{8 characters of mkstemp}.tmp": the pid says whose it is (see remove_stale_temps)
_TEMP_NAME = re.compile(r"^\..+\.(\d+)\.[a-z0-9_]{8}\.tmp$")


def _pid_alive(pid: int) -> bool:
    """A process with this id runs on this machine (when unsure: yes, so nothing live is removed)."""
    if pid <= 0 or os.name == "nt":  # os.kill(pid, 0) would terminate it on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: alive, someone else's
        return True
    return True


def remove_stale_temps(folder: str | os.PathLike, depth: int = 0) -> list[Path]:
    """Remove the temporary files that a writer killed mid-write (SIGKILL, power loss) left in
    ``folder`` (and its subfolders ``depth`` levels down): only names of our own pattern
    ``.{name}.{pid}.XXXXXXXX.tmp`` whose pid is no running process on this machine, so a
    concurrent run's temporaries are left alone. Returns what it removed."""
    removed: list[Path] = []
    root = Path(folder)
    try:
        entries = list(os.scandir(root))
    except OSError:
        return removed
    for entry in entries:
        try:
            if depth > 0 and entry.is_dir(follow_symlinks=False):
                removed += remove_stale_temps(entry.path, depth - 1)
                continue
            m = _TEMP_NAME.match(entry.name)
            if m is None or not entry.is_file(follow_symlinks=False) or _pid_alive(int(m.group(1))):
                continue
            os.unlink(entry.path)
            removed.append(root / entry.name)
        except OSError:
            continue  # gone meanwhile, or not ours to remove: harmless
    return removed


def _test_kill_hook(target: Path, when: str = "") -> None:
    """Fault injection for tests/test_faults.py, inactive unless ``ANOMTOK_TEST_KILL_AT`` is set:
    this process sends itself ``ANOMTOK_TEST_KILL_SIGNAL`` (SIGINT, SIGTERM or SIGKILL; default
    SIGKILL) right after the temporary of the file named ``ANOMTOK_TEST_KILL_AT`` was created, or,
    for ``<name>:renamed``, right after that temporary was renamed onto the file."""
    at = os.environ.get("ANOMTOK_TEST_KILL_AT")
    if at and at == target.name + when:
        import signal

        signal.raise_signal(getattr(signal, os.environ.get("ANOMTOK_TEST_KILL_SIGNAL", "SIGKILL")))


def make_temp(target: str | os.PathLike) -> Path:
    """Create an empty temporary file next to ``target`` (creating its folder), named
    ``.{name}.{pid}.XXXXXXXX.tmp``, after removing the stale temporaries of dead writers there."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target.parent)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=TEMP_SUFFIX, dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        _test_kill_hook(target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def commit_temp(tmp: Path, target: str | os.PathLike) -> None:
    """Give a finished temporary ordinary permissions and rename it onto ``target`` (removed if
    that fails)."""
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; outputs are ordinary files
        os.replace(tmp, target)
        _test_kill_hook(Path(target), ":renamed")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class atomic_path:
    """Context manager yielding a temporary path next to ``target``; renamed onto it on success,
    removed on any error, KeyboardInterrupt and SystemExit included. A reader never sees a
    half-written file; a temporary that a killed process could not remove is removed by the next
    write into that folder (``remove_stale_temps``)."""

    def __init__(self, target: str | os.PathLike):
        self.target = Path(target)

    def __enter__(self) -> Path:
        self.tmp = make_temp(self.target)
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            commit_temp(self.tmp, self.target)
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
