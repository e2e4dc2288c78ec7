#!/usr/bin/env python
"""Benchmark: the tokenizer audit of the packaged real tokenizers, Gemma 3's 262,144 tokens first
(target: under 60 s on the 2-core machine).

Run from the repository root::

    /work/venv/bin/python bench/bench_audit.py
    /work/venv/bin/python bench/bench_audit.py --models gemma-3-270m --repeats 3 --with-ranking

Each run is a FRESH child process (``--child``) doing exactly what ``anomtok audit ALIAS -o DIR
--no-rank`` does (``anomtok.audit.audit(alias, out_dir, ranking=False)``), so the tokenizer is
built from scratch every time (for Gemma: read the GGUF metadata from the package's chunks and
rebuild the tokenizer). Reported: wall time of the audit call (``perf_counter``), its stages
(load, decode, encode, classify, japanese: cumulative seconds from the progress callback), the
import time, peak RSS, the machine's load average before the run, and the round-trip counts.
``--with-ranking`` adds one run that also loads the embeddings and ranks them (``nn="off"``).

Results: JSON (written atomically) in bench/results/audit.json and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "audit.json"
DEFAULT_MODELS = "gemma-3-270m,smollm2-135m,minilm-l6,xlmr-tokenizer"
TARGET_S = {"gemma-3-270m": 60.0}


def child(alias: str, with_ranking: bool) -> dict:
    t0 = time.perf_counter()
    from anomtok.audit import audit

    t_import = time.perf_counter() - t0
    stages: dict[str, float] = {}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        result = audit(
            alias,
            out_dir=out,
            ranking=None if with_ranking else False,
            progress=lambda s: stages.__setitem__(s, round(time.perf_counter() - start, 2)),
        )
        wall = time.perf_counter() - start
    s = result.summary
    return {
        "alias": alias,
        "with_ranking": with_ranking,
        "wall_s": round(wall, 2),
        "import_s": round(t_import, 2),
        "stages_cumulative_s": stages,
        "summary_seconds": s["seconds"],
        "n_tokens": s["n_tokens"],
        "round_trip": {k: v for k, v in s["counts"]["round_trip"].items() if v},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def run_child(alias: str, with_ranking: bool) -> dict:
    load_before = os.getloadavg()[0]
    cmd = [sys.executable, __file__, "--child", alias] + (["--with-ranking"] if with_ranking else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        return {"alias": alias, "error": proc.stderr.strip().splitlines()[-1:] or ["?"]}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["loadavg_before"] = round(load_before, 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=DEFAULT_MODELS)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--with-ranking", action="store_true")
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    ap.add_argument("--child")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.with_ranking)))
        return
    runs = []
    for alias in args.models.split(","):
        for _ in range(args.repeats):
            runs.append(run_child(alias, False))
            print(json.dumps(runs[-1]), file=sys.stderr)
        if args.with_ranking:
            runs.append(run_child(alias, True))
            print(json.dumps(runs[-1]), file=sys.stderr)
    report = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "runs": runs,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, out)
    print("| model | ranking | runs | median wall s | min | max | stages of the fastest run | load avg | target |")
    print("|---|---|---:|---:|---:|---:|---|---:|---|")
    for alias in args.models.split(","):
        for ranked in (False, True):
            rs = [r for r in runs if r.get("alias") == alias and r.get("with_ranking") == ranked and "wall_s" in r]
            if not rs:
                continue
            walls = [r["wall_s"] for r in rs]
            best = min(rs, key=lambda r: r["wall_s"])
            target = TARGET_S.get(alias)
            ok = (
                ""
                if target is None
                else ("ok" if statistics.median(walls) < target else "MISSED") + f" (<{target:.0f} s)"
            )
            print(
                f"| {alias} | {'yes' if ranked else 'no'} | {len(rs)} | {statistics.median(walls):.1f} | {min(walls):.1f} | "
                f"{max(walls):.1f} | {best['stages_cumulative_s']} | {statistics.mean(r['loadavg_before'] for r in rs):.1f} | {ok} |"
            )
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
