"""The validation study of the ranking metrics (issue 11, part 3): which score finds tokens that verify?

For each candidate metric (``METRIC_SPECS``: a column of the ranking frame read in *one* fixed
direction for every model, or a declared combination), the top ``top`` eligible tokens are
verified by teacher forcing (:mod:`anomtok.verify`), together with a seeded random sample of
eligible tokens (the base rate). Eligible = an ordinary token (``kind == "normal"``), not a
reference token (``is_reference``: what the default score was computed from), a valid row, and a
finite value of the metric. The table reports verified precision@k with 95% Wilson intervals.

Tokens whose text does not round-trip (decode -> encode gives other ids) are handled as
:func:`anomtok.verify.verify` handles them: the id is spliced into the prompts as it is (its text is
never re-encoded), so they are scored like every other token; ``roundtrip`` is recorded.

Ordering and ties: a metric's candidates are its eligible rows sorted by the metric (its
suspicious end first), equal values by token id ascending, so the lists are deterministic.

Pure functions here (:func:`candidates`, :func:`wilson`, :func:`precision_table`,
:func:`rank_percentile`, :func:`rank_mean`, :func:`random_sample`); :func:`main` is the runner::

    python -m anomtok.validity smollm2-135m gemma-3-270m -o reports/validity

It writes ``<out>/<model>/verdicts.csv`` (one row per scored token: p, verdict, the metrics whose
top list holds it, random flag), ``precision.csv`` and ``meta.json``. ``verdicts.csv`` is also the
cache: a rerun (say, after adding a metric) scores only the tokens it does not hold yet, provided
the verification settings (model, threshold, positions, templates) are the same.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import polars as pl

__all__ = ["MetricSpec", "METRIC_SPECS", "KS", "eligible", "candidates", "wilson", "precision_table",
           "rank_percentile", "rank_mean", "random_sample", "add_combinations", "main"]

KS = (50, 100, 200, 500)


@dataclass(frozen=True)
class MetricSpec:
    """``name``: how the table calls it; ``column``: the frame column read; ``high``: True when high
    values are the suspicious end (one direction for every model)."""

    name: str
    column: str
    high: bool


# Declared before any verdict was looked at (see docs/validity.md for when each was added).
# ``score`` is ``unused_ref_cos`` (the same column), so it is listed once.
METRIC_SPECS: tuple[MetricSpec, ...] = (
    MetricSpec("score", "score", True),
    MetricSpec("centroid_l2", "centroid_l2", False),
    MetricSpec("centroid_l2_far", "centroid_l2", True),
    MetricSpec("centroid_cos", "centroid_cos", True),
    MetricSpec("norm", "norm", False),
    MetricSpec("mean_cos", "mean_cos", True),
    MetricSpec("pc1_removed_cos", "pc1_removed_cos", True),
    MetricSpec("nn_cos", "nn_cos", True),
    MetricSpec("knn_mean_cos", "knn_mean_cos", True),
    MetricSpec("knn_ref_share", "knn_ref_share", True),
    # combinations: mean of rank-percentiles (computed over the eligible rows), high = suspicious
    MetricSpec("rank_ref_knn", "rank_ref_knn", True),
    MetricSpec("rank_ref_nn", "rank_ref_nn", True),
)
# name -> the (column, high) pairs whose rank-percentiles are averaged
COMBINATIONS: dict[str, tuple[tuple[str, bool], ...]] = {
    "rank_ref_knn": (("score", True), ("knn_mean_cos", True)),
    "rank_ref_nn": (("score", True), ("nn_cos", True)),
}


def eligible(frame: pl.DataFrame) -> pl.DataFrame:
    """The rows a candidate or the random sample may come from: ordinary, not reference, valid.

    >>> f = pl.DataFrame({"token_id": [0, 1, 2, 3], "kind": ["normal", "special", "normal", "normal"],
    ...                   "is_reference": [False, False, True, False], "valid": [True, True, True, False]})
    >>> eligible(f)["token_id"].to_list()
    [0]
    """
    cond = pl.col("kind") == "normal"
    if "is_reference" in frame.columns:
        cond = cond & ~pl.col("is_reference")
    if "valid" in frame.columns:
        cond = cond & pl.col("valid")
    return frame.filter(cond)


def candidates(frame: pl.DataFrame, metric_spec: MetricSpec, top: int) -> list[int]:
    """Token ids of the ``top`` most suspicious eligible rows by one metric: its suspicious end
    first, equal values by token id ascending; rows with a missing or NaN value are left out.

    >>> f = pl.DataFrame({"token_id": [5, 3, 9, 1, 2], "kind": ["normal"] * 5,
    ...                   "is_reference": [False, False, False, True, False],
    ...                   "valid": [True] * 5, "m": [0.5, 0.9, 0.9, 1.0, float("nan")]})
    >>> candidates(f, MetricSpec("m", "m", True), 3)
    [3, 9, 5]
    >>> candidates(f, MetricSpec("m", "m", False), 2)
    [5, 3]
    """
    f = eligible(frame).filter(pl.col(metric_spec.column).is_not_null() & pl.col(metric_spec.column).is_not_nan())
    f = f.sort([metric_spec.column, "token_id"], descending=[metric_spec.high, False])
    return [int(t) for t in f["token_id"].head(top).to_list()]


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion k/n (``z`` = 1.96: 95%).

    >>> [round(x, 4) for x in wilson(5, 10)]
    [0.2366, 0.7634]
    >>> wilson(0, 0)
    (0.0, 1.0)
    """
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    d = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / d
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, centre - half), min(1.0, centre + half)


def precision_table(verdicts: Mapping[int, bool], candidates_by_metric: Mapping[str, Sequence[int]],
                    ks: Sequence[int] = KS) -> pl.DataFrame:
    """Verified precision@k per metric with its 95% Wilson interval: one row per (metric, k).

    ``n`` is the number of the first k candidates that have a verdict (fewer than k when the list
    is shorter or some are not scored yet: ``complete`` says whether all k were judged).

    >>> t = precision_table({1: True, 2: False, 3: True, 4: False}, {"a": [1, 3, 2, 4]}, ks=(2, 4))
    >>> t.select("metric", "k", "n", "verified", "precision").rows()
    [('a', 2, 2, 2, 1.0), ('a', 4, 4, 2, 0.5)]
    """
    rows = []
    for m, ids in candidates_by_metric.items():
        for k in ks:
            head = list(ids)[:k]
            judged = [bool(verdicts[t]) for t in head if t in verdicts]
            n, v = len(judged), sum(judged)
            lo, hi = wilson(v, n)
            rows.append({"metric": m, "k": int(k), "n": n, "verified": int(v),
                         "precision": v / n if n else None, "lo": lo, "hi": hi,
                         "complete": n == k})
    schema = {"metric": pl.Utf8, "k": pl.Int64, "n": pl.Int64, "verified": pl.Int64, "precision": pl.Float64,
              "lo": pl.Float64, "hi": pl.Float64, "complete": pl.Boolean}
    return pl.DataFrame(rows, schema=schema)


def rank_percentile(values: np.ndarray, high: bool) -> np.ndarray:
    """Rank-percentile in (0, 1] of each value, 1 = the most suspicious end; ties share their
    average rank; NaN gets 0 (never suspicious).

    >>> rank_percentile(np.array([0.1, 0.3, 0.3, np.nan]), high=True).tolist()
    [0.25, 0.625, 0.625, 0.0]
    >>> rank_percentile(np.array([0.1, 0.3, 0.2]), high=False).round(3).tolist()
    [1.0, 0.333, 0.667]
    """
    v = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(v)
    out = np.zeros(v.shape, dtype=np.float64)
    x = v[ok] if high else -v[ok]
    if x.size:
        order = np.argsort(x, kind="stable")
        ranks = np.empty(x.size, dtype=np.float64)
        ranks[order] = np.arange(1, x.size + 1)
        # average rank over ties
        sx = x[order]
        starts = np.r_[0, np.nonzero(np.diff(sx))[0] + 1]
        ends = np.r_[starts[1:], sx.size]
        avg = (starts + 1 + ends) / 2.0
        ranks[order] = np.repeat(avg, ends - starts)
        out[ok] = ranks / v.size
    return out


def rank_mean(frame: pl.DataFrame, parts: Sequence[tuple[str, bool]]) -> np.ndarray:
    """The rank-aggregation score: the mean of the parts' rank-percentiles over the rows of
    ``frame`` (pass the eligible rows: the percentiles are then ranks among the candidates' pool).

    >>> f = pl.DataFrame({"a": [1.0, 2.0, 3.0], "b": [3.0, 1.0, 2.0]})
    >>> rank_mean(f, [("a", True), ("b", True)]).round(3).tolist()
    [0.667, 0.5, 0.833]
    """
    cols = [rank_percentile(frame[c].cast(pl.Float64).fill_null(float("nan")).to_numpy(), h) for c, h in parts]
    return np.mean(np.vstack(cols), axis=0)


def add_combinations(frame: pl.DataFrame, combinations: Mapping[str, Sequence[tuple[str, bool]]] = None
                     ) -> pl.DataFrame:
    """``frame`` with one column per combination, computed over its eligible rows (null elsewhere).

    >>> f = pl.DataFrame({"token_id": [0, 1, 2], "kind": ["normal", "normal", "special"], "a": [1., 2., 3.]})
    >>> add_combinations(f, {"c": [("a", False)]})["c"].to_list()
    [1.0, 0.5, None]
    """
    combinations = COMBINATIONS if combinations is None else combinations
    el = eligible(frame)
    out = frame
    for name, parts in combinations.items():
        if not all(c in frame.columns for c, _ in parts):
            continue
        vals = pl.DataFrame({"token_id": el["token_id"], name: rank_mean(el, parts)})
        out = out.drop(name, strict=False).join(vals, on="token_id", how="left")
    return out


def random_sample(frame: pl.DataFrame, n: int, seed: int) -> list[int]:
    """``n`` eligible token ids drawn with ``random.Random(seed)`` from the sorted eligible ids, in
    draw order (the first m are a random sample of size m too).

    >>> f = pl.DataFrame({"token_id": list(range(10)), "kind": ["normal"] * 10})
    >>> random_sample(f, 3, 0) == random_sample(f, 3, 0), len(set(random_sample(f, 10, 1)))
    (True, 10)
    """
    ids = sorted(int(t) for t in eligible(frame)["token_id"].to_list())
    return random.Random(seed).sample(ids, min(n, len(ids)))


# ------------------------------------------------------------------ runner
def _knn_columns(emb: Any, frame: pl.DataFrame, k: int, threads: int | None, seed: int) -> tuple[pl.DataFrame, dict]:
    """nn_cos, knn_mean_cos, knn_ref_share of every token from the k-NN graph of the input
    embedding (exact below 60,000 rows, faiss HNSW above), by ``anomtok.knn``."""
    import torch

    from . import knn as K
    from . import metrics as M

    E = emb.input.to(torch.float32)
    valid = M.valid_rows(E)
    ref = frame.sort("token_id")["is_reference"].to_numpy()
    t0 = time.perf_counter()
    V = E.shape[0]
    if hasattr(K, "knn_graph") and hasattr(K, "neighbourhood_columns"):
        g = K.knn_graph(E, valid, k, method="exact" if V <= 60_000 else "hnsw")
        cols = K.neighbourhood_columns(g, reference=ref)
        nn, kmean, kref = (np.asarray(cols[c], dtype=np.float64) for c in ("nn_cos", "knn_mean_cos", "knn_ref_share"))
        info = {"via": "anomtok.knn.knn_graph + neighbourhood_columns", **getattr(g, "info", {})}
    else:
        if V <= 60_000:
            ids, sims = K.exact_knn(E, valid, k)
            ids, sims = ids.numpy(), sims.numpy()
            method = "exact"
        else:
            ids, sims = _hnsw(E, valid, k, threads)
            method = f"faiss HNSW {K.HNSW_DEFAULTS} (as anomtok.knn.hnsw_knn, without its seed line)"
        sims = sims.astype(np.float64)
        has = ids >= 0
        nn = np.where(has[:, 0], sims[:, 0], np.nan)
        with np.errstate(invalid="ignore"):
            kmean = np.nanmean(np.where(has, sims, np.nan), axis=1)
            kref = np.where(has, ref[np.maximum(ids, 0)], False).sum(1) / has.sum(1)
        kref = np.where(has.any(1), kref, np.nan)
        info = {"via": "anomtok.knn (exact_knn / hnsw_knn); columns computed in anomtok.validity", "method": method}
    info.update({"k": k, "seconds": round(time.perf_counter() - t0, 1)})
    cols_df = pl.DataFrame({"token_id": np.arange(V, dtype=np.int64), "nn_cos": nn, "knn_mean_cos": kmean,
                            "knn_ref_share": kref}).with_columns(pl.col(c).fill_nan(None) for c in
                                                                  ("nn_cos", "knn_mean_cos", "knn_ref_share"))
    return cols_df, info


def _hnsw(E: Any, valid: Any, k: int, threads: int | None) -> tuple[np.ndarray, np.ndarray]:
    """k nearest other valid rows by cosine with a faiss HNSW index (``anomtok.knn.HNSW_DEFAULTS``):
    numpy ``(V, k)`` ids / cosines, -1 / NaN where missing. ``anomtok.knn.hnsw_knn`` does the
    same but sets ``faiss.cvar.hnsw_rng_seed``, which faiss-cpu 1.15 does not have."""
    import faiss
    import torch

    from . import knn as K

    V = E.shape[0]
    ids = np.full((V, k), -1, dtype=np.int64)
    sims = np.full((V, k), np.nan, dtype=np.float32)
    cand = torch.nonzero(valid).squeeze(1).numpy()
    X = np.ascontiguousarray(K._unit_valid(E, valid)[torch.from_numpy(cand)].numpy(), dtype=np.float32)
    if threads:
        faiss.omp_set_num_threads(int(threads))
    h = K.HNSW_DEFAULTS
    index = faiss.IndexHNSWFlat(X.shape[1], h["M"], faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = h["ef_construction"]
    index.hnsw.efSearch = max(h["ef_search"], k + 1)
    index.add(X)
    S, I = index.search(X, k + 1)
    own = I == np.arange(cand.size)[:, None]
    drop = np.where(own.any(axis=1), own.argmax(axis=1), k)  # the row itself, else the last place
    keep = np.ones_like(own)
    keep[np.arange(cand.size), drop] = False
    I, S = I[keep].reshape(cand.size, k), S[keep].reshape(cand.size, k)
    found = I >= 0
    ids[cand] = np.where(found, cand[np.maximum(I, 0)], -1)
    sims[cand] = np.where(found, S, np.nan)
    return ids, sims


def _roundtrip(tok: Any, t: int) -> bool:
    try:
        return list(tok(tok.decode([t]), add_special_tokens=False)["input_ids"]) == [t]
    except Exception:  # noqa: BLE001 - odd ids in slow tokenizers
        return False


def _order_for_scoring(lists: Mapping[str, Sequence[int]], rnd: Sequence[int]) -> list[int]:
    """Every token once: the random sample first, then shallowest first (its best position in any
    metric's list), so a run cut short has the base rate and complete precision@k for the small k.
    Ties by token id.

    >>> _order_for_scoring({"a": [7, 3, 1], "b": [3, 8]}, [9, 1])
    [1, 3, 7, 9, 8]
    """
    depth: dict[int, int] = {t: 0 for t in rnd}  # the base rate first: every k needs it
    for ids in lists.values():
        for i, t in enumerate(ids):
            depth[t] = min(depth.get(t, i), i)
    return sorted(depth, key=lambda t: (depth[t], t))


def run_model(alias: str, out: Path, *, top: int, n_random: int, seed: int, k: int, batch_size: int,
              chunk: int, threads: int | None, deadline: float | None, no_knn: bool = False,
              extra_cache: Sequence[str] | None = None) -> None:
    import torch

    import anomtok
    from ._version import __version__
    from .generation.model import load_causal_lm
    from .verify import N_POSITIONS, VERIFY_THRESHOLD, make_prompt_set, score_tokens

    if threads:
        torch.set_num_threads(threads)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
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
        kcols, kinfo = _knn_columns(emb, frame, k, threads, seed)
        kcols.write_parquet(knn_cache)
        (out / "knn_info.json").write_text(json.dumps(kinfo, indent=1, default=str))
    log(f"knn columns: {kinfo}")
    if kcols is not None:  # the study's own neighbourhood columns replace the ranking's (empty with nn="off")
        frame = frame.drop([c for c in kcols.columns if c != "token_id"], strict=False).join(kcols, on="token_id",
                                                                                             how="left")
    frame = add_combinations(frame)
    lists = {s.name: candidates(frame, s, top) for s in METRIC_SPECS if s.column in frame.columns}
    rnd = random_sample(frame, n_random, seed)
    (out / "lists.json").write_text(json.dumps({"random": rnd, **lists}))
    todo_all = _order_for_scoring(lists, rnd)
    log(f"{len(todo_all)} unique tokens (top {top} of {len(lists)} metrics + {len(rnd)} random)")

    lm = load_causal_lm(alias, device="cpu")
    ps = make_prompt_set(lm, emb.tokens)
    settings = {"model": alias, "threshold": VERIFY_THRESHOLD, "n_positions": N_POSITIONS,
                "placeholder_id": ps.placeholder_id, "templates": list(ps.texts), "settle": True}
    cache_path, vmeta_path = out / "verdicts.csv", out / "verdict_settings.json"
    cached: dict[int, dict[str, Any]] = {}
    if cache_path.exists() and vmeta_path.exists() and json.loads(vmeta_path.read_text()) == settings:
        for r in pl.read_csv(cache_path).iter_rows(named=True):
            cached[int(r["token_id"])] = {"p": r["p"], "verified": bool(r["verified"]), "roundtrip": bool(r["roundtrip"])}
    for extra in extra_cache or []:  # verdicts another run (same settings) scored
        e = Path(extra)
        if (e / "verdicts.csv").exists() and json.loads((e / "verdict_settings.json").read_text()) == settings:
            for r in pl.read_csv(e / "verdicts.csv").iter_rows(named=True):
                cached.setdefault(int(r["token_id"]), {"p": r["p"], "verified": bool(r["verified"]),
                                                       "roundtrip": bool(r["roundtrip"])})
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
        rows = [{"token_id": t, "bytes_hex": bytes_hex[t], "p": v["p"], "verified": v["verified"],
                 "roundtrip": v["roundtrip"], "top_of": ";".join(in_top[t]), "random": t in rset}
                for t, v in sorted(cached.items())]
        pl.DataFrame(rows).write_csv(cache_path)
        verdicts = {t: v["verified"] for t, v in cached.items()}
        table = precision_table(verdicts, {**lists, "random (base rate)": rnd}, KS)
        table.write_csv(out / "precision.csv")
        meta = {"anomtok_version": __version__, "model": alias, "top": top, "random": n_random, "seed": seed,
                "ks": list(KS), "metrics": [vars(s) for s in METRIC_SPECS if s.name in lists],
                "combinations": {n: [list(p) for p in v] for n, v in COMBINATIONS.items()},
                "eligible": "kind == 'normal', not is_reference, valid row, finite metric value",
                "verify": settings | {"p": "max over templates and positions; with settle, a lower bound (>= "
                                            "threshold) for unverified tokens, exact for verified ones"},
                "knn": kinfo, "reference": score_meta, "n_unique_tokens": len(todo_all),
                "n_scored": len(cached), "complete": len(cached) >= len(todo_all) and not stopped,
                "scoring_seconds": round(scored_s, 1), "tokens_per_second": round(n_scored / scored_s, 3) if scored_s else None,
                "threads": threads or torch.get_num_threads(), "batch_size": batch_size,
                "versions": {"torch": torch.__version__, "polars": pl.__version__, "numpy": np.__version__,
                             "python": sys.version.split()[0]},
                "wall_seconds": round(time.perf_counter() - t_start, 1)}
        (out / "meta.json").write_text(json.dumps(meta, indent=1, default=str))

    for i in range(0, len(todo), chunk):
        if deadline is not None and time.time() > deadline:
            stopped = True
            log("deadline reached: stopping with partial verdicts")
            break
        part = todo[i:i + chunk]
        sc = score_tokens(lm, part, prompts=ps, batch_size=batch_size, settle=True)
        scored_s += sc.seconds
        n_scored += len(part)
        for j, t in enumerate(part):
            cached[t] = {"p": float(sc.p[j]), "verified": bool(sc.verified[j]), "roundtrip": _roundtrip(lm.tokenizer, t)}
        write()
        log(f"scored {len(cached)}/{len(todo_all)} ({n_scored / scored_s:.2f} tokens/s)")
    write()
    log("done")


def choose_default(tables: Mapping[str, pl.DataFrame], current: str = "score",
                   combinations: Iterable[str] = tuple(COMBINATIONS), ks: Sequence[int] = (100, 500)
                   ) -> tuple[str, list[str]]:
    """The decision rule of docs/validity.md, declared before the results: ``(name, reasons)``.

    1. A metric *qualifies* when, on every model and at every k in ``ks``, its precision is >= that of
       every single (non-combination) metric (complete cells only).
    2. A challenger must also beat ``current`` on at least one model at some k in ``ks`` by more than
       the wider of the two Wilson intervals' widths.
    3. Among qualifying challengers, the highest mean precision@max(ks) over the models wins;
       with none, ``current`` is kept.

    >>> def t(rows):
    ...     return pl.DataFrame([{"metric": m, "k": k, "n": k, "verified": round(p * k), "precision": p,
    ...                           "lo": p - .05, "hi": p + .05, "complete": True} for m, k, p in rows])
    >>> a = t([("score", 100, .5), ("score", 500, .3), ("x", 100, .4), ("x", 500, .3), ("c", 100, .7), ("c", 500, .5)])
    >>> choose_default({"m1": a, "m2": a}, combinations=["c"])[0]
    'c'
    >>> b = t([("score", 100, .5), ("score", 500, .3), ("c", 100, .52), ("c", 500, .31)])
    >>> choose_default({"m1": b, "m2": b}, combinations=["c"])[0]
    'score'
    """
    combos = set(combinations)
    reasons: list[str] = []

    def cell(t: pl.DataFrame, m: str, k: int) -> dict[str, Any] | None:
        r = t.filter((pl.col("metric") == m) & (pl.col("k") == k) & pl.col("complete"))
        return r.row(0, named=True) if r.height else None

    metrics = [m for m in next(iter(tables.values()))["metric"].unique(maintain_order=True).to_list()
               if not m.startswith("random")]
    singles = [m for m in metrics if m not in combos]
    qualifying = []
    for m in metrics:
        ok = True
        for model, t in tables.items():
            for k in ks:
                mine = cell(t, m, k)
                best = max((c["precision"] for s in singles if (c := cell(t, s, k)) is not None), default=None)
                if mine is None or best is None or mine["precision"] < best:
                    ok = False
        if ok:
            qualifying.append(m)
    reasons.append(f"qualifying (>= every single metric at @{', @'.join(map(str, ks))} on every model): "
                   f"{', '.join(qualifying) or 'none'}")
    beats = []
    for m in qualifying:
        if m == current:
            continue
        for model, t in tables.items():
            for k in ks:
                a, b = cell(t, m, k), cell(t, current, k)
                if a and b and a["precision"] - b["precision"] > max(a["hi"] - a["lo"], b["hi"] - b["lo"]):
                    beats.append(m)
                    reasons.append(f"{m} beats {current} on {model} @{k} by {a['precision'] - b['precision']:.3f} "
                                   f"> the interval width {max(a['hi'] - a['lo'], b['hi'] - b['lo']):.3f}")
    beats = sorted(set(beats), key=lambda m: -np.mean([cell(t, m, max(ks))["precision"] for t in tables.values()]))
    if beats:
        reasons.append(f"switch to {beats[0]} (highest mean precision@{max(ks)} among the qualifying challengers)")
        return beats[0], reasons
    reasons.append(f"keep {current}: no qualifying metric beats it by more than the interval width")
    return current, reasons


def markdown_table(table: pl.DataFrame, ks: Sequence[int] = KS) -> str:
    """One model's precision table as markdown: a row per metric, ``v/n = p [lo, hi]`` per k
    (``—`` where no token of that depth has a verdict; ``*`` marks an incomplete cell).

    >>> t = precision_table({1: True, 2: False}, {"a": [1, 2]}, ks=(1, 2))
    >>> print(markdown_table(t, ks=(1, 2)))
    | metric | @1 | @2 |
    |---|---|---|
    | a | 1/1 = 1.00 [0.21, 1.00] | 1/2 = 0.50 [0.09, 0.91] |
    """
    lines = ["| metric | " + " | ".join(f"@{k}" for k in ks) + " |", "|---" * (len(ks) + 1) + "|"]
    for m in table["metric"].unique(maintain_order=True).to_list():
        cells = []
        for k in ks:
            r = table.filter((pl.col("metric") == m) & (pl.col("k") == k)).row(0, named=True)
            if not r["n"]:
                cells.append("—")
                continue
            star = "" if r["complete"] else "*"
            cells.append(f"{r['verified']}/{r['n']}{star} = {r['precision']:.2f} [{r['lo']:.2f}, {r['hi']:.2f}]")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m anomtok.validity", description=__doc__.split("\n")[0])
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
    ap.add_argument("--markdown", action="store_true",
                    help="print the tables of the models already run (from their precision.csv) and exit")
    ap.add_argument("--no-knn", action="store_true", help="leave out the neighbourhood metrics (no k-NN search)")
    ap.add_argument("--extra-cache", nargs="*", default=[], help="folders whose verdicts.csv (same settings) to reuse")
    a = ap.parse_args(argv)
    if a.markdown:
        for m in a.models:
            d = Path(a.out) / m
            meta = json.loads((d / "meta.json").read_text())
            print(f"### {m}\n\n{meta['n_scored']} of {meta['n_unique_tokens']} unique tokens scored "
                  f"({meta['tokens_per_second']} tokens/s); top {meta['top']} per metric, {meta['random']} random\n")
            print(markdown_table(pl.read_csv(d / "precision.csv")) + "\n")
        tables = {m: pl.read_csv(Path(a.out) / m / "precision.csv") for m in a.models}
        name, reasons = choose_default(tables)
        print(f"### Decision: {name}\n")
        print("\n".join(f"- {r}" for r in reasons))
        return 0
    for m in a.models:
        run_model(m, Path(a.out) / m, top=a.top, n_random=a.random, seed=a.seed, k=a.k, batch_size=a.batch_size,
                  chunk=a.chunk, threads=a.threads, deadline=a.stop_at, no_knn=a.no_knn,
                  extra_cache=[str(Path(d) / m) for d in a.extra_cache])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
