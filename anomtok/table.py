"""Tables, the one place they are formatted: ``format_table`` for the console (aligned plain
text that stays aligned with wide CJK characters) and ``markdown_table`` for reports (GitHub
Markdown, cells written by ``markdown_cell``)."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from typing import Any

__all__ = ["text_width", "format_table", "markdown_cell", "markdown_table"]


def text_width(s: str) -> int:
    """Terminal columns of ``s``: wide/full-width characters count 2, combining marks 0."""
    w = 0
    for ch in s:
        if unicodedata.combining(ch):
            continue
        w += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return w


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 1e4 else f"{v:.3e}"
    return str(v)


def format_table(rows: Sequence[Sequence[Any]], headers: Sequence[str], right: Sequence[bool] | None = None) -> str:
    """A console table: a header, a rule of dashes, one line per row, columns two spaces apart
    (``right[i]``: column ``i`` aligned right). None is ``-``, a float has 4 decimals."""
    cells = [[_fmt(v) for v in r] for r in rows]
    widths = [max([text_width(h)] + [text_width(r[i]) for r in cells]) for i, h in enumerate(headers)]
    right = right or [False] * len(headers)

    def line(vals: Sequence[str]) -> str:
        out = []
        for v, w, r in zip(vals, widths, right):
            pad = " " * (w - text_width(v))
            out.append(pad + v if r else v + pad)
        return "  ".join(out).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in cells])


def markdown_cell(v: Any, digits: int = 4) -> str:
    """A value as Markdown table text: None is ``–``, a float has ``digits`` decimals (``%.3g``
    from 1e5 on), an int has thousands separators, anything else is ``str(v)``."""
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}" if abs(v) < 1e5 else f"{v:.3g}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def markdown_table(rows: Sequence[Sequence[Any]], headers: Sequence[str], right: Sequence[bool] | None = None) -> str:
    """A GitHub Markdown table. A string cell is written as it is (escape it first: see
    ``anomtok.report.md_token``), any other value by ``markdown_cell``; ``right[i]``: column ``i``
    aligned right (``---:``)."""
    right = right or [False] * len(headers)
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---:" if r else "---" for r in right) + "|"]
    out += ["| " + " | ".join(v if isinstance(v, str) else markdown_cell(v) for v in r) + " |" for r in rows]
    return "\n".join(out)
