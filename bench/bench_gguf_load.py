#!/usr/bin/env python
"""Benchmark: time to the first negtemp token from a GGUF, anomtok's own loader vs transformers' converter.

Each path runs in a fresh Python process (nothing cached between runs: no dequantized copy exists
any more) and does what ``negtemp`` does before its first token:

1. ``import anomtok.generation`` (torch, transformers);
2. ``emb = anomtok.load(MODEL)``: the embedding and token table (negtemp loads them first);
3. ``load_causal_lm(MODEL, device="cpu", gguf_loader=PATH, embeddings=emb)``, as ``negtemp`` does:
   ``auto`` = anomtok's own GGUF loader (``anomtok.loading.gguf_torch``: it reuses the file the
   embeddings were read from, parsed, and their matrices; the tokenizer is built from the parsed
   metadata), ``transformers`` = ``from_pretrained(gguf_file=...)`` plus
   ``AutoTokenizer.from_pretrained(gguf_file=...)``;
4. one token for each of the two prompts at T = -0.001 (``generate``, batch 2).

"first token" is the wall time from the child's first line to the end of step 4 (CPU seconds, user
+ system since the child started, are stored beside: less sensitive to the other load on the
machine); the parent also times the whole child process (interpreter start and exit included). Both children write the
logits of one fixed prompt; the parent reports their max |difference| (0 = the same model) and
whether the first tokens agree. Repetitions alternate the paths (anomtok, transformers,
transformers, anomtok, ...). Run it under the shared lock, and read the load average beside the
figures (printed and stored):

    flock /tmp/anomtok-bench.lock .venv/bin/python bench/bench_gguf_load.py
    flock /tmp/anomtok-bench.lock .venv/bin/python bench/bench_gguf_load.py --model smollm2-135m --repeats 2

Results: ``bench/results/gguf_load-<model>.json`` (written atomically) and a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

T_START = time.perf_counter()
HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PROMPTS = ["Temperature is a concept", "温度とは何ですか？"]
PATHS = {"anomtok": "auto", "transformers": "transformers"}


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def child(model: str, path: str, out: Path) -> int:
    import numpy as np

    t: dict[str, float] = {}
    cpu: dict[str, float] = {}
    import torch

    from anomtok.generation import SamplerConfig, generate, load_causal_lm
    from anomtok.loading import load

    t["import"], cpu["import"] = time.perf_counter() - T_START, _cpu()
    emb = load(model)
    t["embeddings"], cpu["embeddings"] = time.perf_counter() - T_START, _cpu()
    lm = load_causal_lm(model, device="cpu", gguf_loader=PATHS[path], embeddings=emb)
    t["model"], cpu["model"] = time.perf_counter() - T_START, _cpu()
    gens = generate(lm, [lm.encode(p) for p in PROMPTS], SamplerConfig(temperature=-0.001), max_new_tokens=1, seed=0)
    t["first_token"], cpu["first_token"] = time.perf_counter() - T_START, _cpu()
    with torch.no_grad():
        logits = lm.model(torch.tensor([lm.encode(PROMPTS[0] + " and 東京")])).logits[0].float().numpy()
    np.save(out / f"logits-{path}.npy", logits)
    info = {k: v for k, v in lm.info.items() if k != "gguf"}
    rec = {
        "path": path,
        "seconds": {k: round(v, 2) for k, v in t.items()},
        "cpu_seconds": {k: round(v, 2) for k, v in cpu.items()},
        "first_tokens": [g.token_ids for g in gens],
    }
    (out / f"child-{path}.json").write_text(json.dumps({**rec, "info": info}))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="gemma-3-270m")
    ap.add_argument("--repeats", type=int, default=1, help="runs per path (alternating)")
    ap.add_argument("--out", default=None, help="JSON file (default bench/results/gguf_load-<model>.json)")
    ap.add_argument("--child", choices=sorted(PATHS), help=argparse.SUPPRESS)
    ap.add_argument("--child-dir", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child(args.model, args.child, Path(args.child_dir))

    import numpy as np

    from anomtok.cache import atomic_write_text

    order = [
        p
        for i in range(args.repeats)
        for p in (("anomtok", "transformers") if i % 2 == 0 else ("transformers", "anomtok"))
    ]
    runs: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench-gguf-load-") as tmp:
        for path in order:
            before = _loadavg()
            t0 = time.perf_counter()
            cmd = [
                sys.executable,
                str(Path(__file__).resolve()),
                "--model",
                args.model,
                "--child",
                path,
                "--child-dir",
                tmp,
            ]
            proc = subprocess.run(
                cmd, cwd=REPO, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"}
            )
            wall = time.perf_counter() - t0
            if proc.returncode:
                print(proc.stderr[-3000:], file=sys.stderr)
                print(f"the {path} child failed (exit {proc.returncode})", file=sys.stderr)
                return 1
            rec = json.loads((Path(tmp) / f"child-{path}.json").read_text())
            rec.update(process_wall_s=round(wall, 2), loadavg_before=before, loadavg_after=_loadavg())
            runs.append(rec)
            print(
                f"{path}: first token {rec['seconds']['first_token']} s (process {wall:.1f} s), "
                f"load {before} -> {rec['loadavg_after']}",
                file=sys.stderr,
            )
        a, b = (np.load(Path(tmp) / f"logits-{p}.npy") for p in ("anomtok", "transformers"))
        max_diff = float(np.abs(a - b).max()) if a.shape == b.shape else None

    def med(path: str, key: str) -> float:
        return round(statistics.median(r["seconds"][key] for r in runs if r["path"] == path), 2)

    def med_cpu(path: str) -> float:
        return round(statistics.median(r["cpu_seconds"]["first_token"] for r in runs if r["path"] == path), 2)

    first = {p: med(p, "first_token") for p in PATHS}
    summary = {
        "model": args.model,
        "first_token_s": first,
        "speedup": round(first["transformers"] / first["anomtok"], 2),
        "first_token_cpu_s": {p: med_cpu(p) for p in PATHS},
        "max_abs_logit_diff": max_diff,
        "same_first_tokens": len({json.dumps(r["first_tokens"]) for r in runs}) == 1,
        "steps_s": {p: {k: med(p, k) for k in ("import", "embeddings", "model", "first_token")} for p in PATHS},
    }
    result = {"summary": summary, "runs": runs, "cpus": os.cpu_count(), "python": sys.version.split()[0]}
    out = Path(args.out) if args.out else HERE / "results" / f"gguf_load-{args.model}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(result, indent=1) + "\n")
    print(f"\n| {args.model} | import | + embeddings | + model | first token | CPU s | speed-up |")
    print("|---|---|---|---|---|---|---|")
    for p in PATHS:
        s = summary["steps_s"][p]
        ratio = f"{summary['speedup']}x" if p == "anomtok" else ""
        cpu = summary["first_token_cpu_s"][p]
        print(f"| {p} | {s['import']} | {s['embeddings']} | {s['model']} | {s['first_token']} | {cpu} | {ratio} |")
    print(f"\nmax |Δlogit| {max_diff}; same first tokens: {summary['same_first_tokens']}; results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
