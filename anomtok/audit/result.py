"""What an audit returns and writes: ``AuditResult`` (the frame, the summary, the token table) and
``write_audit``, which puts ``audit.csv``, ``audit.json`` and ``audit.md`` in a folder."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from .render import render_markdown

__all__ = ["FORMAT", "AuditResult", "write_audit"]

FORMAT = "anomtok-audit/1"
"""The ``format`` of ``audit.json``."""


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

    def __repr__(self) -> str:
        """A few lines: the source, the round-trip classes, where the files are (not the frame)."""
        s = self.summary
        n = s.get("n_tokens", self.frame.height)
        counts = ", ".join(f"{k} {v:,}" for k, v in ((s.get("counts") or {}).get("round_trip") or {}).items() if v)
        lines = [
            f"AuditResult of {(s.get('source') or {}).get('spec', 'a tokenizer')}: {n:,} tokens",
            f"  round trip: {counts or 'no counts'}",
            f"  ranking: {(s.get('ranking') or {}).get('status', 'none')}",
        ]
        if self.paths:
            lines.append(
                f"  wrote {', '.join(p.name for p in self.paths.values())} in {next(iter(self.paths.values())).parent}"
            )
        lines.append(f"  .frame: {self.frame.height:,} rows × {self.frame.width} columns; .summary; .markdown()")
        return "\n".join(lines)


def write_audit(result: AuditResult, out_dir: str | os.PathLike) -> dict[str, Path]:
    """``audit.csv`` (spreadsheet-safe, exact bytes in ``bytes_hex``), ``audit.json``, ``audit.md``."""
    from ..cache import atomic_write_text
    from ..export import write_csv, write_json
    from ..outputs import make_dir

    out = make_dir(out_dir)
    paths = {"csv": out / "audit.csv", "json": out / "audit.json", "md": out / "audit.md"}
    write_csv(result.frame, paths["csv"])
    write_json(result.summary, paths["json"])
    atomic_write_text(paths["md"], render_markdown(result.summary))
    return paths
