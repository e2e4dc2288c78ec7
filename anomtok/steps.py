"""The step cache of a report folder: a step is reused only when what it was computed from is
unchanged.

Each finished step writes ``.steps/<step>.json`` last, after its outputs: its **key** (its own
settings, plus fingerprints of its inputs: the model's files, upstream steps' output files) and
the size and sha256 of every output it wrote. A later run reuses the step only when the key it
computes now is equal and every recorded output is still there with the same size and hash, so
re-ranking with other settings invalidates every step that read the ranking, a changed model file
invalidates everything, and a truncated or swapped output is recomputed instead of trusted.

A step's outputs are committed together (``StepCache.writer``): each is written to a temporary
file, then the old marker is removed, the temporaries are renamed onto their names, and the new
marker is written last. Killed while writing, a step leaves its previous files and marker as they
were; killed while renaming, it leaves no marker, so a half-old, half-new folder is never reused.
Standalone commands (``anomtok rank -o D``) commit through the same writer and key
(``rank_key``), so ``scan`` reuses what they wrote, and only that.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ._version import __version__

__all__ = ["StepCache", "StepWriter", "model_fingerprint", "files_digest", "rank_key"]

MARKER_VERSION = 2


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def files_digest(root: Path, rel_paths: Iterable[str]) -> str | None:
    """sha256 over (name, content hash) of files under ``root``; None when one is missing."""
    h = hashlib.sha256()
    for rel in rel_paths:
        p = root / rel
        if not p.is_file():
            return None
        h.update(f"{rel}\0{_sha256(p)}\0".encode())
    return h.hexdigest()


def model_fingerprint(provenance: Mapping[str, Any]) -> str:
    """sha256 over the model's files as ``load`` described them (path, size, mtime, fingerprint or
    sha256) and the tensors read: a changed or replaced model file changes it."""
    files = [
        [f.get("path"), f.get("size"), f.get("mtime_ns"), f.get("fingerprint") or f.get("sha256")]
        for f in provenance.get("files", [])
    ]
    blob = json.dumps(
        {"files": files, "input": provenance.get("input_tensor"), "output": provenance.get("output_tensor")},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def rank_key(provenance: Mapping[str, Any], options: Any) -> dict[str, Any]:
    """The key of the ``rank`` step, the same for ``anomtok rank -o`` and ``scan``: the version,
    the model as named and as fingerprinted, and every ranking setting (a ``RankOptions``)."""
    is_instance = dataclasses.is_dataclass(options) and not isinstance(options, type)
    opts = dataclasses.asdict(options) if is_instance else dict(options)
    return {
        "settings": {"anomtok_version": __version__, "source": provenance.get("source"), "options": opts},
        "model": model_fingerprint(provenance),
        "reads": {},
    }


def _canonical(obj: Any) -> Any:
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


class StepCache:
    """Markers under ``out/.steps``; ``force`` makes every step run again."""

    def __init__(self, out: Path, force: bool = False):
        self.out = Path(out)
        self.dir = self.out / ".steps"
        self.force = force

    def _marker(self, step: str) -> dict[str, Any] | None:
        try:
            m = json.loads((self.dir / f"{step}.json").read_text("utf-8"))
        except (OSError, ValueError):
            return None  # missing or damaged marker: the step simply runs again
        return m if isinstance(m, dict) and m.get("marker_version") == MARKER_VERSION else None

    def done(self, step: str, key: Mapping[str, Any]) -> bool:
        """The step ran with this very key and its outputs are exactly as it left them."""
        if self.force:
            return False
        m = self._marker(step)
        if m is None or m.get("key") != _canonical(key):
            return False
        outputs = m.get("outputs")
        if not isinstance(outputs, dict) or not outputs:
            return False
        for rel, rec in outputs.items():
            p = self.out / rel
            try:
                if not p.is_file() or p.stat().st_size != rec["size"] or _sha256(p) != rec["sha256"]:
                    return False
            except (OSError, KeyError, TypeError):
                return False
        return True

    def mark(self, step: str, key: Mapping[str, Any], outputs: Iterable[str], seconds: float) -> None:
        """Record a finished step: written last, atomically, after every output."""
        from .cache import atomic_write_text

        recs = {}
        for rel in outputs:
            p = self.out / rel
            recs[rel] = {"size": p.stat().st_size, "sha256": _sha256(p)}
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(
            self.dir / f"{step}.json",
            json.dumps(
                {
                    "marker_version": MARKER_VERSION,
                    "anomtok_version": __version__,
                    "key": _canonical(key),
                    "outputs": recs,
                    "seconds": round(seconds, 2),
                },
                indent=1,
            ),
        )

    def forget(self, step: str) -> None:
        """Remove the step's marker: from now until a new one is written it is never reused."""
        (self.dir / f"{step}.json").unlink(missing_ok=True)

    def writer(self, step: str, key: Mapping[str, Any] | None, started: float | None = None) -> StepWriter:
        """Commit the step's outputs together (see ``StepWriter``); ``key`` None writes no marker
        (the files are then never reused, and an older marker is removed all the same).
        ``started``: a ``time.perf_counter()`` value, for the seconds the marker records."""
        return StepWriter(self, step, key, started)

    def seconds(self, step: str) -> float | None:
        m = self._marker(step)
        try:
            return float(m["seconds"]) if m else None
        except (KeyError, TypeError, ValueError):
            return None


class StepWriter:
    """Context manager over one step's outputs. ``path(rel)`` gives a temporary file for the
    output ``rel`` (relative to the report folder) to write in full. On success: the old marker
    is removed, every temporary is renamed onto its output, then the marker is written. On any
    error or interrupt: the temporaries are removed and the folder is as it was."""

    def __init__(self, cache: StepCache, step: str, key: Mapping[str, Any] | None, started: float | None):
        self.cache, self.step, self.key = cache, step, key
        self.started = time.perf_counter() if started is None else started
        self.pending: dict[str, Path] = {}  # output -> its temporary, in the order asked for
        self.written: list[str] = []

    def path(self, rel: str) -> Path:
        from .cache import make_temp

        if rel in self.pending:
            return self.pending[rel]
        self.pending[rel] = make_temp(self.cache.out / rel)
        return self.pending[rel]

    def __enter__(self) -> StepWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        from .cache import commit_temp

        if exc_type is not None:
            self._discard()
            return
        try:
            self.cache.forget(self.step)  # from here until the marker is written: never reused
            for rel, tmp in list(self.pending.items()):
                commit_temp(tmp, self.cache.out / rel)
                del self.pending[rel]  # (if interrupted before this line: _discard finds tmp gone)
                self.written.append(rel)
        except BaseException:
            self._discard()
            raise
        if self.key is not None:
            self.cache.mark(self.step, self.key, self.written, time.perf_counter() - self.started)

    def _discard(self) -> None:
        for tmp in self.pending.values():  # not yet renamed (missing_ok: or renamed just now)
            tmp.unlink(missing_ok=True)
        self.pending.clear()
