"""A map of the embedding matrix, from the cache when it can be reused, else computed.

``compute_map`` checks the matrix against its token table, reads the cache
(``anomtok.maps.cache``), picks the rows (``anomtok.maps.select``), runs UMAP
(``anomtok.maps.umap``) and writes the cache.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict
from typing import Any

import numpy as np
import polars as pl

from ..errors import InputError
from . import umap
from .cache import load_map, matrix_digest, source_fingerprint, write_map
from .options import MapOptions, MapResult, MapSettings
from .select import select_rows

__all__ = ["compute_map"]


def compute_map(
    matrix: np.ndarray,
    frame: pl.DataFrame,
    options: MapOptions | None = None,
    *,
    cache: str | os.PathLike | None = None,
    source: Mapping[str, Any] | None = None,
    extra_ids: Iterable[int] = (),
    progress: Callable[[str], None] | None = None,
    knn: Any = None,
) -> MapResult:
    """The map of ``matrix`` (``(V, D)``, row i = token id i; ``frame`` in any order), from ``cache`` when it
    holds a reusable one, else computed (and written to ``cache`` when given).

    ``source`` is the model's provenance dict, stored so that a later call without the matrix
    (``load_map(..., source=...)``) can still trust the cache. ``knn``: the ranking's neighbour
    graph (``anomtok.knn.KnnGraph``); UMAP uses it instead of searching when it covers the mapped
    rows (every valid row: a sample has other neighbours) and was made from this matrix."""
    opt = options or MapOptions()
    M = np.asarray(matrix, dtype=np.float32)
    if M.ndim != 2 or M.shape[0] != frame.height:
        raise InputError(f"the matrix has shape {M.shape} but the table has {frame.height} rows")
    extra = [int(i) for i in extra_ids]
    ids = frame["token_id"].to_numpy()
    if ids.size and (ids.min() < 0 or ids.max() >= M.shape[0] or np.unique(ids).size != ids.size):
        raise InputError("the table's token_id column must hold each row index of the matrix once")
    if "valid" in frame.columns:
        valid = frame["valid"].to_numpy().astype(bool)
    else:  # rows in token-id order, like the matrix
        valid_by_id = np.isfinite(M).all(axis=1) & (np.abs(M).sum(axis=1) > 0)
        valid = valid_by_id[ids]
        frame = frame.with_columns(valid=pl.Series(valid))
    settings = MapSettings.make(opt, int(valid.sum()), int(M.shape[0]), int(M.shape[1]))
    t0 = time.perf_counter()
    digest = matrix_digest(M)
    fp = source_fingerprint(source)
    if cache is not None:
        hit = load_map(cache, settings, frame, digest=digest, extra_ids=extra)
        if hit is not None:
            if progress:
                progress("map (cached)")
            return hit
    sel = select_rows(
        frame,
        settings.sample if settings.mode == "sample" else None,
        flag_top=opt.flag_top,
        seed=opt.seed,
        extra_ids=extra,
    )
    t1 = time.perf_counter()
    # the matrix row of a token is its id
    # looked up on the module, so that a test can stand in for UMAP
    pre = None
    if knn is not None and opt.metric == "cosine" and sel.ids.size >= 4:
        pre = knn.umap_knn(sel.ids, min(opt.n_neighbors, int(sel.ids.size) - 1))
        pre = pre if pre is not None and knn.matches(M) else None
    xy = umap.umap_coords(
        M[sel.ids],
        seed=opt.seed,
        n_neighbors=opt.n_neighbors,
        min_dist=opt.min_dist,
        n_epochs=opt.n_epochs,
        metric=opt.metric,
        precomputed_knn=pre,
    )
    seconds = time.perf_counter() - t1
    coords = pl.DataFrame({"token_id": sel.ids, "x": xy[:, 0], "y": xy[:, 1], "why": sel.why})
    meta = {
        "settings": asdict(settings),
        "matrix_sha": digest,
        "source_files": fp,
        "source": (source or {}).get("source"),
        "points": int(sel.ids.size),
        "valid_rows": int(valid.sum()),
        "why_counts": sel.counts(),
        "description": sel.description,
        "knn": "umap-learn's own search"
        if pre is None
        else {  # the ranking's graph (Ranking.knn, knn.npz)
            "from": "the ranking",
            **{k: knn.info[k] for k in ("method", "k", "degree", "seed", "recall") if k in knn.info},
        },
    }
    if cache is not None:
        write_map(cache, coords, meta)  # no timings in the file: the same settings give the same bytes
    meta = {**meta, "umap_seconds": round(seconds, 2), "total_seconds": round(time.perf_counter() - t0, 2)}
    if progress:
        progress("map")
    return MapResult(coords=coords, meta=meta, from_cache=False)
