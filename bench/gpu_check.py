#!/usr/bin/env python
"""GPU check (issue 13.6): ``rank``, ``negtemp`` generation and ``verify`` on ``--device cuda``
in bfloat16, against the CPU in float32: tokens per second and how well the results agree.

Run from the repository root (on a shared machine, under the benchmark lock)::

    .venv/bin/python bench/gpu_check.py                                   # the packaged models
    .venv/bin/python bench/gpu_check.py --models smollm2-135m --quick     # what CI runs

Without CUDA the "device" run is the CPU in bfloat16 (same code, same checks), so the script
runs anywhere and cannot rot; it says which device it used. For each model:

- **rank** (``nn="off"``) on the device and on the CPU: the largest difference of ``score`` and
  the overlap of the top 100 by score;
- **generation** at T = -0.001 (the negtemp sampler, anomtok's decode loop) from the first
  ``--prompts`` packaged prompts, ``--tokens`` new tokens each: tokens per second on the device
  (this script's timer around the loop, after ``torch.cuda.synchronize``) and on the CPU, and the
  agreement: the share of sequences whose first token agrees, and the mean length of the common
  prefix (bfloat16 logits round differently, and at T -> 0- one different token changes the rest);
- **verify** of the ``--verify-top`` tokens with the highest CPU score: candidates per second, the
  share of equal verdicts and the largest difference of ``max_prob``.

``--quick``: 2 prompts x 8 tokens, 8 verify tokens. Results: JSON (``--out``) and lines on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _rank(model: str, device: str) -> dict:
    import anomtok
    from anomtok.ranking import RankOptions, rank

    emb = anomtok.load(model)
    out = {}
    for role, where in (("ref", "cpu"), ("dev", device)):
        t = time.perf_counter()
        out[role] = rank(emb, RankOptions(device=where, nn="off")).frame.sort("token_id")
        _sync(where)
        out[f"{role}_s"] = time.perf_counter() - t
    a, b = out["ref"], out["dev"]
    top = lambda f: set(f.sort("score", descending=True, nulls_last=True).head(100)["token_id"].to_list())  # noqa: E731
    diff = (a["score"] - b["score"]).abs().max()
    return {
        "cpu_s": round(out["ref_s"], 3),
        "device_s": round(out["dev_s"], 3),
        "max_abs_diff_score": float(diff) if diff is not None else None,
        "top100_overlap": len(top(a) & top(b)) / 100,
        "top_ids": a.filter(a["kind"] == "normal")
        .sort("score", descending=True, nulls_last=True)["token_id"]
        .to_list(),
    }


def _generate(model: str, device: str, dtype: str, n_prompts: int, n_tokens: int) -> dict:
    import torch

    from anomtok.generation import SamplerConfig, default_prompt_files, read_prompts
    from anomtok.generation.loop import generate
    from anomtok.generation.model import load_causal_lm

    prompts = [p for f in default_prompt_files() for p in read_prompts(f)][:n_prompts]
    out: dict = {}
    tokens = {}
    for role, where, dt in (("ref", "cpu", "float32"), ("dev", device, dtype)):
        t = time.perf_counter()
        lm = load_causal_lm(model, device=where, dtype=dt)
        load_s = time.perf_counter() - t
        ids = [lm.encode(p) for p in prompts]
        generate(lm, ids[:1], SamplerConfig(-0.001), max_new_tokens=2, seed=0)  # warm-up (kernels, caches)
        _sync(where)
        t = time.perf_counter()
        gens = generate(lm, ids, SamplerConfig(-0.001), max_new_tokens=n_tokens, seed=0, batch_size=8)
        _sync(where)
        secs = time.perf_counter() - t
        n = sum(len(g.token_ids) for g in gens)
        tokens[role] = [g.token_ids for g in gens]
        out[f"{where}/{dt}"] = {
            "load_s": round(load_s, 2),
            "seconds": round(secs, 3),
            "tokens": n,
            "tokens_per_s": round(n / secs, 1),
        }
        del lm
        if where.startswith("cuda"):
            torch.cuda.empty_cache()
    a, b = tokens["ref"], tokens["dev"]

    def prefix(x: list[int], y: list[int]) -> int:
        k = 0
        while k < min(len(x), len(y)) and x[k] == y[k]:
            k += 1
        return k

    out["first_token_agreement"] = sum(bool(x and y and x[0] == y[0]) for x, y in zip(a, b)) / len(a)
    out["mean_common_prefix"] = sum(prefix(x, y) for x, y in zip(a, b)) / len(a)
    out["n_prompts"], out["max_new_tokens"] = len(a), n_tokens
    return out


def _verify(model: str, device: str, dtype: str, ids: list[int]) -> dict:
    import anomtok

    res = {}
    for role, where, dt in (("ref", "cpu", "float32"), ("dev", device, dtype)):
        t = time.perf_counter()
        r = anomtok.verify(model, token_ids=tuple(ids), random_sample=0, device=where, dtype=dt)
        _sync(where)
        res[role] = (r.frame.sort("token_id"), time.perf_counter() - t)
    (a, ta), (b, tb) = res["ref"], res["dev"]
    return {
        "n": a.height,
        "cpu_s": round(ta, 2),
        "device_s": round(tb, 2),
        "candidates_per_s_device": round(b.height / tb, 2),
        "same_verdict": float((a["verified"] == b["verified"]).mean()),
        "max_abs_diff_max_prob": float((a["max_prob"] - b["max_prob"]).abs().max()),
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="smollm2-135m,gemma-3-270m", help="comma-separated model specs")
    ap.add_argument("--device", default="auto", help="auto (cuda when available, else cpu), cuda[:N] or cpu")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--quick", action="store_true", help="2 prompts x 8 tokens, 8 verify tokens")
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--verify-top", type=int, default=32)
    ap.add_argument("--out", default=None, help="JSON path")
    args = ap.parse_args(argv)
    import torch

    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.quick:
        args.prompts, args.tokens, args.verify_top = 2, 8, 8
    print(
        f"device {device} ({'CUDA ' + torch.cuda.get_device_name(0) if device.startswith('cuda') else 'no CUDA: the CPU'}), "
        f"dtype {args.dtype}, against cpu/float32; load average {os.getloadavg()[0]:.2f}"
    )
    result: dict = {"device": device, "dtype": args.dtype, "models": {}, "loadavg_before": os.getloadavg()}
    for model in args.models.split(","):
        r = _rank(model, device)
        g = _generate(model, device, args.dtype, args.prompts, args.tokens)
        v = _verify(model, device, args.dtype, r.pop("top_ids")[: args.verify_top])
        result["models"][model] = {"rank": r, "generate": g, "verify": v}
        dev_gen = g[f"{device}/{args.dtype}"]
        print(
            f"{model}: rank {r['device_s']:.2f} s on {device} ({r['cpu_s']:.2f} s cpu), max |score diff| "
            f"{r['max_abs_diff_score']:.2e}, top-100 overlap {r['top100_overlap']:.2f}; "
            f"generation {dev_gen['tokens_per_s']} tokens/s on {device}/{args.dtype} "
            f"({g['cpu/float32']['tokens_per_s']} on cpu/float32), first token agrees {g['first_token_agreement']:.2f}, "
            f"common prefix {g['mean_common_prefix']:.1f} of {g['max_new_tokens']}; "
            f"verify {v['candidates_per_s_device']} candidates/s, same verdict {v['same_verdict']:.2f}, "
            f"max |max_prob diff| {v['max_abs_diff_max_prob']:.2e}"
        )
    result["loadavg_after"] = os.getloadavg()
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=1) + "\n")
        os.replace(tmp, out)
    return result


if __name__ == "__main__":
    main()
