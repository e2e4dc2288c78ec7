"""Rank every token of a model by how under-trained it looks.

``rank(emb)`` computes every metric of :mod:`anomtok.metrics` for every row and combines them
into one table (a polars DataFrame, one row per token, rank 1 = most suspicious).

The default score
-----------------
``score`` is the under-trained indicator of Land & Bartolo (2024), *Fishing for Magikarp*:
cosine similarity, after removing the first principal component, between a token's vector and
the mean vector of a reference set of tokens known never to occur in training. It is computed on
the unembedding (output) matrix when the model has an untied one, else on the input embedding,
as in the paper. Never-trained tokens receive (nearly) the same gradient signal, so they end up
pointing the same way; this works whichever tail of the centroid distance they sit in.

The reference set comes from the token table alone (``TokenTable.reference_mask``): reserved
placeholders (``<unused12>``, ``[unused3]``...), single-byte tokens that are invalid anywhere in
UTF-8 (0xC0, 0xC1, 0xF5-0xFF) and embedding rows past the tokenizer's vocabulary. When a model
has fewer than ``min_reference`` such rows, the reference falls back to the ``max(8, 0.1% V)``
tokens with the highest ``pc1_removed_cos`` (cosine to the centroid after the first principal
component is removed; rarely-updated rows keep mostly the drift every row shares, which is what
that centroid points along), and ``meta["score"]["reference_source"]`` says so. We tried the
lowest input norms first (the paper's indicator for untied models): on SmolLM2 it picks frequent
first names, so it is not used.

``flagged`` marks the tokens outside the reference set whose score reaches the 10th percentile
(``flag_quantile``) of the reference tokens' own scores: they look at least as never-trained as
90% of the tokens known never to be trained. The threshold adapts to each model; nothing is tuned
to one model.

Rows that are NaN, infinite or all-zero are kept out of every centroid and mean, reported, and
ranked first: a token whose embedding is broken or was never initialised is the most suspect.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import polars as pl

from . import knn as K
from ._version import __version__
from .columns import COLUMNS, TOKEN_COLUMNS, Columns, as_series, token_values
from .embeddings import ModelEmbeddings
from .errors import InputError

__all__ = ["RankOptions", "Ranking", "rank", "lookup", "METRICS", "DIRECTIONS", "order_by"]

log = logging.getLogger(__name__)

METRICS = ("score", "unused_ref_cos", "norm", "centroid_l2", "centroid_cos", "mean_cos", "pc1_removed_cos", "nn_cos")
# Which end of each metric is "suspicious" by default (True = high values first).
DIRECTIONS = {
    "score": True,
    "unused_ref_cos": True,
    "norm": False,
    "centroid_l2": False,
    "centroid_cos": True,
    "mean_cos": True,
    "pc1_removed_cos": True,
    "nn_cos": True,
    "knn_mean_cos": True,
    "knn_ref_share": True,
}
NN_MODES = ("auto", "exact", "approx", "off")


@dataclass(frozen=True)
class RankOptions:
    """Settings of a ranking. ``nn``: how the ``knn_k`` nearest neighbours (cosine) of every
    token are found (:mod:`anomtok.knn`); ``auto`` is ``exact`` when V*V*D <= ``nn_exact_budget``
    multiply-adds (about 90 s of float32 matmul on 2 cores), else ``approx``: pynndescent's
    NN-descent graph of ``nn_degree`` neighbours per row (seeded), plus exact search for the
    ``nn_top`` highest-scoring tokens and ``nn_sample`` random rows, which measure the recall;
    ``off`` leaves the neighbourhood columns empty."""

    device: str = "auto"
    nn: str = "auto"
    nn_exact_budget: float = 4e12
    nn_top: int = 1024
    nn_sample: int = 2048
    knn_k: int = 15
    nn_degree: int = K.NNDESCENT_DEGREE
    min_reference: int = 3
    flag_quantile: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.nn not in NN_MODES:
            raise InputError(f"nn must be one of {', '.join(NN_MODES)}, not {self.nn!r}")
        for name in ("nn_top", "nn_sample", "min_reference", "knn_k", "nn_degree"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be >= 1")
        if not 0.0 <= self.flag_quantile <= 1.0:
            raise InputError("flag_quantile must be in [0, 1]")
        from .inputs import check_seed

        check_seed(self.seed)


@dataclass
class Ranking:
    """The ranked table plus what produced it (``meta``: settings, reference set, timings) and
    the k-nearest-neighbour graph of the input embedding (``knn``, None with ``nn="off"``; written
    as ``knn.npz`` next to ``ranked.parquet``, and given to UMAP so a map does not search again)."""

    frame: pl.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)
    knn: K.KnnGraph | None = None

    def top(self, k: int = 20, metric: str = "score", far: bool = False, include_padding: bool = False) -> pl.DataFrame:
        return order_by(self.frame, metric, far=far, include_padding=include_padding).head(k)

    def __repr__(self) -> str:
        """A few lines: the model, the shape, what the score is, the top 5 tokens (not the frame)."""
        m, f = self.meta, self.frame
        name = (m.get("model") or {}).get("name") or (m.get("source") or {}).get("source") or "a model"
        rows, dim = (m.get("shape") or [f.height, "?"])[:2]
        sc = m.get("score") or {}
        lines = [f"Ranking of {name}: {rows:,} tokens × {dim}"]
        if sc:
            lines.append(
                f"  score: cosine to the mean of {sc.get('reference_size')} reference tokens "
                f"({sc.get('reference_source')}) on the {sc.get('matrix')}; {sc.get('flagged', 0):,} flagged"
            )
        if {"rank", "token", "score"} <= set(f.columns):
            top = f.filter(~pl.col("is_reference")) if "is_reference" in f.columns else f
            shown = [
                f"#{r['rank']} ⟨{r['token'][:16]}⟩ {r['score']:.3f}"
                if r["score"] is not None
                else f"#{r['rank']} ⟨{r['token'][:16]}⟩"
                for r in top.head(5).iter_rows(named=True)
            ]
            lines.append(f"  top 5{' outside the reference set' if top is not f else ''}: {', '.join(shown)}")
        knn = f"; .knn: {self.knn.k} nearest neighbours of every token" if self.knn is not None else ""
        lines.append(f"  .frame: {f.height:,} rows × {f.width} columns; .meta; .top(k, metric){knn}")
        return "\n".join(lines)


def order_by(frame: pl.DataFrame, metric: str, far: bool = False, include_padding: bool = False) -> pl.DataFrame:
    """Rows ordered by one metric, suspicious end first (``far`` flips the direction).

    Invalid rows (NaN metric) go last here; padding rows are left out unless asked for; ties keep
    the lower token id first (so a frame of some columns orders like the full ranking)."""
    if metric not in frame.columns or metric in ("token", "bytes_hex", "kind", "script"):
        raise InputError(
            f"unknown metric {metric!r}; choose from {', '.join(m for m in METRICS if m in frame.columns)}"
        )
    desc = DIRECTIONS.get(metric, True) != far
    f = frame if include_padding else frame.filter(pl.col("kind") != "padding")
    if "token_id" in f.columns and metric != "token_id":  # ties: the lower token id first, whatever the frame's order
        return f.sort([metric, "token_id"], descending=[desc, False], nulls_last=True)
    return f.sort(metric, descending=desc, nulls_last=True, maintain_order=True)


def rank(emb: ModelEmbeddings, options: RankOptions | None = None, progress: Any = None) -> Ranking:
    """Compute every column for every token and rank them (see the module docstring)."""
    opt = options or RankOptions()
    cols = Columns(emb, opt, progress=progress)
    names = cols.columns()
    for name in names:
        cols.get(name)
    t = time.perf_counter()
    frame = cols.frame(names).sort("rank")
    timings = {**cols.seconds, "table": round(time.perf_counter() - t, 4)}
    if progress is not None:
        progress("table")
    ref, ref_source = cols.get("reference")
    graph = cols.get("knn")
    flagged, threshold = cols.column("flagged"), cols.get("flag_threshold")
    is_ref = cols.column("is_reference")
    invalid_ids = np.nonzero(~cols.column("valid"))[0]
    kinds = np.asarray(emb.tokens.kinds)
    from .provenance import run_info

    meta = {
        "anomtok_version": __version__,
        **run_info("rank"),
        "source": emb.provenance.to_dict(),
        "model": emb.config,
        "shape": list(emb.shape),
        "tied": emb.tied,
        "settings": asdict(opt) | {"device_used": str(cols.dev)},
        "score": {
            "name": "unused_ref_cos",
            "matrix": "output (unembedding)" if cols.on_output else "input embedding",
            "reference_source": ref_source,
            "reference_size": int(is_ref.sum()),
            "reference_kinds": {str(k): int(v) for k, v in zip(*np.unique(kinds[is_ref], return_counts=True))},
            "flag_threshold": threshold,
            "flag_rule": (
                f"not in the reference set and score >= the {opt.flag_quantile:g} quantile "
                f"of the reference tokens' scores"
            ),
            "flagged": int(flagged.sum()),
        },
        "nn_mode": _nn_mode(cols.nn_mode, graph),
        "knn": None if graph is None else graph.info,
        "invalid_rows": {"count": int(invalid_ids.size), "ids": invalid_ids[:100].tolist()},
        "kind_counts": emb.tokens.kind_counts(),
        "vocabulary_sha256": emb.tokens.vocabulary_sha256(),
        "timings_s": timings,
    }
    return Ranking(frame=frame, meta=meta, knn=graph)


def lookup(
    emb: ModelEmbeddings,
    metric: str,
    k: int,
    *,
    far: bool = False,
    include_padding: bool = False,
    columns: Sequence[str] = (),
    options: RankOptions | None = None,
) -> pl.DataFrame:
    """The first ``k`` rows of ``order_by(ranking, metric, far, include_padding)`` with the
    ``columns`` asked for (and ``metric``, ``token_id``, ``kind``), computing only what those
    need (``anomtok.columns``): the same rows, order and values as the full ranking's, without
    its principal components or neighbour search when the columns do not need them. The
    token-table columns are read for the ``k`` rows only."""
    opt = options or RankOptions()
    cols = Columns(emb, opt)
    if metric not in METRICS or metric not in cols.nodes:
        raise InputError(f"unknown metric {metric!r}; choose from {', '.join(m for m in METRICS if m in cols.nodes)}")
    wanted = [c for c in COLUMNS if c in {metric, "token_id", "kind", *columns}]
    unknown = sorted(set(columns) - set(cols.columns()))
    if unknown:
        raise InputError(f"unknown column {unknown[0]!r}; choose from {', '.join(cols.columns())}")
    keys = pl.DataFrame({"token_id": token_values(emb, "token_id"), "kind": emb.tokens.kinds}).with_columns(
        as_series(metric, cols.column(metric))
    )
    ids = order_by(keys, metric, far=far, include_padding=include_padding).head(k)["token_id"].to_numpy()
    out = {}
    for name in wanted:
        if name in TOKEN_COLUMNS:
            out[name] = as_series(name, token_values(emb, name, ids))
        else:
            out[name] = as_series(name, cols.column(name)[ids])
    return pl.DataFrame(out)


def _nn_mode(mode: str, graph: K.KnnGraph | None) -> str:
    """One line for meta.json: exact, off, or approximate with the measured recall."""
    if graph is None or mode != "approx":
        return mode
    i = graph.info
    return (
        f"approx: pynndescent NN-descent (degree {i['degree']}, seed {i['seed']}); recall@{i['k']} "
        f"{i['recall']:.3f} against exact search on {i['recall_sample']} random rows; exact for those rows "
        f"and the top by score ({i['exact_rows']} rows, nn_exact)"
    )
