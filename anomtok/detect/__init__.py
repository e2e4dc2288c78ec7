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

What lives where (compute → render):

- ``glitchlist``: which tokens to look for (``load_glitch_list``, ``GlitchList``) and
  ``read_token_ids``, anomtok's one reader of token-id files;
- ``detector``: ``GlitchDetector``, scanning one text or a batch (``Hit``, ``DocScan``);
- ``inputs``: checking, opening and reading inputs line by line (``LineError``);
- ``run``: ``DetectRun``, streaming inputs through a detector and counting (``RecordScan``,
  ``SourceSummary``);
- ``render``: what ``anomtok detect`` prints (hits as JSONL, the summary table/JSON/CSV).
"""

from __future__ import annotations

from .detector import DocScan, GlitchDetector, Hit
from .glitchlist import NOT_FROM_TEXT, GlitchList, load_glitch_list, read_token_ids
from .inputs import LineError, check_inputs
from .run import DetectRun, RecordScan, SourceSummary

__all__ = [
    "GlitchList",
    "load_glitch_list",
    "read_token_ids",
    "Hit",
    "DocScan",
    "GlitchDetector",
    "LineError",
    "RecordScan",
    "SourceSummary",
    "DetectRun",
    "check_inputs",
    "NOT_FROM_TEXT",
]
