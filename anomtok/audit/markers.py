"""The marker of the round trip (step 1 of ``anomtok.audit.roundtrip``): a short string whose ids
prefix every encoding of ``marker + text``, so that a token is decoded and re-encoded where it
would sit mid-text. ``choose_contexts`` picks up to two, best first."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import japanese as ja

__all__ = ["Context", "choose_contexts"]

_MARKERS = ("«", "¦", "¤", "§", "¶", "»")


@dataclass(frozen=True)
class Context:
    """A usable marker: its text, its ids and the decoding of those ids."""

    marker: str
    ids: tuple[int, ...]
    decoded: str


def choose_contexts(tok: Any, table: Any, want: int = 2) -> list[Context]:
    """Up to ``want`` usable markers, best first: ``«``, ``¦``, ... for BPE/Unigram tokenizers; for
    WordPiece, first a letter token that no other word token extends; for a vocabulary with
    neither, the single-character tokens found inside the fewest longer tokens."""
    out: list[Context] = []
    fixed = (_wordpiece_markers(tok, table) if table.scheme == "wordpiece" else []) + list(_MARKERS)
    for batch in (fixed, None):
        for m in batch if batch is not None else _vocab_markers(table):  # a tiny vocabulary may lack the usual ones
            ctx = _try_marker(tok, table, m)
            if ctx is not None:
                out.append(ctx)
                if len(out) >= want:
                    return out
    return out


def _try_marker(tok: Any, table: Any, m: str) -> Context | None:
    try:
        ids = tuple(tok.encode(m, add_special_tokens=False).ids)
        dec = tok.decode(list(ids), skip_special_tokens=False)
        probes = [tok.encode(m + p, add_special_tokens=False).ids for p in ("a", " a")]
    except Exception as exc:  # noqa: BLE001 - only the tokenizers library's own errors (plain Exception)
        if type(exc) is not Exception:
            raise
        return None  # a custom component raised (re-raised by tokenizers as a plain Exception): try the next marker
    if not ids or m not in dec or any(table.kinds[i] in ("unknown", "special") for i in ids if i < len(table)):
        return None
    if all(tuple(p[: len(ids)]) == ids and len(p) > len(ids) for p in probes):
        return Context(m, ids, dec)
    return None


def _vocab_markers(table: Any, limit: int = 40) -> list[str]:
    """Single characters that are tokens, those inside the fewest longer tokens first."""
    texts = [b.decode("utf-8", "ignore") for b, k in zip(table.bytes, table.kinds) if k == "normal"]
    chars = sorted({t for t in texts if len(t) == 1 and t.isprintable() and not t.isspace() and t != "\u2581"})
    longer = [t for t in texts if len(t) > 1]
    return sorted(chars, key=lambda c: (sum(c in t for t in longer), c.isalnum(), c))[:limit]


def _wordpiece_markers(tok: Any, table: Any, limit: int = 5) -> list[str]:
    """Letters that are word tokens and start no longer word token: ``M + "ing"`` then encodes as
    ``[M, ##ing]``, so continuation pieces are judged as continuations."""
    starts = {
        p[0] for p, k in zip(table.pieces, table.kinds) if k == "normal" and len(p) > 1 and not p.startswith("##")
    }
    norm = tok.normalizer
    out = []
    for p, k in zip(table.pieces, table.kinds):
        if k == "normal" and len(p) == 1 and p.isalpha() and p not in starts and ja.char_class(p) == "other":
            if norm is None or norm.normalize_str(p) == p:
                out.append(p)
                if len(out) >= limit:
                    break
    return out
