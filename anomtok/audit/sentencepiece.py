"""A SentencePiece ``.model`` read without ``sentencepiece`` or ``protobuf`` (a ~40-line protobuf
reader) and converted into a ``tokenizers`` pipeline: a Unigram or a byte-fallback BPE (merges
ranked by piece score), the model's precompiled normaliser and a ``Metaspace`` pre-tokenizer. This
reproduces SentencePiece on ordinary text; it is the same conversion transformers applies."""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import LoadError
from ..tokens import TokenTable

__all__ = ["read_sentencepiece_model", "tokenizer_from_sentencepiece"]


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    out = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        out |= (b & 0x7F) << shift
        if not b & 0x80:
            return out, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(buf: bytes) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) of a protobuf message; LEN values as bytes."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        num, wt = key >> 3, key & 7
        if wt == 0:
            val, pos = _varint(buf, pos)
        elif wt == 1:
            val, pos = buf[pos : pos + 8], pos + 8
        elif wt == 2:
            n, pos = _varint(buf, pos)
            if pos + n > len(buf):
                raise ValueError("truncated field")
            val, pos = buf[pos : pos + n], pos + n
        elif wt == 5:
            if pos + 4 > len(buf):
                raise ValueError("truncated field")
            val, pos = struct.unpack_from("<f", buf, pos)[0], pos + 4
        else:
            raise ValueError(f"unsupported wire type {wt}")
        yield num, wt, val


def read_sentencepiece_model(path: str | os.PathLike) -> dict[str, Any]:
    """The parts of a SentencePiece ``ModelProto`` a tokenizer needs: ``pieces`` [(piece, score,
    type)], ``model_type`` (1 unigram, 2 bpe, 3 word, 4 char), ``precompiled_charsmap``,
    ``add_dummy_prefix``, ``remove_extra_whitespaces``. Raises LoadError on anything else."""
    p = Path(path)
    try:
        buf = p.read_bytes()
    except OSError as exc:
        raise LoadError(f"{p}: cannot read ({exc.strerror or exc})") from None
    out: dict[str, Any] = {
        "pieces": [],
        "model_type": 1,
        "precompiled_charsmap": b"",
        "add_dummy_prefix": True,
        "remove_extra_whitespaces": True,
    }
    try:
        for num, wt, val in _fields(buf):
            if num == 1 and wt == 2:
                piece, score, ptype = None, 0.0, 1
                for n2, w2, v2 in _fields(val):
                    if n2 == 1 and w2 == 2:
                        piece = v2.decode("utf-8")
                    elif n2 == 2 and w2 == 5:
                        score = float(v2)
                    elif n2 == 3 and w2 == 0:
                        ptype = int(v2)
                if piece is None:
                    raise ValueError("a piece without text")
                out["pieces"].append((piece, score, ptype))
            elif num == 2 and wt == 2:
                for n2, w2, v2 in _fields(val):
                    if n2 == 3 and w2 == 0:
                        out["model_type"] = int(v2)
            elif num == 3 and wt == 2:
                for n2, w2, v2 in _fields(val):
                    if n2 == 2 and w2 == 2:
                        out["precompiled_charsmap"] = bytes(v2)
                    elif n2 == 3 and w2 == 0:
                        out["add_dummy_prefix"] = bool(v2)
                    elif n2 == 4 and w2 == 0:
                        out["remove_extra_whitespaces"] = bool(v2)
    except (ValueError, UnicodeDecodeError, struct.error) as exc:
        raise LoadError(f"{p}: not a SentencePiece model ({exc})") from None
    if not out["pieces"]:
        raise LoadError(f"{p}: not a SentencePiece model, or an empty vocabulary (no pieces)")
    if out["model_type"] not in (1, 2):
        raise LoadError(
            f"{p}: SentencePiece model type {out['model_type']} (word/char) is not supported; only unigram and BPE"
        )
    return out


def _bpe_merges(vocab: dict[str, int], scores: dict[str, float]) -> list[tuple[str, str]]:
    """Merges implied by a SentencePiece BPE vocabulary: every split of a piece into two pieces,
    best piece score first (as transformers' converter does)."""
    merges = []
    for piece, score in scores.items():
        local = [(piece[:k], piece[k:]) for k in range(1, len(piece)) if piece[:k] in vocab and piece[k:] in vocab]
        local.sort(key=lambda lr: (vocab[lr[0]], vocab[lr[1]]))
        merges.extend((score, len(l), len(r), l, r) for l, r in local)
    merges.sort(key=lambda m: (-m[0], m[1], m[2]))
    return [(m[3], m[4]) for m in merges]


def tokenizer_from_sentencepiece(path: str | os.PathLike) -> tuple[Any, TokenTable, str]:
    """(``tokenizers.Tokenizer``, its ``TokenTable``, how it was built) for a SentencePiece
    ``.model`` file. Raises LoadError."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers

    m = read_sentencepiece_model(path)
    pieces = [p for p, _, _ in m["pieces"]]
    types = [t for _, _, t in m["pieces"]]
    byte_fallback = 6 in types
    unk_id = types.index(2) if 2 in types else None
    if m["model_type"] == 1:
        model = models.Unigram([(p, s) for p, s, _ in m["pieces"]], unk_id=unk_id, byte_fallback=byte_fallback)
    else:
        vocab = {p: i for i, p in enumerate(pieces)}
        scores = {p: s for p, s, t in m["pieces"] if t in (1, 4)}
        model = models.BPE(
            vocab=vocab,
            merges=_bpe_merges(vocab, scores),
            byte_fallback=byte_fallback,
            fuse_unk=True,
            unk_token=pieces[unk_id] if unk_id is not None else None,
        )
    tok = Tokenizer(model)
    steps = []
    if m["precompiled_charsmap"]:
        steps.append(normalizers.Precompiled(m["precompiled_charsmap"]))
    if m["remove_extra_whitespaces"]:
        steps.append(normalizers.Replace(Regex(" {2,}"), " "))
    if steps:
        tok.normalizer = normalizers.Sequence(steps)
    scheme = "always" if m["add_dummy_prefix"] else "never"
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme=scheme, split=True)
    steps = [decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()]
    tok.decoder = decoders.Sequence(steps + ([decoders.Strip(" ", 1, 0)] if m["add_dummy_prefix"] else []))
    control = [AddedToken(p, special=True, normalized=False) for p, t in zip(pieces, types) if t == 3]
    user = [AddedToken(p, special=False, normalized=False) for p, t in zip(pieces, types) if t == 4]
    if control:
        tok.add_special_tokens(control)
    if user:
        tok.add_tokens(user)
    table = TokenTable.from_pieces(pieces, scheme="sentencepiece", gguf_types=types, byte_fallback=byte_fallback)
    kind = {1: "unigram", 2: "bpe"}[m["model_type"]]
    method = f"SentencePiece {kind} model converted to a tokenizers pipeline (Precompiled + Metaspace)"
    return tok, table, method
