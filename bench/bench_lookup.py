#!/usr/bin/env python
"""Benchmark (issue 13.1): how long a lookup takes end to end, against loading the same GGUF with
transformers, in one run.

Run from the repository root, alone on the machine (under the shared lock)::

    flock /tmp/anomtok-bench.lock .venv/bin/python bench/bench_lookup.py
    flock /tmp/anomtok-bench.lock .venv/bin/python bench/bench_lookup.py --model smollm2-135m --repeats 3

Every figure is the wall time of a fresh process, as a user meets it (interpreter start, imports,
reading the file, the computation, printing), measured by this script around ``subprocess.run``;
CPU seconds are the child's user + system time. The page cache is warm: one untimed run of each
command comes first. Rows:

- ``anomtok nearest MODEL -k K`` (the alias: Gemma's four package chunks), the same ``--far``,
  ``--metric score`` (first principal component and reference set, no neighbour search), and
  ``anomtok nearest FILE -k K`` on the single GGUF file transformers reads;
- ``transformers``: ``AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)`` of that file
  (imports included, as for anomtok), ``--hf-repeats`` times (default 1: it takes a minute).

The targets: ``nearest MODEL -k 10`` <= 4 s on 2 cores, and >= 15x faster than the transformers
load. The load average is recorded before and after every run. Results: JSON (atomic) in
``bench/results/lookup-<model>.json`` and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _results import host, write_result

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent
TARGET_S, TARGET_RATIO = 4.0, 15.0

HF_LOAD = """
import sys
from pathlib import Path
from transformers import AutoModelForCausalLM
p = Path(sys.argv[1])
AutoModelForCausalLM.from_pretrained(str(p.parent), gguf_file=p.name)
"""


def _run(argv: list[str], env: dict[str, str] | None = None) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load0 = os.getloadavg()
    t = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT, stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(argv)}\n{proc.stderr[-2000:]}")
    return {
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "loadavg_before": load0,
        "loadavg_after": os.getloadavg(),
        "stdout_lines": len(proc.stdout.splitlines()),
        "stdout_head": proc.stdout.splitlines()[:4],
    }


def _measure(name: str, argv: list[str], repeats: int, warm: bool = True, env: dict | None = None) -> dict:
    print(f"  {name} ...", file=sys.stderr, flush=True)
    if warm:
        _run(argv, env)
    runs = [_run(argv, env) for _ in range(repeats)]
    walls = [r["wall_s"] for r in runs]
    print(f"  {name}: median {statistics.median(walls):.2f} s {walls}", file=sys.stderr, flush=True)
    return {"name": name, "argv": argv, "median_wall_s": round(statistics.median(walls), 3), "runs": runs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--model", default="gemma-3-270m", help="a packaged GGUF alias")
    ap.add_argument("-k", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=5, help="timed runs of each anomtok command")
    ap.add_argument("--hf-repeats", type=int, default=1, help="timed transformers loads (0: skip)")
    ap.add_argument("--out", default=None, help="JSON path (default bench/results/lookup-MODEL.json)")
    args = ap.parse_args()

    sys.path.insert(0, str(ROOT))
    from anomtok.loading.packaged import materialize_gguf

    single = materialize_gguf(args.model)
    anomtok = str(BIN / "anomtok")
    k = str(args.k)
    rows = [
        _measure(f"anomtok nearest {args.model} -k {k}", [anomtok, "nearest", args.model, "-k", k], args.repeats),
        _measure(f"anomtok nearest {args.model} -k {k} --far", [anomtok, "nearest", args.model, "-k", k, "--far"], 3),
        _measure(
            f"anomtok nearest {args.model} -k {k} --metric score",
            [anomtok, "nearest", args.model, "-k", k, "--metric", "score"],
            3,
        ),
        _measure(
            f"anomtok nearest {single.name} -k {k} (the file transformers reads)",
            [anomtok, "nearest", str(single), "-k", k],
            3,
        ),
    ]
    if args.hf_repeats:
        rows.append(
            _measure(
                f"transformers from_pretrained(gguf_file={single.name})",
                [sys.executable, "-c", HF_LOAD, str(single)],
                args.hf_repeats,
                warm=False,  # the anomtok run on the same file warmed the page cache
            )
        )
    lookup = rows[0]["median_wall_s"]
    hf = rows[-1]["median_wall_s"] if args.hf_repeats else None
    result = {
        "model": args.model,
        "file": str(single),
        "k": args.k,
        "rows": rows,
        "targets": {
            "nearest_s": {"target": TARGET_S, "measured": lookup, "met": lookup <= TARGET_S},
            "ratio_vs_transformers": None
            if hf is None
            else {"target": TARGET_RATIO, "measured": round(hf / lookup, 1), "met": hf / lookup >= TARGET_RATIO},
        },
        **host(),
    }
    out = Path(args.out) if args.out else HERE / "results" / f"lookup-{args.model}.json"
    write_result(result, out)

    print("| command | median wall s (runs) | CPU s | load avg before |\n|---|---:|---:|---|")
    for r in rows:
        walls = ", ".join(f"{x['wall_s']:.2f}" for x in r["runs"])
        cpu = statistics.median(x["cpu_s"] for x in r["runs"])
        print(
            f"| `{r['name']}` | {r['median_wall_s']:.2f} ({walls}) | {cpu:.2f} | {r['runs'][0]['loadavg_before'][0]:.2f} |"
        )
    t = result["targets"]
    print(f"\nnearest: {lookup:.2f} s (target <= {TARGET_S} s: {'met' if t['nearest_s']['met'] else 'NOT met'})")
    if hf is not None:
        ratio = t["ratio_vs_transformers"]
        print(
            f"transformers load / nearest: {ratio['measured']}x (target >= {TARGET_RATIO}x: {'met' if ratio['met'] else 'NOT met'})"
        )
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
