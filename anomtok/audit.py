"""Tokenizer audit: which tokens can the tokenizer never produce, which are broken byte pieces,
which does its normaliser change, and how it copes with Japanese.

>>> result = audit("xlmr-tokenizer", out_dir="out/xlmr")      # doctest: +SKIP
>>> result.summary["counts"]["round_trip"]                    # doctest: +SKIP
{'reachable': 246113, 'unreachable-single': ..., ...}

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

import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import polars as pl

from . import japanese as ja
from . import japanese_audit as ja_audit
from ._version import __version__
from .errors import InputError
from .text import display, spreadsheet_safe
from .tokenizer_source import LoadedTokenizer, load_tokenizer

__all__ = ["AuditResult", "audit", "audit_tokenizer", "render_markdown", "CLASSES", "FORMAT"]

log = logging.getLogger(__name__)

FORMAT = "anomtok-audit/1"
CLASSES = ("reachable", "unreachable-single", "unreachable-multi", "unreachable-empty", "undecodable",
           "special", "padding", "error")
_MARKERS = ("«", "¦", "¤", "§", "¶", "»")
_NOT_AUDITED = {"special": "special", "unused": "special", "unknown": "special", "padding": "padding"}
_BATCH = 16384
TOP_RANK = 1000


@dataclass
class AuditResult:
    """``frame``: one row per token id (``audit.csv``); ``summary``: the ``audit.json`` dict;
    ``table``: the token table audited (exact bytes of every id); ``paths``: the files written."""

    frame: pl.DataFrame
    summary: dict[str, Any]
    table: Any = None
    paths: dict[str, Path] = field(default_factory=dict)

    def markdown(self) -> str:
        return render_markdown(self.summary)


# ---------------------------------------------------------------------------------- context
@dataclass(frozen=True)
class _Context:
    marker: str
    ids: tuple[int, ...]
    decoded: str


def _choose_contexts(tok: Any, table: Any, want: int = 2) -> list[_Context]:
    """Up to ``want`` usable markers, best first (see the module docstring)."""
    out: list[_Context] = []
    fixed = (_wordpiece_markers(tok, table) if table.scheme == "wordpiece" else []) + list(_MARKERS)
    for batch in (fixed, None):
        for m in batch if batch is not None else _vocab_markers(table):  # a tiny vocabulary may lack the usual ones
            ctx = _try_marker(tok, table, m)
            if ctx is not None:
                out.append(ctx)
                if len(out) >= want:
                    return out
    return out


def _try_marker(tok: Any, table: Any, m: str) -> _Context | None:
    try:
        ids = tuple(tok.encode(m, add_special_tokens=False).ids)
        dec = tok.decode(list(ids), skip_special_tokens=False)
        probes = [tok.encode(m + p, add_special_tokens=False).ids for p in ("a", " a")]
    except Exception:  # noqa: BLE001 - a custom component may raise; try the next marker
        return None
    if not ids or m not in dec or any(table.kinds[i] in ("unknown", "special") for i in ids if i < len(table)):
        return None
    if all(tuple(p[:len(ids)]) == ids and len(p) > len(ids) for p in probes):
        return _Context(m, ids, dec)
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
    starts = {p[0] for p, k in zip(table.pieces, table.kinds) if k == "normal" and len(p) > 1 and not p.startswith("##")}
    norm = tok.normalizer
    out = []
    for p, k in zip(table.pieces, table.kinds):
        if k == "normal" and len(p) == 1 and p.isalpha() and p not in starts and ja.char_class(p) == "other":
            if norm is None or norm.normalize_str(p) == p:
                out.append(p)
                if len(out) >= limit:
                    break
    return out


def _spec(component: Any) -> Any:
    """The JSON spec of a normaliser / pre-tokenizer / decoder (None when it has none, or is custom)."""
    if component is None:
        return None
    try:
        return json.loads(component.__getstate__())
    except Exception:  # noqa: BLE001 - custom (Python) components cannot be serialised
        return None


def _content_normalizer(tok: Any) -> Any:
    """The tokenizer's normaliser without its whitespace plumbing (``Replace(" ", "▁")``,
    ``Prepend("▁")``), so that only changes of content are flagged."""
    if tok.normalizer is None:
        return None
    spec = _spec(tok.normalizer)
    if spec is None:
        return tok.normalizer

    def plumbing(n: dict) -> bool:
        if n.get("type") == "Prepend":
            return True
        return n.get("type") == "Replace" and n.get("content") == "\u2581"

    if spec.get("type") == "Sequence":
        steps = [n for n in spec["normalizers"] if not plumbing(n)]
        if not steps:
            return None
        spec = {"type": "Sequence", "normalizers": steps}
    elif plumbing(spec):
        return None
    from tokenizers import Tokenizer

    shell = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": [], "normalizer": spec,
             "pre_tokenizer": None, "post_processor": None, "decoder": None,
             "model": {"type": "WordLevel", "vocab": {"[UNK]": 0}, "unk_token": "[UNK]"}}
    return Tokenizer.from_str(json.dumps(shell)).normalizer


# ---------------------------------------------------------------------------------- encode/decode
def _unpadded(tok: Any) -> Any:
    """The tokenizer without padding or truncation (a copy when it has either: a ``tokenizer.json``
    may pad every encoding to 128 ids or cut the sample texts at 512)."""
    from .tokenizer_copy import unpadded

    return unpadded(tok)


def _encode_many(tok: Any, texts: list[str]) -> list[list[int]]:
    fn = getattr(tok, "encode_batch_fast", None) or tok.encode_batch
    out: list[list[int]] = []
    for s in range(0, len(texts), _BATCH):
        out.extend(e.ids for e in fn(texts[s:s + _BATCH], add_special_tokens=False))
    return out


def encode_in_context(tok: Any, ctxs: list[_Context], texts: list[str]) -> tuple[list[list[int]], list[str]]:
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


def _decode_all(tok: Any, ctx: _Context | None, ids: list[int]) -> tuple[list[str | None], list[str]]:
    prefix = list(ctx.ids) if ctx else []
    errors = [""] * len(ids)
    texts: list[str | None] = []
    for s in range(0, len(ids), _BATCH):
        chunk = ids[s:s + _BATCH]
        try:
            texts.extend(tok.decode_batch([prefix + [i] for i in chunk], skip_special_tokens=False))
        except Exception:  # noqa: BLE001 - find the ids that raise, one by one
            for j, i in enumerate(chunk):
                try:
                    texts.append(tok.decode(prefix + [i], skip_special_tokens=False))
                except Exception as exc:  # noqa: BLE001
                    texts.append(None)
                    errors[s + j] = f"{exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:200]
    if ctx is not None:
        d = ctx.decoded
        for j, t in enumerate(texts):
            if t is None:
                continue
            if t.startswith(d):
                texts[j] = t[len(d):]
            else:  # the decoder merged marker and token: decode the token alone
                try:
                    texts[j] = tok.decode([ids[j]], skip_special_tokens=False)
                except Exception as exc:  # noqa: BLE001
                    texts[j], errors[j] = None, f"{exc.__class__.__name__}: {exc}"[:200]
    return texts, errors


def _split_apart(tok: Any, ctx: _Context | None, text: str) -> bool:
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
def audit_tokenizer(loaded: LoadedTokenizer, progress: Callable[[str], None] | None = None) -> tuple[pl.DataFrame, dict]:
    """Classify every token id of ``loaded``; return (frame, summary without ranking/Japanese)."""
    tok, table = _unpadded(loaded.tokenizer), loaded.table
    n = len(table)
    if n == 0:
        raise InputError("the tokenizer has an empty vocabulary")
    ctxs = _choose_contexts(tok, table)
    ctx = ctxs[0] if ctxs else None
    kinds = table.kinds
    partial = table.partial
    round_trip = [""] * n
    known = np.array([tok.id_to_token(i) is not None for i in range(n)])
    texts, errors = _decode_all(tok, ctx, list(range(n)))
    todo = []
    for i in range(n):
        k = kinds[i]
        if k in _NOT_AUDITED:
            round_trip[i] = _NOT_AUDITED[k]
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
        round_trip[i] = ("reachable" if got == [i] else "unreachable-single" if len(got) == 1
                         else "unreachable-empty" if not got else "unreachable-multi")
    # normalisation effects and causes
    norm = _content_normalizer(tok)
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
    ja_cls = [ja.ja_class(b.decode("utf-8", "ignore")) if kinds[i] not in _NOT_AUDITED else ""
              for i, b in enumerate(table.bytes)]
    frame = pl.DataFrame({
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
    })
    method_info = {
        "context": "marker" if ctx else "bare",
        "marker": ctx.marker if ctx else None,
        "marker_ids": list(ctx.ids) if ctx else [],
        "description": ("decode(marker_ids + [id]) minus decode(marker_ids) gives the token's text; "
                        "encode(marker + text, add_special_tokens=False) minus the marker's ids must be [id]; "
                        "when the marker merges with the text, a second marker is tried, then the text alone"),
        "second_marker": ctxs[1].marker if len(ctxs) > 1 else None,
        "tokens_by_method": {m: how.count(m) for m in sorted(set(how))},
    }
    return frame, {"method": method_info, "_ctxs": ctxs, "_tok": tok}


def _count(frame: pl.DataFrame, col: str) -> dict[str, int]:
    vc = frame.group_by(col).len().sort(["len", col], descending=[True, False])
    return {str(k): int(v) for k, v in vc.iter_rows()}


def _rows(frame: pl.DataFrame, cols: list[str], k: int) -> list[dict]:
    return frame.select(cols).head(k).to_dicts()


def _summarize(frame: pl.DataFrame, loaded: LoadedTokenizer) -> dict:
    table = loaded.table
    crossed: dict[str, dict[str, int]] = {}
    for kind, rt, cnt in frame.group_by(["kind", "round_trip"]).len().sort(["kind", "round_trip"]).iter_rows():
        crossed.setdefault(kind, {})[rt] = int(cnt)
    audited = frame.filter(~pl.col("round_trip").is_in(["special", "padding"]))
    by_script = {}
    for script, rt, cnt in audited.group_by(["script", "round_trip"]).len().sort(["script", "round_trip"]).iter_rows():
        by_script.setdefault(script, {"tokens": 0})
        by_script[script]["tokens"] += int(cnt)
        by_script[script][rt] = int(cnt)
    by_script = dict(sorted(by_script.items(), key=lambda kv: -kv[1]["tokens"]))
    ex_cols = ["token_id", "token", "kind", "script", "cause", "reencoded_ids", "normalized"]
    examples = {c: _rows(frame.filter(pl.col("round_trip") == c), ex_cols, 25)
                for c in ("unreachable-single", "unreachable-multi", "unreachable-empty", "undecodable", "error")}
    for rows in examples.values():
        for r in rows:
            r["reencoded"] = " ".join(f"⟨{table.displays[int(x)]}⟩" for x in r.pop("reencoded_ids").split() if int(x) < len(table))
    errs = frame.filter(pl.col("decode_error") != "")
    longest = audited.filter(pl.col("round_trip") != "undecodable").sort(["n_chars", "token_id"], descending=[True, False])
    return {
        "n_tokens": len(frame),
        "counts": {
            "round_trip": {c: int((frame["round_trip"] == c).sum()) for c in CLASSES},
            "kind": _count(frame, "kind"),
            "kind_x_round_trip": crossed,
            "cause": {k: v for k, v in _count(audited, "cause").items() if k},
            "script": by_script,
            "normalized_changed": int(frame["normalized_changed"].sum()),
            "byte_fallback": int(frame["byte_fallback"].sum()),
            "partial_utf8": int(frame["partial_utf8"].sum()),
            "decode_errors": len(errs),
        },
        "examples": examples,
        "decode_errors": _rows(errs, ["token_id", "token", "decode_error"], 25),
        "normalized_examples": _rows(frame.filter(pl.col("normalized_changed")), ["token_id", "token", "normalized", "round_trip"], 25),
        "longest": _rows(longest, ["token_id", "token", "n_chars", "n_bytes", "round_trip", "script"], 20),
        "duplicates": _duplicates(table),
    }


def _duplicates(table: Any, k: int = 25) -> dict:
    """Ids whose surface is identical: same bytes (for WordPiece, same piece, since ``##ing`` and
    ``ing`` differ in where they may stand)."""
    groups: dict[Any, list[int]] = {}
    wp = table.scheme == "wordpiece"
    for i, (b, kind) in enumerate(zip(table.bytes, table.kinds)):
        if kind in _NOT_AUDITED or not b:
            continue
        groups.setdefault(table.pieces[i] if wp else b, []).append(i)
    dup = [ids for ids in groups.values() if len(ids) > 1]
    return {"groups": len(dup), "tokens": sum(len(d) for d in dup),
            "examples": [[{"token_id": i, "token": table.displays[i], "kind": table.kinds[i], "piece": display(
                table.pieces[i].encode("utf-8", "surrogateescape"))} for i in ids] for ids in dup[:k]]}


# ---------------------------------------------------------------------------------- public API
def audit(source: Any, out_dir: str | os.PathLike | None = None, ranking: Any = None, *,
          rank_options: Any = None, samples: dict[str, str] | None = None,
          progress: Callable[[str], None] | None = None) -> AuditResult:
    """Audit every token of a tokenizer; with ``out_dir`` write ``audit.csv``, ``audit.json``,
    ``audit.md`` there (atomically).

    ``source``: anything ``anomtok.load`` accepts, a tokenizer file (``tokenizer.json``, ``.model``,
    ``.gguf``), a ``tokenizers.Tokenizer`` or a ``(Tokenizer, TokenTable)`` pair.
    ``ranking``: a ``Ranking``, loaded embeddings or a model spec to rank (``nn="off"``) and line up
    with the audit; ``None`` ranks ``source`` itself when it holds embeddings; ``False`` never ranks.
    ``samples``: ``{"ja": text, "en": text}`` for fertility and the inventory (default: the packaged ``anomtok/data/sample_*.txt``).
    """
    if out_dir is not None:
        from .outputs import check_dir

        check_dir(out_dir)
    t0 = time.perf_counter()
    loaded = load_tokenizer(source)
    ranking = _check_ranked_vocab(loaded, ranking)  # a model of another vocabulary fails here, before the audit
    t_load = time.perf_counter() - t0
    if progress:
        progress("load")
    frame, extra = audit_tokenizer(loaded, progress)
    summary = {"format": FORMAT, "anomtok_version": __version__, "source": _provenance(loaded)}
    summary.update(_summarize(frame, loaded))
    summary["method"] = extra["method"]
    summary["tokenizer"] = _describe(loaded)
    t_rank = time.perf_counter()
    rank_col, summary["ranking"] = _ranking(loaded, ranking, rank_options, frame)
    t_rank = time.perf_counter() - t_rank
    frame = frame.with_columns(rank=rank_col)
    if progress and summary["ranking"]["status"] == "ok":
        progress("rank")
    tok, ctxs = extra["_tok"], extra["_ctxs"]
    summary["japanese"] = ja_audit.section(
        frame, loaded.table, lambda texts: encode_in_context(tok, ctxs, texts)[0],
        lambda text: tok.encode(text, add_special_tokens=False).ids, samples=samples, top_k=TOP_RANK)
    if progress:
        progress("japanese")
    summary["seconds"] = {"load": round(t_load, 2), "audit": round(time.perf_counter() - t0 - t_load - t_rank, 2),
                          "rank": round(t_rank, 2)}
    result = AuditResult(frame=frame, summary=summary, table=loaded.table)
    if out_dir is not None:
        result.paths = write_audit(result, out_dir)
    return result


def _provenance(loaded: LoadedTokenizer) -> dict:
    from .cache import file_sha256

    files = []
    for f in loaded.files:
        p = Path(f)
        files.append({"path": f, "size": p.stat().st_size if p.is_file() else None,
                      "sha256": file_sha256(p) if p.is_file() else None})
    return {"spec": loaded.source, "format": loaded.format, "files": files, "method": loaded.method,
            "has_embeddings": loaded.has_embeddings, "notes": list(loaded.notes)}


def _describe(loaded: LoadedTokenizer) -> dict:
    tok, table = loaded.tokenizer, loaded.table
    model = {"type": type(tok.model).__name__}
    for attr in ("byte_fallback", "unk_token", "continuing_subword_prefix", "unk_id"):
        if hasattr(tok.model, attr):
            model[attr] = getattr(tok.model, attr)
    parts = {k: _component(_spec(getattr(tok, k, None))) or _name(getattr(tok, k, None))
             for k in ("normalizer", "pre_tokenizer", "decoder")}
    return {"model": model, **parts, "scheme": table.scheme, "vocab_size": len(table), "kinds": table.kind_counts()}


def _name(component: Any) -> str | None:
    if component is None:
        return None
    try:
        return repr(component)
    except Exception:  # noqa: BLE001 - a custom component
        return "custom"


def _component(spec: Any) -> str | None:
    """A short name for a normaliser / pre-tokenizer / decoder spec: ``Sequence[NFKC, Replace]``."""
    if spec is None:
        return None
    kind = spec.get("type", "?")
    for key in ("normalizers", "pretokenizers", "decoders"):
        if key in spec:
            return f"{kind}[{', '.join(_component(s) or '' for s in spec[key])}]"
    if kind == "Metaspace":
        return f"Metaspace(prepend_scheme={spec.get('prepend_scheme')}, split={spec.get('split')})"
    if kind == "ByteLevel":
        return f"ByteLevel(add_prefix_space={spec.get('add_prefix_space')})"
    if kind == "BertNormalizer":
        return f"BertNormalizer(lowercase={spec.get('lowercase')}, strip_accents={spec.get('strip_accents')})"
    return kind


# ---------------------------------------------------------------------------------- ranking
def _check_ranked_vocab(loaded: LoadedTokenizer, ranking: Any) -> Any:
    """An explicit ranking model (a spec, loaded embeddings or a Ranking) checked against the
    tokenizer before any audit work: a spec is loaded (embedding and token table only, cheap) and
    returned loaded, so it is ranked without loading it twice. InputError when more than half the
    shared ids spell different bytes (the same rule ``_ranking`` applies to the ranked table)."""
    from .embeddings import ModelEmbeddings
    from .ranking import Ranking

    if ranking is None or ranking is False:
        return ranking
    if isinstance(ranking, Ranking):
        rf = ranking.frame.select("token_id", "bytes_hex").sort("token_id")
        theirs = dict(zip(rf["token_id"].to_list(), rf["bytes_hex"].to_list()))
    else:
        if not isinstance(ranking, ModelEmbeddings):
            from .loading import load

            ranking = load(ranking)
        theirs = {i: b.hex() for i, b in enumerate(ranking.tokens.bytes)}
    ours = [b.hex() for b in loaded.table.bytes]
    shared = [i for i in range(len(ours)) if i in theirs]
    mismatch = sum(ours[i] != theirs[i] for i in shared)
    if not shared or mismatch > len(shared) // 2:
        raise InputError(f"the ranked model's vocabulary is not this tokenizer's ({mismatch:,} of {len(shared):,} shared ids "
                         "spell different bytes): give the model that goes with the tokenizer")
    return ranking


def _ranking(loaded: LoadedTokenizer, ranking: Any, options: Any, frame: pl.DataFrame) -> tuple[pl.Series, dict]:
    n = len(frame)
    empty = pl.Series("rank", [None] * n, dtype=pl.Int64)
    if ranking is False:
        return empty, {"status": "off"}
    from .ranking import Ranking, RankOptions

    explicit = ranking is not None
    if ranking is None:
        if not loaded.has_embeddings:
            return empty, {"status": "none: the source has no embedding matrix (give --model)"}
        ranking = loaded.source
    if not isinstance(ranking, Ranking):
        from .api import rank as api_rank
        from .errors import AnomtokError

        try:
            ranking = api_rank(ranking, options=options or RankOptions(nn="off"))
        except AnomtokError as exc:
            if explicit:
                raise
            log.warning("no embedding ranking: %s", exc)
            return empty, {"status": f"failed: {exc}"}
    rf = ranking.frame.select("token_id", "rank", "bytes_hex").filter(pl.col("token_id") < n)
    joined = frame.select("token_id", "bytes_hex").join(rf, on="token_id", how="left", suffix="_ranked")
    mismatch = int(joined.filter(pl.col("bytes_hex_ranked").is_not_null() & (pl.col("bytes_hex") != pl.col("bytes_hex_ranked"))).height)
    overlap = int(joined["bytes_hex_ranked"].is_not_null().sum())
    if overlap == 0 or mismatch > overlap // 2:
        raise InputError(f"the ranked model's vocabulary is not this tokenizer's ({mismatch:,} of {overlap:,} shared ids "
                         "spell different bytes): give the model that goes with the tokenizer")
    if mismatch:
        log.warning("the ranked model's vocabulary differs from the tokenizer's on %d ids", mismatch)
    meta = ranking.meta if isinstance(getattr(ranking, "meta", None), dict) else {}
    return joined["rank"].cast(pl.Int64).alias("rank"), {
        "status": "ok", "source": str(meta.get("source", {}).get("source") if isinstance(meta.get("source"), dict) else meta.get("source", "")),
        "score": (meta.get("score") or {}).get("name") if isinstance(meta.get("score"), dict) else None,
        "rows": ranking.frame.height, "vocab_mismatch_ids": mismatch, "top_k": TOP_RANK}


# ---------------------------------------------------------------------------------- outputs
def write_audit(result: AuditResult, out_dir: str | os.PathLike) -> dict[str, Path]:
    """``audit.csv`` (spreadsheet-safe, exact bytes in ``bytes_hex``), ``audit.json``, ``audit.md``."""
    from .cache import atomic_write_text
    from .export import write_csv, write_json

    from .outputs import make_dir

    out = make_dir(out_dir)
    paths = {"csv": out / "audit.csv", "json": out / "audit.json", "md": out / "audit.md"}
    write_csv(result.frame, paths["csv"])
    write_json(result.summary, paths["json"])
    atomic_write_text(paths["md"], render_markdown(result.summary))
    return paths


# ---------------------------------------------------------------------------------- markdown
def _code(s: str) -> str:
    """A token as a Markdown code span inside a table cell: ``⟨…⟩`` shows its edges, pipes are
    escaped, the fence is longer than any backtick run inside."""
    s = f"⟨{s}⟩".replace("|", "\\|")
    fence = "`" * (max(map(len, re.findall(r"`+", s)), default=0) + 1)
    return f"{fence}{s}{fence}"


def render_markdown(summary: dict) -> str:
    """``audit.md`` from the ``audit.json`` dict alone (re-renderable without the tokenizer)."""
    src, tk, c = summary["source"], summary["tokenizer"], summary["counts"]
    n = summary["n_tokens"]
    m = summary["method"]
    lines = [f"# Tokenizer audit: {src['spec']}", "",
             f"{n:,} token ids; {tk['scheme']} {tk['model'].get('type', '')}; normalizer {tk['normalizer']}; "
             f"pre-tokenizer {tk['pre_tokenizer']}; decoder {tk['decoder']}.", "",
             f"Tokenizer: {src['method']}.", "",
             f"Round trip: {m['description']}. Marker: {_code(m['marker']) if m['marker'] else 'none'} "
             f"(ids {m['marker_ids']}), second marker {_code(m['second_marker']) if m.get('second_marker') else 'none'}; "
             f"tokens judged per method: {', '.join(f'{k} {v:,}' for k, v in m['tokens_by_method'].items())}.", "",
             "## Round-trip classes", "", "| class | tokens | share |", "|---|---:|---:|"]
    for k, v in c["round_trip"].items():
        lines.append(f"| {k} | {v:,} | {100 * v / n:.2f}% |")
    lines += ["", f"Causes of unreachability: {', '.join(f'{k}: {v:,}' for k, v in c['cause'].items()) or 'none'}. "
              f"Normaliser changes the text of {c['normalized_changed']:,} tokens; {c['byte_fallback']:,} byte-fallback "
              f"pieces; {c['partial_utf8']:,} tokens are partial UTF-8; {c['decode_errors']:,} decode errors.", "",
              "## By kind", "", "| kind | " + " | ".join(CLASSES) + " |", "|---|" + "---:|" * len(CLASSES)]
    for kind, row in c["kind_x_round_trip"].items():
        lines.append(f"| {kind} | " + " | ".join(f"{row.get(k, 0):,}" for k in CLASSES) + " |")
    lines += ["", "## By script (special and padding rows left out)", "",
              "| script | tokens | reachable | unreachable | undecodable |", "|---|---:|---:|---:|---:|"]
    for script, row in list(c["script"].items())[:25]:
        unr = sum(row.get(k, 0) for k in ("unreachable-single", "unreachable-multi", "unreachable-empty"))
        lines.append(f"| {script} | {row['tokens']:,} | {row.get('reachable', 0):,} | {unr:,} | {row.get('undecodable', 0):,} |")
    lines += ["", "## Longest tokens", "", "| id | token | chars | bytes | round trip |", "|---:|---|---:|---:|---|"]
    lines += [f"| {r['token_id']} | {_code(r['token'])} | {r['n_chars']} | {r['n_bytes']} | {r['round_trip']} |"
              for r in summary["longest"]]
    for cls, rows in summary["examples"].items():
        if not rows:
            continue
        lines += ["", f"## Examples: {cls}", "", "| id | token | kind | cause | encodes as |", "|---:|---|---|---|---|"]
        lines += [f"| {r['token_id']} | {_code(r['token'])} | {r['kind']} | {r['cause']} | {r['reencoded'].replace('|', chr(92) + '|')} |"
                  for r in rows[:15]]
    if summary["normalized_examples"]:
        lines += ["", "## Normalisation effects", "", "| id | token | normalized | round trip |", "|---:|---|---|---|"]
        lines += [f"| {r['token_id']} | {_code(r['token'])} | {_code(r['normalized'])} | {r['round_trip']} |"
                  for r in summary["normalized_examples"][:15]]
    d = summary["duplicates"]
    lines += ["", "## Duplicated surface forms", "", f"{d['groups']:,} surfaces are spelled by more than one token "
              f"({d['tokens']:,} tokens)."]
    if d["examples"]:
        lines += [""] + ["- " + ", ".join(f"{e['token_id']} {_code(e['piece'])} ({e['kind']})" for e in g) for g in d["examples"][:15]]
    lines += [""] + ja_audit.render_section(summary["japanese"], _code)
    r = summary["ranking"]
    lines += ["## Provenance", "", f"anomtok {summary['anomtok_version']}, format {summary['format']}; "
              f"ranking: {r['status']}" + (f" ({r['source']}, {r['rows']:,} rows, {r['vocab_mismatch_ids']} ids whose bytes differ)" if r["status"] == "ok" else "") + ".", ""]
    lines += [f"- `{f['path']}` ({f['size']:,} bytes, " + (f"sha256 {f['sha256']})" if f.get("sha256") else f"fingerprint {f.get('fingerprint')})") if f["size"] is not None else f"- `{f['path']}`" for f in src["files"]]
    t = summary["seconds"]
    lines += ["", f"Time: load {t['load']} s, audit {t['audit']} s, ranking {t['rank']} s.", ""]
    return "\n".join(lines)
