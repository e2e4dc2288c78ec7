"""Plain-text aligned tables that stay aligned with wide (CJK) characters."""

from __future__ import annotations

import unicodedata
from typing import Any, Sequence

__all__ = ["text_width", "format_table"]


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
