"""Cross-check: do the tokens a model produces at negative temperature sit at the suspicious end
of the embedding ranking?

Negative-temperature sampling is an independent witness: it looks at the logits only, the
ranking at the embedding matrix only. ``crosscheck(produced, ranking)`` measures, for every
ranking metric (each in its suspicious direction, see ``anomtok.ranking.DIRECTIONS``):

* each produced token's rank and percentile (``100 * rank / N``: 0.1 means "in the top 0.1%";
  a random token averages 50);
* overlap of the distinct produced tokens with the metric's top K (K = 100, 1000, and the top
  2% and 5% of the population), what random tokens would give (``n_distinct * K / N``), the enrichment (observed /
  expected) and the hypergeometric tail probability of seeing at least that overlap by chance;
  and the share of all produced occurrences (with repeats) that fall in the top K;
* Spearman rank correlation between production count and the metric (oriented so that > 0
  means "produced more often = more suspicious"), over every token of the population (count 0
  for tokens never produced) and among produced tokens only.

All of it overall and split by prompt group (``ja`` for prompts with kana or kanji, ``en`` for
the others; see ``prompt_group``). The population is every row of the ranking that is a token
(``kind != "padding"``): padding rows are masked during generation.

>>> cc = crosscheck([[5, 5, 9], [5]], ranking, groups=["en", "ja"])     # doctest: +SKIP
>>> cc.summary["groups"]["all"]["metrics"]["score"]["topk"]["100"]["enrichment"]  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
import regex

from ..errors import InputError
from ..ranking import DIRECTIONS, METRICS, Ranking, order_by

__all__ = ["CrossCheck", "crosscheck", "metric_ranks", "prompt_group", "DEFAULT_KS", "DEFAULT_TOP_FRACTIONS"]

DEFAULT_KS = (100, 1000)
DEFAULT_TOP_FRACTIONS = (0.02, 0.05)
_JA = regex.compile(r"[\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Han}]")


def prompt_group(text: str) -> str:
    """``ja`` when the text has any hiragana, katakana or kanji, else ``en``.

    >>> prompt_group("日本で一番高い山は？"), prompt_group("What is the capital of Australia?")
    ('ja', 'en')
    """
    return "ja" if _JA.search(text) else "en"


@dataclass
class CrossCheck:
    """``tokens``: one row per distinct produced token (counts, prompts, rank and percentile per
    metric, kind, script), most produced first. ``summary``: the figures of the module docstring,
    JSON-ready."""

    tokens: pl.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)


def _frame_of(ranking: Any) -> pl.DataFrame:
    frame = ranking.frame if isinstance(ranking, Ranking) else ranking
    if not isinstance(frame, pl.DataFrame):
        raise InputError("ranking must be an anomtok Ranking or its frame (a polars DataFrame)")
    if "token_id" not in frame.columns:
        raise InputError("the ranking has no token_id column")
    return frame


def metric_ranks(frame: pl.DataFrame, metrics: Sequence[str] | None = None) -> tuple[pl.DataFrame, dict[str, int]]:
    """Per token id, its rank (1 = most suspicious) in each metric, among non-padding tokens
    with a value; and each metric's population size. Metrics with no value at all are dropped."""
    wanted = [m for m in (metrics or METRICS) if m in frame.columns]
    unknown = [m for m in (metrics or []) if m not in frame.columns]
    if unknown:
        raise InputError(
            f"unknown metric(s) {', '.join(unknown)}; the ranking has {', '.join(m for m in METRICS if m in frame.columns)}"
        )
    base = frame.filter(pl.col("kind") != "padding") if "kind" in frame.columns else frame
    out = base.select("token_id")
    sizes: dict[str, int] = {}
    for m in wanted:
        valid = base.filter(pl.col(m).is_not_null() & pl.col(m).is_not_nan())
        if valid.height == 0:
            continue
        ordered = order_by(valid, m, include_padding=True)
        r = (
            ordered.select("token_id")
            .with_row_index(f"{m}_rank", offset=1)
            .with_columns(pl.col(f"{m}_rank").cast(pl.Int64))
        )
        out = out.join(r, on="token_id", how="left")
        sizes[m] = valid.height
    return out, sizes


def _fraction_label(f: float) -> str:
    """``0.02`` -> ``top2%``."""
    return f"top{f * 100:g}%"


def _hypergeom_sf(overlap: int, population: int, k: int, n: int) -> float:
    """P(X >= overlap) for X ~ Hypergeometric(population, k successes, n draws)."""
    try:
        from scipy.stats import hypergeom
    except ImportError:  # pragma: no cover - scipy comes with scikit-learn
        return math.nan
    return float(hypergeom.sf(overlap - 1, population, k, n))


def _spearman(x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    n = int(len(x))
    if n < 3 or np.all(x == x[0]) or np.all(y == y[0]):
        return {"rho": None, "p_value": None, "n": n}
    from scipy.stats import spearmanr

    res = spearmanr(x, y)
    rho, p = float(res.statistic), float(res.pvalue)
    return {"rho": None if math.isnan(rho) else round(rho, 6), "p_value": None if math.isnan(p) else p, "n": n}


def _group_summary(
    counts: dict[int, int],
    n_prompts: int,
    ranks: pl.DataFrame,
    sizes: dict[str, int],
    frame: pl.DataFrame,
    ks: Sequence[int],
    top_fractions: Sequence[float],
) -> dict[str, Any]:
    distinct = np.array(sorted(counts), dtype=np.int64)
    total = int(sum(counts.values()))
    out: dict[str, Any] = {
        "n_prompts": n_prompts,
        "n_generated": total,
        "n_distinct": int(distinct.size),
        "metrics": {},
    }
    if distinct.size == 0:
        return out
    rank_map = ranks.filter(pl.col("token_id").is_in(distinct.tolist()))
    for m, N in sizes.items():
        col = f"{m}_rank"
        sub = rank_map.select("token_id", col).drop_nulls()
        ids = sub["token_id"].to_numpy()
        r = sub[col].to_numpy().astype(np.float64)
        w = np.array([counts[int(i)] for i in ids], dtype=np.float64)
        pct = 100.0 * r / N
        entry: dict[str, Any] = {
            "population": N,
            "n_ranked": int(ids.size),
            "mean_percentile": round(float(pct.mean()), 4) if ids.size else None,
            "median_percentile": round(float(np.median(pct)), 4) if ids.size else None,
            "mean_percentile_weighted": round(float((pct * w).sum() / w.sum()), 4) if ids.size else None,
            "random_mean_percentile": round(100.0 * (N + 1) / (2 * N), 4),
            "topk": {},
        }
        kset = [(str(k), int(k)) for k in ks] + [(_fraction_label(f), max(1, math.ceil(f * N))) for f in top_fractions]
        for label, k in kset:
            k = min(k, N)
            in_top = r <= k
            overlap = int(in_top.sum())
            expected = ids.size * k / N
            entry["topk"][label] = {
                "k": k,
                "overlap": overlap,
                "expected": round(expected, 4),
                "enrichment": round(overlap / expected, 4) if expected > 0 else None,
                "p_value": _hypergeom_sf(overlap, N, k, int(ids.size)) if overlap > 0 else 1.0,
                "occurrences_in_topk": int(w[in_top].sum()),
                "occurrence_fraction": round(float(w[in_top].sum() / w.sum()), 6) if w.sum() else None,
                "random_fraction": round(k / N, 6),
            }
        # Spearman, oriented so that > 0 means "produced more = more suspicious"
        valid = frame.filter(pl.col(m).is_not_null() & pl.col(m).is_not_nan())
        if "kind" in valid.columns:
            valid = valid.filter(pl.col("kind") != "padding")
        vid = valid["token_id"].to_numpy()
        vals = valid[m].to_numpy().astype(np.float64) * (1.0 if DIRECTIONS.get(m, True) else -1.0)
        dense = np.zeros(int(max(vid.max(initial=0), distinct.max(initial=0))) + 1, dtype=np.float64)
        dense[distinct] = [counts[int(i)] for i in distinct]
        cnt = dense[vid]
        entry["spearman_all"] = _spearman(cnt, vals)
        produced = cnt > 0
        entry["spearman_produced"] = _spearman(cnt[produced], vals[produced])
        out["metrics"][m] = entry
    return out


def crosscheck(
    produced: Sequence[Sequence[int]],
    ranking: Any,
    *,
    groups: Sequence[str] | None = None,
    ks: Sequence[int] = DEFAULT_KS,
    top_fractions: Sequence[float] = DEFAULT_TOP_FRACTIONS,
    metrics: Sequence[str] | None = None,
) -> CrossCheck:
    """Cross-check produced tokens (one id list per prompt) against a ranking (see the module
    docstring). ``groups``: one label per prompt (e.g. from ``prompt_group``)."""
    frame = _frame_of(ranking)
    if groups is not None and len(groups) != len(produced):
        raise InputError(f"groups must have one label per prompt ({len(produced)}), not {len(groups)}")
    if not all(isinstance(k, int) and k >= 1 for k in ks):
        raise InputError(f"ks must be positive integers, not {list(ks)}")
    if not all(isinstance(f, (int, float)) and 0.0 < f <= 1.0 for f in top_fractions):
        raise InputError(f"top_fractions must be in (0, 1], not {list(top_fractions)}")
    labels = list(groups) if groups is not None else ["all"] * len(produced)
    known = set(frame["token_id"].to_list())
    counts: dict[int, int] = {}
    by_group: dict[str, dict[int, int]] = {}
    prompts_of: dict[int, list[int]] = {}
    groups_of: dict[int, set[str]] = {}
    n_in_group: dict[str, int] = {}
    for p, (ids, g) in enumerate(zip(produced, labels)):
        n_in_group[g] = n_in_group.get(g, 0) + 1
        gc = by_group.setdefault(g, {})
        for t in ids:
            t = int(t)
            if t not in known:
                raise InputError(f"produced token id {t} is not in the ranking (a different model?)")
            counts[t] = counts.get(t, 0) + 1
            gc[t] = gc.get(t, 0) + 1
            if not prompts_of.setdefault(t, []) or prompts_of[t][-1] != p:
                prompts_of[t].append(p)
            groups_of.setdefault(t, set()).add(g)
    ranks, sizes = metric_ranks(frame, metrics)
    summary: dict[str, Any] = {
        "population": int(frame.filter(pl.col("kind") != "padding").height)
        if "kind" in frame.columns
        else frame.height,
        "metrics": list(sizes),
        "directions": {m: ("high" if DIRECTIONS.get(m, True) else "low") + " is suspicious" for m in sizes},
        "ks": list(ks),
        "top_fractions": list(top_fractions),
        "percentile": "100 * rank / N, rank 1 = most suspicious; a random token averages 50",
        "groups": {"all": _group_summary(counts, len(produced), ranks, sizes, frame, ks, top_fractions)},
    }
    if groups is not None:
        for g in sorted(by_group):
            summary["groups"][g] = _group_summary(by_group[g], n_in_group[g], ranks, sizes, frame, ks, top_fractions)
    # the per-token table
    ids = sorted(counts, key=lambda t: (-counts[t], t))
    base = pl.DataFrame(
        {
            "token_id": pl.Series(ids, dtype=pl.Int64),
            "count": pl.Series([counts[t] for t in ids], dtype=pl.Int64),
            "n_prompts": pl.Series([len(prompts_of[t]) for t in ids], dtype=pl.Int64),
            "prompts": [";".join(str(p) for p in prompts_of[t]) for t in ids],
            "groups": [";".join(sorted(groups_of[t])) for t in ids],
        }
    )
    info_cols = [c for c in ("token", "bytes_hex", "kind", "script") if c in frame.columns]
    table = base.join(
        frame.select(["token_id", *info_cols]).with_columns(pl.col("token_id").cast(pl.Int64)),
        on="token_id",
        how="left",
    )
    table = table.join(ranks.with_columns(pl.col("token_id").cast(pl.Int64)), on="token_id", how="left")
    table = table.with_columns([(100.0 * pl.col(f"{m}_rank") / N).round(6).alias(f"{m}_pct") for m, N in sizes.items()])
    order = [
        "token_id",
        *[c for c in ("token", "bytes_hex") if c in info_cols],
        "count",
        "n_prompts",
        "prompts",
        "groups",
    ]
    for m in sizes:
        order += [f"{m}_rank", f"{m}_pct"]
    order += [c for c in ("kind", "script") if c in info_cols]
    table = table.select(order).sort(["count", "token_id"], descending=[True, False])
    return CrossCheck(tokens=table, summary=summary)
