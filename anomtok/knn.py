"""The k nearest neighbours (cosine) of every token, and the neighbourhood columns built on them.

``knn_graph(E, valid, k)`` gives a :class:`KnnGraph`: for each valid row its ``k`` most
cosine-similar *other* valid rows, nearest first. Exact (``exact_knn``: blocked matmul + top-k,
never a V x V matrix) when the matrix is small (``exact_cost``), else approximate
(``nndescent_knn``: pynndescent's NN-descent graph over the unit rows, with exact cosines), with its
recall measured against exact search on a seeded random sample of rows (``sample_recall``). From the graph, ``neighbourhood_columns``
gives ``nn_cos``, ``nn_id``, ``knn_mean_cos`` and ``knn_ref_share`` for every token, and
``KnnGraph.umap_knn`` the ``precomputed_knn`` UMAP accepts, so a map does not search again.

Rows outside ``valid`` (NaN, infinite or all-zero) are never a neighbour; their own row of the
graph is ``-1`` / NaN, as are the places past the last neighbour when fewer than ``k`` other valid
rows exist. Ties (equal cosines) keep the lower token id first; which of several tied rows enters
at the k-th place is not specified. Nothing here touches files.

Worked example: rows 0 and 1 point the same way, row 2 is orthogonal to them, row 3 is zero::

    >>> E = torch.tensor([[1., 0.], [2., 0.], [0., 1.], [0., 0.]])
    >>> valid = torch.tensor([True, True, True, False])
    >>> g = knn_graph(E, valid, k=2, method="exact")
    >>> g.ids.tolist()
    [[1, 2], [0, 2], [0, 1], [-1, -1]]
    >>> g.sims[:3].tolist()
    [[1.0, 0.0], [1.0, 0.0], [0.0, 0.0]]
    >>> cols = neighbourhood_columns(g, reference=np.array([False, True, False, False]))
    >>> cols["knn_mean_cos"][:3].tolist(), cols["knn_ref_share"][:3].tolist()
    ([0.5, 0.5, 0.0], [0.5, 0.0, 0.5])
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

__all__ = [
    "KnnGraph",
    "exact_knn",
    "nndescent_knn",
    "knn_graph",
    "sample_recall",
    "neighbourhood_columns",
    "exact_cost",
    "NNDESCENT_DEGREE",
]

# Neighbours per row of the NN-descent graph (of which the k nearest are kept); chosen by
# bench/bench_knn.py: the recall on Gemma 3's 262k rows grows with it, and so does the time.
NNDESCENT_DEGREE = 90


@dataclass
class KnnGraph:
    """``ids`` ``(V, k)`` int64 neighbour token ids (nearest first, never the row itself, -1 where
    none) and ``sims`` ``(V, k)`` float32 cosines (NaN where ``ids`` is -1). ``exact_rows`` ``(V,)``
    bool: rows whose neighbours come from exact search. ``info``: method, settings, measured
    recall; no timings, so the same settings give the same bytes (JSON-ready)."""

    ids: np.ndarray
    sims: np.ndarray
    exact_rows: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def k(self) -> int:
        return int(self.ids.shape[1])

    def matches(self, matrix: np.ndarray, tol: float = 1e-4, block: int = 2048) -> bool:
        """True when ``matrix`` (``(V, D)``, row i = token i) is the one the graph was made from, as
        far as the graph can tell: the same number of rows, and every stored cosine is the cosine
        of its two rows there (within ``tol``).

        >>> g = KnnGraph(ids=np.array([[1], [0]]), sims=np.array([[0.6], [0.6]], np.float32), exact_rows=np.ones(2, bool))
        >>> g.matches(np.array([[1., 0.], [.6, .8]])), g.matches(np.array([[1., 0.], [0., 1.]]))
        (True, False)
        """
        M = np.asarray(matrix)
        if M.ndim != 2 or M.shape[0] != self.ids.shape[0]:
            return False
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            for start in range(0, M.shape[0], block):
                ids = self.ids[start : start + block]
                has = ids >= 0
                if not has.any():
                    continue
                r = np.nonzero(has.any(axis=1))[0]
                X = M[start + r].astype(np.float32)
                Y = M[np.maximum(ids[r], 0)].astype(np.float32)
                dot = np.matmul(Y, X[:, :, None])[:, :, 0]
                cos = dot / (np.linalg.norm(X, axis=1)[:, None] * np.linalg.norm(Y, axis=2))
                if not (np.abs(cos - self.sims[start + r]) <= tol)[has[r]].all():
                    return False
        return True

    def umap_knn(self, rows: np.ndarray, n_neighbors: int) -> tuple[np.ndarray, np.ndarray] | None:
        """``(indices, distances)`` for ``umap.UMAP(precomputed_knn=...)`` on the rows ``rows``
        (token ids, in the order of the matrix UMAP gets): each point itself first (distance 0),
        then its ``n_neighbors - 1`` nearest as positions in ``rows``, cosine distance ``1 - cos``.

        None when the graph cannot serve: too few neighbours per row, or a neighbour of a row
        that is not among ``rows`` (a sample of the vocabulary has other neighbours).

        >>> g = KnnGraph(ids=np.array([[1, 2], [0, 2], [1, 0]]), sims=np.array([[.9, .1], [.9, .5], [.5, .1]],
        ...              np.float32), exact_rows=np.ones(3, bool))
        >>> i, d = g.umap_knn(np.array([0, 1, 2]), n_neighbors=2)
        >>> i.tolist(), np.round(d.astype(float), 3).tolist()
        ([[0, 1], [1, 0], [2, 1]], [[0.0, 0.1], [0.0, 0.1], [0.0, 0.5]])
        """
        need = n_neighbors - 1
        rows = np.asarray(rows, dtype=np.int64)
        if need > self.k or rows.size == 0:
            return None
        nb = self.ids[rows, :need]
        if need and (nb < 0).any():
            return None
        pos = np.full(self.ids.shape[0], -1, dtype=np.int64)
        pos[rows] = np.arange(rows.size)
        mapped = pos[nb]
        if need and (mapped < 0).any():
            return None
        indices = np.concatenate([np.arange(rows.size, dtype=np.int64)[:, None], mapped], axis=1)
        dist = np.concatenate(
            [np.zeros((rows.size, 1), np.float32), np.maximum(1.0 - self.sims[rows, :need], 0.0).astype(np.float32)],
            axis=1,
        )
        return indices, dist


def _unit_valid(E: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Unit rows, invalid rows zero (no NaN reaches a product)."""
    X = torch.where(valid[:, None], E, torch.zeros((), dtype=E.dtype, device=E.device))
    n = torch.linalg.vector_norm(X, dim=1, keepdim=True)
    return X / torch.where(n > 0, n, torch.ones_like(n))


def _tie_order(ids: torch.Tensor, sims: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sort each row by cosine descending, equal cosines by id ascending."""
    o = torch.argsort(ids, dim=1, stable=True)
    ids, sims = ids.gather(1, o), sims.gather(1, o)
    o = torch.argsort(sims, dim=1, descending=True, stable=True)
    return ids.gather(1, o), sims.gather(1, o)


def exact_knn(
    E: torch.Tensor, valid: torch.Tensor, k: int, rows: torch.Tensor | None = None, block: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact k nearest other valid rows by cosine, blockwise: ``(ids, sims)``, both ``(V, k)``
    (long, ``E.dtype``), ``-1`` / NaN for rows not asked for (``rows``: optional ``(R,)`` ids,
    default every valid row), invalid rows and missing places. ``block`` query rows at a time
    (default: about 2**25 similarities per block)."""
    V = E.shape[0]
    ids = torch.full((V, k), -1, dtype=torch.long, device=E.device)
    sims = torch.full((V, k), math.nan, dtype=E.dtype, device=E.device)
    cand = torch.nonzero(valid).squeeze(1)
    kk = min(k, cand.numel() - 1)
    if kk <= 0:
        return ids, sims
    U = _unit_valid(E, valid)
    Ct = U[cand].T.contiguous()
    pos = torch.full((V,), -1, dtype=torch.long, device=E.device)
    pos[cand] = torch.arange(cand.numel(), device=E.device)
    todo = cand if rows is None else rows[valid[rows]]
    b = block or max(1, min(4096, (1 << 25) // cand.numel()))
    for start in range(0, todo.numel(), b):
        r = todo[start : start + b]
        S = U[r] @ Ct  # (b, n_valid)
        S[torch.arange(r.numel(), device=E.device), pos[r]] = -math.inf  # not its own neighbour
        v, a = torch.topk(S, kk, dim=1)
        i, v = _tie_order(cand[a], v)
        ids[r, :kk] = i
        sims[r, :kk] = v
    return ids, sims


def nndescent_knn(
    E: torch.Tensor,
    valid: torch.Tensor,
    k: int,
    *,
    degree: int = NNDESCENT_DEGREE,
    seed: int = 0,
    threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Approximate k nearest other valid rows by cosine: pynndescent's NN-descent graph of
    ``degree`` neighbours (seeded), of which the ``k`` nearest are kept. ``(ids, sims)`` as numpy
    ``(V, k)`` int64 / float32, ``-1`` / NaN where missing. A larger ``degree`` costs time and
    raises the recall (bench/bench_knn.py measures both)."""
    import pynndescent

    V = E.shape[0]
    ids = np.full((V, k), -1, dtype=np.int64)
    sims = np.full((V, k), np.nan, dtype=np.float32)
    cand = torch.nonzero(valid).squeeze(1).cpu().numpy()
    n = cand.size
    kk = min(k, n - 1)
    if kk <= 0:
        return ids, sims
    X = np.ascontiguousarray(_unit_valid(E, valid)[torch.from_numpy(cand).to(E.device)].cpu().numpy(), dtype=np.float32)
    graph_k = min(n, max(degree, kk + 1))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*n_jobs value .* overridden.*")
        warnings.filterwarnings("ignore", message=".*Failed to correctly find n_neighbors.*")  # places left -1
        index = pynndescent.NNDescent(
            X,
            metric="cosine",
            n_neighbors=graph_k,
            random_state=seed,
            n_jobs=threads or torch.get_num_threads(),
            compressed=False,
            low_memory=True,
            verbose=False,
        )
        I, dist = index.neighbor_graph
    I = np.asarray(I, dtype=np.int64)
    own = I == np.arange(n)[:, None]
    # drop the row itself; when it is missing (duplicate rows tie at distance 0), the farthest place
    drop = np.where(own.any(axis=1), own.argmax(axis=1), graph_k - 1)
    keep = np.ones(I.shape, dtype=bool)
    keep[np.arange(n), drop] = False
    I = I[keep].reshape(n, graph_k - 1)
    # pynndescent's order is the cosine's while it is positive (it reports every cosine <= 0 as
    # 0): the cosines of the kept places are computed here, and a row that reaches 0 within them
    # is re-sorted by the exact cosines of its whole graph row
    S = _pair_cos(X, I[:, :kk])
    low = np.nonzero((S[:, -1] <= 0) | (I[:, :kk] < 0).any(axis=1))[0]
    if low.size:
        full = _pair_cos(X, I[low], rows=low)
        o = np.argsort(-np.where(I[low] >= 0, full, -np.inf), axis=1, kind="stable")[:, :kk]
        I[low, :kk] = np.take_along_axis(I[low], o, 1)
        S[low] = np.take_along_axis(full, o, 1)
    I = I[:, :kk]
    found = I >= 0
    ti = torch.from_numpy(np.where(found, cand[np.maximum(I, 0)], V))  # missing places sort last
    ts = torch.from_numpy(np.where(found, S, -np.inf).astype(np.float32))
    ti, ts = _tie_order(ti, ts)
    ti, ts = ti.numpy(), ts.numpy()
    miss = ti >= V
    ids[cand, :kk] = np.where(miss, -1, ti)
    sims[cand, :kk] = np.where(miss, np.nan, ts)
    return ids, sims


def _pair_cos(X: np.ndarray, cols: np.ndarray, rows: np.ndarray | None = None, block: int = 1024) -> np.ndarray:
    """Cosines of unit rows ``X[rows[i]]`` and ``X[cols[i, j]]`` (float32; -inf where ``cols`` is -1)."""
    rows = np.arange(cols.shape[0]) if rows is None else rows
    out = np.empty(cols.shape, dtype=np.float32)
    for s in range(0, cols.shape[0], block):
        c = cols[s : s + block]
        out[s : s + block] = np.matmul(X[np.maximum(c, 0)], X[rows[s : s + block], :, None])[:, :, 0]
    return np.where(cols >= 0, out, -np.inf).astype(np.float32)


def sample_recall(
    approx_ids: np.ndarray, approx_sims: np.ndarray, exact_ids: np.ndarray, exact_sims: np.ndarray, tol: float = 1e-5
) -> dict[str, float]:
    """How well approximate neighbour lists match exact ones, over the rows given (``(R, k)`` each,
    the same rows in the same order; rows with no exact neighbour are skipped).

    ``recall``: the share of the exact lists' places filled by an approximate neighbour whose
    cosine reaches the exact k-th cosine (minus ``tol``, for rounding), so ties count as found;
    ``recall_ids``: the plain share of exact ids found; ``nn1``: the share of rows whose first
    neighbour is right (or tied); ``mean_cos_error``: the mean of exact minus approximate
    ``knn_mean_cos`` (>= 0: missing a neighbour can only lower it).

    >>> sample_recall(np.array([[1, 3]]), np.array([[.9, .5]]), np.array([[1, 2]]), np.array([[.9, .6]]))
    {'recall': 0.5, 'recall_ids': 0.5, 'nn1': 1.0, 'mean_cos_error': 0.05, 'rows': 1}
    """
    places = exact_ids >= 0
    rows = places.any(axis=1)
    if not rows.any():
        return {"recall": math.nan, "recall_ids": math.nan, "nn1": math.nan, "mean_cos_error": math.nan, "rows": 0}
    a_ids, a_sims, e_ids, e_sims, places = (
        approx_ids[rows],
        approx_sims[rows],
        exact_ids[rows],
        exact_sims[rows],
        places[rows],
    )
    n_places = places.sum(axis=1)
    kth = e_sims[np.arange(len(e_sims)), n_places - 1]
    a_ok = (a_ids >= 0) & places
    hits = np.minimum((a_ok & (np.nan_to_num(a_sims, nan=-np.inf) >= kth[:, None] - tol)).sum(axis=1), n_places)
    same = (a_ids[:, :, None] == e_ids[:, None, :]) & a_ok[:, :, None] & places[:, None, :]
    nn1 = a_ok[:, 0] & (np.nan_to_num(a_sims[:, 0], nan=-np.inf) >= e_sims[:, 0] - tol)
    with np.errstate(invalid="ignore"):
        err = (np.where(places, e_sims, 0).sum(1) - np.where(a_ok, a_sims, 0).sum(1)) / n_places
    return {
        "recall": round(float(hits.sum() / n_places.sum()), 6),
        "recall_ids": round(float(same.any(axis=2).sum() / n_places.sum()), 6),
        "nn1": round(float(nn1.mean()), 6),
        "mean_cos_error": round(float(err.mean()), 6),
        "rows": int(rows.sum()),
    }


def knn_graph(
    E: torch.Tensor,
    valid: torch.Tensor,
    k: int = 15,
    *,
    method: str = "exact",
    seed: int = 0,
    exact_rows: torch.Tensor | None = None,
    recall_sample: int = 2048,
    degree: int = NNDESCENT_DEGREE,
    threads: int | None = None,
) -> KnnGraph:
    """The k nearest neighbours of every valid row. ``method="exact"``: :func:`exact_knn`.
    ``method="nndescent"``: :func:`nndescent_knn`, then exact search for ``recall_sample``
    random valid rows (seeded) and the rows ``exact_rows`` (e.g. the most suspicious tokens);
    the sample gives the measured recall (``info["recall"]``, see :func:`sample_recall`), and
    every row searched exactly keeps its exact neighbours (``exact_rows`` of the graph)."""
    if k < 1:
        raise ValueError("k must be >= 1")
    V = E.shape[0]
    n_valid = int(valid.sum())
    info: dict[str, Any] = {"k": k, "rows": V, "valid_rows": n_valid}
    if method == "exact":
        ti, ts = exact_knn(E, valid, k)
        ids, sims = ti.cpu().numpy(), ts.cpu().to(torch.float32).numpy()
        done = valid.cpu().numpy().copy()
        info |= {"method": "exact", "exact_rows": int(done.sum())}
    elif method == "nndescent":
        ids, sims = nndescent_knn(E, valid, k, degree=degree, seed=seed, threads=threads)
        valid_idx = torch.nonzero(valid).squeeze(1).cpu().numpy()
        rng = np.random.default_rng(seed)
        sample = np.sort(rng.choice(valid_idx, size=min(recall_sample, valid_idx.size), replace=False))
        extra = np.zeros(0, np.int64) if exact_rows is None else exact_rows.cpu().numpy().astype(np.int64)
        todo = np.union1d(sample, extra)
        ei, es = exact_knn(E, valid, k, rows=torch.from_numpy(todo).to(E.device))
        ei, es = ei.cpu().numpy(), es.cpu().to(torch.float32).numpy()
        rec = sample_recall(ids[sample], sims[sample], ei[sample], es[sample])
        rec.pop("rows")
        ok = todo[valid.cpu().numpy()[todo]]
        ids[ok], sims[ok] = ei[ok], es[ok]
        done = np.zeros(V, dtype=bool)
        done[ok] = True
        info |= {
            "method": "nndescent",
            "library": f"pynndescent {_version('pynndescent')}",
            "degree": degree,
            "seed": seed,
            "recall_sample": int(sample.size),
            **rec,
            "exact_rows": int(done.sum()),
        }
    else:
        raise ValueError(f"method must be 'exact' or 'nndescent', not {method!r}")
    return KnnGraph(ids=ids, sims=sims, exact_rows=done, info=info)


def neighbourhood_columns(graph: KnnGraph, reference: np.ndarray) -> dict[str, np.ndarray]:
    """``nn_cos``, ``nn_id`` (the nearest neighbour), ``knn_mean_cos`` (mean cosine to the k
    nearest) and ``knn_ref_share`` (share of the k nearest in ``reference``, a ``(V,)`` bool
    mask) for every row: NaN (-1 for ``nn_id``) where a row has no neighbour; means over the
    neighbours there are when fewer than k exist."""
    ids, sims = graph.ids, graph.sims
    has = ids >= 0
    n = has.sum(axis=1)
    ref = np.asarray(reference, dtype=bool)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_cos = np.where(has, sims, 0.0).sum(axis=1, dtype=np.float64) / n
        ref_share = (has & ref[np.maximum(ids, 0)]).sum(axis=1) / n
    none = n == 0
    return {
        "nn_cos": np.where(none, np.nan, sims[:, 0].astype(np.float64)),
        "nn_id": np.where(none, -1, ids[:, 0]).astype(np.int64),
        "knn_mean_cos": np.where(none, np.nan, mean_cos),
        "knn_ref_share": np.where(none, np.nan, ref_share),
    }


def exact_cost(V: int, D: int) -> float:
    """Multiply-adds of exact all-pairs search (``V * V * D``): the cost model behind the
    ranking's choice between exact and approximate search."""
    return float(V) * float(V) * float(D)


def _version(dist: str) -> str:
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:  # noqa: BLE001 - metadata may be missing in odd installs
        return "unknown"
