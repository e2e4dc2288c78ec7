"""What ``anomtok detect`` prints: the hits as JSON lines, the summary, the one-line messages.

``write_hits`` writes a ``DetectRun``'s hits and errors as JSONL while the run goes (the run is
iterated here; ``save_hits``: into a file, atomically); ``summary`` renders its counts as a table, JSON or CSV once it is done;
``list_line`` and ``exceeded_line`` are the lines printed before and after.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from .glitchlist import GlitchList
from .run import DetectRun, SourceSummary

__all__ = ["binary_stdout", "write_hits", "save_hits", "summary", "list_line", "exceeded_line"]

_KEYS = (
    "source",
    "documents",
    "records",
    "tokens",
    "hits",
    "rate",
    "docs_with_hits",
    "docs_over",
    "max_doc_rate",
    "errors",
)


class _TextSink:
    """A stdout without a binary buffer (some notebooks, IDEs): write decoded text."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def write(self, data: bytes) -> None:
        self.stream.write(data.decode("utf-8"))

    def flush(self) -> None:
        self.stream.flush()


def binary_stdout() -> Any:
    """Standard output as a binary stream (flushed first), or a sink decoding to its text stream."""
    sys.stdout.flush()
    return getattr(sys.stdout, "buffer", None) or _TextSink(sys.stdout)


def write_hits(run: DetectRun, stream: Any) -> None:
    """Iterate ``run``, writing each hit and each unreadable line as one JSON line (UTF-8) to the
    binary ``stream``."""
    dumps = json.dumps
    for event in run:
        records = event.hit_dicts() if hasattr(event, "hit_dicts") else [event.to_dict()]
        if records:
            stream.write("".join(dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8"))
    stream.flush()


def save_hits(run: DetectRun, path: Any) -> None:
    """``write_hits`` into the file ``path``, atomically: when no input could be read
    (``DetectRun.check_read``) the ``InputError`` is raised and no file is written."""
    from ..cache import atomic_path

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        write_hits(run, f)
        run.check_read()


def list_line(glitch_list: GlitchList, glitch: str) -> str:
    """Which tokens the run looks for: ``detect: N glitch tokens from FILE: why (left out: ...)``."""
    left = ", ".join(f"{v} {k}" for k, v in glitch_list.left_out.items())
    return (
        f"detect: {len(glitch_list)} glitch tokens from {glitch}: {glitch_list.why}"
        f"{f' (left out: {left})' if left else ''}"
    )


def exceeded_line(run: DetectRun, exit_code: int) -> str:
    """Why a run whose glitch rate is above its ``max_rate`` exits with ``exit_code``."""
    t = run.total
    return (
        f"exit {exit_code}: glitch rate {100 * t.rate:.3f}% (highest document {100 * t.max_doc_rate:.3f}%, "
        f"{t.docs_over} of {t.documents} documents above) with --max-rate {run.max_rate:g}: {t.hits} hits in {t.tokens} tokens"
    )


def _row(summary: SourceSummary, source: str | None = None) -> dict[str, Any]:
    d = summary.to_dict() | ({"source": source} if source else {})
    return {k: d[k] for k in _KEYS}


def _summary_rows(run: DetectRun) -> list[dict[str, Any]]:
    """One row per input, and a total row when there are several."""
    rows = [_row(s) for s in run.sources]
    return rows + [_row(run.total, "(total)")] if len(rows) > 1 else rows


def _found_rows(run: DetectRun, limit: int | None) -> list[dict[str, Any]]:
    det = run.detector
    return [
        {
            "token_id": i,
            "token": det.token(i),
            "hits": n,
            "score": det.glitch.scores.get(i),
            "rank": det.glitch.ranks.get(i),
        }
        for i, n in run.found.most_common(limit)
    ]


def summary(run: DetectRun, fmt: str, model: str, glitch: str, n_glitch: int) -> str:
    """The counts of a finished run: per input (and in total) and per glitch token found, as a
    ``table`` (the 10 most found tokens), ``json`` (all of them) or ``csv`` (the inputs only)."""
    if fmt == "json":
        doc = {
            "model": model,
            "glitch": glitch,
            "glitch_tokens": n_glitch,
            "max_rate": run.max_rate,
            "exceeded": run.exceeded,
            "sources": [_row(s) for s in run.sources],
            "total": _row(run.total, "(total)"),
            "found": _found_rows(run, None),
        }
        return json.dumps(doc, ensure_ascii=False, indent=1)
    rows = _summary_rows(run)
    if fmt == "csv":
        import polars as pl

        from ..export import safe_for_spreadsheet

        frame = pl.DataFrame(rows, schema_overrides={"rate": pl.Float64, "max_doc_rate": pl.Float64})
        return safe_for_spreadsheet(frame, columns=("source",)).write_csv().rstrip("\n")
    from ..table import format_table

    pct = lambda r: f"{100 * r:.3f}%"  # noqa: E731
    body = [
        [
            r["source"],
            r["documents"],
            r["tokens"],
            r["hits"],
            pct(r["rate"]),
            r["docs_over"],
            pct(r["max_doc_rate"]),
            r["errors"],
        ]
        for r in rows
    ]
    text = format_table(
        body,
        ["source", "docs", "tokens", "hits", "rate", "docs>max", "max doc rate", "errors"],
        right=[False] + [True] * 7,
    )
    found = _found_rows(run, 10)
    if found:
        more = f" (10 of {len(run.found)})" if len(run.found) > 10 else ""
        text += f"\n\nglitch tokens found{more}:\n" + format_table(
            [[f["token_id"], f"⟨{f['token']}⟩", f["hits"], f["rank"], f["score"]] for f in found],
            ["token_id", "token", "hits", "rank", "score"],
            right=[True, False, True, True, True],
        )
    return text
