"""The round trip: every token id decoded in context, re-encoded, and classified
(``audit_tokenizer``: one row per id, the ``audit.csv`` frame). Computation only: nothing is
written.

Round-trip method (per token id ``i``, written to ``audit.json`` as ``method``):

1. A *marker* ``M`` is chosen once per tokenizer: a short string (``«`` for BPE/Unigram
   tokenizers; for WordPiece, a letter token that no other word token extends; for a vocabulary
   with neither, the single-character token found inside the fewest longer tokens) whose ids ``m``
   are not unknown/special and prefix every encoding of ``M + "a"`` and ``M + " a"``. A second
   marker is kept for the tokens the first one merges with.
2. The token's text is the in-context decoding ``decode(m + [i])`` with ``decode(m)`` cut off: so a
   SentencePiece ``▁word`` keeps its leading space, a word-internal piece has none, and a WordPiece
   ``##ing`` is told from ``ing``.
3. The text is re-encoded as ``encode(M + text, add_special_tokens=False)`` (no BOS, no
   post-processor) and the marker's ids are cut off. A tokenizer that prepends ``▁`` to the input
   spends it on the marker, so the token is judged where it would sit mid-text. When the marker
   merges with the text (the ids do not start with ``m``) the second marker is tried, then the
   text alone (``method`` column: ``marker``, ``marker2``, ``bare``).
4. Classes: ``reachable`` (gives back exactly ``[i]``), ``unreachable-single`` (another single
   token), ``unreachable-multi`` (several tokens), ``unreachable-empty`` (no token at all: the
   normaliser deletes it), ``undecodable`` (the token's bytes are not valid UTF-8 alone: a byte
   piece or a fragment of a character), ``special`` (special, control, unused, unknown tokens),
   ``padding`` (an id with no token), ``error`` (decoding raised; the message is in
   ``decode_error``).

For unreachable tokens ``cause`` says why: ``normalizer`` (the normaliser changes the text, e.g.
NFKC, lower-casing: ``normalized`` holds the result), ``byte-fallback`` (a ``<0xNN>`` piece whose
character has a token of its own), ``pre-tokenizer`` (the text is split before the model sees it),
``model`` (the merges or unigram scores segment it differently).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl

from .. import japanese as ja
from ..errors import InputError
from ..text import display, spreadsheet_safe
from ..tokenizer_copy import unpadded
from .components import content_normalizer
from .markers import Context, choose_contexts
from .source import LoadedTokenizer

__all__ = ["CLASSES", "NOT_AUDITED", "audit_tokenizer", "encode_in_context"]

CLASSES = (
    "reachable",
    "unreachable-single",
    "unreachable-multi",
    "unreachable-empty",
    "undecodable",
    "special",
    "padding",
    "error",
)
NOT_AUDITED = {"special": "special", "unused": "special", "unknown": "special", "padding": "padding"}
"""Token kinds that are not round-tripped, and the class each gets."""
_BATCH = 16384


# ---------------------------------------------------------------------------------- encode/decode
def _encode_many(tok: Any, texts: list[str]) -> list[list[int]]:
    fn = getattr(tok, "encode_batch_fast", None) or tok.encode_batch
    out: list[list[int]] = []
    for s in range(0, len(texts), _BATCH):
        out.extend(e.ids for e in fn(texts[s : s + _BATCH], add_special_tokens=False))
    return out


def encode_in_context(tok: Any, ctxs: list[Context], texts: list[str]) -> tuple[list[list[int]], list[str]]:
    """Ids of each text after the first marker that does not merge with it (marker ids cut off),
    else of the text alone; and how: ``marker``, ``marker2``.., or ``bare``."""
    ids: list[list[int]] = [[] for _ in texts]
    method = ["bare"] * len(texts)
    todo = list(range(len(texts)))
    for n, ctx in enumerate(ctxs):
        k, left = len(ctx.ids), []
        for j, got in zip(todo, _encode_many(tok, [ctx.marker + texts[j] for j in todo])):
            if tuple(got[:k]) == ctx.ids:
                ids[j], method[j] = got[k:], "marker" if n == 0 else f"marker{n + 1}"
            else:
                left.append(j)
        todo = left
    for j, got in zip(todo, _encode_many(tok, [texts[j] for j in todo])):
        ids[j] = got
    return ids, method


def _decode_all(tok: Any, ctx: Context | None, ids: list[int]) -> tuple[list[str | None], list[str]]:
    prefix = list(ctx.ids) if ctx else []
    errors = [""] * len(ids)
    texts: list[str | None] = []
    for s in range(0, len(ids), _BATCH):
        chunk = ids[s : s + _BATCH]
        try:
            texts.extend(tok.decode_batch([prefix + [i] for i in chunk], skip_special_tokens=False))
        except Exception as exc:  # noqa: BLE001 - only the tokenizers library's own errors (plain Exception)
            if type(exc) is not Exception:
                raise
            for j, i in enumerate(chunk):  # find the ids that raise, one by one
                try:
                    texts.append(tok.decode(prefix + [i], skip_special_tokens=False))
                except Exception as err:  # noqa: BLE001 - only the tokenizers library's own errors
                    if type(err) is not Exception:
                        raise
                    texts.append(None)
                    errors[s + j] = f"{err.__class__.__name__}: {str(err).splitlines()[0] if str(err) else ''}"[:200]
    if ctx is not None:
        d = ctx.decoded
        for j, t in enumerate(texts):
            if t is None:
                continue
            if t.startswith(d):
                texts[j] = t[len(d) :]
            else:  # the decoder merged marker and token: decode the token alone
                try:
                    texts[j] = tok.decode([ids[j]], skip_special_tokens=False)
                except Exception as exc:  # noqa: BLE001 - only the tokenizers library's own errors (plain Exception)
                    if type(exc) is not Exception:
                        raise
                    texts[j], errors[j] = None, f"{exc.__class__.__name__}: {exc}"[:200]
    return texts, errors


def _split_apart(tok: Any, ctx: Context | None, text: str) -> bool:
    """Does the pre-tokenizer cut ``text`` (after the marker) into more pieces than it cuts a
    one-letter word in the same place?"""
    pre = tok.pre_tokenizer
    if pre is None:
        return False
    head = ctx.marker if ctx else ""
    probe = " a" if text.startswith(" ") else "a"

    def pieces(t: str) -> int:
        t = tok.normalizer.normalize_str(t) if tok.normalizer is not None else t
        return len(pre.pre_tokenize_str(t))

    return pieces(head + text) > pieces(head + probe)


# ---------------------------------------------------------------------------------- the audit
def audit_tokenizer(
    loaded: LoadedTokenizer, progress: Callable[[str], None] | None = None
) -> tuple[pl.DataFrame, dict]:
    """Classify every token id of ``loaded``; return (frame, summary without ranking/Japanese)."""
    # without padding or truncation (a copy when it has either: a tokenizer.json may pad every
    # encoding to 128 ids or cut the sample texts at 512)
    tok, table = unpadded(loaded.tokenizer), loaded.table
    n = len(table)
    if n == 0:
        raise InputError("the tokenizer has an empty vocabulary")
    ctxs = choose_contexts(tok, table)
    ctx = ctxs[0] if ctxs else None
    kinds = table.kinds
    partial = table.partial
    round_trip = [""] * n
    known = np.array([tok.id_to_token(i) is not None for i in range(n)])
    texts, errors = _decode_all(tok, ctx, list(range(n)))
    todo = []
    for i in range(n):
        k = kinds[i]
        if k in NOT_AUDITED:
            round_trip[i] = NOT_AUDITED[k]
        elif not known[i]:
            round_trip[i], errors[i] = "error", errors[i] or "id unknown to the tokenizer"
        elif errors[i] or texts[i] is None:
            round_trip[i] = "error"
        elif partial[i]:
            round_trip[i] = "undecodable"
        else:
            todo.append(i)
    if progress:
        progress("decode")
    enc, how = encode_in_context(tok, ctxs, [texts[i] for i in todo])
    if progress:
        progress("encode")
    reenc: list[str] = [""] * n
    n_reenc = [0] * n
    method = ["none"] * n
    for i, got, m in zip(todo, enc, how):
        method[i], reenc[i], n_reenc[i] = m, " ".join(map(str, got)), len(got)
        round_trip[i] = (
            "reachable"
            if got == [i]
            else "unreachable-single"
            if len(got) == 1
            else "unreachable-empty"
            if not got
            else "unreachable-multi"
        )
    # normalisation effects and causes
    norm = content_normalizer(tok)
    normalized = [""] * n
    changed = np.zeros(n, bool)
    if norm is not None:
        for i in todo:
            t = texts[i]
            out = norm.normalize_str(t)
            if out.replace(" ", "") != t.replace(" ", ""):
                changed[i], normalized[i] = True, display(out.encode("utf-8"))
    fallback = np.array([k == "byte" and table.scheme != "byte-level" for k in kinds])
    cause = [""] * n
    for i in todo:
        if round_trip[i] == "reachable":
            continue
        if changed[i]:
            cause[i] = "normalizer"
        elif fallback[i]:
            cause[i] = "byte-fallback"
        else:
            used = ctxs[int(method[i][6:] or 1) - 1] if method[i].startswith("marker") else None
            cause[i] = "pre-tokenizer" if _split_apart(tok, used, texts[i]) else "model"
    if progress:
        progress("classify")
    displays = table.displays
    ja_cls = [
        ja.ja_class(b.decode("utf-8", "ignore")) if kinds[i] not in NOT_AUDITED else ""
        for i, b in enumerate(table.bytes)
    ]
    frame = pl.DataFrame(
        {
            "token_id": np.arange(n, dtype=np.int64),
            "token": displays[:n],
            "bytes_hex": [b.hex() for b in table.bytes],
            "kind": kinds,
            "round_trip": round_trip,
            "cause": cause,
            "reencoded_ids": reenc,
            "n_reencoded": np.asarray(n_reenc, dtype=np.int64),
            "method": method,
            "decoded": [spreadsheet_safe(display(t.encode("utf-8"))) if t is not None else "" for t in texts],
            "normalized": [spreadsheet_safe(s) for s in normalized],
            "normalized_changed": changed,
            "byte_fallback": fallback,
            "partial_utf8": np.asarray(partial, bool),
            "script": table.scripts,
            "ja_class": ja_cls,
            "n_chars": np.array([len(b.decode("utf-8", "ignore")) for b in table.bytes], dtype=np.int64),
            "n_bytes": np.array([len(b) for b in table.bytes], dtype=np.int64),
            "decode_error": errors,
        }
    )
    method_info = {
        "context": "marker" if ctx else "bare",
        "marker": ctx.marker if ctx else None,
        "marker_ids": list(ctx.ids) if ctx else [],
        "description": (
            "decode(marker_ids + [id]) minus decode(marker_ids) gives the token's text; "
            "encode(marker + text, add_special_tokens=False) minus the marker's ids must be [id]; "
            "when the marker merges with the text, a second marker is tried, then the text alone"
        ),
        "second_marker": ctxs[1].marker if len(ctxs) > 1 else None,
        "tokens_by_method": {m: how.count(m) for m in sorted(set(how))},
    }
    return frame, {"method": method_info, "_ctxs": ctxs, "_tok": tok}
