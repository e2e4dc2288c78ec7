#!/usr/bin/env python
"""Benchmark: the k nearest neighbours (cosine) of every token, exact or approximate.

Run from the repository root::

    .venv/bin/python bench/bench_knn.py                                  # Gemma 3 270M, every method
    .venv/bin/python bench/bench_knn.py --model smollm2-135m --methods exact,rank
    .venv/bin/python bench/bench_knn.py --methods pynndescent --degrees 45,60,75

For each method a FRESH child process loads the model (not timed), then times the search of the
``k`` nearest other rows of every valid row: wall seconds and CPU seconds of the process (all its
threads; on a machine shared with other work, CPU/2 estimates the wall time on 2 idle cores),
imports and numba's compilation included, since every process pays them. Then the recall against
exact search on a seeded random sample of rows (``--sample``, default 2000), computed once by the
parent with ``anomtok.knn.exact_knn`` and shared with the children: ``recall`` counts an
approximate neighbour as found when its cosine reaches the exact k-th cosine (ties), ``recall_ids``
is the plain share of exact ids found (``anomtok.knn.sample_recall``).

Methods: ``exact`` (``exact_knn`` over every row; ``--exact-rows N`` times N rows and
extrapolates to V, marked so), ``pynndescent`` (``nndescent_knn`` for each ``--degrees``),
``faiss-hnsw`` and ``faiss-nndescent`` (when faiss-cpu is importable; not a dependency of anomtok),
``rank`` (``anomtok.rank`` with the default options: what a user waits for, with the recall the
ranking itself measured and wrote to meta.json). The load average is recorded before and after
each child. Results: JSON (atomic) under bench/results/ and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CACHE = Path.home() / ".cache" / "anomtok-bench" / "knn"


def _load() -> tuple[float, float, float]:
    return os.getloadavg()


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(t: tuple[float, float]) -> dict[str, float]:
    return {"wall_s": round(time.perf_counter() - t[0], 2), "cpu_s": round(time.process_time() - t[1], 2)}


# ----------------------------------------------------------------------------- children


def _unit(E):
    import numpy as np

    n = np.linalg.norm(E, axis=1, keepdims=True)
    return np.ascontiguousarray(E / np.where(n > 0, n, 1), dtype=np.float32)


def _faiss_lists(I, S, cand, k, V):
    """faiss results over the valid rows -> (V, k) token ids / cosines without the row itself."""
    import numpy as np

    ids = np.full((V, k), -1, dtype=np.int64)
    sims = np.full((V, k), np.nan, dtype=np.float32)
    own = I == np.arange(cand.size)[:, None]
    drop = np.where(own.any(axis=1), own.argmax(axis=1), I.shape[1] - 1)  # the row itself, else the last place
    keep = np.ones(I.shape, dtype=bool)
    keep[np.arange(cand.size), drop] = False
    I, S = I[keep].reshape(cand.size, -1)[:, :k], S[keep].reshape(cand.size, -1)[:, :k]
    ids[cand] = np.where(I >= 0, cand[np.maximum(I, 0)], -1)
    sims[cand] = np.where(I >= 0, S, np.nan)
    return ids, sims


def child(spec: dict) -> dict:
    import numpy as np
    import torch

    import anomtok
    from anomtok import knn as K
    from anomtok import metrics as M

    torch.set_num_threads(spec["threads"])
    emb = anomtok.load(spec["model"])
    E = emb.input.to(torch.float32)
    V, D = E.shape
    valid = M.valid_rows(E)
    k, method = spec["k"], spec["method"]
    out: dict = {"method": method, "params": spec.get("params", {}), "rows": V, "dim": D, "k": k}
    t = _clock()
    if method == "exact":
        n = spec.get("exact_rows")
        rows = None if not n else torch.nonzero(valid).squeeze(1)[:n]
        ids, sims = K.exact_knn(E, valid, k, rows=rows)
        ids, sims = ids.numpy(), sims.numpy()
        out["time"] = _since(t)
        if n:
            scale = int(valid.sum()) / n
            out["extrapolated_from_rows"] = n
            out["time_all_rows"] = {key: round(v * scale, 1) for key, v in out["time"].items()}
    elif method == "pynndescent":
        ids, sims = K.nndescent_knn(E, valid, k, degree=spec["params"]["degree"], seed=0, threads=spec["threads"])
        out["time"] = _since(t)
    elif method.startswith("faiss"):
        import faiss

        faiss.omp_set_num_threads(spec["threads"])
        cand = torch.nonzero(valid).squeeze(1).numpy()
        X = _unit(E.numpy()[cand])
        p = spec["params"]
        if method == "faiss-hnsw":
            index = faiss.IndexHNSWFlat(D, p["M"], faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = p["ef_construction"]
            index.add(X)
            index.hnsw.efSearch = p["ef_search"]
            S, I = index.search(X, k + 1)
        else:  # faiss-nndescent: L2 on unit rows ranks like cosine
            index = faiss.IndexNNDescentFlat(D, p["K"], faiss.METRIC_L2)
            index.add(X)
            G = faiss.vector_to_array(index.nndescent.final_graph).reshape(cand.size, -1)
            S = np.einsum("id,ijd->ij", X, X[G])
            o = np.argsort(-S, axis=1, kind="stable")[:, : k + 1]
            I, S = np.take_along_axis(G, o, 1), np.take_along_axis(S, o, 1)
        ids, sims = _faiss_lists(I, S, cand, k, V)
        out["time"] = _since(t)
    elif method == "rank":
        r = anomtok.rank(emb)
        out["time"] = _since(t)
        out["rank_timings_s"] = r.meta["timings_s"]
        out["nn_mode"] = r.meta["nn_mode"]
        out["knn_info"] = r.meta["knn"]
        ids, sims = r.knn.ids, r.knn.sims
    else:
        raise SystemExit(f"unknown method {method}")
    truth = np.load(spec["truth"])
    rows = truth["rows"]
    if method == "exact" and spec.get("exact_rows"):
        out["recall"] = {"recall": 1.0, "note": "exact"}
    elif method == "rank":
        # the ranking searched its own sample exactly and kept those rows: its recall is in knn_info;
        # here the shared sample, excluding the rows the ranking searched exactly
        approx = ~r.knn.exact_rows[rows]
        out["recall"] = K.sample_recall(
            ids[rows][approx], sims[rows][approx], truth["ids"][approx], truth["sims"][approx]
        )
    else:
        out["recall"] = K.sample_recall(ids[rows], sims[rows], truth["ids"], truth["sims"])
    return out


# ----------------------------------------------------------------------------- parent


def _truth(model: str, k: int, sample: int, threads: int) -> Path:
    """Exact neighbours of a seeded sample of valid rows (computed once per model, k and sample)."""
    path = CACHE / f"truth-{model}-k{k}-n{sample}.npz"
    if path.exists():
        return path
    import numpy as np
    import torch

    import anomtok
    from anomtok import knn as K
    from anomtok import metrics as M

    torch.set_num_threads(threads)
    E = anomtok.load(model).input.to(torch.float32)
    valid = M.valid_rows(E)
    rows = np.sort(np.random.default_rng(0).choice(np.nonzero(valid.numpy())[0], sample, replace=False))
    t = _clock()
    ids, sims = K.exact_knn(E, valid, k, rows=torch.from_numpy(rows))
    print(f"exact neighbours of {sample} sample rows: {_since(t)}", file=sys.stderr)
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, rows=rows, ids=ids.numpy()[rows], sims=sims.numpy()[rows])
    os.replace(tmp, path)
    return path


def _run_child(spec: dict) -> dict:
    before = _load()
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True, cwd=ROOT
    )
    after = _load()
    if proc.returncode != 0:
        return {"method": spec["method"], "params": spec.get("params", {}), "error": proc.stderr.strip()[-2000:]}
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res["child_wall_s"] = round(time.perf_counter() - t0, 1)
    res["loadavg_before"] = [round(x, 2) for x in before]
    res["loadavg_after"] = [round(x, 2) for x in after]
    return res


def _env() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    def v(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "python": platform.python_version(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "git_head": head,
        "versions": {p: v(p) for p in ("torch", "numpy", "pynndescent", "numba", "faiss-cpu", "umap-learn")},
    }


def _row(r: dict) -> str:
    if "error" in r:
        return f"| {r['method']} | {r.get('params')} | error: {r['error'].splitlines()[-1][:80]} | | | | |"
    t = r.get("time_all_rows") or r["time"]
    note = f" (extrapolated from {r['extrapolated_from_rows']} rows)" if "extrapolated_from_rows" in r else ""
    rec = r["recall"]
    recall = "1 (exact)" if rec.get("note") == "exact" else f"{rec['recall']:.4f} / {rec['recall_ids']:.4f}"
    err = "" if rec.get("note") == "exact" else f"{rec['mean_cos_error']:.5f}"
    load = f"{r['loadavg_before'][0]:.1f} → {r['loadavg_after'][0]:.1f}"
    return (
        f"| {r['method']} | {r.get('params') or ''} | {t['wall_s']}{note} | {t['cpu_s']} | {recall} | {err} | {load} |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--model", default="gemma-3-270m")
    ap.add_argument("--k", type=int, default=15)
    ap.add_argument("--sample", type=int, default=2000, help="rows searched exactly for the recall")
    ap.add_argument("--methods", default="exact,pynndescent,faiss-hnsw,faiss-nndescent,rank")
    ap.add_argument("--degrees", default="30,45,60", help="pynndescent graph degrees")
    ap.add_argument(
        "--exact-rows",
        type=int,
        default=None,
        help="time exact search on this many rows and extrapolate (default: all rows below 100k, else 8192)",
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None, help="JSON path (default bench/results/knn-MODEL.json)")
    ap.add_argument("--append", action="store_true", help="add to the results already in the JSON file")
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(json.loads(a.child))))
        return
    truth = str(_truth(a.model, a.k, a.sample, a.threads))
    base = {"model": a.model, "k": a.k, "threads": a.threads, "truth": truth}
    specs: list[dict] = []
    for m in a.methods.split(","):
        if m == "exact":
            specs.append(base | {"method": "exact", "exact_rows": a.exact_rows})
        elif m == "pynndescent":
            specs += [base | {"method": m, "params": {"degree": int(d)}} for d in a.degrees.split(",")]
        elif m == "faiss-hnsw":
            specs.append(base | {"method": m, "params": {"M": 32, "ef_construction": 64, "ef_search": 96}})
        elif m == "faiss-nndescent":
            specs.append(base | {"method": m, "params": {"K": 32}})
        elif m == "rank":
            specs.append(base | {"method": m})
        else:
            raise SystemExit(f"unknown method {m}")
    if a.exact_rows is None:
        for s in specs:
            if s["method"] == "exact":
                s["exact_rows"] = None if a.model != "gemma-3-270m" else 8192
    out = Path(a.out) if a.out else HERE / "results" / f"knn-{a.model}.json"
    results: list[dict] = json.loads(out.read_text())["results"] if a.append and out.exists() else []
    doc = {"model": a.model, "k": a.k, "sample": a.sample, "threads": a.threads, "env": _env(), "results": results}
    for s in specs:
        print(f"{s['method']} {s.get('params', '')} ...", file=sys.stderr, flush=True)
        results.append(_run_child(s))
        print(f"  {_row(results[-1])}", file=sys.stderr, flush=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=1) + "\n")
        os.replace(tmp, out)
    print(f"\n{a.model}, k = {a.k}, recall on {a.sample} random rows, {a.threads} threads\n")
    print("| method | settings | wall s | CPU s | recall / recall_ids | mean cos error | load avg (1 min) |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(_row(r))


if __name__ == "__main__":
    main()
