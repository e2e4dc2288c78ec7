"""The summary of an audit (the body of ``audit.json``): counts per class, kind, cause and script,
examples of each unreachable class, the longest tokens, duplicated surfaces, and where the
tokenizer came from. Computed from the round-trip frame and the token table alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from ..cache import file_sha256
from ..text import display
from .roundtrip import CLASSES, NOT_AUDITED
from .source import LoadedTokenizer

__all__ = ["summarize", "provenance"]


def _count(frame: pl.DataFrame, col: str) -> dict[str, int]:
    vc = frame.group_by(col).len().sort(["len", col], descending=[True, False])
    return {str(k): int(v) for k, v in vc.iter_rows()}


def _rows(frame: pl.DataFrame, cols: list[str], k: int) -> list[dict]:
    return frame.select(cols).head(k).to_dicts()


def summarize(frame: pl.DataFrame, loaded: LoadedTokenizer) -> dict:
    """``n_tokens``, ``counts``, ``examples``, ``decode_errors``, ``normalized_examples``, ``longest``
    and ``duplicates`` of ``audit.json``, from the round-trip frame."""
    table = loaded.table
    crossed: dict[str, dict[str, int]] = {}
    for kind, rt, cnt in frame.group_by(["kind", "round_trip"]).len().sort(["kind", "round_trip"]).iter_rows():
        crossed.setdefault(kind, {})[rt] = int(cnt)
    audited = frame.filter(~pl.col("round_trip").is_in(["special", "padding"]))
    by_script = {}
    for script, rt, cnt in audited.group_by(["script", "round_trip"]).len().sort(["script", "round_trip"]).iter_rows():
        by_script.setdefault(script, {"tokens": 0})
        by_script[script]["tokens"] += int(cnt)
        by_script[script][rt] = int(cnt)
    by_script = dict(sorted(by_script.items(), key=lambda kv: -kv[1]["tokens"]))
    ex_cols = ["token_id", "token", "kind", "script", "cause", "reencoded_ids", "normalized"]
    examples = {
        c: _rows(frame.filter(pl.col("round_trip") == c), ex_cols, 25)
        for c in ("unreachable-single", "unreachable-multi", "unreachable-empty", "undecodable", "error")
    }
    for rows in examples.values():
        for r in rows:
            r["reencoded"] = " ".join(
                f"⟨{table.displays[int(x)]}⟩" for x in r.pop("reencoded_ids").split() if int(x) < len(table)
            )
    errs = frame.filter(pl.col("decode_error") != "")
    longest = audited.filter(pl.col("round_trip") != "undecodable").sort(
        ["n_chars", "token_id"], descending=[True, False]
    )
    return {
        "n_tokens": len(frame),
        "counts": {
            "round_trip": {c: int((frame["round_trip"] == c).sum()) for c in CLASSES},
            "kind": _count(frame, "kind"),
            "kind_x_round_trip": crossed,
            "cause": {k: v for k, v in _count(audited, "cause").items() if k},
            "script": by_script,
            "normalized_changed": int(frame["normalized_changed"].sum()),
            "byte_fallback": int(frame["byte_fallback"].sum()),
            "partial_utf8": int(frame["partial_utf8"].sum()),
            "decode_errors": len(errs),
        },
        "examples": examples,
        "decode_errors": _rows(errs, ["token_id", "token", "decode_error"], 25),
        "normalized_examples": _rows(
            frame.filter(pl.col("normalized_changed")), ["token_id", "token", "normalized", "round_trip"], 25
        ),
        "longest": _rows(longest, ["token_id", "token", "n_chars", "n_bytes", "round_trip", "script"], 20),
        "duplicates": _duplicates(table),
    }


def _duplicates(table: Any, k: int = 25) -> dict:
    """Ids whose surface is identical: same bytes (for WordPiece, same piece, since ``##ing`` and
    ``ing`` differ in where they may stand)."""
    groups: dict[Any, list[int]] = {}
    wp = table.scheme == "wordpiece"
    for i, (b, kind) in enumerate(zip(table.bytes, table.kinds)):
        if kind in NOT_AUDITED or not b:
            continue
        groups.setdefault(table.pieces[i] if wp else b, []).append(i)
    dup = [ids for ids in groups.values() if len(ids) > 1]
    return {
        "groups": len(dup),
        "tokens": sum(len(d) for d in dup),
        "examples": [
            [
                {
                    "token_id": i,
                    "token": table.displays[i],
                    "kind": table.kinds[i],
                    "piece": display(table.pieces[i].encode("utf-8", "surrogateescape")),
                }
                for i in ids
            ]
            for ids in dup[:k]
        ],
    }


def provenance(loaded: LoadedTokenizer) -> dict:
    """The ``source`` entry of ``audit.json``: the spec, format, files (size, sha256) and how the
    tokenizer was built."""
    files = []
    for f in loaded.files:
        p = Path(f)
        files.append(
            {
                "path": f,
                "size": p.stat().st_size if p.is_file() else None,
                "sha256": file_sha256(p) if p.is_file() else None,
            }
        )
    return {
        "spec": loaded.source,
        "format": loaded.format,
        "files": files,
        "method": loaded.method,
        "has_embeddings": loaded.has_embeddings,
        "notes": list(loaded.notes),
    }
