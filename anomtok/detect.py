"""Find a model's glitch tokens in real text: prompts, outputs, data sets.

Build a :class:`GlitchDetector` once from a tokenizer and a glitch list (``ranked.csv``,
``glitch.csv`` or a list of ids), then scan text. With a byte-level BPE whose vocabulary has the
merge ``Ġzz`` (space + "zz") as id 263, flagged as a glitch token:

>>> det = GlitchDetector(tokenizer, [263])                      # doctest: +SKIP
>>> det.scan("a zz b")                                          # doctest: +SKIP
[Hit(token_id=263, start=1, end=4, text=' zz', token=' zz', index=1, score=None, rank=None)]
>>> det.scan("zz")        # alone, "zz" has no leading space: another token, no hit   # doctest: +SKIP
[]

Offsets are Python string indices (Unicode code points) into the text given, as the tokenizer
reports them: a token that covers part of a character (two of the three UTF-8 bytes of a kanji,
a byte-fallback piece ``<0xE6>``) spans the whole character its bytes touch, and a token that
holds a leading space spans it. Text is encoded as the model would see it, without added BOS/EOS.

Streaming (``DetectRun``): plain text files line by line (each line with its line terminator,
the whole file is one document), JSONL with a text field (each record is one document), ``-``
for standard input, ``.gz`` read transparently. Lines that cannot be read (binary data, invalid
UTF-8, bad JSON, a missing field, lines over ``max_line_bytes``) become ``LineError`` records and
the run goes on. Memory stays constant: a batch of lines, one summary per input, one counter per
glitch token.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import logging
import math
import os
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from .errors import InputError
from .inputs import stdin_binary
from .text import display
from .tokens import INVALID_UTF8_BYTES

__all__ = [
    "GlitchList", "load_glitch_list", "Hit", "DocScan", "GlitchDetector",
    "LineError", "RecordScan", "SourceSummary", "DetectRun", "check_inputs", "NOT_FROM_TEXT",
]

log = logging.getLogger(__name__)

# Token kinds that are names rather than text pieces: a tokenizer never produces them from
# ordinary text (a literal "<bos>" aside), so a glitch list leaves them out unless asked.
NOT_FROM_TEXT = ("special", "unused", "unknown", "padding")


# ---------------------------------------------------------------------------------- glitch list
@dataclass(frozen=True)
class GlitchList:
    """Token ids to look for, with the score, rank and exact bytes a ranking gave them."""

    ids: tuple[int, ...]
    scores: dict[int, float] = field(default_factory=dict)
    ranks: dict[int, int] = field(default_factory=dict)
    bytes: dict[int, bytes] = field(default_factory=dict)
    source: str = "<ids>"
    left_out: dict[str, int] = field(default_factory=dict)  # rows dropped, by reason
    why: str = "the ids of the list"  # which rows were taken, in words (printed by the CLI)

    def __len__(self) -> int:
        return len(self.ids)


_ID_SPLIT = re.compile(r"[\s,;]+")


def load_glitch_list(path: str | os.PathLike, *, top: int | None = None, min_score: float | None = None,
                     include_special: bool = False) -> GlitchList:
    """Read a glitch list: anomtok's ``ranked.csv``/``.parquet`` or ``glitch.csv``, or a plain
    text file of token ids (whitespace or comma separated, ``#`` comments).

    Table rows are taken in rank order (else by descending score), leaving out tokens that never
    come from text (kinds in ``NOT_FROM_TEXT`` and single bytes invalid in UTF-8) unless
    ``include_special``; then ``min_score`` keeps rows with ``score >= min_score`` and ``top``
    keeps the first ``top``. With neither, a ``ranked.csv`` gives its ``flagged`` rows (a
    ranking table without that column is refused: every token of the vocabulary is not a glitch
    list) and a ``glitch.csv`` (which holds only flagged rows) all of them. A plain id list is
    taken as given (``top``: its first ids).
    """
    if top is not None and top < 1:
        raise InputError("--top must be >= 1")
    if min_score is not None and not math.isfinite(min_score):
        raise InputError("--min-score must be a finite number")
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such glitch list file")
    if p.suffix != ".parquet" and _looks_like_id_list(p):
        if min_score is not None:
            raise InputError(f"{p}: a plain list of token ids has no scores; --min-score needs ranked.csv or glitch.csv")
        ids = _read_id_list(p)
        return GlitchList(ids=tuple(ids[:top] if top else ids), source=str(p),
                          why=f"the first {top} ids" if top else "every id of the list")
    return _from_table(p, top, min_score, include_special)


def _looks_like_id_list(p: Path) -> bool:
    try:
        with p.open("rb") as f:
            head = f.read(65536).decode("utf-8", errors="replace")
    except OSError as exc:
        raise InputError(f"{p}: cannot read ({exc.strerror or exc})") from None
    for line in head.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            return all(t.isdigit() for t in _ID_SPLIT.split(line) if t)
    return True  # empty or only comments: an (empty) id list


def _read_id_list(p: Path) -> list[int]:
    ids: dict[int, None] = {}
    with p.open("r", encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            for t in _ID_SPLIT.split(line.split("#", 1)[0].strip()):
                if not t:
                    continue
                if not t.isdigit():
                    raise InputError(f"{p}:{n}: {t!r} is not a token id")
                ids[int(t)] = None
    if not ids:
        raise InputError(f"{p}: no token ids in the file")
    return list(ids)


def _from_table(p: Path, top: int | None, min_score: float | None, include_special: bool) -> GlitchList:
    import polars as pl

    from .export import read_table

    frame = read_table(p)
    if "rank" in frame.columns:
        frame = frame.sort("rank", nulls_last=True)
    elif "score" in frame.columns:
        frame = frame.sort("score", descending=True, nulls_last=True)
    left_out: dict[str, int] = {}

    def keep(mask: Any, reason: str) -> None:
        nonlocal frame
        before = frame.height
        frame = frame.filter(mask)
        if before - frame.height:
            left_out[reason] = before - frame.height

    if not include_special:
        if "kind" in frame.columns:
            keep(~pl.col("kind").is_in(NOT_FROM_TEXT), "/".join(NOT_FROM_TEXT) + " tokens")
        invalid = [f"{b:02x}" for b in sorted(INVALID_UTF8_BYTES)]
        keep(~pl.col("bytes_hex").cast(pl.String).is_in(invalid), "UTF-8-invalid bytes")
    if min_score is not None:
        if "score" not in frame.columns:
            raise InputError(f"{p}: has no score column; --min-score needs one")
        keep(pl.col("score").fill_nan(None) >= min_score, f"below --min-score {min_score:g}")
    if top is None and min_score is None:
        if "flagged" in frame.columns:
            keep(pl.col("flagged").cast(pl.Boolean).fill_null(False), "not flagged")
            why = "its flagged rows (--top K or --min-score S to choose otherwise)"
        elif "is_reference" in frame.columns:
            raise InputError(f"{p}: a ranking of the whole vocabulary without a flagged column; "
                             "pass --top K or --min-score S")
        else:
            why = "every row (a glitch.csv holds only flagged tokens)"
    else:
        why = " and ".join(w for w in (f"score >= {min_score:g}" if min_score is not None else "",
                                       f"the top {top}" if top is not None else "") if w)
    if top is not None and frame.height > top:
        left_out[f"past --top {top}"] = frame.height - top
        frame = frame.head(top)
    if frame.height == 0:
        reasons = ", ".join(f"{v} {k}" for k, v in left_out.items()) or "the table is empty"
        raise InputError(f"{p}: no glitch tokens left ({reasons})")
    ids = [int(i) for i in frame["token_id"].to_list()]
    raw = [bytes.fromhex(h or "") for h in frame["bytes_hex"].cast(pl.String).to_list()]

    def column(name: str, cast: Callable[[Any], Any]) -> dict[int, Any]:
        if name not in frame.columns:
            return {}
        return {i: cast(v) for i, v in zip(ids, frame[name].to_list()) if v is not None and v == v}

    return GlitchList(ids=tuple(dict.fromkeys(ids)), scores=column("score", float), ranks=column("rank", int),
                      bytes=dict(zip(ids, raw)), source=str(p), left_out=left_out, why=why)


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

    ``tokenizer``: anything ``anomtok.tokenizer_source.load_tokenizer`` takes (a packaged alias,
    a GGUF file, a model folder, a ``tokenizer.json``, a hub id, a ``tokenizers.Tokenizer`` or a
    ``(Tokenizer, TokenTable)`` pair). ``glitch``: a ``GlitchList`` or token ids. Ids past the
    vocabulary, or whose bytes in the list differ from this tokenizer's (a list made for another
    model), raise ``InputError``. The tokenizer's truncation and padding are turned off (on a copy).
    """

    def __init__(self, tokenizer: Any, glitch: GlitchList | Iterable[int], *, add_special_tokens: bool = False) -> None:
        from .tokenizer_copy import unpadded
        from .tokenizer_source import load_tokenizer

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

    @classmethod
    def from_files(cls, model: Any, glitch: str | os.PathLike, *, top: int | None = None,
                   min_score: float | None = None, include_special: bool = False) -> "GlitchDetector":
        """``GlitchDetector(model, load_glitch_list(glitch, ...))``: what ``anomtok detect`` builds."""
        return cls(model, load_glitch_list(glitch, top=top, min_score=min_score, include_special=include_special))

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
        raise InputError(f"{glitch.source}: token id {past[0]} is not in this tokenizer's vocabulary (ids 0-{n - 1})"
                         f"{f' (and {len(past) - 1} more)' if len(past) > 1 else ''}; was the list made for another model?")
    differ = [i for i, b in glitch.bytes.items() if b != table.bytes[i] and table.kinds[i] not in NOT_FROM_TEXT]
    if differ:
        i = differ[0]
        raise InputError(f"{glitch.source}: does not match this tokenizer: {len(differ)} of {len(glitch.bytes)} tokens "
                         f"differ (id {i} is ⟨{display(glitch.bytes[i])}⟩ in the list, ⟨{display(table.bytes[i])}⟩ "
                         "here); was it made for another model?")


# ---------------------------------------------------------------------------------- streaming
@dataclass(frozen=True, slots=True)
class LineError:
    """A line that could not be scanned (``line`` 0: the whole input)."""

    source: str
    line: int
    error: str

    def to_dict(self) -> dict[str, Any]:
        return {"type": "error", "source": self.source, "line": self.line, "error": self.error}


@dataclass(frozen=True, slots=True)
class RecordScan:
    """One scanned line (plain text) or record (JSONL). Hit offsets are into that line's text
    (with its line terminator) or into the record's field."""

    source: str
    line: int
    tokens: int
    hits: list[Hit]

    def hit_dicts(self) -> list[dict[str, Any]]:
        return [{"type": "hit", "source": self.source, "line": self.line, **h.to_dict()} for h in self.hits]


@dataclass
class SourceSummary:
    """Counts for one input (or, as ``DetectRun.total``, all of them). A document is the whole
    input for plain text and one record for JSONL."""

    source: str
    per_record: bool = False
    documents: int = 0
    records: int = 0
    tokens: int = 0
    hits: int = 0
    errors: int = 0
    docs_with_hits: int = 0
    docs_over: int = 0  # documents whose glitch rate exceeds max_rate
    max_doc_rate: float = 0.0

    @property
    def rate(self) -> float:
        return self.hits / self.tokens if self.tokens else 0.0

    def _doc(self, tokens: int, hits: int, max_rate: float) -> None:
        rate = hits / tokens if tokens else 0.0
        self.documents += 1
        self.docs_with_hits += hits > 0
        self.docs_over += rate > max_rate
        self.max_doc_rate = max(self.max_doc_rate, rate)

    def add(self, other: "SourceSummary") -> None:
        for name in ("documents", "records", "tokens", "hits", "errors", "docs_with_hits", "docs_over"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.max_doc_rate = max(self.max_doc_rate, other.max_doc_rate)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rate": self.rate}


JSONL_SUFFIXES = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")
_BOM = b"\xef\xbb\xbf"
_NUL = b"\0"


class DetectRun:
    """Scan inputs once, yielding ``RecordScan`` and ``LineError`` items in input order; the
    summaries (``sources``, ``total``, ``found``) are complete when iteration ends.

    ``inputs``: paths, ``"-"`` (standard input) or ``(name, binary stream)`` pairs. ``jsonl``:
    True/False for every input, or None to decide by suffix (``.jsonl``, ``.ndjson``). A document
    (for the per-document rate) is a JSONL record, or a whole plain text input. ``exceeded`` is
    True when any document's rate or the overall rate is above ``max_rate``. ``progress`` is
    called with the number of bytes read after each line.
    """

    def __init__(self, detector: GlitchDetector, inputs: Sequence[Any], *, field: str = "text",
                 jsonl: bool | None = None, max_rate: float = 0.0, batch_chars: int = 1 << 20,
                 batch_records: int = 4096, max_line_bytes: int = 16 << 20,
                 progress: Callable[[int], None] | None = None) -> None:
        if not (max_rate >= 0) or math.isinf(max_rate):
            raise InputError("max_rate must be a finite number >= 0")
        if not field:
            raise InputError("the JSONL field name is empty")
        self.detector = detector
        self.inputs = check_inputs(inputs)
        self.field, self.jsonl, self.max_rate = field, jsonl, max_rate
        self.batch_chars, self.batch_records, self.max_line_bytes = batch_chars, batch_records, max_line_bytes
        self.progress = progress
        self.sources: list[SourceSummary] = []
        self.total = SourceSummary("total")
        self.found: Counter[int] = Counter()  # glitch token id -> hits
        self.first_error: LineError | None = None  # the first line that could not be read
        self._done = False

    def check_read(self) -> None:
        """After iterating: InputError when lines were skipped and not one could be read (every
        input binary, invalid UTF-8, bad JSON...): a run that read nothing found nothing."""
        t = self.total
        if t.records == 0 and t.errors:
            e = self.first_error
            first = f"; first: {e.source}{f' line {e.line}' if e.line else ''}: {e.error}" if e else ""
            raise InputError(f"no input could be read ({t.errors} unreadable line(s) in {len(self.sources)} input(s){first})")

    @property
    def exceeded(self) -> bool:
        return self.total.docs_over > 0 or self.total.rate > self.max_rate

    def total_bytes(self) -> int | None:
        """Sum of the input sizes, or None when one is a stream or compressed."""
        sizes = [os.path.getsize(i) if isinstance(i, str) and i != "-" and not i.endswith(".gz") else None
                 for i in self.inputs]
        return None if None in sizes else sum(sizes)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[RecordScan | LineError]:
        if self._done:
            raise RuntimeError("a DetectRun can be iterated once")
        self._done = True
        for spec in self.inputs:
            name = spec[0] if isinstance(spec, tuple) else ("<stdin>" if spec == "-" else spec)
            is_jsonl = self.jsonl if self.jsonl is not None else name.lower().endswith(JSONL_SUFFIXES)
            summary = SourceSummary(name, per_record=is_jsonl)
            self.sources.append(summary)
            yield from self._scan_source(spec, name, is_jsonl, summary)
            if not is_jsonl and summary.records:
                summary._doc(summary.tokens, summary.hits, self.max_rate)
            self.total.add(summary)

    def _scan_source(self, spec: Any, name: str, is_jsonl: bool, summary: SourceSummary) -> Iterator[RecordScan | LineError]:
        pending: list[tuple[int, str] | LineError] = []
        chars = n_texts = 0
        with _open(spec) as given:
            stream = given if hasattr(given, "peek") else io.BufferedReader(given)  # e.g. io.BytesIO
            for item in _read_lines(stream, name, is_jsonl, self.field, self.max_line_bytes, self.progress):
                pending.append(item)
                if not isinstance(item, LineError):
                    chars += len(item[1])
                    n_texts += 1
                    if chars >= self.batch_chars or n_texts >= self.batch_records:
                        yield from self._flush(pending, name, is_jsonl, summary)
                        pending, chars, n_texts = [], 0, 0
            if stream is not given:
                stream.detach()  # leave the caller's stream open
        yield from self._flush(pending, name, is_jsonl, summary)

    def _flush(self, pending: list[Any], name: str, is_jsonl: bool, summary: SourceSummary) -> Iterator[RecordScan | LineError]:
        texts = [p[1] for p in pending if not isinstance(p, LineError)]
        results = iter(self.detector.analyze_many(texts) if texts else [])
        for item in pending:
            if isinstance(item, LineError):
                summary.errors += 1
                self.first_error = self.first_error or item
                yield item
                continue
            r = next(results)
            summary.records += 1
            summary.tokens += r.tokens
            summary.hits += len(r.hits)
            if is_jsonl:
                summary._doc(r.tokens, len(r.hits), self.max_rate)
            if r.hits:
                self.found.update(h.token_id for h in r.hits)
            yield RecordScan(name, item[0], r.tokens, r.hits)


def check_inputs(inputs: Sequence[Any]) -> list[Any]:
    """The inputs of a run, checked before any work: each exists, is a file and is readable
    (``"-"`` and ``(name, stream)`` pairs pass). Raises ``InputError``."""
    return [_check_input(i) for i in inputs]


def _check_input(spec: Any) -> Any:
    if isinstance(spec, tuple):
        return spec
    spec = os.fspath(spec)
    if spec == "-":
        stdin_binary()  # closed stdin (``cmd <&-``) is bad input, found before any work
    else:
        if os.path.isdir(spec):
            raise InputError(f"{spec}: is a directory, not a text file")
        if not os.path.exists(spec):
            raise InputError(f"{spec}: no such file")
        if not os.access(spec, os.R_OK):
            raise InputError(f"{spec}: not readable (permission denied)")
    return spec


def _open(spec: Any) -> Any:
    """A context manager giving a binary stream; streams we were given are left open."""
    if isinstance(spec, tuple):
        return contextlib.nullcontext(spec[1])
    if spec == "-":
        return contextlib.nullcontext(stdin_binary())
    try:
        return gzip.open(spec, "rb") if spec.endswith(".gz") else open(spec, "rb")  # noqa: SIM115
    except OSError as exc:
        raise InputError(f"{spec}: cannot open ({exc.strerror or exc})") from None


def _read_lines(stream: Any, name: str, is_jsonl: bool, field: str, max_line_bytes: int,
                progress: Callable[[int], None] | None) -> Iterator[tuple[int, str] | LineError]:
    head = stream.peek(8192)[:8192]
    if _looks_binary(head):
        yield LineError(name, 0, f"binary data or UTF-16 text (NUL byte at byte {head.index(_NUL)}): input skipped")
        return
    path = field.split(".") if field not in ("", ".") else [field]
    n = 0
    while True:
        raw = stream.readline(max_line_bytes)
        if not raw:
            return
        n += 1
        if progress:
            progress(len(raw))
        if len(raw) >= max_line_bytes and not raw.endswith(b"\n"):
            while True:  # skip the rest of an over-long line without holding it
                rest = stream.readline(max_line_bytes)
                if progress:
                    progress(len(rest))
                if not rest or rest.endswith(b"\n"):
                    break
            yield LineError(name, n, f"line longer than {max_line_bytes} bytes: skipped")
            continue
        if n == 1 and raw.startswith(_BOM):
            raw = raw[3:]
        if _NUL in raw:
            yield LineError(name, n, f"binary data (NUL byte at byte {raw.index(_NUL)})")
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield LineError(name, n, f"invalid UTF-8 (byte 0x{raw[exc.start]:02x} at byte {exc.start})")
            continue
        if not is_jsonl:
            yield (n, text)
            continue
        if not text.strip():
            continue
        value = _json_field(text, field, path)
        yield LineError(name, n, value[1]) if isinstance(value, tuple) else (n, value)


def _looks_binary(head: bytes) -> bool:
    """NUL bytes with invalid UTF-8 or in bulk (UTF-16): binary. A stray NUL in valid text is
    left to the line it is on."""
    if _NUL not in head:
        return False
    if head.count(_NUL) * 10 >= len(head):
        return True
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start < len(head) - 3  # not just a character cut by the end of the block
    return False


def _json_field(line: str, field: str, path: list[str]) -> str | tuple[None, str]:
    """The text of ``field`` in a JSON line (a dotted path like ``messages.0.content`` works
    when no key has the dotted name), or ``(None, reason)``."""
    try:
        obj = json.loads(line.rstrip("\r\n"))
    except json.JSONDecodeError as exc:
        return None, f"bad JSON: {exc.msg} (column {exc.colno})"
    if not isinstance(obj, dict):
        return None, f"the JSON line is {_json_type(obj)}, not an object"
    if field in obj:
        value = obj[field]
    else:
        value = obj
        for key in path:
            if isinstance(value, dict) and key in value:
                value = value[key]
            elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
                value = value[int(key)]
            else:
                return None, f"no field {field!r}"
    if not isinstance(value, str):
        return None, f"field {field!r} is {_json_type(value)}, not a string"
    if "\\u" in line:  # only escapes can make an unpaired surrogate, which no tokenizer takes
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            return None, f"field {field!r} has an unpaired surrogate (\\u{ord(value[exc.start]):04x})"
    return value


def _json_type(v: Any) -> str:
    if v is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "an array",
            dict: "an object"}.get(type(v), type(v).__name__)
