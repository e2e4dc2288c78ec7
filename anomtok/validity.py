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
:func:`rank_percentile`, :func:`rank_mean`, :func:`random_sample`, :func:`choose_default`); the
runner that loads the models and verifies is ``bench/validity_study.py``::

    python bench/validity_study.py smollm2-135m gemma-3-270m -o reports/validity

It writes ``<out>/<model>/verdicts.csv`` (one row per scored token: p, verdict, the metrics whose
top list holds it, random flag), ``precision.csv`` and ``meta.json``. ``verdicts.csv`` is also the
cache: a rerun (say, after adding a metric) scores only the tokens it does not hold yet, provided
the verification settings (model, threshold, positions, templates) are the same.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

__all__ = [
    "MetricSpec",
    "METRIC_SPECS",
    "KS",
    "eligible",
    "candidates",
    "wilson",
    "precision_table",
    "rank_percentile",
    "rank_mean",
    "random_sample",
    "add_combinations",
    "order_for_scoring",
    "choose_default",
    "markdown_table",
]

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


def precision_table(
    verdicts: Mapping[int, bool], candidates_by_metric: Mapping[str, Sequence[int]], ks: Sequence[int] = KS
) -> pl.DataFrame:
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
            rows.append(
                {
                    "metric": m,
                    "k": int(k),
                    "n": n,
                    "verified": int(v),
                    "precision": v / n if n else None,
                    "lo": lo,
                    "hi": hi,
                    "complete": n == k,
                }
            )
    schema = {
        "metric": pl.Utf8,
        "k": pl.Int64,
        "n": pl.Int64,
        "verified": pl.Int64,
        "precision": pl.Float64,
        "lo": pl.Float64,
        "hi": pl.Float64,
        "complete": pl.Boolean,
    }
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


def add_combinations(
    frame: pl.DataFrame, combinations: Mapping[str, Sequence[tuple[str, bool]]] = None
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


def order_for_scoring(lists: Mapping[str, Sequence[int]], rnd: Sequence[int]) -> list[int]:
    """Every token once: the random sample first, then shallowest first (its best position in any
    metric's list), so a run cut short has the base rate and complete precision@k for the small k.
    Ties by token id.

    >>> order_for_scoring({"a": [7, 3, 1], "b": [3, 8]}, [9, 1])
    [1, 3, 7, 9, 8]
    """
    depth: dict[int, int] = {t: 0 for t in rnd}  # the base rate first: every k needs it
    for ids in lists.values():
        for i, t in enumerate(ids):
            depth[t] = min(depth.get(t, i), i)
    return sorted(depth, key=lambda t: (depth[t], t))


def choose_default(
    tables: Mapping[str, pl.DataFrame],
    current: str = "score",
    combinations: Iterable[str] = tuple(COMBINATIONS),
    ks: Sequence[int] = (100, 500),
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

    metrics = [
        m
        for m in next(iter(tables.values()))["metric"].unique(maintain_order=True).to_list()
        if not m.startswith("random")
    ]
    singles = [m for m in metrics if m not in combos]
    qualifying = []
    for m in metrics:
        ok = True
        for t in tables.values():
            for k in ks:
                mine = cell(t, m, k)
                best = max((c["precision"] for s in singles if (c := cell(t, s, k)) is not None), default=None)
                if mine is None or best is None or mine["precision"] < best:
                    ok = False
        if ok:
            qualifying.append(m)
    reasons.append(
        f"qualifying (>= every single metric at @{', @'.join(map(str, ks))} on every model): "
        f"{', '.join(qualifying) or 'none'}"
    )
    beats = []
    for m in qualifying:
        if m == current:
            continue
        for model, t in tables.items():
            for k in ks:
                a, b = cell(t, m, k), cell(t, current, k)
                if a and b and a["precision"] - b["precision"] > max(a["hi"] - a["lo"], b["hi"] - b["lo"]):
                    beats.append(m)
                    reasons.append(
                        f"{m} beats {current} on {model} @{k} by {a['precision'] - b['precision']:.3f} "
                        f"> the interval width {max(a['hi'] - a['lo'], b['hi'] - b['lo']):.3f}"
                    )
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
