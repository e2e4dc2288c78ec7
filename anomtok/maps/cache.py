"""The map cache: ``umap.parquet`` in a report folder, keyed on what the coordinates came from.

``umap.parquet`` holds ``token_id, x, y, why`` (why the row is on the map: ``all``, ``flagged``,
``reference``, ``japanese``, ``marked`` or ``sampled``) and, in the parquet metadata, the settings
that made it (``MapSettings``), a digest of the matrix (``matrix_digest``) and the model's source
files (``source_fingerprint``). ``load_map`` gives it back only when the settings match, the
matrix (or, without it, the source files) is the same and every token now required is on it; so
a re-render never recomputes. ``source_matches`` tells whether a folder's cached ranking came from
the files a model spec names now.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from ..cache import atomic_path, file_fingerprint, file_sha256
from .options import MapResult, MapSettings
from .select import required_reasons

__all__ = [
    "CACHE_NAME",
    "matrix_digest",
    "source_fingerprint",
    "source_matches",
    "write_map",
    "read_map",
    "cache_matches",
    "load_map",
]

log = logging.getLogger(__name__)

CACHE_NAME = "umap.parquet"
_META_KEY = b"anomtok.umap"


def matrix_digest(matrix: np.ndarray) -> str:
    """blake2b (128-bit) of the float32 matrix bytes and its shape: identifies the matrix mapped."""
    a = np.ascontiguousarray(matrix, dtype=np.float32)
    h = hashlib.blake2b(digest_size=16)
    h.update(repr(a.shape).encode())
    h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def source_fingerprint(source: Mapping[str, Any] | None) -> list[list[Any]] | None:
    """``[[path, size, identity], ...]`` from a provenance dict (``ModelEmbeddings.provenance.to_dict()``
    or ``meta.json["source"]``); identity is the cheap fingerprint (``cache.file_fingerprint``), or
    the sha256 for provenance written before fingerprints; None when a file has neither."""
    if not source:
        return None
    files = source.get("files") or []
    out = []
    for f in files:
        if isinstance(f, Mapping):
            path, size, ident = f.get("path"), f.get("size"), f.get("fingerprint") or f.get("sha256")
        else:
            path, size, ident = f
        if not ident:
            return None
        out.append([str(path), int(size), str(ident)])
    return out or None


def source_matches(spec: str | os.PathLike, source: Mapping[str, Any] | None) -> bool:
    """True when ``source`` (a provenance dict, e.g. ``meta.json["source"]``) was made from what
    ``spec`` names now: the same spec and the same files, unchanged. Lets a re-render trust
    cached tables without loading the model."""
    if not source:
        return False
    stored = str(source.get("source", ""))
    same_spec = stored == str(spec)
    if not same_spec:
        try:
            same_spec = Path(stored).expanduser().resolve() == Path(spec).expanduser().resolve()
        except (OSError, ValueError):
            same_spec = False
    return same_spec and _files_unchanged(source_fingerprint(source))


def _files_unchanged(fingerprint: list[list[Any]] | None) -> bool:
    """The files of a fingerprint are still there with the same size and identity (a cheap
    fingerprint, recomputed from 2 MiB of each file; an old full sha256, cached by path, size, mtime)."""
    if not fingerprint:
        return False
    try:
        return all(
            os.path.getsize(p) == size
            and (file_fingerprint(p) if ident.startswith("fp1:") else file_sha256(p)) == ident
            for p, size, ident in fingerprint
        )
    except OSError:
        return False


def write_map(path: str | os.PathLike, coords: pl.DataFrame, meta: Mapping[str, Any]) -> Path:
    """Write ``coords`` (token_id, x, y, why) with ``meta`` (JSON) in the parquet metadata, atomically."""
    import pyarrow.parquet as pq

    table = coords.to_arrow()
    md = dict(table.schema.metadata or {})
    md[_META_KEY] = json.dumps(meta, ensure_ascii=False, default=str).encode("utf-8")
    table = table.replace_schema_metadata(md)
    target = Path(path)
    with atomic_path(target) as tmp:
        pq.write_table(table, tmp)
    return target


def read_map(path: str | os.PathLike) -> tuple[pl.DataFrame, dict[str, Any]] | None:
    """(coords, meta) from a cache file, or None when it is missing or unreadable."""
    import pyarrow.parquet as pq

    p = Path(path)
    if not p.exists():
        return None
    try:
        table = pq.read_table(p)
        meta = json.loads((table.schema.metadata or {}).get(_META_KEY, b"{}").decode("utf-8"))
        coords = pl.from_arrow(table)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many types on a corrupt file
        log.warning("%s: unreadable map cache (%s), recomputing", p, exc.__class__.__name__)
        return None
    if not isinstance(coords, pl.DataFrame) or not {"token_id", "x", "y"} <= set(coords.columns):
        return None
    return coords, meta


def cache_matches(
    meta: Mapping[str, Any], settings: MapSettings, *, digest: str | None = None, source: list[list[Any]] | None = None
) -> str | None:
    """None when a cached map made with ``meta`` can be reused, else the reason it cannot.

    The settings must be equal; then the matrix digest when one is given, else the source files
    (the same fingerprint, and the files unchanged on disk)."""
    if meta.get("settings") != asdict(settings):
        return "made with other settings"
    if digest is not None:
        return None if meta.get("matrix_sha") == digest else "made from another matrix"
    cached_source = meta.get("source_files")
    if not cached_source or source is None or cached_source != source:
        return "made from other source files"
    if not _files_unchanged(source):
        return "the source files changed"
    return None


def load_map(
    path: str | os.PathLike,
    settings: MapSettings,
    frame: pl.DataFrame,
    *,
    digest: str | None = None,
    source: list[list[Any]] | None = None,
    extra_ids: Iterable[int] = (),
) -> MapResult | None:
    """The cached map when it can be reused for ``frame`` (see ``cache_matches``; in sample mode
    every token now required must also be on it), else None."""
    got = read_map(path)
    if got is None:
        return None
    coords, meta = got
    why = cache_matches(meta, settings, digest=digest, source=source)
    if why is None and settings.mode == "sample":
        on_map = set(coords["token_id"].to_list())
        missing = [i for i in required_reasons(frame, settings.flag_top, extra_ids) if i not in on_map]
        if missing:
            why = f"{len(missing)} required tokens are not on it"
    if why is not None:
        log.info("%s: not reused (%s)", path, why)
        return None
    return MapResult(coords=coords, meta=dict(meta), from_cache=True)
