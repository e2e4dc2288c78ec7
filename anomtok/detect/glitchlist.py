"""Glitch lists: which token ids ``anomtok detect`` looks for, read from a file.

``load_glitch_list`` reads anomtok's ``ranked.csv``/``.parquet`` or ``glitch.csv`` (with the
score, rank and exact bytes of each token) or a plain text file of ids. ``read_token_ids`` is
anomtok's one reader of token-id files (a table's ``token_id`` column, a JSON list or a text list
of ids): ``plot --mark-ids``, ``scan``'s negative-temperature marks and the plain id lists here
all go through it.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..tokens import INVALID_UTF8_BYTES

__all__ = ["NOT_FROM_TEXT", "GlitchList", "load_glitch_list", "read_token_ids"]

# Token kinds that are names rather than text pieces: a tokenizer never produces them from
# ordinary text (a literal "<bos>" aside), so a glitch list leaves them out unless asked.
NOT_FROM_TEXT = ("special", "unused", "unknown", "padding")

_ID_SPLIT = re.compile(r"[\s,;]+")


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


# ---------------------------------------------------------------------------------- token-id files
def read_token_ids(path: str | os.PathLike, *, kind: str | None = None) -> list[int]:
    """Token ids from a file, in file order (repeats kept, nulls of a table dropped): a table's
    ``token_id`` column (``kind="table"``; CSV or parquet), a JSON list or an object with
    ``token_ids`` (or ``ids``) (``kind="json"``), or integers separated by spaces, commas,
    semicolons or new lines, ``#`` starting a comment (``kind="text"``). ``kind`` None: by suffix,
    ``.csv``/``.parquet`` a table, ``.json`` JSON, anything else text. An empty list is returned
    as is (the caller decides whether that is an error). Raises ``InputError``."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file")
    if kind is None:
        kind = {".csv": "table", ".parquet": "table", ".json": "json"}.get(p.suffix, "text")
    if kind == "table":
        return _table_ids(p)
    if kind == "json":
        try:
            obj = json.loads(p.read_text(encoding="utf-8"))
            ids = obj.get("token_ids", obj.get("ids")) if isinstance(obj, dict) else obj
            return [int(i) for i in ids]
        except (ValueError, TypeError, OSError) as exc:
            raise InputError(f"{p}: not a list of token ids ({exc})") from None
    if kind != "text":
        raise ValueError(f"kind must be 'table', 'json', 'text' or None, not {kind!r}")
    return _text_ids(p)


def _table_ids(p: Path) -> list[int]:
    import polars as pl

    try:
        if p.suffix == ".parquet":
            column = pl.read_parquet(p, columns=["token_id"])["token_id"]
        else:
            column = pl.read_csv(p, columns=["token_id"], schema_overrides={"token_id": pl.Int64})["token_id"]
        return [int(i) for i in column.drop_nulls().to_list()]
    except Exception as exc:  # noqa: BLE001 - polars raises several types
        detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise InputError(
            f"{p}: not a readable table of token ids ({exc.__class__.__name__}{f': {detail}' if detail else ''})"
        ) from None


def _text_ids(p: Path) -> list[int]:
    ids: list[int] = []
    try:
        with p.open("r", encoding="utf-8", errors="replace") as f:
            for n, line in enumerate(f, 1):
                for t in _ID_SPLIT.split(line.split("#", 1)[0].strip()):
                    if not t:
                        continue
                    if not t.isdecimal():
                        raise InputError(f"{p}:{n}: {t!r} is not a token id")
                    ids.append(int(t))
    except OSError as exc:
        raise InputError(f"{p}: cannot read ({exc.strerror or exc})") from None
    return ids


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


# ---------------------------------------------------------------------------------- glitch lists
def load_glitch_list(
    path: str | os.PathLike, *, top: int | None = None, min_score: float | None = None, include_special: bool = False
) -> GlitchList:
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
            raise InputError(
                f"{p}: a plain list of token ids has no scores; --min-score needs ranked.csv or glitch.csv"
            )
        ids = list(dict.fromkeys(read_token_ids(p, kind="text")))
        if not ids:
            raise InputError(f"{p}: no token ids in the file")
        return GlitchList(
            ids=tuple(ids[:top] if top else ids),
            source=str(p),
            why=f"the first {top} ids" if top else "every id of the list",
        )
    return _from_table(p, top, min_score, include_special)


def _from_table(p: Path, top: int | None, min_score: float | None, include_special: bool) -> GlitchList:
    import polars as pl

    from ..export import read_table

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
            raise InputError(
                f"{p}: a ranking of the whole vocabulary without a flagged column; pass --top K or --min-score S"
            )
        else:
            why = "every row (a glitch.csv holds only flagged tokens)"
    else:
        why = " and ".join(
            w
            for w in (
                f"score >= {min_score:g}" if min_score is not None else "",
                f"the top {top}" if top is not None else "",
            )
            if w
        )
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

    return GlitchList(
        ids=tuple(dict.fromkeys(ids)),
        scores=column("score", float),
        ranks=column("rank", int),
        bytes=dict(zip(ids, raw)),
        source=str(p),
        left_out=left_out,
        why=why,
    )
