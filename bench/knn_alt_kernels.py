"""Kernels of bench/knn_alternatives.py (a study, not part of anomtok): exact search from bfloat16
candidates with a certificate, and NN-descent written as batched torch matmuls. CPU tensors;
``X`` is ``(V, D)`` float32 unit rows, every row valid."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from knn_limits import _kmeans

from anomtok.knn import _tie_order, exact_knn

_U = 2.0**-8  # bfloat16 keeps 8 significant bits


def bf16_error_bound(dim: int) -> float:
    """Largest gap between the bfloat16 score of two unit rows and their cosine: both rows rounded
    (2u + u^2, the products' absolute values summing to at most 1), the float32 sum (dim roundings
    of 2^-24), the result rounded to bfloat16 (u of a value at most 1 + the rest)."""
    inputs = 2 * _U + _U**2 + dim * 2.0**-24 * (1 + _U) ** 2
    return inputs + _U * (1 + inputs)


def certified_knn(X, k: int, rows, candidates: int = 64, block: int = 2048, col_block: int = 65536):
    """Exact k nearest other rows of ``rows``: bfloat16 scores keep ``candidates`` per row, their
    float32 cosines the k best. Certified when the lowest candidate score plus the error bound is
    below the k-th cosine (no other row can reach it); other rows go to float32 ``exact_knn``.
    ``(ids, sims, certified)``, ids/sims ``(V, k)`` filled for ``rows``."""
    V, D = X.shape
    ids = torch.full((V, k), -1, dtype=torch.long)
    sims = torch.full((V, k), math.nan)
    m, bound, redo = min(candidates, V - 1), bf16_error_bound(D), []
    Xb = X.to(torch.bfloat16)
    for start in range(0, rows.numel(), block):
        r = rows[start : start + block]
        Q = Xb[r]
        best_v = best_a = None
        for c0 in range(0, V, col_block):
            S = Q @ Xb[c0 : c0 + col_block].T
            p = r - c0
            own = (p >= 0) & (p < S.shape[1])
            S[torch.nonzero(own).squeeze(1), p[own]] = -math.inf
            v, a = torch.topk(S, min(m, S.shape[1]), dim=1)
            a = a + c0
            if best_v is not None:
                v, o = torch.topk(torch.cat([best_v, v], 1), m, dim=1)
                a = torch.cat([best_a, a], 1).gather(1, o)
            best_v, best_a = v, a
        exact = torch.bmm(X[best_a], X[r][:, :, None])[:, :, 0]
        v, o = torch.topk(exact, k, dim=1)
        i, v = _tie_order(best_a.gather(1, o), v)
        ids[r], sims[r] = i, v
        redo.append(r[~(best_v[:, -1].float() + bound < v[:, -1])])
    again = torch.cat(redo)
    if again.numel():
        ei, es = exact_knn(X, torch.ones(V, dtype=torch.bool), k, rows=again)
        ids[again], sims[again] = ei[again], es[again]
    return ids, sims, int(rows.numel() - again.numel())


# ----------------------------------------------------------------------------- NN-descent by matmuls


def _qkey(s: torch.Tensor) -> torch.Tensor:
    """Integer sort key, ascending = cosine descending (sorting floats is 4x slower here)."""
    return ((1.0 - s.double()) * float(1 << 29)).round().long().clamp(0, (1 << 31) - 1)


def _merge(ids, sims, new, r, c, s, K: int):
    """Each row's K best of its list and the candidates (r -> c, cosine s), without repeats; entries
    that were not in the list are flagged new."""
    V = ids.shape[0]
    has = ids >= 0
    n_old = int(has.sum())
    r = torch.cat([torch.arange(V)[:, None].expand_as(ids)[has], r])
    c, s = torch.cat([ids[has], c]), torch.cat([sims[has], s])
    old = torch.arange(r.numel()) < n_old
    k1, o = torch.sort((r * V + c) * 2 + (~old).long())  # a pair already listed sorts first
    first = torch.ones_like(k1, dtype=torch.bool)
    first[1:] = (k1[1:] >> 1) != (k1[:-1] >> 1)
    o = o[first]
    r, c, s, old = r[o], c[o], s[o], old[o]
    o = torch.sort((r << 31) | _qkey(s)).indices
    r, c, s, old = r[o], c[o], s[o], old[o]
    cnt = torch.bincount(r, minlength=V)
    rank = torch.arange(r.numel()) - (torch.cumsum(cnt, 0) - cnt)[r]
    keep = rank < K
    nid, nsim, nnew = torch.full_like(ids, -1), torch.full_like(sims, -math.inf), torch.zeros_like(new)
    rr, rk = r[keep], rank[keep]
    nid[rr, rk], nsim[rr, rk], nnew[rr, rk] = c[keep], s[keep], ~old[keep]
    return nid, nsim, nnew


def _reverse(ids, sims, new, L: int):
    """Up to L reverse neighbours of each row (the closest first), with their new flags."""
    V, K = ids.shape
    src, dst = torch.arange(V).repeat_interleave(K), ids.reshape(-1)
    ok = dst >= 0
    src, dst, s, nw = src[ok], dst[ok], sims.reshape(-1)[ok], new.reshape(-1)[ok]
    o = torch.sort((dst << 31) | _qkey(s)).indices
    src, dst, nw = src[o], dst[o], nw[o]
    cnt = torch.bincount(dst, minlength=V)
    rank = torch.arange(dst.numel()) - (torch.cumsum(cnt, 0) - cnt)[dst]
    keep = rank < L
    R, Rn = torch.full((V, L), -1, dtype=torch.long), torch.zeros((V, L), dtype=torch.bool)
    R[dst[keep], rank[keep]], Rn[dst[keep], rank[keep]] = src[keep], nw[keep]
    return R, Rn


def _join(X, ids, sims, new, L: int, per_row: int = 8, B: int = 128):
    """One round: for each row v, all pairs among v, its L first neighbours and L reverse
    neighbours (one bmm per B rows), at least one of them new; each member keeps its ``per_row``
    best partners that beat its current K-th cosine; merged into the lists."""
    V, D = X.shape
    K = ids.shape[1]
    R, Rn = _reverse(ids, sims, new, L)
    S = torch.cat([torch.arange(V)[:, None], ids[:, :L], R], 1)
    N = torch.cat([torch.zeros(V, 1, dtype=torch.bool), new[:, :L], Rn], 1)
    W = S.shape[1]
    kth = torch.cat([torch.where(ids[:, K - 1] >= 0, sims[:, K - 1], -math.inf), torch.tensor([math.inf])])
    S = torch.where(S >= 0, S, V)
    buf, G = torch.empty(B * W, D), torch.empty(B, W, W)
    out_r, out_c, out_s = [], [], []
    for b0 in range(0, V, B):
        Sb, Nb = S[b0 : b0 + B], N[b0 : b0 + B]
        nb = Sb.shape[0]
        M = torch.index_select(X, 0, Sb.clamp(max=V - 1).reshape(-1), out=buf[: nb * W]).view(nb, W, D)
        Gb = torch.bmm(M, M.transpose(1, 2), out=G[:nb])
        pair = (Nb[:, :, None] | Nb[:, None, :]) & (Sb[:, :, None] != Sb[:, None, :]) & (Sb < V)[:, None, :]
        v, j = torch.where(pair, Gb, -math.inf).topk(per_row, dim=2)
        b, i, t = torch.nonzero(v > kth[Sb][:, :, None], as_tuple=True)
        out_r.append(Sb[b, i])
        out_c.append(Sb[b, j[b, i, t]])
        out_s.append(v[b, i, t])
    return _merge(ids, sims, new, torch.cat(out_r), torch.cat(out_c), torch.cat(out_s), K)


def _cluster_graph(X, K: int, g, C: int = 1024, probes: int = 4):
    """Initial lists: each row's K best among the rows of the ``probes`` clusters nearest its own."""
    V = X.shape[0]
    C = max(1, min(C, V // 64))
    cen = _kmeans(X[torch.randperm(V, generator=g)[: 32 * C]], C, g, iters=6)
    a = torch.cat([(X[s : s + 8192] @ cen.T).argmax(1) for s in range(0, V, 8192)])
    order = torch.argsort(a, stable=True)
    st = [0, *torch.cumsum(torch.bincount(a, minlength=C), 0).tolist()]
    near = (cen @ cen.T).topk(probes, dim=1).indices
    ids, sims = torch.full((V, K), -1, dtype=torch.long), torch.full((V, K), -math.inf)
    for c in range(C):
        if st[c + 1] == st[c]:
            continue
        pool = order[torch.cat([torch.arange(st[b], st[b + 1]) for b in near[c].tolist()])]
        q = order[st[c] : st[c + 1]]
        S = X[q] @ X[pool].T
        S[pool[None, :] == q[:, None]] = -math.inf
        v, j = S.topk(min(K, S.shape[1]), dim=1)
        ids[q, : v.shape[1]] = torch.where(v > -math.inf, pool[j], -1)  # a small pool: fewer than K others
        sims[q, : v.shape[1]] = v
    return ids, sims, torch.ones(V, K, dtype=torch.bool)


def local_join_knn(X, K: int, rounds: int, g, report: Callable | None = None):
    """NN-descent by matmuls: cluster initial graph, then ``rounds`` local joins (L = K/2 each
    way). ``report(step, ids, sims)`` after each step. Returns ``(ids, sims)``, cosine descending."""
    ids, sims, new = _cluster_graph(X, K, g)
    if report:
        report("init", ids, sims)
    for n in range(rounds):
        ids, sims, new = _join(X, ids, sims, new, K // 2)
        if report:
            report(f"round {n + 1}", ids, sims)
    return ids, sims
