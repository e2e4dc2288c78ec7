"""Runner of the validation study (issue 11, part 3): see ``anomtok/validity.py`` and docs/validity.md.

python bench/validity_study.py smollm2-135m gemma-3-270m -o reports/validity [--threads 1]
python bench/validity_study.py smollm2-135m gemma-3-270m -o reports/validity --markdown
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from anomtok.validity import (
    COMBINATIONS,
    KS,
    METRIC_SPECS,
    add_combinations,
    candidates,
    choose_default,
    markdown_table,
    order_for_scoring,
    precision_table,
    random_sample,
)


def _knn_columns(emb: Any, k: int, seed: int) -> tuple[pl.DataFrame, dict]:
    """nn_cos, knn_mean_cos, knn_ref_share of every token exactly as ``anomtok rank`` gives them
    (``RankOptions(nn="auto")``: exact search when V*V*D is small enough, else pynndescent
    NN-descent with exact search for the top rows by score and a seeded recall sample)."""
    import anomtok

    t0 = time.perf_counter()
    rk = anomtok.rank(emb, options=anomtok.RankOptions(device="cpu", knn_k=k, seed=seed))
    cols = ("nn_cos", "knn_mean_cos", "knn_ref_share")
    info = {"via": "anomtok.rank (RankOptions(nn='auto'))", **(rk.meta.get("knn") or {})}
    info.update({"k": k, "seconds": round(time.perf_counter() - t0, 1)})
    cols_df = rk.frame.select(pl.col("token_id").cast(pl.Int64), *(pl.col(c).cast(pl.Float64) for c in cols))
    return cols_df.with_columns(pl.col(c).fill_nan(None) for c in cols), info


def _loadavg() -> list[float] | None:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return None


def _anomtok_sha() -> str:
    """SHA-256 (first 12 hex digits) of the anomtok sources at the start of the run."""
    import hashlib

    import anomtok

    h = hashlib.sha256()
    for f in sorted(Path(anomtok.__file__).parent.rglob("*.py")):
        h.update(f.read_bytes())
    return h.hexdigest()[:12]


def _roundtrip(tok: Any, t: int) -> bool:
    try:
        return list(tok(tok.decode([t]), add_special_tokens=False)["input_ids"]) == [t]
    except Exception:  # noqa: BLE001 - odd ids in slow tokenizers
        return False


def run_model(
    alias: str,
    out: Path,
    *,
    top: int,
    n_random: int,
    seed: int,
    k: int,
    batch_size: int,
    chunk: int,
    threads: int | None,
    deadline: float | None,
    no_knn: bool = False,
    extra_cache: Sequence[str] | None = None,
) -> None:
    import torch

    import anomtok
    from anomtok._version import __version__
    from anomtok.generation.model import load_causal_lm
    from anomtok.verify import N_POSITIONS, VERIFY_THRESHOLD, make_prompt_set, score_tokens

    if threads:
        torch.set_num_threads(threads)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    src_sha = _anomtok_sha()
    log = lambda msg: print(f"[{alias} {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)  # noqa: E731
    emb = anomtok.load(alias)
    rank_cache = out / "ranking.parquet"  # a cache, not a result: not committed
    if rank_cache.exists():
        frame = pl.read_parquet(rank_cache)
        score_meta = json.loads((out / "ranking_score.json").read_text())
    else:
        rk = anomtok.rank(emb, options=anomtok.RankOptions(nn="off", device="cpu"))
        frame = rk.frame.drop("nn_cos", "nn_id", strict=False)
        score_meta = rk.meta.get("score")
        frame.write_parquet(rank_cache)
        (out / "ranking_score.json").write_text(json.dumps(score_meta, indent=1, default=str))
    log(f"ranked {frame.height} rows")
    knn_cache = out / "knn_columns.parquet"  # a cache, not a result: not committed
    if no_knn:
        kcols, kinfo = None, {"skipped": "--no-knn"}
    elif knn_cache.exists():
        kcols = pl.read_parquet(knn_cache)
        kinfo = json.loads((out / "knn_info.json").read_text())
    else:
        kcols, kinfo = _knn_columns(emb, k, seed)
        kcols.write_parquet(knn_cache)
        (out / "knn_info.json").write_text(json.dumps(kinfo, indent=1, default=str))
    log(f"knn columns: {kinfo}")
    if kcols is not None:  # the study's own neighbourhood columns replace the ranking's (empty with nn="off")
        frame = frame.drop([c for c in kcols.columns if c != "token_id"], strict=False).join(
            kcols, on="token_id", how="left"
        )
    frame = add_combinations(frame)
    lists = {s.name: candidates(frame, s, top) for s in METRIC_SPECS if s.column in frame.columns}
    rnd = random_sample(frame, n_random, seed)
    (out / "lists.json").write_text(json.dumps({"random": rnd, **lists}))
    todo_all = order_for_scoring(lists, rnd)
    log(f"{len(todo_all)} unique tokens (top {top} of {len(lists)} metrics + {len(rnd)} random)")

    lm = load_causal_lm(alias, device="cpu")
    ps = make_prompt_set(lm, emb.tokens)
    settings = {
        "model": alias,
        "threshold": VERIFY_THRESHOLD,
        "n_positions": N_POSITIONS,
        "placeholder_id": ps.placeholder_id,
        "templates": list(ps.texts),
        "settle": True,
    }
    cache_path, vmeta_path = out / "verdicts.csv", out / "verdict_settings.json"
    cached: dict[int, dict[str, Any]] = {}
    if cache_path.exists() and vmeta_path.exists() and json.loads(vmeta_path.read_text()) == settings:
        for r in pl.read_csv(cache_path).iter_rows(named=True):
            cached[int(r["token_id"])] = {
                "p": r["p"],
                "verified": bool(r["verified"]),
                "roundtrip": bool(r["roundtrip"]),
            }
    for extra in extra_cache or []:  # verdicts another run (same settings) scored
        e = Path(extra)
        if (e / "verdicts.csv").exists() and json.loads((e / "verdict_settings.json").read_text()) == settings:
            for r in pl.read_csv(e / "verdicts.csv").iter_rows(named=True):
                cached.setdefault(
                    int(r["token_id"]),
                    {"p": r["p"], "verified": bool(r["verified"]), "roundtrip": bool(r["roundtrip"])},
                )
    earlier_runs: list[dict[str, Any]] = []
    if (out / "meta.json").exists() and cached:  # resuming: keep the earlier runs' throughput
        before = json.loads((out / "meta.json").read_text())
        earlier_runs = before.get("scoring_runs") or (
            [
                {
                    "scored": round(before["scoring_seconds"] * before["tokens_per_second"]),  # an older meta.json
                    "seconds": before["scoring_seconds"],
                    "tokens_per_second": before["tokens_per_second"],
                    "threads": before.get("threads"),
                    "batch_size": before.get("batch_size"),
                }
            ]
            if before.get("scoring_seconds") and before.get("tokens_per_second")
            else []
        )
    vmeta_path.write_text(json.dumps(settings, indent=1))
    todo = [t for t in todo_all if t not in cached]
    log(f"{len(cached)} verdicts cached, {len(todo)} to score")
    scored_s, n_scored = 0.0, 0
    stopped = False

    def write() -> None:
        bytes_hex = dict(zip(frame["token_id"].to_list(), frame["bytes_hex"].to_list()))
        in_top = {t: [] for t in cached}
        for m, ids in lists.items():
            for t in ids:
                if t in in_top:
                    in_top[t].append(m)
        rset = set(rnd)
        rows = [
            {
                "token_id": t,
                "bytes_hex": bytes_hex[t],
                "p": v["p"],
                "verified": v["verified"],
                "roundtrip": v["roundtrip"],
                "top_of": ";".join(in_top[t]),
                "random": t in rset,
            }
            for t, v in sorted(cached.items())
        ]
        pl.DataFrame(rows).write_csv(cache_path)
        verdicts = {t: v["verified"] for t, v in cached.items()}
        runs = earlier_runs + (
            [
                {
                    "scored": n_scored,
                    "seconds": round(scored_s, 1),
                    "tokens_per_second": round(n_scored / scored_s, 3),
                    "threads": threads or torch.get_num_threads(),
                    "batch_size": batch_size,
                    "loadavg": _loadavg(),
                    "anomtok_sources": src_sha,
                }
            ]
            if scored_s
            else []
        )
        table = precision_table(verdicts, {**lists, "random (base rate)": rnd}, KS)
        table.write_csv(out / "precision.csv")
        meta = {
            "anomtok_version": __version__,
            "model": alias,
            "top": top,
            "random": n_random,
            "seed": seed,
            "ks": list(KS),
            "metrics": [vars(s) for s in METRIC_SPECS if s.name in lists],
            "combinations": {n: [list(p) for p in v] for n, v in COMBINATIONS.items()},
            "eligible": "kind == 'normal', not is_reference, valid row, finite metric value",
            "verify": settings
            | {
                "p": "max over templates and positions; with settle, a lower bound (>= "
                "threshold) for unverified tokens, exact for verified ones"
            },
            "knn": kinfo,
            "reference": score_meta,
            "n_unique_tokens": len(todo_all),
            "n_scored": sum(1 for t in todo_all if t in cached),
            # verdicts.csv also keeps tokens judged for lists a metric no longer makes (in no cell)
            "n_verdicts": len(cached),
            "complete": all(t in cached for t in todo_all) and not stopped,
            # over every scoring run (scoring_runs); merged --extra-cache verdicts not counted
            "scoring_seconds": round(sum(r["seconds"] for r in runs), 1),
            "tokens_per_second": round(sum(r["scored"] for r in runs) / sum(r["seconds"] for r in runs), 3)
            if runs
            else None,
            "threads": threads or torch.get_num_threads(),
            "batch_size": batch_size,
            # every run that scored tokens into this folder, this one last (a resumed study keeps
            # the figures of the runs before it)
            "scoring_runs": runs,
            "versions": {
                "torch": torch.__version__,
                "polars": pl.__version__,
                "numpy": np.__version__,
                "python": sys.version.split()[0],
            },
            "wall_seconds": round(time.perf_counter() - t_start, 1),
        }
        (out / "meta.json").write_text(json.dumps(meta, indent=1, default=str))

    for i in range(0, len(todo), chunk):
        if deadline is not None and time.time() > deadline:
            stopped = True
            log("deadline reached: stopping with partial verdicts")
            break
        part = todo[i : i + chunk]
        sc = score_tokens(lm, part, prompts=ps, batch_size=batch_size, settle=True)
        scored_s += sc.seconds
        n_scored += len(part)
        for j, t in enumerate(part):
            cached[t] = {
                "p": float(sc.p[j]),
                "verified": bool(sc.verified[j]),
                "roundtrip": _roundtrip(lm.tokenizer, t),
            }
        write()
        log(f"scored {len(cached)}/{len(todo_all)} ({n_scored / scored_s:.2f} tokens/s)")
    write()
    log("done")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench/validity_study.py", description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("-o", "--out", default="reports/validity")
    ap.add_argument("--top", type=int, default=500)
    ap.add_argument("--random", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--k", type=int, default=15, help="neighbours for knn_mean_cos / knn_ref_share")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--chunk", type=int, default=128, help="tokens scored between two writes of the cache")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--stop-at", type=float, default=None, help="unix time after which no new chunk starts")
    ap.add_argument(
        "--markdown",
        action="store_true",
        help="print the tables of the models already run (from their precision.csv) and exit",
    )
    ap.add_argument("--no-knn", action="store_true", help="leave out the neighbourhood metrics (no k-NN search)")
    ap.add_argument("--extra-cache", nargs="*", default=[], help="folders whose verdicts.csv (same settings) to reuse")
    a = ap.parse_args(argv)
    if a.markdown:
        for m in a.models:
            d = Path(a.out) / m
            meta = json.loads((d / "meta.json").read_text())
            print(
                f"### {m}\n\n{meta['n_scored']} of {meta['n_unique_tokens']} unique tokens scored "
                f"({meta['tokens_per_second']} tokens/s); top {meta['top']} per metric, {meta['random']} random\n"
            )
            print(markdown_table(pl.read_csv(d / "precision.csv")) + "\n")
        tables = {m: pl.read_csv(Path(a.out) / m / "precision.csv") for m in a.models}
        name, reasons = choose_default(tables)
        print(f"### Decision: {name}\n")
        print("\n".join(f"- {r}" for r in reasons))
        return 0
    for m in a.models:
        run_model(
            m,
            Path(a.out) / m,
            top=a.top,
            n_random=a.random,
            seed=a.seed,
            k=a.k,
            batch_size=a.batch_size,
            chunk=a.chunk,
            threads=a.threads,
            deadline=a.stop_at,
            no_knn=a.no_knn,
            extra_cache=[str(Path(d) / m) for d in a.extra_cache],
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
