"""Size and render time of the interactive map (``map.html``) of a report folder.

    .venv/bin/python bench/bench_html_map.py DIR [DIR ...] [--random-coords] [--json OUT]

DIR holds ``ranked.parquet`` and ``umap.parquet`` (``anomtok plot DIR ...`` or a scan writes them;
``negtemp_tokens.csv`` or ``negtemp/negtemp_tokens.csv`` is used when present). With
``--random-coords`` the map's coordinates are seeded normal noise over every valid token, for
measuring the file size of a full map whose UMAP has not been run (the size depends on the
number of points, not on where they are); the result says so. The HTML is written to
``DIR/map.html`` (with ``--out-dir D``: ``D/<folder name>.html``). Prints one line per folder.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

from anomtok.cache import atomic_write_text
from anomtok.maps.cache import read_map
from anomtok.maps.html import read_counts, render_html
from anomtok.maps.options import MapResult


def measure(folder: Path, random_coords: bool, out_dir: Path | None) -> dict:
    frame = pl.read_parquet(folder / "ranked.parquet")
    meta = json.loads((folder / "meta.json").read_text()) if (folder / "meta.json").exists() else {}
    title = str((meta.get("source") or {}).get("source") or folder.name)
    if random_coords:
        ids = frame.filter(pl.col("valid"))["token_id"].sort().to_numpy()
        xy = np.random.default_rng(0).normal(size=(ids.size, 2)).astype(np.float32)
        coords = pl.DataFrame({"token_id": ids, "x": xy[:, 0], "y": xy[:, 1], "why": ["all"] * ids.size})
        mres = MapResult(coords=coords, meta={"description": f"{ids.size:,} points: RANDOM coordinates (size test)"})
    else:
        got = read_map(folder / "umap.parquet")
        if got is None:
            raise SystemExit(f"{folder}: no readable umap.parquet (use --random-coords)")
        mres = MapResult(coords=got[0], meta=got[1])
    neg = None
    for p in (folder / "negtemp_tokens.csv", folder / "negtemp" / "negtemp_tokens.csv"):
        if p.exists():
            neg = read_counts(p)
            break
    target = out_dir / f"{folder.name}.html" if out_dir else folder / "map.html"
    t = time.perf_counter()
    render_html(frame, mres, target, title=title, negtemp=neg)
    seconds = time.perf_counter() - t
    return {
        "folder": str(folder),
        "model": title,
        "vocab": frame.height,
        "points": mres.coords.height,
        "random_coords": random_coords,
        "negtemp_tokens": len(neg or {}),
        "bytes": os.path.getsize(target),
        "render_seconds": round(seconds, 2),
        "loadavg": Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folders", nargs="+", type=Path)
    ap.add_argument("--random-coords", action="store_true")
    ap.add_argument("--out-dir", type=Path)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    rows = [measure(f, a.random_coords, a.out_dir) for f in a.folders]
    for r in rows:
        coords = "random coordinates" if r["random_coords"] else "its UMAP"
        print(
            f"{r['model']}: {r['points']:,} of {r['vocab']:,} tokens ({coords}), {r['bytes'] / 1e6:.1f} MB, "
            f"rendered in {r['render_seconds']} s (load {' '.join(r['loadavg'] or [])})",
            file=sys.stdout,
        )
    if a.json:
        atomic_write_text(a.json, json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
