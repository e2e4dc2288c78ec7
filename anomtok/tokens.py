"""The token table: for every id, its exact bytes, a printable form, its kind and its script.

One table is built from whichever description of the vocabulary a source has: a Hugging Face
``tokenizer.json`` (BPE, WordPiece, Unigram; byte-level or SentencePiece-style) or the
``tokenizer.ggml.*`` metadata of a GGUF file. Rows of the embedding matrix past the tokenizer's
vocabulary are appended as ``padding`` rows, never dropped.

Kinds:
    normal   an ordinary vocabulary piece
    byte     a byte-fallback piece ``<0xNN>`` or a single-byte piece of a byte-level BPE
    special  a control / special token (``<bos>``, ``[CLS]``, ``<|im_start|>``)
    unused   a reserved placeholder (``<unused12>``, ``[unused3]``, ``<|reserved_special_token_5|>``,
             or a GGUF token of type UNUSED): known never to occur in training data
    added    a user-added, non-special token
    unknown  the tokenizer's unknown token
    padding  an embedding row with no token (past the tokenizer's vocabulary)
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import LoadError
from .text import byte_level_decoder, display, is_partial_utf8, token_script

__all__ = ["TokenTable", "KINDS", "INVALID_UTF8_BYTES", "vocabulary_sha256"]

KINDS = ("normal", "byte", "special", "unused", "added", "unknown", "padding")

# Byte values that never occur anywhere in valid UTF-8 (RFC 3629): a token made only of one of
# these can never be produced from real text.
INVALID_UTF8_BYTES = frozenset([0xC0, 0xC1, *range(0xF5, 0x100)])

# The naming convention tokenizers use for reserved placeholders. A convention, not a list.
_UNUSED_RE = re.compile(r"^(<\|?|\[)\s*(unused|reserved)[\w\-]*?\d*\s*(\|?>|\])$", re.IGNORECASE)
_BYTE_PIECE_RE = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")

# Kinds whose surface string is a name, not text: they get script "none".
_NOT_TEXT = frozenset(["special", "unused", "unknown", "padding"])

# GGUF token types (llama.cpp's llama_token_type).
_GGUF_NORMAL, _GGUF_UNKNOWN, _GGUF_CONTROL, _GGUF_USER, _GGUF_UNUSED, _GGUF_BYTE = 1, 2, 3, 4, 5, 6


class TokenTable:
    """Per-token facts, one entry per embedding row (``len(table) == rows``).

    ``n_vocab`` counts the rows that are real tokenizer entries; rows ``n_vocab..`` are padding.
    ``displays``, ``scripts`` and ``partial`` are derived from the bytes on first use (cached),
    so loading a 262k-token vocabulary costs only the bytes and kinds.
    """

    def __init__(
        self,
        pieces: list[str],
        bytes: list[bytes],
        kinds: list[str],
        n_vocab: int,
        scheme: str,
        displays: list[str] | None = None,
        scripts: list[str] | None = None,
        partial: np.ndarray | None = None,
    ) -> None:
        if not (len(pieces) == len(bytes) == len(kinds)):
            raise ValueError("pieces, bytes and kinds must have one entry per token")
        self.pieces = pieces
        self.bytes = bytes
        self.kinds = kinds
        self.n_vocab = n_vocab
        self.scheme = scheme
        self._displays = displays
        self._scripts = scripts
        self._partial = partial

    @property
    def displays(self) -> list[str]:
        """Printable form of every token (see ``anomtok.text.display``)."""
        if self._displays is None:
            self._displays = [display(b) for b in self.bytes]
        return self._displays

    @property
    def scripts(self) -> list[str]:
        """Unicode script of every token; ``none`` for special, unused, unknown and padding rows."""
        if self._scripts is None:
            self._scripts = [
                "none" if k in _NOT_TEXT else token_script(b.decode("utf-8", errors="ignore"))
                for b, k in zip(self.bytes, self.kinds)
            ]
        return self._scripts

    @property
    def partial(self) -> np.ndarray:
        """``(V,)`` bool: the token's bytes are not valid UTF-8 on their own."""
        if self._partial is None:
            self._partial = np.fromiter((is_partial_utf8(b) for b in self.bytes), bool, len(self.bytes))
        return self._partial

    # One row's ``displays``/``scripts``/``partial`` entry, without deriving every row's (a lookup
    # of k tokens in a 262k vocabulary): the cached list when there is one, else the same function.
    def display_of(self, i: int) -> str:
        return self._displays[i] if self._displays is not None else display(self.bytes[i])

    def script_of(self, i: int) -> str:
        if self._scripts is not None:
            return self._scripts[i]
        return "none" if self.kinds[i] in _NOT_TEXT else token_script(self.bytes[i].decode("utf-8", errors="ignore"))

    def partial_of(self, i: int) -> bool:
        return bool(self._partial[i]) if self._partial is not None else is_partial_utf8(self.bytes[i])

    def __len__(self) -> int:
        return len(self.pieces)

    def __repr__(self) -> str:
        return f"TokenTable({len(self)} rows, {self.n_vocab} tokens, {self.scheme}, {self.kind_counts()})"

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_pieces(
        cls,
        pieces: Sequence[str],
        *,
        scheme: str,
        special: Sequence[bool] | None = None,
        gguf_types: Sequence[int] | None = None,
        unk_piece: str | None = None,
        added: Sequence[bool] | None = None,
        wordpiece_prefix: str = "##",
        byte_fallback: bool = True,
    ) -> TokenTable:
        """Build a table from raw vocabulary pieces (index = token id) and the encoding scheme."""
        pieces = list(pieces)
        n = len(pieces)
        if n == 0:
            raise LoadError("the tokenizer has an empty vocabulary")
        if gguf_types is not None:
            names = np.array(["normal"] * 8, dtype=object)
            names[[_GGUF_UNKNOWN, _GGUF_CONTROL, _GGUF_USER, _GGUF_UNUSED, _GGUF_BYTE]] = [
                "unknown",
                "special",
                "added",
                "unused",
                "byte",
            ]
            t = np.asarray(gguf_types, dtype=np.int64)
            kinds = names[np.where((t >= 0) & (t < 8), t, 1)].tolist()
        else:
            kinds = ["normal"] * n
            for i in range(n):
                if special is not None and special[i]:
                    kinds[i] = "special"
                elif added is not None and added[i]:
                    kinds[i] = "added"
        if unk_piece is not None:
            for i, piece in enumerate(pieces):
                if piece == unk_piece and kinds[i] in ("normal", "special"):
                    kinds[i] = "unknown"
        out_bytes = _all_piece_bytes(pieces, kinds, scheme, wordpiece_prefix)
        for i, piece in enumerate(pieces):
            if not piece.startswith(("<", "[")):
                continue
            if kinds[i] in ("special", "added", "normal") and _UNUSED_RE.match(piece):
                kinds[i] = "unused"
            elif kinds[i] in ("normal", "byte") and (byte_fallback or kinds[i] == "byte"):
                m = _BYTE_PIECE_RE.match(piece)
                if m and scheme != "byte-level":
                    out_bytes[i] = bytes([int(m.group(1), 16)])
                    kinds[i] = "byte"
        if scheme == "byte-level":
            for i, data in enumerate(out_bytes):
                if len(data) == 1 and kinds[i] == "normal":
                    kinds[i] = "byte"
        return cls(pieces=pieces, bytes=out_bytes, kinds=kinds, n_vocab=n, scheme=scheme)

    @classmethod
    def from_tokenizer_json(cls, source: str | Path | dict[str, Any]) -> TokenTable:
        """Build from a Hugging Face ``tokenizer.json`` (path or parsed dict)."""
        if isinstance(source, dict):
            spec = source
        else:
            path = Path(source)
            try:
                spec = json.loads(path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                raise LoadError(f"{path}: no such tokenizer file") from None
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise LoadError(f"{path}: not a readable tokenizer.json ({exc.__class__.__name__}: {exc})") from None
        model = spec.get("model") if isinstance(spec, dict) else None
        if not isinstance(model, dict) or "vocab" not in model:
            raise LoadError("tokenizer.json has no model.vocab: not a Hugging Face tokenizers file")
        vocab = model["vocab"]
        mtype = model.get("type") or ("Unigram" if isinstance(vocab, list) else "BPE")
        if isinstance(vocab, list):  # Unigram: [[piece, score], ...]
            id_to_piece = {i: entry[0] for i, entry in enumerate(vocab)}
        else:
            id_to_piece = {int(i): p for p, i in vocab.items()}
        added_special: dict[int, bool] = {}
        for tok in spec.get("added_tokens") or []:
            id_to_piece[int(tok["id"])] = tok["content"]
            added_special[int(tok["id"])] = bool(tok.get("special", False))
        if not id_to_piece:
            raise LoadError("the tokenizer has an empty vocabulary")
        n = max(id_to_piece) + 1
        pieces = [id_to_piece.get(i, "") for i in range(n)]
        holes = [i for i in range(n) if i not in id_to_piece]
        scheme = _scheme_of(spec, mtype)
        special = [added_special.get(i, False) for i in range(n)]
        added = [i in added_special and not added_special[i] for i in range(n)]
        unk = model.get("unk_token")
        if mtype == "Unigram" and isinstance(model.get("unk_id"), int):
            unk = pieces[model["unk_id"]]
        table = cls.from_pieces(
            pieces,
            scheme=scheme,
            special=special,
            added=added,
            unk_piece=unk,
            wordpiece_prefix=model.get("continuing_subword_prefix") or "##",
            byte_fallback=bool(model.get("byte_fallback", mtype == "Unigram")) or scheme == "sentencepiece",
        )
        for i in holes:  # ids missing from the vocabulary: rows with no token
            table.kinds[i] = "padding"
        return table

    @classmethod
    def from_gguf_metadata(cls, md: dict[str, Any]) -> TokenTable:
        """Build from the ``tokenizer.ggml.*`` keys of a GGUF file."""
        tokens = md.get("tokenizer.ggml.tokens")
        if not tokens:
            raise LoadError("the GGUF file has no tokenizer.ggml.tokens: no vocabulary to rank")
        model = str(md.get("tokenizer.ggml.model", "llama"))
        scheme = {
            "gpt2": "byte-level",
            "bert": "wordpiece-gguf",
            "llama": "sentencepiece",
            "t5": "sentencepiece",
            "gemma": "sentencepiece",
        }.get(model, "plain")
        types = md.get("tokenizer.ggml.token_type")
        if types is not None and len(types) != len(tokens):
            types = None
        return cls.from_pieces(list(tokens), scheme=scheme, gguf_types=types)

    def with_rows(self, rows: int) -> TokenTable:
        """Return a table with exactly ``rows`` entries: extra embedding rows become ``padding``.

        Raises LoadError when the tokenizer has more tokens than the matrix has rows.
        """
        n = len(self)
        if rows < n:
            raise LoadError(
                f"vocabulary/embedding size mismatch: the tokenizer has {n} tokens but the embedding has only {rows} rows"
            )
        if rows == n:
            return self
        extra = rows - n
        return TokenTable(
            pieces=self.pieces + [""] * extra,
            bytes=self.bytes + [b""] * extra,
            kinds=self.kinds + ["padding"] * extra,
            n_vocab=self.n_vocab,
            scheme=self.scheme,
            displays=self.displays + [f"<row {i}>" for i in range(n, rows)],
            scripts=self.scripts + ["none"] * extra,
            partial=np.concatenate([self.partial, np.zeros(extra, bool)]),
        )

    # ------------------------------------------------------------------ queries
    def reference_mask(self) -> np.ndarray:
        """Tokens known never to occur in training: unused/reserved tokens, single bytes that are
        invalid anywhere in UTF-8, and padding rows. Used as the reference set of the
        under-trained indicator; derived from the table alone, never from a per-model list."""
        out = np.zeros(len(self), bool)
        for i, (k, b) in enumerate(zip(self.kinds, self.bytes)):
            if k in ("unused", "padding") or (k == "byte" and len(b) == 1 and b[0] in INVALID_UTF8_BYTES):
                out[i] = True
        return out

    def vocabulary_sha256(self) -> str:
        """``vocabulary_sha256`` of this table's rows (see there)."""
        return vocabulary_sha256(range(len(self)), (b.hex() for b in self.bytes), self.kinds)

    def kind_counts(self) -> dict[str, int]:
        counts = {k: 0 for k in KINDS}
        for k in self.kinds:
            counts[k] += 1
        return {k: v for k, v in counts.items() if v}


def vocabulary_sha256(ids: Iterable[int], bytes_hex: Iterable[str | None], kinds: Iterable[str]) -> str:
    """sha256 over ``id:bytes_hex`` of the real (non-padding) tokens in id order: two rankings
    with the same hash have the same tokenizer vocabulary. Recorded in a ranking's meta.json,
    so ``compare`` can tell from committed files alone."""
    h = hashlib.sha256()
    for i, b, k in sorted(zip(ids, bytes_hex, kinds), key=lambda r: r[0]):
        if k != "padding":
            h.update(f"{i}:{b or ''}\n".encode())
    return h.hexdigest()


def _scheme_of(spec: dict[str, Any], mtype: str) -> str:
    blob = json.dumps([spec.get("pre_tokenizer"), spec.get("decoder")])
    if mtype == "WordPiece":
        return "wordpiece"
    if '"ByteLevel"' in blob:
        return "byte-level"
    if "\u2581" in blob or "\\u2581" in blob or '"Metaspace"' in blob or mtype == "Unigram":
        return "sentencepiece"
    return "plain"


def _all_piece_bytes(pieces: list[str], kinds: list[str], scheme: str, wp_prefix: str) -> list[bytes]:
    """Exact bytes each piece stands for (byte-fallback ``<0xNN>`` pieces are fixed up by the caller).

    Names of special/unused/unknown tokens are kept as their UTF-8 text."""
    enc = "utf-8"
    if scheme == "byte-level":
        table = {ord(c): chr(b) for c, b in byte_level_decoder().items()}
        out = []
        for piece, kind in zip(pieces, kinds):
            if kind in ("special", "unknown", "added"):  # literal text, not byte-level characters
                out.append(piece.encode(enc, "surrogateescape"))
                continue
            try:  # every char is a byte-level char: translate to latin-1 code points, encode
                out.append(piece.translate(table).encode("latin-1"))
            except UnicodeEncodeError:
                out.append(piece.encode(enc, "surrogateescape"))
        return out
    if scheme in ("sentencepiece", "wordpiece-gguf"):
        return [
            p.encode(enc, "surrogateescape")
            if k in ("special", "unknown", "unused")
            else p.replace("\u2581", " ").encode(enc, "surrogateescape")
            for p, k in zip(pieces, kinds)
        ]
    if scheme == "wordpiece":
        n = len(wp_prefix)
        return [
            p[n:].encode(enc, "surrogateescape")
            if k == "normal" and p.startswith(wp_prefix) and len(p) > n
            else p.encode(enc, "surrogateescape")
            for p, k in zip(pieces, kinds)
        ]
    return [p.encode(enc, "surrogateescape") for p in pieces]
