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
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import polars as pl
import torch

from . import knn as K
from . import metrics as M
from ._version import __version__
from .device import resolve_device
from .embeddings import ModelEmbeddings
from .errors import InputError

__all__ = ["RankOptions", "Ranking", "rank", "METRICS", "DIRECTIONS", "order_by"]

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

    Invalid rows (NaN metric) go last here; padding rows are left out unless asked for."""
    if metric not in frame.columns or metric in ("token", "bytes_hex", "kind", "script"):
        raise InputError(
            f"unknown metric {metric!r}; choose from {', '.join(m for m in METRICS if m in frame.columns)}"
        )
    desc = DIRECTIONS.get(metric, True) != far
    f = frame if include_padding else frame.filter(pl.col("kind") != "padding")
    return f.sort(metric, descending=desc, nulls_last=True, maintain_order=True)


def _nan_to_null(a: np.ndarray) -> pl.Series:
    s = pl.Series(a.astype(np.float64))
    return s.fill_nan(None)


def rank(emb: ModelEmbeddings, options: RankOptions | None = None, progress: Any = None) -> Ranking:
    """Compute every metric for every token and rank them (see the module docstring)."""
    opt = options or RankOptions()
    dev = resolve_device(opt.device)
    timings: dict[str, float] = {}
    t = time.perf_counter()

    def tick(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        timings[name] = round(now - t, 3)
        t = now
        if progress is not None:
            progress(name)

    E = emb.input.to(dev, torch.float32)
    V, D = E.shape
    valid = M.valid_rows(E)
    n_valid = int(valid.sum())
    if n_valid < 2:
        raise InputError(f"the embedding has {n_valid} usable rows out of {V} (all NaN, infinite or zero)")
    tick("valid")
    norm = M.row_norms(E, valid)
    c = M.centroid(E, valid)
    l2 = M.centroid_l2(E, valid, c)
    ccos = M.cosine_to(E, c, valid)
    tick("centroid")
    mcos = M.mean_cosine(E, valid)
    tick("mean_cos")
    Er = M.remove_first_pc(E, valid)
    pc1cos = M.pc1_removed_centroid_cosine(Er, valid)
    tick("pc1")

    # --- the under-trained indicator: on the unembedding when untied, else the embedding
    output = emb.output if emb.output is not None and emb.output.shape[0] == V else None
    on_output = output is not None
    if output is not None:
        X = output.to(dev, torch.float32)
        xvalid = M.valid_rows(X) & valid
        Xr = M.remove_first_pc(X, xvalid)
    else:
        X, xvalid, Xr = E, valid, Er
    table_ref = torch.from_numpy(emb.tokens.reference_mask()).to(dev)
    n_table_ref = int((table_ref & xvalid).sum())
    kinds = np.asarray(emb.tokens.kinds)
    if n_table_ref >= opt.min_reference:
        ref = table_ref & xvalid
        ref_source = "token table"
    else:
        # Fallback: seed the reference with the tokens most aligned with the centroid once the
        # first principal component is gone (``pc1_removed_cos``): rows that were rarely or never
        # updated keep only the drift every row shares, which is what that centroid points along.
        k = max(8, math.ceil(0.001 * V))
        xpc1 = pc1cos if not on_output else M.pc1_removed_centroid_cosine(Xr, xvalid)
        ref = torch.zeros(V, dtype=torch.bool, device=dev)
        ref[torch.argsort(torch.nan_to_num(xpc1, nan=-math.inf), descending=True)[:k]] = True
        ref &= xvalid
        ref_source = (
            f"fallback: the {k} tokens with the highest pc1_removed_cos "
            f"(the token table has {n_table_ref} reference tokens)"
        )
        log.info("too few reference tokens in the token table; %s", ref_source)
    ref_cos = M.reference_cosine(X, xvalid, ref, pc_removed=Xr)
    score = ref_cos.clone()
    tick("indicator")

    # --- the k nearest neighbours of every token (input embedding, cosine)
    mode = opt.nn
    if mode == "auto":
        mode = "exact" if K.exact_cost(V, D) <= opt.nn_exact_budget else "approx"
    graph: K.KnnGraph | None = None
    if mode == "exact":
        graph = K.knn_graph(E, valid, opt.knn_k, method="exact")
    elif mode == "approx":
        top = torch.argsort(torch.nan_to_num(score, nan=-math.inf), descending=True)[: opt.nn_top]
        graph = K.knn_graph(
            E,
            valid,
            opt.knn_k,
            method="nndescent",
            seed=opt.seed,
            exact_rows=top,
            recall_sample=opt.nn_sample,
            degree=opt.nn_degree,
        )
    if graph is not None:
        nbh = K.neighbourhood_columns(graph, ref.cpu().numpy())
        nn_exact = graph.exact_rows
    else:
        nbh = {
            "nn_cos": np.full(V, np.nan),
            "nn_id": np.full(V, -1, np.int64),
            "knn_mean_cos": np.full(V, np.nan),
            "knn_ref_share": np.full(V, np.nan),
        }
        nn_exact = np.zeros(V, dtype=bool)
    tick("nn_cos")

    # --- flagged: outside the reference set, yet scoring like the known-unused tokens do
    ref_scores = score[ref & torch.isfinite(score)]
    threshold = float(torch.quantile(ref_scores.double(), opt.flag_quantile)) if ref_scores.numel() else math.inf
    flagged = (~ref) & valid & (torch.nan_to_num(score, nan=-math.inf) >= threshold)
    flagged &= torch.from_numpy(kinds != "padding").to(dev)

    # --- the table
    invalid = ~valid
    order_key = torch.where(invalid, torch.full_like(score, math.inf), torch.nan_to_num(score, nan=-math.inf))
    order = torch.argsort(order_key, descending=True, stable=True).cpu().numpy()
    ranks = np.empty(V, dtype=np.int64)
    ranks[order] = np.arange(1, V + 1)
    cpu = lambda x: x.detach().cpu().numpy()  # noqa: E731
    cols: dict[str, Any] = {
        "rank": ranks,
        "token_id": np.arange(V, dtype=np.int64),
        "token": emb.tokens.displays,
        "bytes_hex": [b.hex() for b in emb.tokens.bytes],
        "kind": emb.tokens.kinds,
        "script": emb.tokens.scripts,
        "partial_utf8": emb.tokens.partial,
        "valid": cpu(valid),
        "is_reference": cpu(ref),
        "flagged": cpu(flagged),
        "norm": _nan_to_null(cpu(norm)),
        "centroid_l2": _nan_to_null(cpu(l2)),
        "centroid_cos": _nan_to_null(cpu(ccos)),
        "mean_cos": _nan_to_null(cpu(mcos)),
        "pc1_removed_cos": _nan_to_null(cpu(pc1cos)),
        "unused_ref_cos": _nan_to_null(cpu(ref_cos)),
        "nn_cos": _nan_to_null(nbh["nn_cos"]),
        "nn_id": nbh["nn_id"],
        "nn_exact": nn_exact,
        "knn_mean_cos": _nan_to_null(nbh["knn_mean_cos"]),
        "knn_ref_share": _nan_to_null(nbh["knn_ref_share"]),
        "score": _nan_to_null(cpu(score)),
    }
    if on_output:
        cols["out_norm"] = _nan_to_null(cpu(M.row_norms(X, xvalid)))
    frame = pl.DataFrame(cols).sort("rank")
    tick("table")
    invalid_ids = np.nonzero(cpu(invalid))[0]
    from .provenance import run_info

    meta = {
        "anomtok_version": __version__,
        **run_info("rank"),
        "source": emb.provenance.to_dict(),
        "model": emb.config,
        "shape": list(emb.shape),
        "tied": emb.tied,
        "settings": asdict(opt) | {"device_used": str(dev)},
        "score": {
            "name": "unused_ref_cos",
            "matrix": "output (unembedding)" if on_output else "input embedding",
            "reference_source": ref_source,
            "reference_size": int(ref.sum()),
            "reference_kinds": {str(k): int(v) for k, v in zip(*np.unique(kinds[cpu(ref)], return_counts=True))},
            "flag_threshold": threshold,
            "flag_rule": (
                f"not in the reference set and score >= the {opt.flag_quantile:g} quantile "
                f"of the reference tokens' scores"
            ),
            "flagged": int(flagged.sum()),
        },
        "nn_mode": _nn_mode(mode, graph),
        "knn": None if graph is None else graph.info,
        "invalid_rows": {"count": int(invalid_ids.size), "ids": invalid_ids[:100].tolist()},
        "kind_counts": emb.tokens.kind_counts(),
        "timings_s": timings,
    }
    return Ranking(frame=frame, meta=meta, knn=graph)


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
