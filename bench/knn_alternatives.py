#!/usr/bin/env python
"""Study, timed: can the k-NN graph of every token (recall@15 >= 0.95) be built faster than the
ranking's NN-descent (pynndescent, degree 90) on 2 cores? Issue 13.3 asks for the whole ranking of
Gemma 3 270M in 90 s.

Run from the repository root (about 13 minutes on Gemma)::

    flock /tmp/anomtok-bench.lock .venv/bin/python bench/knn_alternatives.py
    .venv/bin/python bench/knn_alternatives.py --parts throughput,hybrid

Each part is measured in this run, on the unit rows of the model's input embedding, against the
exact neighbours of a seeded sample of rows (``--sample``, cached by bench/bench_knn.py).
``recall`` is :func:`anomtok.knn.sample_recall` (ties count as found).

* ``throughput``: multiply-adds per second of one (4096 x D) x (D x 65536) product in float32,
  bfloat16 and int8 (``torch._int_mm``), and the time exact search of every row would need at that
  rate (V*V*D, top-k not counted): a lower bound for brute force.
* ``pynndescent``: fresh processes (numba compiles in each, as in ``anomtok rank``) for settings
  other than the ranking's: smaller degrees, more candidates, fewer trees.
* ``local_join``: NN-descent written as batched torch matmuls (the idea left by the last session):
  a k-means initial graph, then rounds of local joins (each row's neighbours and reverse
  neighbours, all pairs by ``bmm``), candidates merged by sorting. Degree 32.
* ``two_hop``: what one more exhaustive join could add to a converged pynndescent graph of degree
  30: the recall of the graph, of the graph plus its neighbours' neighbours, and plus the reverse
  neighbours and their neighbours (the pairs a full local join compares).
* ``hybrid``: a pynndescent graph of degree 45, then exact search for the ``--isolated`` share of
  rows whose 15th graph neighbour is least similar (where NN-descent misses most), by bfloat16
  candidates (64 per row) with a certificate (an error bound on the bfloat16 scores) and float32
  for the rows it does not certify.

Results: JSON (atomic) ``bench/results/knn-alternatives-MODEL.json`` and lines on stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _results import write_result  # noqa: E402
from bench_knn import _clock, _since, _truth  # noqa: E402

PYNN = [
    {"n_neighbors": 45, "max_candidates": 60, "n_trees": 8},
    {"n_neighbors": 60, "max_candidates": 60},
    {"n_neighbors": 90, "n_trees": 8},
]


def throughput(X) -> dict:
    import torch

    V, D = X.shape
    A, B = X[:4096].contiguous(), X[:65536].T.contiguous()
    m, n = A.shape[0], B.shape[1]
    out = {}
    for name, a, b, mm in [
        ("float32", A, B, torch.mm),
        ("bfloat16", A.bfloat16(), B.bfloat16(), torch.mm),
        ("int8", (A * 127).round().to(torch.int8), (B * 127).round().to(torch.int8).contiguous(), torch._int_mm),
    ]:
        mm(a, b)
        t = time.perf_counter()
        for _ in range(3):
            mm(a, b)
        rate = 3 * m * D * n / (time.perf_counter() - t)
        out[name] = {"gmac_per_s": round(rate / 1e9, 1), "brute_force_s": round(V * V * D / rate, 1)}
        print(f"throughput {name} {out[name]}", flush=True)
    return out


def _pynn_child(params: dict) -> None:
    import warnings

    import numpy as np
    import pynndescent

    X = np.load(os.environ["KNN_ALT_X"])
    t = _clock()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        index = pynndescent.NNDescent(
            X,
            metric="cosine",
            random_state=0,
            n_jobs=int(os.environ["KNN_ALT_THREADS"]),
            compressed=False,
            low_memory=True,
            verbose=False,
            **params,
        )
        graph = index.neighbor_graph[0]
    took = _since(t)
    np.save(os.environ["KNN_ALT_OUT"], graph)
    print(json.dumps(took))


def _pynn(X, params: dict, tmp: Path):
    """A pynndescent graph (its own column first when it finds itself) from a fresh process, on as
    many threads as torch has here."""
    import numpy as np
    import torch

    xp, gp = tmp / "X.npy", tmp / f"graph-{abs(hash(json.dumps(params, sort_keys=True)))}.npy"
    if not xp.exists():
        np.save(xp, X.numpy())
    env = dict(os.environ, KNN_ALT_X=str(xp), KNN_ALT_OUT=str(gp), KNN_ALT_THREADS=str(torch.get_num_threads()))
    load = os.getloadavg()[0]
    p = subprocess.run(
        [sys.executable, __file__, "--pynn-child", json.dumps(params)], env=env, capture_output=True, text=True
    )
    if p.returncode:
        raise SystemExit(p.stderr[-2000:])
    took = json.loads(p.stdout.strip().splitlines()[-1]) | {"loadavg": round(load, 2)}
    return np.load(gp), took


def _lists(X, G, rows, k: int = 15):
    """Top-k other rows of ``rows`` among the candidate id arrays ``G`` (one per row), exact cosines."""
    import numpy as np

    ids, sims = np.full((len(rows), k), -1), np.full((len(rows), k), np.nan, np.float32)
    for n, (r, c) in enumerate(zip(rows, G)):
        c = np.unique(c[(c >= 0) & (c != r)])
        s = X[c] @ X[r]
        o = np.argsort(-s, kind="stable")[:k]
        ids[n, : o.size], sims[n, : o.size] = c[o], s[o]
    return ids, sims


def _recall(ids, sims, truth) -> float:
    from anomtok.knn import sample_recall

    return sample_recall(ids, sims.astype("float32"), truth["ids"], truth["sims"])["recall"]


def pynn_settings(X, truth, tmp: Path) -> list[dict]:
    out = []
    rows = truth["rows"]
    for params in PYNN:
        G, took = _pynn(X, params, tmp)
        out.append({"params": params, "time": took, "recall": _recall(*_lists(X.numpy(), G[rows], rows), truth)})
        print(f"pynndescent {out[-1]}", flush=True)
    return out


def two_hop(X, truth, tmp: Path) -> dict:
    import numpy as np

    G, took = _pynn(X, {"n_neighbors": 30}, tmp)
    Xn, rows, V = X.numpy(), truth["rows"], G.shape[0]
    src = np.repeat(np.arange(V), G.shape[1])
    o = np.argsort(G.reshape(-1), kind="stable")
    rsrc, starts = src[o], np.searchsorted(G.reshape(-1)[o], np.arange(V + 1))
    rev = [rsrc[starts[v] : starts[v + 1]] for v in range(V)]
    sets = {
        "graph": [G[r] for r in rows],
        "graph+neighbours_of_neighbours": [np.concatenate([G[r], G[G[r]].ravel()]) for r in rows],
        "graph+nn+reverse+their_neighbours": [
            np.concatenate([G[r], G[G[r]].ravel(), rev[r], *[rev[v] for v in G[r]]]) for r in rows
        ],
    }
    out = {
        "degree": 30,
        "time": took,
        "reverse_degree_p50_p99_max": [int(x) for x in np.percentile(np.diff(starts), [50, 99, 100])],
    }
    for name, cand in sets.items():
        out[name] = _recall(*_lists(Xn, cand, rows), truth)
        print(f"two_hop {name}: {out[name]}", flush=True)
    return out


def hybrid(X, truth, tmp: Path, isolated: float) -> dict:
    import numpy as np
    import torch
    from knn_alt_kernels import certified_knn

    G, took = _pynn(X, {"n_neighbors": 45}, tmp)
    Xn, rows, V = X.numpy(), truth["rows"], G.shape[0]
    from anomtok.knn import _pair_cos

    S = _pair_cos(Xn, G)
    S[G == np.arange(V)[:, None]] = -np.inf  # not its own neighbour
    kth = -np.sort(-S, 1)[:, 14]
    iso = np.sort(np.argsort(kth, kind="stable")[: math.ceil(isolated * V)])
    t = _clock()
    ei, es, certified = certified_knn(X, 15, torch.from_numpy(iso))
    exact_time = _since(t)
    ids, sims = _lists(Xn, G[rows], rows)
    graph_recall = _recall(ids, sims, truth)
    hit = np.isin(rows, iso)
    ids[hit], sims[hit] = ei.numpy()[rows[hit]], es.numpy()[rows[hit]]
    out = {
        "degree": 45,
        "pynndescent_time": took,
        "isolated_share": isolated,
        "isolated_rows": int(iso.size),
        "kth_cos_cut": round(float(kth[iso].max()), 4),
        "exact_time": exact_time,
        "certified_rows": certified,
        "recall_graph": graph_recall,
        "recall_with_exact_isolated": _recall(ids, sims, truth),
    }
    print(f"hybrid {out}", flush=True)
    return out


def local_join(X, truth, rounds: int) -> dict:
    import torch
    from knn_alt_kernels import local_join_knn

    rows = truth["rows"]
    out = {"degree": 32, "rounds": []}

    def report(step: str, ids, sims, t) -> None:
        r = _recall(ids[rows, :15].numpy(), sims[rows, :15].numpy(), truth)
        out["rounds"].append({"step": step, "recall": r, **_since(t)})
        print(f"local_join {out['rounds'][-1]}", flush=True)

    t = _clock()
    local_join_knn(X, 32, rounds, torch.Generator().manual_seed(0), lambda step, ids, sims: report(step, ids, sims, t))
    return out


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--pynn-child":
        return _pynn_child(json.loads(sys.argv[2]))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="gemma-3-270m")
    ap.add_argument("--sample", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--parts", default="throughput,pynndescent,local_join,two_hop,hybrid")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--isolated", type=float, default=0.10)
    a = ap.parse_args()
    import tempfile

    import numpy as np
    import torch

    import anomtok
    from anomtok import metrics as M

    torch.set_num_threads(a.threads)
    truth = np.load(_truth(a.model, 15, a.sample, a.threads))
    E = anomtok.load(a.model).input.to(torch.float32)
    valid = M.valid_rows(E)
    if not bool(valid.all()):
        raise SystemExit("this study assumes every row is valid")
    X = (E / E.norm(dim=1, keepdim=True)).contiguous()
    doc: dict = {"model": a.model, "rows": X.shape[0], "dim": X.shape[1], "k": 15, "sample": int(truth["rows"].size)}
    doc["threads"], doc["loadavg_start"] = a.threads, [round(x, 2) for x in os.getloadavg()]
    parts = a.parts.split(",")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if "throughput" in parts:
            doc["throughput"] = throughput(X)
        if "pynndescent" in parts:
            doc["pynndescent"] = pynn_settings(X, truth, tmp)
        if "local_join" in parts:
            doc["local_join"] = local_join(X, truth, a.rounds)
        if "two_hop" in parts:
            doc["two_hop"] = two_hop(X, truth, tmp)
        if "hybrid" in parts:
            doc["hybrid"] = hybrid(X, truth, tmp, a.isolated)
    doc["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    path = HERE / "results" / f"knn-alternatives-{a.model}.json"
    write_result(doc, path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
