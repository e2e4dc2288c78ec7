#!/usr/bin/env python
"""Benchmark: candidates per second of verification by prompting, batched vs one at a time.

For each model (packaged aliases, default ``smollm2-135m`` and ``gemma-3-270m``, loaded once on
the CPU in float32 through ``anomtok.generation.load_causal_lm``), the candidates are those of a
real ``anomtok verify`` run: the top ``--n/2`` ordinary tokens of the default score (never a
reference token) and ``--n/2`` random ordinary tokens (seeded), and they are scored by:

* ``batched``: ``anomtok.verify.score_tokens`` (teacher forcing, ``--batch-size`` sequences per
  forward pass, shared prompt prefix), all candidates;
* ``batched, settle``: the same with ``settle=True`` (same verdicts; ``p`` exact for verified
  tokens, a lower bound >= the threshold for the others);
* ``one at a time``: ``score_tokens_one_by_one`` (one sequence per forward pass), on the first
  ``--n-single`` candidates (half top, half random);
* ``generation (before)``: the previous implementation of ``verify``: greedy generation of 3
  tokens after each prompt with ``anomtok.generation.generate`` (batch 16), the candidate's
  probability watched at every step; same ``--n-single`` candidates;
* with ``--bf16``, ``batched`` and ``one at a time`` again on a bfloat16 copy of the model.

Checks, in the same run: the batched log-probabilities equal the one-at-a-time ones (max
``|Δ log p|`` <= ``--tol``, same verdicts); ``settle`` gives the same verdicts; the teacher-forced
answer slot equals the first generated step (same prompt, same logits); bf16 against float32.

Repetitions alternate the order of the methods; each measurement records the wall time, this
process's CPU time, the load average and the cores the *rest* of the machine used meanwhile
(``/proc/stat`` busy time minus ours): on a shared 2-core machine throughput follows that load,
so ratios are taken within one repetition.

    .venv/bin/python bench/bench_verify.py
    .venv/bin/python bench/bench_verify.py --models smollm2-135m --n 64 --n-single 4 --repeats 1

Results: ``bench/results/verify.json`` (written atomically after each model) and a Markdown
table on stdout.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _busy_seconds() -> float | None:
    """Busy CPU seconds of the whole machine since boot (/proc/stat)."""
    try:
        f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    return (sum(f) - f[3] - f[4]) / _CLK_TCK


def _own_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def measure(fn: Callable[[], Any]) -> tuple[Any, dict[str, Any]]:
    """Run fn; (its result, wall seconds, own CPU seconds, others' cores, load average)."""
    la0 = os.getloadavg()
    b0, c0, t0 = _busy_seconds(), _own_cpu(), time.perf_counter()
    out = fn()
    wall = time.perf_counter() - t0
    cpu = _own_cpu() - c0
    b1 = _busy_seconds()
    others = max(0.0, (b1 - b0 - cpu) / wall) if b0 is not None and b1 is not None and wall > 0 else None
    return out, {
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "others_cores": round(others, 2) if others is not None else None,
        "loadavg_1m": [round(la0[0], 2), round(os.getloadavg()[0], 2)],
    }


def legacy_generation(lm: Any, ps: Any, ids: list[int], n_positions: int = 3, batch_size: int = 16) -> dict[str, Any]:
    """The previous verify: greedy generation after each prompt, the candidate's probability
    watched at each of ``n_positions`` steps; p = max over templates and steps."""
    import numpy as np

    from anomtok.generation import SamplerConfig, generate

    built = [list(seq[:-1]) for seq in ps.sequences]  # the prompts, without the appended answer slot
    ph = ps.placeholder_id
    prompts = [[t if i == ph else i for i in seq] for t in ids for seq in built]
    watch = [t for t in ids for _ in built]
    gens = generate(
        lm, prompts, SamplerConfig(temperature=0.0), max_new_tokens=n_positions, batch_size=batch_size, watch_ids=watch
    )
    w = np.array([g.watched for g in gens], dtype=float).reshape(len(ids), len(built), n_positions)
    return {"p": w.max(axis=(1, 2)), "first": w[:, :, 0]}


def run_model(alias: str, args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np
    import torch

    import anomtok
    from anomtok.generation import load_causal_lm
    from anomtok.verify import (
        VERIFY_THRESHOLD,
        make_prompt_set,
        score_tokens,
        score_tokens_one_by_one,
        select_candidates,
    )

    print(f"[{alias}] loading", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    lm = load_causal_lm(alias, device="cpu", dtype="float32")
    load_s = time.perf_counter() - t0
    emb = anomtok.load(alias)
    ranking = anomtok.rank(emb, options=anomtok.RankOptions(nn="off"))
    tops, rnd, _ = select_candidates(
        ranking.frame, ["score"], args.n // 2, ("normal",), args.n - args.n // 2, args.seed, lm.n_vocab
    )
    top_ids = [t for t in ranking.frame.sort("rank")["token_id"].to_list() if t in tops]  # by rank
    ids = list(dict.fromkeys(top_ids + rnd))
    k = args.n_single // 2
    single = list(dict.fromkeys(top_ids[:k] + rnd[: args.n_single - k]))
    ps = make_prompt_set(lm, emb.tokens)
    score_tokens(lm, ids[:4], prompts=ps, batch_size=args.batch_size)  # warm-up
    runs: dict[str, list[dict[str, Any]]] = {}
    res: dict[str, Any] = {}
    methods: list[tuple[str, int, Callable[[], Any]]] = [
        ("batched", len(ids), lambda: score_tokens(lm, ids, prompts=ps, batch_size=args.batch_size)),
        (
            "batched, settle",
            len(ids),
            lambda: score_tokens(lm, ids, prompts=ps, batch_size=args.batch_size, settle=True),
        ),
        ("one at a time", len(single), lambda: score_tokens_one_by_one(lm, single, prompts=ps)),
        ("generation (before)", len(single), lambda: legacy_generation(lm, ps, single)),
    ]
    for r in range(args.repeats):
        for name, n, fn in methods if r % 2 == 0 else methods[::-1]:
            print(f"[{alias}] repeat {r + 1}/{args.repeats}: {name} ({n} candidates)", file=sys.stderr, flush=True)
            out, m = measure(fn)
            m.update(n=n, per_s=round(n / m["wall_s"], 3), per_cpu_s=round(n / m["cpu_s"], 3) if m["cpu_s"] else None)
            runs.setdefault(name, []).append(m)
            res[name] = out
    full, fast, one, legacy = res["batched"], res["batched, settle"], res["one at a time"], res["generation (before)"]
    pos = [ids.index(t) for t in single]
    dlog = np.abs(full.logp[pos] - one.logp)
    checks: dict[str, Any] = {
        "batched_vs_one_at_a_time": {
            "n": len(single),
            "max_abs_dlogp": float(np.nanmax(dlog)),
            "max_rel_dp": float(np.nanmax(np.abs(np.expm1(full.logp[pos] - one.logp)))),
            "same_nan_layout": bool((np.isnan(full.logp[pos]) == np.isnan(one.logp)).all()),
            "same_verdicts": bool((full.verified[pos] == one.verified).all()),
            "same_greedy_answers": bool((full.top_ids[pos] == one.top_ids).all()),
        },
        "settle": {
            "same_verdicts": bool((fast.verified == full.verified).all()),
            "p_equal_for_verified": bool(np.allclose(fast.p[full.verified], full.p[full.verified], rtol=1e-5)),
            "templates_skipped": int(np.isnan(fast.logp[:, :, 0]).sum()),
        },
    }
    first_tf = score_tokens(lm, single, prompts=ps, n_positions=1, batch_size=args.batch_size).p_template
    checks["answer_slot_vs_first_generated_step"] = {
        "max_rel_dp": float(np.max(np.abs(first_tf - legacy["first"]) / legacy["first"]))
    }
    lp = legacy["p"]
    checks["teacher_forcing_vs_generation"] = {
        "n": len(single),
        "same_verdict_count": int(((lp < VERIFY_THRESHOLD) == one.verified).sum()),
        "p_generation": [float(x) for x in lp],
        "p_teacher_forcing": [float(x) for x in one.p],
    }
    ok = (
        checks["batched_vs_one_at_a_time"]["max_abs_dlogp"] <= args.tol
        and checks["batched_vs_one_at_a_time"]["same_verdicts"]
        and checks["settle"]["same_verdicts"]
    )
    checks["identical_within_tol"] = bool(ok)
    bf16: dict[str, Any] = {}
    if args.bf16:
        lm16 = load_causal_lm(alias, device="cpu", dtype="bfloat16")
        score_tokens(lm16, ids[:4], prompts=ps, batch_size=args.batch_size)
        b16, m1 = measure(lambda: score_tokens(lm16, ids, prompts=ps, batch_size=args.batch_size))
        o16, m2 = measure(lambda: score_tokens_one_by_one(lm16, single, prompts=ps))
        for name, n, m in (("batched, bf16", len(ids), m1), ("one at a time, bf16", len(single), m2)):
            m.update(n=n, per_s=round(n / m["wall_s"], 3), per_cpu_s=round(n / m["cpu_s"], 3) if m["cpu_s"] else None)
            runs[name] = [m]
        bf16 = {
            "max_abs_dlogp_vs_float32": float(np.nanmax(np.abs(b16.logp - full.logp))),
            "median_abs_dlogp_vs_float32": float(np.nanmedian(np.abs(b16.logp - full.logp))),
            "verdict_flips_vs_float32": int((b16.verified != full.verified).sum()),
            "batched_vs_one_at_a_time_max_abs_dlogp": float(np.nanmax(np.abs(b16.logp[pos] - o16.logp))),
            "batched_vs_one_at_a_time_same_verdicts": bool((b16.verified[pos] == o16.verified).all()),
        }
        del lm16
    summary = {}
    for name, ms in runs.items():
        summary[name] = {
            "n": ms[0]["n"],
            "per_s_median": round(statistics.median(m["per_s"] for m in ms), 3),
            "per_s_best": round(max(m["per_s"] for m in ms), 3),
            "per_cpu_s_median": round(statistics.median(m["per_cpu_s"] or 0 for m in ms), 3),
            "others_cores_median": statistics.median(m["others_cores"] or 0 for m in ms),
        }
    ratios = [a["per_s"] / b["per_s"] for a, b in zip(runs["batched"], runs["one at a time"])]
    ratios_gen = [a["per_s"] / b["per_s"] for a, b in zip(runs["batched"], runs["generation (before)"])]
    return {
        "model": alias,
        "generation_model": lm.describe(),
        "load_seconds": round(load_s, 2),
        "candidates": {
            "n": len(ids),
            "top_by_score": len(top_ids),
            "random": len(rnd),
            "single": single,
            "verified_batched": int(full.verified.sum()),
            "verified_among_top": int(full.verified[[ids.index(t) for t in top_ids]].sum()),
            "verified_among_random": int(full.verified[[ids.index(t) for t in rnd]].sum()),
        },
        "prompts": ps.to_dict() | {"prefix_lengths": [ps.prefix_length(j) for j in range(len(ps.names))]},
        "batch_size": args.batch_size,
        "torch_threads": torch.get_num_threads(),
        "runs": runs,
        "summary": summary,
        "speedup_batched_over_one_at_a_time": [round(x, 2) for x in ratios],
        "speedup_batched_over_generation": [round(x, 2) for x in ratios_gen],
        "checks": checks,
        "bf16": bf16,
    }


def _environment() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    def ver(m: str) -> str | None:
        try:
            return version(m)
        except PackageNotFoundError:
            return None

    def git(*a: str) -> str | None:
        try:
            return subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    h = hashlib.sha256()
    for f in sorted((REPO / "anomtok").rglob("*.py")):
        h.update(str(f.relative_to(REPO)).encode() + b"\0" + f.read_bytes() + b"\0")
    cpu = (
        next(
            (
                ln.split(":", 1)[1].strip()
                for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")
            ),
            None,
        )
        if Path("/proc/cpuinfo").exists()
        else None
    )
    return {
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": platform.python_version(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "gpu": "none (CPU only)",
        "packages": {m: ver(m) for m in ("torch", "transformers", "numpy", "polars")},
        "git_head": git("rev-parse", "HEAD"),
        "git_dirty_anomtok": (git("status", "--porcelain", "--", "anomtok") or "").splitlines(),
        "anomtok_sources_sha256": h.hexdigest(),
    }


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "| model | method | candidates | candidates/s (median) | best | per CPU-second | others' cores |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in results["models"]:
        for name, s in r["summary"].items():
            lines.append(
                f"| {r['model']} | {name} | {s['n']} | {s['per_s_median']} | {s['per_s_best']} | "
                f"{s['per_cpu_s_median']} | {s['others_cores_median']} |"
            )
    lines.append("")
    for r in results["models"]:
        c = r["checks"]
        b = c["batched_vs_one_at_a_time"]
        lines.append(
            f"- {r['model']}: batched / one at a time {r['speedup_batched_over_one_at_a_time']}x, "
            f"batched / generation (before) {r['speedup_batched_over_generation']}x; batched vs one at a "
            f"time max |Δ log p| {b['max_abs_dlogp']:.2e} (same verdicts: {b['same_verdicts']}); answer slot "
            f"vs first generated step max rel Δp {c['answer_slot_vs_first_generated_step']['max_rel_dp']:.2e}; "
            f"settle same verdicts: {c['settle']['same_verdicts']} ({c['settle']['templates_skipped']} "
            f"template scores skipped); verified {r['candidates']['verified_among_top']}/"
            f"{r['candidates']['top_by_score']} top, {r['candidates']['verified_among_random']}/"
            f"{r['candidates']['random']} random"
        )
        if r["bf16"]:
            f = r["bf16"]
            lines.append(
                f"  bf16: max |Δ log p| vs float32 {f['max_abs_dlogp_vs_float32']:.3f} (median "
                f"{f['median_abs_dlogp_vs_float32']:.3f}), {f['verdict_flips_vs_float32']} verdict flips; "
                f"batched vs one at a time max |Δ log p| {f['batched_vs_one_at_a_time_max_abs_dlogp']:.2e}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="smollm2-135m,gemma-3-270m")
    ap.add_argument("--n", type=int, default=128, help="candidates for the batched runs (half top, half random)")
    ap.add_argument("--n-single", type=int, default=8, help="candidates for the one-at-a-time and generation runs")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tol", type=float, default=1e-4, help="max |Δ log p| allowed between batched and one at a time")
    ap.add_argument("--bf16", action="store_true", help="also score with a bfloat16 copy of the model on the CPU")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("--out", default=str(HERE / "results" / "verify.json"))
    args = ap.parse_args(argv)

    import torch

    from anomtok.cache import atomic_write_text

    if args.threads:
        torch.set_num_threads(args.threads)
    results: dict[str, Any] = {
        "benchmark": "verify",
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "environment": _environment(),
        "models": [],
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    ok = True
    for alias in [m.strip() for m in args.models.split(",") if m.strip()]:
        r = run_model(alias, args)
        ok = ok and r["checks"]["identical_within_tol"]
        results["models"].append(r)
        results["environment"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
        atomic_write_text(out, json.dumps(results, indent=2, default=str) + "\n")
    print(markdown(results))
    print(f"wrote {out}", file=sys.stderr)
    if not ok:
        print(
            "FAILED: batched and one-at-a-time scores differ beyond --tol, or settle changed a verdict", file=sys.stderr
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
