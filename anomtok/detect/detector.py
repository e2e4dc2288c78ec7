"""The glitch detector: tokenize text as the model does and report each glitch token in it.

``GlitchDetector`` (built once from a tokenizer and a glitch list) scans one text (``scan``,
``analyze``) or a batch (``scan_many``, ``analyze_many``); a ``Hit`` is one occurrence with its
character offsets, a ``DocScan`` the token count and hits of one text. Streaming files through a
detector is ``anomtok.detect.run``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import InputError
from ..text import display
from .glitchlist import NOT_FROM_TEXT, GlitchList

__all__ = ["Hit", "DocScan", "GlitchDetector"]


# ---------------------------------------------------------------------------------- detector
@dataclass(frozen=True, slots=True)
class Hit:
    """One occurrence of a glitch token: ``text[start:end]`` is what the token covers."""

    token_id: int
    start: int
    end: int
    text: str
    token: str  # printable form of the token's bytes
    index: int  # position of the token in the encoding
    score: float | None = None
    rank: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class DocScan:
    """What scanning one text found: how many tokens it has and the glitch hits among them."""

    tokens: int
    hits: list[Hit]

    @property
    def rate(self) -> float:
        return len(self.hits) / self.tokens if self.tokens else 0.0


class GlitchDetector:
    """Finds glitch tokens in text. Build once, scan many times.

    ``tokenizer``: anything ``anomtok.audit.source.load_tokenizer`` takes (a packaged alias,
    a GGUF file, a model folder, a ``tokenizer.json``, a hub id, a ``tokenizers.Tokenizer`` or a
    ``(Tokenizer, TokenTable)`` pair). ``glitch``: a ``GlitchList`` or token ids. Ids past the
    vocabulary, or whose bytes in the list differ from this tokenizer's (a list made for another
    model), raise ``InputError``. The tokenizer's truncation and padding are turned off (on a copy).
    """

    def __init__(self, tokenizer: Any, glitch: GlitchList | Iterable[int], *, add_special_tokens: bool = False) -> None:
        from ..audit.source import load_tokenizer
        from ..tokenizer_copy import unpadded

        loaded = load_tokenizer(tokenizer)
        self.tokenizer = unpadded(loaded.tokenizer)
        self.table = loaded.table
        self.source = loaded.source
        self.add_special_tokens = add_special_tokens
        if not isinstance(glitch, GlitchList):
            glitch = GlitchList(ids=tuple(dict.fromkeys(int(i) for i in glitch)))
        if not glitch.ids:
            raise InputError("the glitch list is empty")
        self.glitch = glitch
        _check_against(glitch, self.table)
        self.ids = frozenset(glitch.ids)
        self._info = {i: (display(self.table.bytes[i]), glitch.scores.get(i), glitch.ranks.get(i)) for i in glitch.ids}

    def __repr__(self) -> str:
        return f"GlitchDetector({len(self.ids)} glitch tokens from {self.glitch.source}, tokenizer {self.source})"

    def token(self, token_id: int) -> str:
        """Printable form of a glitch token."""
        return self._info[token_id][0]

    # ---------------------------------------------------------------- scanning
    def scan(self, text: str) -> list[Hit]:
        """Every glitch token in ``text``, in order."""
        if not isinstance(text, str):
            _check_text(text)
        enc = self.tokenizer.encode(text, add_special_tokens=self.add_special_tokens)
        if self.ids.isdisjoint(enc.ids):  # the common case: one pass in C, no offsets built
            return []
        return self._result(text, enc).hits

    def analyze(self, text: str) -> DocScan:
        """Token count and hits of one text."""
        _check_text(text)
        return self._result(text, self.tokenizer.encode(text, add_special_tokens=self.add_special_tokens))

    def scan_many(self, texts: Sequence[str]) -> list[list[Hit]]:
        """``[scan(t) for t in texts]``, tokenized as one batch (parallel, faster)."""
        return [r.hits for r in self.analyze_many(texts)]

    def analyze_many(self, texts: Sequence[str]) -> list[DocScan]:
        texts = list(texts)
        for t in texts:
            _check_text(t)
        encodings = self.tokenizer.encode_batch(texts, add_special_tokens=self.add_special_tokens)
        return [self._result(t, e) for t, e in zip(texts, encodings)]

    def _result(self, text: str, enc: Any) -> DocScan:
        ids = enc.ids
        found = self.ids
        if found.isdisjoint(ids):  # the common case: one pass in C, no offsets built
            return DocScan(len(ids), [])
        offsets = enc.offsets
        hits = []
        for i, t in enumerate(ids):
            if t in found:
                s, e = offsets[i]
                tok, score, rank = self._info[t]
                hits.append(Hit(t, s, e, text[s:e], tok, i, score, rank))
        return DocScan(len(ids), hits)


def _check_text(text: Any) -> None:
    if not isinstance(text, str):
        raise InputError(f"text must be a str, not {type(text).__name__}")


def _check_against(glitch: GlitchList, table: Any) -> None:
    n = table.n_vocab
    past = [i for i in glitch.ids if not 0 <= i < n]
    if past:
        raise InputError(
            f"{glitch.source}: token id {past[0]} is not in this tokenizer's vocabulary (ids 0-{n - 1})"
            f"{f' (and {len(past) - 1} more)' if len(past) > 1 else ''}; was the list made for another model?"
        )
    differ = [i for i, b in glitch.bytes.items() if b != table.bytes[i] and table.kinds[i] not in NOT_FROM_TEXT]
    if differ:
        i = differ[0]
        raise InputError(
            f"{glitch.source}: does not match this tokenizer: {len(differ)} of {len(glitch.bytes)} tokens "
            f"differ (id {i} is ⟨{display(glitch.bytes[i])}⟩ in the list, ⟨{display(table.bytes[i])}⟩ "
            "here); was it made for another model?"
        )
