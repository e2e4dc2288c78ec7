"""The options of the commands that read what other runs wrote, or text: ``compare`` (report
folders) and ``detect`` (texts, against a glitch list)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import InputError
from ..inputs import check_int
from .build import check_bools, check_choice

__all__ = ["CompareOptions", "DetectOptions", "COMPARE_FORMATS"]

COMPARE_FORMATS = ("table", "markdown", "json")


@dataclass(frozen=True)
class CompareOptions:
    """``anomtok compare``: how many shared tokens to list per pair, and the format: ``table``
    (aligned tables for a terminal), ``markdown`` or ``json``; None: a table on the terminal, and for
    a file ``json`` when its name ends in ``.json``, else ``markdown``."""

    top: int = 25
    format: str | None = None

    def __post_init__(self) -> None:
        check_int(self.top, "top", 1, 10_000)
        if self.format is not None:
            check_choice(self.format, "format", COMPARE_FORMATS)


@dataclass(frozen=True)
class DetectOptions:
    """``anomtok detect``: which rows of a glitch table to look for (``top``, ``min_score``,
    ``include_special``), the JSONL ``field`` holding the text (given: every input is JSONL;
    default: ``text`` for .jsonl/.ndjson inputs, others are plain text), and ``max_rate``, the
    glitch rate above which the run counts as exceeded."""

    field: str | None = None
    top: int | None = None
    min_score: float | None = None
    include_special: bool = False
    max_rate: float = 0.0

    def __post_init__(self) -> None:
        if self.field is not None and (not isinstance(self.field, str) or not self.field):
            raise InputError(f"field must be a JSON field name (dotted path allowed), not {self.field!r}")
        if self.top is not None:
            check_int(self.top, "top", 1)
        m = self.min_score
        if m is not None and (isinstance(m, bool) or not isinstance(m, (int, float)) or not math.isfinite(m)):
            raise InputError(f"min_score must be a finite number, not {m!r}")
        r = self.max_rate
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0.0 <= r <= 1.0:
            raise InputError(f"max_rate must be a number from 0 to 1, not {r!r}")
        check_bools(self, "include_special")
