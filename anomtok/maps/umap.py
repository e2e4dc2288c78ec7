"""The UMAP call: rows in, 2-D coordinates out (umap-learn is imported when a map is computed)."""

from __future__ import annotations

import warnings

import numpy as np

from ..errors import InputError

__all__ = ["umap_coords", "umap_version"]


def umap_version() -> str:
    """The installed umap-learn version (part of a map's settings), without importing it."""
    try:
        from importlib.metadata import version

        return version("umap-learn")
    except Exception:  # noqa: BLE001 - metadata may be missing in odd installs
        return "unknown"


def umap_coords(
    matrix: np.ndarray,
    *,
    seed: int = 0,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    n_epochs: int | None = None,
    metric: str = "cosine",
    precomputed_knn: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """``(n, D)`` float32 rows -> ``(n, 2)`` float32 UMAP coordinates (seeded, so single-threaded).

    Every row must be finite and non-zero. ``n_neighbors`` is capped at ``n - 1``.
    ``precomputed_knn``: ``(indices, distances)`` of these rows (``KnnGraph.umap_knn``), so UMAP
    does not search the neighbours again."""
    n = int(matrix.shape[0])
    if n < 4:
        raise InputError(f"a map needs at least 4 valid rows, not {n}")
    import umap

    reducer = umap.UMAP(
        n_components=2,
        metric=metric,
        n_neighbors=min(n_neighbors, n - 1),
        min_dist=min_dist,
        n_epochs=n_epochs,
        random_state=seed,
        low_memory=True,
        verbose=False,
        precomputed_knn=precomputed_knn or (None, None, None),
    )
    from .. import progress

    # a rough expectation from measured runs on 2 cores: ~35 s of numba compilation in a fresh
    # process, then ~0.55 ms per row (Gemma 3 270M's 262,144 rows: ~140 s)
    expect = f"roughly {max(1, round((35 + 0.00055 * n) / 60))} min on 2 cores"
    with warnings.catch_warnings(), progress.step(f"UMAP of {n:,} rows", expect=expect):
        warnings.filterwarnings("ignore", message=".*n_jobs value .* overridden.*")
        warnings.filterwarnings("ignore", message=".*gradient function is not yet implemented.*")
        warnings.filterwarnings("ignore", message=".*knn_search_index.*")  # a precomputed graph: no transform()
        xy = reducer.fit_transform(np.ascontiguousarray(matrix, dtype=np.float32))
    return np.asarray(xy, dtype=np.float32)
