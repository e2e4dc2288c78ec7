#!/usr/bin/env python
"""Benchmark (issue 13.3): the full ``rank`` of a model, every column including the k nearest
neighbours, split by column; and the first principal component by block power iteration against
the full decomposition of the covariance, on the same matrix, in one run.

Run from the repository root, alone on the machine (under the shared lock)::

    flock /tmp/anomtok-bench.lock .venv/bin/python bench/bench_rank.py                 # Gemma 3 270M
    flock /tmp/anomtok-bench.lock .venv/bin/python bench/bench_rank.py --model smollm2-135m --nn off

A fresh child process loads the model (timed apart), then runs ``anomtok.ranking.rank`` with the
default options (``--nn auto``: approximate neighbours for Gemma) and reports wall and CPU seconds
and the time of every node of the column graph (``anomtok.columns``: each column and each shared
value, its own time without what it needed; ``meta.json``'s ``timings_s``). A second child times
``metrics.first_pc`` on the input embedding with ``method="eigh"`` and ``method="power"`` and
compares the two vectors and the ``pc1_removed_cos`` column they give.

Target: the full rank of Gemma <= 90 s on 2 cores. The k-NN search (``anomtok/knn.py``) is
another session's; its share is reported as measured. Results: JSON (atomic) in
``bench/results/rank-<model>.json`` and Markdown tables on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TARGET_S = 90.0


def _child_rank(model: str, nn: str) -> dict:
    t = time.perf_counter()
    import anomtok
    from anomtok.ranking import RankOptions, rank

    imports = time.perf_counter() - t
    t = time.perf_counter()
    emb = anomtok.load(model)
    load = time.perf_counter() - t
    w, c = time.perf_counter(), time.process_time()
    r = rank(emb, RankOptions(nn=nn))
    return {
        "imports_s": round(imports, 3),
        "load_s": round(load, 3),
        "rank_wall_s": round(time.perf_counter() - w, 3),
        "rank_cpu_s": round(time.process_time() - c, 3),
        "timings_s": r.meta["timings_s"],
        "nn_mode": r.meta["nn_mode"],
        "shape": r.meta["shape"],
    }


def _child_pc(model: str) -> dict:
    import torch

    import anomtok
    from anomtok import metrics as M

    E = anomtok.load(model).input.to(torch.float32)
    valid = M.valid_rows(E)
    out: dict = {}
    pcs = {}
    for method in ("eigh", "power", "eigh", "power"):  # twice each: the first call pays torch's warm-up
        w, c = time.perf_counter(), time.process_time()
        pcs[method] = M.first_pc(E, valid, method=method)
        out[method] = {"wall_s": round(time.perf_counter() - w, 3), "cpu_s": round(time.process_time() - c, 3)}
    a, b = pcs["eigh"].double(), pcs["power"].double()
    col = {m: M.pc1_removed_centroid_cosine(M.remove_first_pc(E, valid, method=m), valid) for m in ("eigh", "power")}
    ok = torch.isfinite(col["eigh"])
    out["max_abs_diff_pc"] = float((a - b).abs().max())
    out["l2_diff_pc"] = float((a - b).norm())
    out["max_abs_diff_pc1_removed_cos"] = float((col["eigh"][ok] - col["power"][ok]).abs().max())
    return out


def _spawn(kind: str, model: str, nn: str) -> dict:
    load0 = os.getloadavg()
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--model", model, "--nn", nn],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if proc.returncode != 0:
        raise SystemExit(f"child {kind} failed:\n{proc.stderr[-3000:]}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res.update(process_wall_s=round(time.perf_counter() - t, 3), loadavg_before=load0, loadavg_after=os.getloadavg())
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--model", default="gemma-3-270m")
    ap.add_argument("--nn", default="auto", choices=["auto", "exact", "approx", "off"])
    ap.add_argument("--no-pc", action="store_true", help="skip the eigh / power comparison")
    ap.add_argument("--child", choices=["rank", "pc"], help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.child:
        sys.path.insert(0, str(ROOT))
        res = _child_rank(args.model, args.nn) if args.child == "rank" else _child_pc(args.model)
        print(json.dumps(res))
        return

    result: dict = {"model": args.model, "nn": args.nn, "rank": _spawn("rank", args.model, args.nn)}
    if not args.no_pc:
        result["first_pc"] = _spawn("pc", args.model, args.nn)
    result.update(
        cpu_count=os.cpu_count(),
        git_head=subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip(),
        date_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    out = Path(args.out) if args.out else HERE / "results" / f"rank-{args.model}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    os.replace(tmp, out)

    r = result["rank"]
    total = r["rank_wall_s"]
    print(
        f"rank of {args.model} {r['shape']}, nn={args.nn} ({r['nn_mode'][:60]}): {total:.1f} s wall, "
        f"{r['rank_cpu_s']:.1f} s CPU; load {r['load_s']:.1f} s, imports {r['imports_s']:.1f} s; "
        f"target <= {TARGET_S:.0f} s: {'met' if total <= TARGET_S else 'NOT met'}; "
        f"load average {r['loadavg_before'][0]:.2f} -> {r['loadavg_after'][0]:.2f}"
    )
    print("\n| column graph node | seconds | share |\n|---|---:|---:|")
    for name, s in sorted(r["timings_s"].items(), key=lambda kv: -kv[1]):
        if s >= 0.01:
            print(f"| {name} | {s:.2f} | {100 * s / total:.1f}% |")
    if "first_pc" in result:
        p = result["first_pc"]
        print(
            f"\nfirst principal component: eigh {p['eigh']['wall_s']:.2f} s wall ({p['eigh']['cpu_s']:.2f} CPU), "
            f"power {p['power']['wall_s']:.2f} s wall ({p['power']['cpu_s']:.2f} CPU); "
            f"max |diff| of the vectors {p['max_abs_diff_pc']:.2e} (L2 {p['l2_diff_pc']:.1e}), "
            f"of pc1_removed_cos {p['max_abs_diff_pc1_removed_cos']:.2e}"
        )
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
