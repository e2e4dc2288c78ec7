"""The step cache of a report folder: a step is reused only when what it was computed from is
unchanged.

Each finished step writes ``.steps/<step>.json`` last, after its outputs: its **key** (its own
settings, plus fingerprints of its inputs: the model's files, upstream steps' output files) and
the size and sha256 of every output it wrote. A later run reuses the step only when the key it
computes now is equal and every recorded output is still there with the same size and hash, so
re-ranking with other settings invalidates every step that read the ranking, a changed model file
invalidates everything, and a truncated or swapped output is recomputed instead of trusted.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterable, Mapping

from ._version import __version__

__all__ = ["StepCache", "model_fingerprint", "files_digest"]

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
    files = [[f.get("path"), f.get("size"), f.get("mtime_ns"), f.get("fingerprint") or f.get("sha256")]
             for f in provenance.get("files", [])]
    blob = json.dumps({"files": files, "input": provenance.get("input_tensor"),
                       "output": provenance.get("output_tensor")}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


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
        atomic_write_text(self.dir / f"{step}.json", json.dumps({
            "marker_version": MARKER_VERSION, "anomtok_version": __version__, "key": _canonical(key),
            "outputs": recs, "seconds": round(seconds, 2)}, indent=1))

    def seconds(self, step: str) -> float | None:
        m = self._marker(step)
        try:
            return float(m["seconds"]) if m else None
        except (KeyError, TypeError, ValueError):
            return None
