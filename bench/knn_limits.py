#!/usr/bin/env python
"""Study: how far a partition (IVF) or a reduced dimension (PCA) can cut the k-NN search on a model.

Run from the repository root::

    .venv/bin/python bench/knn_limits.py                        # Gemma 3 270M
    .venv/bin/python bench/knn_limits.py --model smollm2-135m --nlists 256

No timings: the recall each shortcut can reach at best, on the seeded sample of rows whose exact
neighbours bench/bench_knn.py caches (``--sample``, 2,000 rows; computed here when missing).

* ``ivf``: spherical k-means (seeded, 10 rounds, on ``64 * nlist`` random rows; torch matmul),
  every row in the list of its nearest centroid. For a query probing its ``nprobe`` nearest lists,
  ``recall`` is the share of its exact 15 neighbours inside them, ``scanned`` the share of all rows
  those lists hold (the cost relative to exact search); ``recall_spill2`` puts every row in its two
  nearest lists (twice the cost).
* ``pca``: the rows projected on the top ``d`` principal axes (uncentred, from 32,768 random
  rows); ``recall`` is the share of the exact 15 neighbours among the ``m`` nearest in the
  projection, the best a search in ``d`` dimensions followed by exact re-ranking of ``m``
  candidates can do.

Results: JSON (atomic) ``bench/results/knn-limits-MODEL.json`` and lines on stdout.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _results import write_result  # noqa: E402


def _kmeans(Xs, nl: int, g, iters: int = 10):
    import torch

    C = Xs[torch.randperm(Xs.shape[0], generator=g)[:nl]].clone()
    for _ in range(iters):
        a = torch.cat([(Xs[s : s + 8192] @ C.T).argmax(1) for s in range(0, Xs.shape[0], 8192)])
        S = torch.zeros_like(C).index_add_(0, a, Xs)
        empty = torch.bincount(a, minlength=nl) == 0
        S[empty] = Xs[torch.randint(0, Xs.shape[0], (int(empty.sum()),), generator=g)]
        C = S / S.norm(dim=1, keepdim=True).clamp_min(1e-30)
    return C


def ivf(X, rows, tids, nlists: list[int], seed: int = 0) -> list[dict]:
    import torch

    V = X.shape[0]
    g = torch.Generator().manual_seed(seed)
    out = []
    for nl in nlists:
        C = _kmeans(X[torch.randperm(V, generator=g)[: min(V, 64 * nl)]], nl, g)
        top2 = torch.cat([(X[s : s + 8192] @ C.T).topk(2, dim=1).indices for s in range(0, V, 8192)])
        sizes = torch.bincount(top2[:, 0], minlength=nl).float()
        order = (X[rows] @ C.T).argsort(dim=1, descending=True)
        rank_of = torch.empty_like(order).scatter_(1, order, torch.arange(nl).expand_as(order))
        r1, r2 = rank_of.gather(1, top2[tids][:, :, 0]), rank_of.gather(1, top2[tids][:, :, 1])
        cum = sizes[order].cumsum(1)
        for npb in (4, 8, 16, 32, 64, 128):
            if npb <= nl:
                out.append(
                    {
                        "nlist": nl,
                        "nprobe": npb,
                        "recall": round((r1 < npb).float().mean().item(), 4),
                        "recall_spill2": round(((r1 < npb) | (r2 < npb)).float().mean().item(), 4),
                        "scanned": round(cum[:, npb - 1].mean().item() / V, 4),
                    }
                )
                print(f"ivf {out[-1]}", flush=True)
    return out


def pca(X, rows, tids, dims: list[int], seed: int = 0) -> list[dict]:
    import torch

    V = X.shape[0]
    g = torch.Generator().manual_seed(seed)
    S = X[torch.randperm(V, generator=g)[:32768]]
    evals, evecs = torch.linalg.eigh((S.T @ S).double())
    evals, evecs = evals.flip(0), evecs.flip(1).float()
    out = []
    for d in dims:
        Y = X @ evecs[:, :d]
        sc = Y[rows] @ Y.T
        sc[torch.arange(rows.numel()), rows] = -torch.inf
        top = sc.topk(200, dim=1).indices
        for m in (15, 60, 200):
            hit = (tids[:, :, None] == top[:, None, :m]).any(2).float().mean().item()
            out.append(
                {
                    "dim": d,
                    "candidates": m,
                    "recall": round(hit, 4),
                    "energy": round(float(evals[:d].sum() / evals.sum()), 4),
                }
            )
            print(f"pca {out[-1]}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="gemma-3-270m")
    ap.add_argument("--k", type=int, default=15)
    ap.add_argument("--sample", type=int, default=2000)
    ap.add_argument("--nlists", default="256,1024")
    ap.add_argument("--dims", default="64,128,256")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    import numpy as np
    import torch
    from bench_knn import _truth

    import anomtok
    from anomtok import metrics as M

    torch.set_num_threads(a.threads)
    truth = np.load(_truth(a.model, a.k, a.sample, a.threads))
    E = anomtok.load(a.model).input.to(torch.float32)
    valid = M.valid_rows(E)
    X = torch.where(valid[:, None], E, 0.0)
    X = X / X.norm(dim=1, keepdim=True).clamp_min(1e-30)
    rows, tids = torch.from_numpy(truth["rows"]), torch.from_numpy(truth["ids"])
    doc = {
        "model": a.model,
        "k": a.k,
        "sample": int(rows.numel()),
        "kth_cos_quantiles_10_50_90": np.round(np.quantile(truth["sims"][:, -1], [0.1, 0.5, 0.9]), 4).tolist(),
        "ivf": ivf(X, rows, tids, [int(x) for x in a.nlists.split(",")]),
        "pca": pca(X, rows, tids, [int(x) for x in a.dims.split(",")]),
    }
    path = HERE / "results" / f"knn-limits-{a.model}.json"
    write_result(doc, path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
