"""The audit lined up with an embedding ranking: the ``rank`` column of ``audit.csv`` and the
``ranking`` entry of ``audit.json``. ``check_ranked_vocab`` refuses a model of another vocabulary
before any audit work; ``join_ranking`` ranks (``nn="off"``) when needed and joins on token id,
checking the bytes of every shared id."""

from __future__ import annotations

import logging
from typing import Any

import polars as pl

from ..errors import InputError
from .source import LoadedTokenizer

__all__ = ["TOP_RANK", "check_ranked_vocab", "join_ranking"]

log = logging.getLogger(__name__)

TOP_RANK = 1000
"""The top of the ranking the audit reports on (``top_k``)."""


def check_ranked_vocab(loaded: LoadedTokenizer, ranking: Any) -> Any:
    """An explicit ranking model (a spec, loaded embeddings or a Ranking) checked against the
    tokenizer before any audit work: a spec is loaded (embedding and token table only, cheap) and
    returned loaded, so it is ranked without loading it twice. InputError when more than half the
    shared ids spell different bytes (the same rule ``join_ranking`` applies to the ranked table)."""
    from ..embeddings import ModelEmbeddings
    from ..ranking import Ranking

    if ranking is None or ranking is False:
        return ranking
    if isinstance(ranking, Ranking):
        rf = ranking.frame.select("token_id", "bytes_hex").sort("token_id")
        theirs = dict(zip(rf["token_id"].to_list(), rf["bytes_hex"].to_list()))
    else:
        if not isinstance(ranking, ModelEmbeddings):
            from ..loading import load

            ranking = load(ranking)
        theirs = {i: b.hex() for i, b in enumerate(ranking.tokens.bytes)}
    ours = [b.hex() for b in loaded.table.bytes]
    shared = [i for i in range(len(ours)) if i in theirs]
    mismatch = sum(ours[i] != theirs[i] for i in shared)
    if not shared or mismatch > len(shared) // 2:
        raise InputError(
            f"the ranked model's vocabulary is not this tokenizer's ({mismatch:,} of {len(shared):,} shared ids "
            "spell different bytes): give the model that goes with the tokenizer"
        )
    return ranking


def join_ranking(loaded: LoadedTokenizer, ranking: Any, options: Any, frame: pl.DataFrame) -> tuple[pl.Series, dict]:
    """(the ``rank`` column for ``frame``, the ``ranking`` entry of ``audit.json``). ``ranking``:
    ``False`` (off), ``None`` (rank the source itself when it holds embeddings; a failure is a
    warning), a ``Ranking``, loaded embeddings or a model spec (ranked with ``options``, default
    ``nn="off"``). InputError when more than half the shared ids spell different bytes."""
    n = len(frame)
    empty = pl.Series("rank", [None] * n, dtype=pl.Int64)
    if ranking is False:
        return empty, {"status": "off"}
    from ..ranking import Ranking, RankOptions

    explicit = ranking is not None
    if ranking is None:
        if not loaded.has_embeddings:
            return empty, {"status": "none: the source has no embedding matrix (give --model)"}
        ranking = loaded.source
    if not isinstance(ranking, Ranking):
        from ..embeddings import ModelEmbeddings
        from ..errors import AnomtokError
        from ..loading import load
        from ..ranking import rank

        try:
            ranking = rank(
                ranking if isinstance(ranking, ModelEmbeddings) else load(ranking),
                options=options or RankOptions(nn="off"),
            )
        except AnomtokError as exc:
            if explicit:
                raise
            log.warning("no embedding ranking: %s", exc)
            return empty, {"status": f"failed: {exc}"}
    rf = ranking.frame.select("token_id", "rank", "bytes_hex").filter(pl.col("token_id") < n)
    joined = frame.select("token_id", "bytes_hex").join(rf, on="token_id", how="left", suffix="_ranked")
    mismatch = int(
        joined.filter(
            pl.col("bytes_hex_ranked").is_not_null() & (pl.col("bytes_hex") != pl.col("bytes_hex_ranked"))
        ).height
    )
    overlap = int(joined["bytes_hex_ranked"].is_not_null().sum())
    if overlap == 0 or mismatch > overlap // 2:
        raise InputError(
            f"the ranked model's vocabulary is not this tokenizer's ({mismatch:,} of {overlap:,} shared ids "
            "spell different bytes): give the model that goes with the tokenizer"
        )
    if mismatch:
        log.warning("the ranked model's vocabulary differs from the tokenizer's on %d ids", mismatch)
    meta = ranking.meta if isinstance(getattr(ranking, "meta", None), dict) else {}
    return joined["rank"].cast(pl.Int64).alias("rank"), {
        "status": "ok",
        "source": str(
            meta.get("source", {}).get("source") if isinstance(meta.get("source"), dict) else meta.get("source", "")
        ),
        "score": (meta.get("score") or {}).get("name") if isinstance(meta.get("score"), dict) else None,
        "rows": ranking.frame.height,
        "vocab_mismatch_ids": mismatch,
        "top_k": TOP_RANK,
    }
