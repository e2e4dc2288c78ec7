"""What a generation run loads before it generates: the model, its embeddings, and a ranking
checked to be this model's.

``load_for_generation`` loads cheapest first (the embeddings and token table, then a given
ranking, checked with ``ranking_for``, and only then the causal LM), so a ranking of another
model fails before the slow load. ``ranking_for`` returns the given ranking once
``check_ranking_identity`` accepts it, or ranks the model now (without nearest-neighbour cosine).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import polars as pl

from ..errors import InputError
from .model import CausalLM, load_causal_lm

__all__ = ["load_for_generation", "load_model_and_embeddings", "ranking_for", "check_ranking_identity"]

log = logging.getLogger(__name__)


def load_model_and_embeddings(
    model: Any, *, device: str = "auto", dtype: str = "auto", device_map: str | None = None, embeddings: Any = None
) -> tuple[CausalLM, Any]:
    """(CausalLM, ModelEmbeddings) for a spec, or for an already loaded CausalLM."""
    lm, emb, _ = load_for_generation(model, device=device, dtype=dtype, device_map=device_map, embeddings=embeddings)
    return lm, emb


def load_for_generation(
    model: Any,
    ranking: Any = None,
    *,
    device: str = "auto",
    dtype: str = "auto",
    device_map: str | None = None,
    embeddings: Any = None,
) -> tuple[CausalLM, Any, Any]:
    """(CausalLM, ModelEmbeddings, ranking) for a spec or a loaded CausalLM, cheapest first: the
    embeddings and token table, then a given ranking (read, and checked to be this model's:
    ``ranking_for``), and only then the model itself. ``ranking`` None is returned as None (rank
    with ``ranking_for`` when needed)."""
    from ..loading import load

    source = model.source if isinstance(model, CausalLM) else str(model)
    emb = embeddings if embeddings is not None else load(source)
    rk = ranking_for(emb, ranking, device=device) if ranking is not None else None
    lm = (
        model
        if isinstance(model, CausalLM)
        else load_causal_lm(model, device=device, dtype=dtype, device_map=device_map, embeddings=emb)
    )
    if len(emb.tokens) < lm.n_vocab:
        raise InputError(f"the token table has {len(emb.tokens)} rows but the tokenizer {lm.n_vocab} tokens")
    return lm, emb, rk


def ranking_for(emb: Any, ranking: Any = None, *, device: str = "auto") -> Any:
    """A Ranking or ranked frame: the one given (object, frame, or ranked.csv/.parquet path),
    checked to be the ranking of ``emb``'s model, or a fresh ``anomtok.rank`` without
    nearest-neighbour cosine (``nn="off"``).

    A ranking from another model is an ``InputError``: another vocabulary size, tokens that spell
    other bytes, or, from the ``meta.json`` written beside a ranked file, another embedding shape.
    Other model files with the same shape and tokens (a copy elsewhere, a fine-tune) are a warning."""
    from ..export import read_table
    from ..ranking import Ranking, RankOptions, rank

    if ranking is None:
        return rank(emb, RankOptions(device=device, nn="off"))
    meta: Any = None
    if isinstance(ranking, (Ranking, pl.DataFrame)):
        frame = ranking.frame if isinstance(ranking, Ranking) else ranking
        meta = ranking.meta if isinstance(ranking, Ranking) else None
        where = "the ranking"
    else:
        frame = read_table(ranking)
        meta = _meta_beside(Path(ranking))
        where = str(ranking)
        ranking = frame
    check_ranking_identity(frame, emb, meta, where=where)
    return ranking


def _meta_beside(path: Path) -> Any:
    """The ``meta.json`` that ``anomtok rank`` wrote beside a ranked file, or None (absent,
    unreadable, or another command's)."""
    from ..export import read_json

    try:
        meta = read_json(path.parent / "meta.json", missing_ok=True)
    except InputError:
        return None
    if isinstance(meta, dict) and isinstance(meta.get("source"), dict) and isinstance(meta.get("shape"), list):
        return meta
    return None


def check_ranking_identity(frame: pl.DataFrame, emb: Any, meta: Any = None, *, where: str = "the ranking") -> None:
    """InputError unless ``frame`` (and its ``meta``, when known) ranks ``emb``'s model."""
    from ..steps import model_fingerprint

    rows = emb.shape[0]
    if frame.height != rows:
        raise InputError(
            f"{where}: {frame.height:,} rows but the model's embedding has {rows:,}: ranked from another model?"
        )
    if isinstance(meta, dict) and isinstance(meta.get("shape"), list) and list(meta["shape"]) != list(emb.shape):
        raise InputError(
            f"{where}: ranked from a {' x '.join(map(str, meta['shape']))} embedding, this model's is "
            f"{' x '.join(map(str, emb.shape))}: another model?"
        )
    if "bytes_hex" in frame.columns and "token_id" in frame.columns:
        spelled = [b.hex() for b in emb.tokens.bytes[:rows]]
        ours = pl.DataFrame(
            {"token_id": list(range(len(spelled))), "ours": spelled}, schema={"token_id": pl.Int64, "ours": pl.String}
        )
        theirs = frame.select(pl.col("token_id").cast(pl.Int64), pl.col("bytes_hex").cast(pl.String).fill_null(""))
        joined = ours.join(theirs, on="token_id", how="left")
        differ = int(joined.filter(pl.col("bytes_hex").is_null() | (pl.col("bytes_hex") != pl.col("ours"))).height)
        if differ > max(0, rows // 100):
            raise InputError(
                f"{where}: {differ:,} of {rows:,} token ids spell other bytes than this model's tokens: "
                "ranked from another model?"
            )
        if differ:
            log.warning("%s: %d token ids spell other bytes than this model's tokens", where, differ)
    source = meta.get("source") if isinstance(meta, dict) else None
    if isinstance(source, dict) and source.get("files"):
        if model_fingerprint(source) != model_fingerprint(emb.provenance.to_dict()):
            log.warning(
                "%s was ranked from other model files (%s) with the same vocabulary and shape: "
                "another copy or a fine-tune of this model?",
                where,
                ", ".join(str(f.get("path")) for f in source["files"]),
            )
