"""Tokenizer audit: which tokens can the tokenizer never produce, which are broken byte pieces,
which does its normaliser change, and how it copes with Japanese.

>>> result = audit("xlmr-tokenizer", out_dir="out/xlmr")      # doctest: +SKIP
>>> result.summary["counts"]["round_trip"]                    # doctest: +SKIP
{'reachable': 246113, 'unreachable-single': ..., ...}

``audit()`` (below) runs the steps in order: load → round trip → summary → ranking → Japanese →
write. One module per step:

* ``source``: load a tokenizer from any source (``load_tokenizer``: tokenizer.json, folder, GGUF,
  alias, hub id) as a ``LoadedTokenizer``.
* ``sentencepiece``: a SentencePiece ``.model`` read and converted into a ``tokenizers`` pipeline.
* ``components``: the tokenizer's normaliser / pre-tokenizer / decoder as the audit sees them.
* ``markers``: the marker a token is decoded and re-encoded after (step 1 of the method).
* ``roundtrip``: the round trip and its classes (``audit_tokenizer``; the method is described
  there): the ``audit.csv`` frame.
* ``summary``: counts, examples, duplicates and provenance: the body of ``audit.json``.
* ``rank_join``: the embedding ranking lined up with the audit (the ``rank`` column).
* ``japanese``: the Japanese section (the classifier itself is ``anomtok.japanese``).
* ``render``: ``audit.md`` from the ``audit.json`` dict alone.
* ``result``: ``AuditResult`` and ``write_audit`` (the three files).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from .._version import __version__
from .components import describe_tokenizer
from .japanese import section as japanese_section
from .rank_join import TOP_RANK, check_ranked_vocab, join_ranking
from .render import render_markdown
from .result import FORMAT, AuditResult, write_audit
from .roundtrip import CLASSES, audit_tokenizer, encode_in_context
from .source import LoadedTokenizer, load_tokenizer
from .summary import provenance, summarize

__all__ = [
    "AuditResult",
    "audit",
    "audit_tokenizer",
    "render_markdown",
    "write_audit",
    "encode_in_context",
    "load_tokenizer",
    "LoadedTokenizer",
    "CLASSES",
    "FORMAT",
    "TOP_RANK",
]


def audit(
    source: Any,
    out_dir: str | os.PathLike | None = None,
    ranking: Any = None,
    *,
    rank_options: Any = None,
    samples: dict[str, str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> AuditResult:
    """Audit every token of a tokenizer; with ``out_dir`` write ``audit.csv``, ``audit.json``,
    ``audit.md`` there (atomically).

    ``source``: anything ``anomtok.load`` accepts, a tokenizer file (``tokenizer.json``, ``.model``,
    ``.gguf``), a ``tokenizers.Tokenizer`` or a ``(Tokenizer, TokenTable)`` pair.
    ``ranking``: a ``Ranking``, loaded embeddings or a model spec to rank (``nn="off"``) and line up
    with the audit; ``None`` ranks ``source`` itself when it holds embeddings; ``False`` never ranks.
    ``samples``: ``{"ja": text, "en": text}`` for fertility and the inventory (default: the packaged ``anomtok/data/sample_*.txt``).
    """
    if out_dir is not None:
        from ..outputs import check_dir

        check_dir(out_dir)
    t0 = time.perf_counter()
    loaded = load_tokenizer(source)
    ranking = check_ranked_vocab(loaded, ranking)  # a model of another vocabulary fails here, before the audit
    t_load = time.perf_counter() - t0
    if progress:
        progress("load")
    frame, extra = audit_tokenizer(loaded, progress)
    summary = {"format": FORMAT, "anomtok_version": __version__, "source": provenance(loaded)}
    summary.update(summarize(frame, loaded))
    summary["method"] = extra["method"]
    summary["tokenizer"] = describe_tokenizer(loaded)
    t_rank = time.perf_counter()
    rank_col, summary["ranking"] = join_ranking(loaded, ranking, rank_options, frame)
    t_rank = time.perf_counter() - t_rank
    frame = frame.with_columns(rank=rank_col)
    if progress and summary["ranking"]["status"] == "ok":
        progress("rank")
    tok, ctxs = extra["_tok"], extra["_ctxs"]
    summary["japanese"] = japanese_section(
        frame,
        loaded.table,
        lambda texts: encode_in_context(tok, ctxs, texts)[0],
        lambda text: tok.encode(text, add_special_tokens=False).ids,
        samples=samples,
        top_k=TOP_RANK,
    )
    if progress:
        progress("japanese")
    summary["seconds"] = {
        "load": round(t_load, 2),
        "audit": round(time.perf_counter() - t0 - t_load - t_rank, 2),
        "rank": round(t_rank, 2),
    }
    result = AuditResult(frame=frame, summary=summary, table=loaded.table)
    if out_dir is not None:
        result.paths = write_audit(result, out_dir)
    return result
