#!/usr/bin/env python
"""Benchmark: the full-vocabulary map with the ranking's k-NN graph against UMAP's own search.

Run from the repository root, under the shared lock::

    flock /tmp/anomtok-bench.lock .venv/bin/python bench/bench_map.py                 # Gemma 3 270M
    flock /tmp/anomtok-bench.lock .venv/bin/python bench/bench_map.py --model smollm2-135m --epochs 200,100

Steps, each in a FRESH child process (imports and numba's compilation are timed on their own):

1. ``rank``: ``anomtok.rank`` written to OUT (``ranked.parquet``, ``knn.npz``), timed; skipped
   when OUT already holds it for this model (``--force-rank`` redoes it).
2. ``map``: for each ``--knn`` source (``ranking``: the graph read back from ``knn.npz``;
   ``umap``: UMAP searches the neighbours itself) and each ``--epochs`` value (``default`` is
   UMAP's, 200 for large inputs): a warm-up UMAP fit on a small random matrix (numba compiles its
   kernels once per process; reported as ``warmup_s``), then ``compute_map`` of every valid row
   (cosine, seed 0), timed in wall and CPU seconds. Quality: for a seeded sample of 2,000 rows,
   the share of each row's 15 nearest neighbours in the embedding (the ranking's graph) that are
   among its 15 nearest points on the 2-D map (``knn_kept``). Then the same map again from its
   cache (``umap-*.parquet``): its seconds and whether the coordinates are identical.
3. ``rerender``: ``plot_model`` on OUT with the first map's cache (PNG only, no HTML), as a
   second ``anomtok plot`` or ``scan`` does: the model is not loaded, UMAP is not run.

The load average is recorded before and after each child. Results: JSON (atomic)
``bench/results/map-MODEL.json`` and a Markdown table on stdout. OUT defaults to a folder in the
user cache, never the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = Path.home() / ".cache" / "anomtok-bench" / "map"


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(t: tuple[float, float]) -> dict[str, float]:
    return {"wall_s": round(time.perf_counter() - t[0], 2), "cpu_s": round(time.process_time() - t[1], 2)}


def _rss_mb() -> int:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)


def _map_options(epochs: int | None):
    from anomtok.maps import MapOptions

    return MapOptions(full=True, n_epochs=epochs)


def _knn_kept(coords, graph, sample: int = 2000, seed: int = 0) -> float:
    """Share of the embedding's 15 nearest neighbours (from ``graph``) of ``sample`` seeded rows
    that are among the row's 15 nearest points on the map."""
    import numpy as np

    ids = coords["token_id"].to_numpy()
    xy = np.full((graph.ids.shape[0], 2), np.nan)
    xy[ids] = coords.select("x", "y").to_numpy()
    rows = np.sort(np.random.default_rng(seed).choice(ids, min(sample, ids.size), replace=False))
    kept = total = 0
    for r in rows:
        d = ((xy[ids] - xy[r]) ** 2).sum(axis=1)
        d[ids == r] = np.inf
        near = set(ids[np.argpartition(d, 15)[:15]].tolist())
        nb = [int(i) for i in graph.ids[r, :15] if i >= 0]
        kept += sum(i in near for i in nb)
        total += len(nb)
    return round(kept / max(total, 1), 4)


def child(spec: dict) -> dict:
    t0 = _clock()
    import numpy as np
    import torch

    import anomtok
    from anomtok.export import KNN_FILE, read_knn, read_table
    from anomtok.maps import compute_map, plot_model, umap_coords

    torch.set_num_threads(spec["threads"])
    out = Path(spec["out"])
    r: dict = {"step": spec["step"], "params": spec.get("params", {}), "imports": _since(t0)}
    if spec["step"] == "rank":
        t = _clock()
        emb = anomtok.load(spec["model"])
        r["load"] = _since(t)
        t = _clock()
        ranking = anomtok.rank(emb, out_dir=out)
        r["rank"] = _since(t)
        r["knn"] = ranking.meta["knn"]
        r["rank_timings_s"] = ranking.meta["timings_s"]
        return r
    if spec["step"] == "rerender":
        t = _clock()
        pr = plot_model(spec["model"], out, map_options=_map_options(spec["params"]["epochs"]), formats=["png"])
        r["rerender"] = _since(t)
        r["ranking_reused"], r["map_reused"] = pr.ranking_reused, pr.map_reused
        r["files"] = sum(len(v) for v in pr.files.values())
        return r
    p = spec["params"]
    t = _clock()
    emb = anomtok.load(spec["model"])
    frame = read_table(out / "ranked.parquet")
    graph = read_knn(out / KNN_FILE)
    r["load"] = _since(t)
    t = _clock()
    umap_coords(np.random.default_rng(0).normal(size=(5000, 16)).astype(np.float32), n_epochs=5)
    r["warmup"] = _since(t)
    cache = out / f"umap-{p['knn']}-{p['epochs'] or 'default'}.parquet"
    cache.unlink(missing_ok=True)
    M = emb.input.float().numpy()
    opt = _map_options(p["epochs"])
    t = _clock()
    res = compute_map(M, frame, opt, cache=cache, knn=graph if p["knn"] == "ranking" else None)
    r["map"] = _since(t)
    r["points"], r["map_knn"] = res.meta["points"], res.meta["knn"]
    r["peak_rss_mb"] = _rss_mb()
    r["knn_kept"] = _knn_kept(res.coords, graph)
    t = _clock()
    again = compute_map(M, frame, opt, cache=cache, knn=graph if p["knn"] == "ranking" else None)
    r["from_cache"] = _since(t) | {"hit": again.from_cache, "identical": bool(again.coords.equals(res.coords))}
    if p.get("keep"):
        os.replace(cache, out / "umap.parquet")  # the map the re-render step reuses
    return r


def _run(spec: dict) -> dict:
    before = os.getloadavg()
    proc = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True, cwd=ROOT
    )
    res: dict = (
        json.loads(proc.stdout.strip().splitlines()[-1])
        if proc.returncode == 0
        else {"step": spec["step"], "params": spec.get("params", {}), "error": proc.stderr.strip()[-2000:]}
    )
    res["loadavg_before"] = [round(x, 2) for x in before]
    res["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    return res


def _row(r: dict) -> str:
    load = f"{r['loadavg_before'][0]:.1f} → {r['loadavg_after'][0]:.1f}"
    if "error" in r:
        return f"| {r['step']} | {r.get('params') or ''} | error: {r['error'].splitlines()[-1][:80]} | | | {load} |"
    main = r.get("map") or r.get("rank") or r.get("rerender")
    extra = ""
    if "map" in r:
        extra = f"warm-up {r['warmup']['wall_s']} s; knn_kept {r['knn_kept']}; cache {r['from_cache']['wall_s']} s"
        extra += f" ({'identical' if r['from_cache']['identical'] else 'DIFFERENT'})"
    elif "rank" in r:
        extra = f"knn {r['knn'].get('method')} recall {r['knn'].get('recall', 1)}"
    else:
        extra = f"map reused {r['map_reused']}, {r['files']} files"
    return f"| {r['step']} | {r.get('params') or ''} | {main['wall_s']} | {main['cpu_s']} | {extra} | {load} |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--model", default="gemma-3-270m")
    ap.add_argument("--knn", default="ranking,umap", help="neighbour sources: ranking, umap")
    ap.add_argument("--epochs", default="default", help="UMAP epochs, comma-separated (default: UMAP's)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None, help="work folder (default: user cache)")
    ap.add_argument("--force-rank", action="store_true")
    ap.add_argument("--results", type=Path, default=None, help="JSON (default bench/results/map-MODEL.json)")
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(json.loads(a.child))))
        return
    out = a.out or WORK / a.model
    out.mkdir(parents=True, exist_ok=True)
    base = {"model": a.model, "threads": a.threads, "out": str(out)}
    specs = [] if (out / "knn.npz").exists() and not a.force_rank else [base | {"step": "rank"}]
    epochs = [None if ep == "default" else int(ep) for ep in a.epochs.split(",")]
    for src in a.knn.split(","):
        for ep in epochs:
            specs.append(base | {"step": "map", "params": {"knn": src, "epochs": ep}})
    specs[-len(epochs) * len(a.knn.split(","))]["params"]["keep"] = True  # the first map: re-rendered below
    specs.append(base | {"step": "rerender", "params": {"epochs": epochs[0]}})
    path = a.results or HERE / "results" / f"map-{a.model}.json"
    doc = {"model": a.model, "threads": a.threads, "cpus": os.cpu_count(), "results": []}
    for s in specs:
        print(f"{s['step']} {s.get('params', '')} ...", file=sys.stderr, flush=True)
        doc["results"].append(_run(s))
        print(f"  {_row(doc['results'][-1])}", file=sys.stderr, flush=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=1) + "\n")
        os.replace(tmp, path)
    print(f"\n{a.model}, full map, {a.threads} threads\n")
    print("| step | settings | wall s | CPU s | notes | load avg (1 min) |")
    print("|---|---|---|---|---|---|")
    for r in doc["results"]:
        print(_row(r))


if __name__ == "__main__":
    main()
