#!/usr/bin/env python
"""Benchmark: the UMAP map of a full vocabulary, and a re-render of every plot from the cache.

Run from the repository root::

    /work/venv/bin/python bench/bench_umap.py                       # Gemma 3 270M, full vocabulary
    /work/venv/bin/python bench/bench_umap.py --model smollm2-135m
    /work/venv/bin/python bench/bench_umap.py --docs-img docs/img/gemma_map_score.png

Each step runs in a FRESH child process (peak memory from ``ru_maxrss``, no warm caches):

1. ``compute``: ``anomtok.load`` + ``anomtok.rank`` (written to OUT), then a warm-up UMAP on a
   small random matrix (numba compiles umap's kernels on the first fit of a process: that cost is
   reported on its own line), then ``compute_map`` of the full matrix (cosine, seed 0: UMAP runs
   single-threaded when seeded), then every plot rendered.
2. ``rerender``: ``plot_model`` on the same OUT, as ``anomtok plot`` does a second time: it must
   reuse ``ranked.parquet`` and ``umap.parquet`` (the model is not loaded, UMAP is not run).

Results: JSON (atomic) under bench/results/ and a Markdown table on stdout. OUT defaults to a
folder in the user cache, never the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_OUT_ROOT = Path.home() / ".cache" / "anomtok-bench" / "umap"


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _options(sample: int | None, n_epochs: int | None):
    from anomtok.maps import MapOptions

    return MapOptions(sample=sample, n_epochs=n_epochs) if sample else MapOptions(full=True, n_epochs=n_epochs)


def child_compute(model: str, out: Path, sample: int | None, formats: list[str], n_epochs: int | None) -> dict:
    t0 = time.perf_counter()
    import numpy as np

    import anomtok
    from anomtok.maps import compute_map, plot_model, umap_coords

    r: dict = {"imports_s": round(time.perf_counter() - t0, 2)}
    t = time.perf_counter()
    emb = anomtok.load(model)
    r["load_s"] = round(time.perf_counter() - t, 2)
    r["shape"] = list(emb.shape)
    t = time.perf_counter()
    ranking = anomtok.rank(emb, out_dir=out)
    r["rank_s"] = round(time.perf_counter() - t, 2)
    t = time.perf_counter()
    # > 4096 rows, so that the nearest-neighbour descent path (pynndescent) is compiled too
    umap_coords(np.random.default_rng(0).normal(size=(5000, 16)).astype(np.float32), n_epochs=5)
    r["numba_warmup_s"] = round(time.perf_counter() - t, 2)
    opt = _options(sample, n_epochs)
    t, c = time.perf_counter(), time.process_time()
    res = compute_map(
        emb.input.float().numpy(), ranking.frame, opt, cache=out / "umap.parquet", source=emb.provenance.to_dict()
    )
    r["map_s"] = round(time.perf_counter() - t, 2)
    r["map_cpu_s"] = round(time.process_time() - c, 2)
    r["umap_fit_s"] = res.meta["umap_seconds"]
    r["points"] = res.meta["points"]
    r["description"] = res.meta["description"]
    r["rss_after_map_mb"] = round(_rss_mb())
    del emb
    t, c = time.perf_counter(), time.process_time()
    pr = plot_model(model, out, map_options=opt, formats=formats)
    r["first_render_s"] = round(time.perf_counter() - t, 2)
    r["first_render_cpu_s"] = round(time.process_time() - c, 2)
    r["first_render_reused_map"] = pr.map_reused
    r["peak_rss_mb"] = round(_rss_mb())
    return r


def child_rerender(model: str, out: Path, sample: int | None, formats: list[str], n_epochs: int | None) -> dict:
    t0 = time.perf_counter()
    from anomtok.maps import plot_model

    r: dict = {"imports_s": round(time.perf_counter() - t0, 2)}
    t, c = time.perf_counter(), time.process_time()
    opt = _options(sample, n_epochs)
    pr = plot_model(model, out, map_options=opt, formats=formats)
    r["rerender_s"] = round(time.perf_counter() - t, 2)
    r["rerender_cpu_s"] = round(time.process_time() - c, 2)
    r["steps_s"] = pr.seconds
    r["ranking_reused"] = pr.ranking_reused
    r["map_reused"] = pr.map_reused
    r["files"] = sum(len(v) for v in pr.files.values())
    r["total_with_imports_s"] = round(time.perf_counter() - t0, 2)
    r["peak_rss_mb"] = round(_rss_mb())
    return r


def docs_image(out: Path, target: Path, dpi: int) -> dict:
    """A small PNG of the score map from the cache (for docs/), written atomically."""
    import json as _json

    from anomtok.export import read_table
    from anomtok.maps import MapResult, map_figure, read_map, save_figure

    frame = read_table(out / "ranked.parquet")
    coords, meta = read_map(out / "umap.parquet")
    src = _json.loads((out / "meta.json").read_text())["source"]["source"]
    fig = map_figure(frame, MapResult(coords, meta, True), "score", title=src, label_top=20)
    fig.set_size_inches(10, 7.5)
    path = save_figure(fig, target.with_suffix(""), ["png"], dpi=dpi)[0]
    return {"docs_img": str(path), "bytes": path.stat().st_size}


def run_child(step: str, args: argparse.Namespace) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        step,
        "--model",
        args.model,
        "--out",
        str(args.out),
        "--format",
        args.format,
    ]
    if args.sample:
        cmd += ["--sample", str(args.sample)]
    if args.n_epochs:
        cmd += ["--n-epochs", str(args.n_epochs)]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(f"child {step} failed ({proc.returncode})")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res["process_wall_s"] = round(wall, 2)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="gemma-3-270m")
    ap.add_argument("--out", type=Path, default=None, help="work folder (default: user cache)")
    ap.add_argument("--sample", type=int, default=None, help="map a stratified sample instead of the full vocabulary")
    ap.add_argument("--n-epochs", type=int, default=None, help="UMAP epochs (default: UMAP's, 200 for large inputs)")
    ap.add_argument("--format", default="png,svg")
    ap.add_argument("--child", choices=["compute", "rerender"], help=argparse.SUPPRESS)
    ap.add_argument("--skip-compute", action="store_true", help="only the re-render (OUT must hold a map)")
    ap.add_argument("--docs-img", type=Path, default=None, help="also write a small score-map PNG here")
    ap.add_argument("--docs-dpi", type=int, default=60)
    ap.add_argument("--results", type=Path, default=HERE / "results" / "umap.json")
    args = ap.parse_args()
    args.out = args.out or DEFAULT_OUT_ROOT / args.model
    formats = [f for f in args.format.split(",") if f]
    if args.child:
        fn = child_compute if args.child == "compute" else child_rerender
        print(json.dumps(fn(args.model, args.out, args.sample, formats, args.n_epochs)))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    result: dict = {
        "model": args.model,
        "sample": args.sample,
        "n_epochs": args.n_epochs,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_average_at_start": os.getloadavg(),
        },
    }
    if not args.skip_compute:
        for stale in ("umap.parquet", "ranked.parquet", "meta.json"):
            (args.out / stale).unlink(missing_ok=True)
        result["compute"] = run_child("compute", args)
    result["rerender"] = run_child("rerender", args)
    if args.docs_img:
        result["docs"] = docs_image(args.out, args.docs_img, args.docs_dpi)
    from anomtok.export import write_json

    args.results.parent.mkdir(parents=True, exist_ok=True)
    write_json(result, args.results)
    c, rr = result.get("compute", {}), result["rerender"]
    print(f"| {args.model} | value |\n|---|---|")
    result["machine"]["load_average_at_end"] = os.getloadavg()
    write_json(result, args.results)
    for k in (
        "shape",
        "points",
        "load_s",
        "rank_s",
        "numba_warmup_s",
        "umap_fit_s",
        "map_s",
        "map_cpu_s",
        "rss_after_map_mb",
        "first_render_s",
        "first_render_cpu_s",
        "peak_rss_mb",
    ):
        if k in c:
            print(f"| compute: {k} | {c[k]} |")
    for k in (
        "rerender_s",
        "rerender_cpu_s",
        "total_with_imports_s",
        "process_wall_s",
        "map_reused",
        "ranking_reused",
        "files",
    ):
        print(f"| re-render: {k} | {rr[k]} |")
    if "docs" in result:
        print(f"| docs image | {result['docs']['docs_img']} ({result['docs']['bytes']:,} bytes) |")


if __name__ == "__main__":
    main()
