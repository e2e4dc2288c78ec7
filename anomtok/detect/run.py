"""A detection run: stream inputs through a ``GlitchDetector`` and count what it finds.

``DetectRun`` reads each input (``anomtok.detect.inputs``) in batches of lines, yields one
``RecordScan`` per line or record (and the ``LineError`` of each unreadable line) in input order,
and keeps the counts: one ``SourceSummary`` per input, a total, and hits per glitch token. Memory
stays constant: a batch of lines, one summary per input, one counter per glitch token.
"""

from __future__ import annotations

import io
import math
import os
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import InputError
from .detector import GlitchDetector, Hit
from .inputs import JSONL_SUFFIXES, LineError, check_inputs, open_input, read_lines

__all__ = ["RecordScan", "SourceSummary", "DetectRun"]


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

    def add(self, other: SourceSummary) -> None:
        for name in ("documents", "records", "tokens", "hits", "errors", "docs_with_hits", "docs_over"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.max_doc_rate = max(self.max_doc_rate, other.max_doc_rate)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rate": self.rate}


class DetectRun:
    """Scan inputs once, yielding ``RecordScan`` and ``LineError`` items in input order; the
    summaries (``sources``, ``total``, ``found``) are complete when iteration ends.

    ``inputs``: paths, ``"-"`` (standard input) or ``(name, binary stream)`` pairs. ``jsonl``:
    True/False for every input, or None to decide by suffix (``.jsonl``, ``.ndjson``). A document
    (for the per-document rate) is a JSONL record, or a whole plain text input. ``exceeded`` is
    True when any document's rate or the overall rate is above ``max_rate``. ``progress`` is
    called with the number of bytes read after each line.
    """

    def __init__(
        self,
        detector: GlitchDetector,
        inputs: Sequence[Any],
        *,
        field: str = "text",
        jsonl: bool | None = None,
        max_rate: float = 0.0,
        batch_chars: int = 1 << 20,
        batch_records: int = 4096,
        max_line_bytes: int = 16 << 20,
        progress: Callable[[int], None] | None = None,
    ) -> None:
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
            raise InputError(
                f"no input could be read ({t.errors} unreadable line(s) in {len(self.sources)} input(s){first})"
            )

    @property
    def exceeded(self) -> bool:
        return self.total.docs_over > 0 or self.total.rate > self.max_rate

    def total_bytes(self) -> int | None:
        """Sum of the input sizes, or None when one is a stream or compressed."""
        sizes = [
            os.path.getsize(i) if isinstance(i, str) and i != "-" and not i.endswith(".gz") else None
            for i in self.inputs
        ]
        return None if None in sizes else sum(sizes)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        t = self.total
        state = (
            f"{t.tokens:,} tokens, {t.hits:,} hits (rate {t.rate:.4%}), {t.errors} unreadable lines"
            if self._done
            else "not read yet (iterate it)"
        )
        return f"DetectRun: {len(self.inputs)} input(s), {self.detector!r}\n  {state}"

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

    def _scan_source(
        self, spec: Any, name: str, is_jsonl: bool, summary: SourceSummary
    ) -> Iterator[RecordScan | LineError]:
        pending: list[tuple[int, str] | LineError] = []
        chars = n_texts = 0
        with open_input(spec) as given:
            stream = given if hasattr(given, "peek") else io.BufferedReader(given)  # e.g. io.BytesIO
            for item in read_lines(stream, name, is_jsonl, self.field, self.max_line_bytes, self.progress):
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

    def _flush(
        self, pending: list[Any], name: str, is_jsonl: bool, summary: SourceSummary
    ) -> Iterator[RecordScan | LineError]:
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
