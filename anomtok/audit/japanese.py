"""The Japanese section of a tokenizer audit (the ``japanese`` entry of ``audit.json``): Japanese
tokens per class (``anomtok.japanese.ja_class``, the classifier itself), character coverage of each
inventory, fertility on the samples, unreachable Japanese tokens and the Japanese tokens high in the
embedding ranking. Rendered by ``anomtok.audit.render.render_japanese_section``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl

from ..japanese import (
    JA_CLASSES,
    Encoder,
    char_class,
    coverage,
    fertility,
    inventory,
    inventory_label,
    japanese_kanji,
    read_sample,
    summarize_coverage,
)

__all__ = ["section", "cjk_fragment_ids", "UNREACHABLE_CLASSES"]

_NOT_TEXT = ("special", "unused", "unknown", "padding")
UNREACHABLE_CLASSES = ("unreachable-single", "unreachable-multi", "unreachable-empty", "error")
"""The round-trip classes this section counts as unreachable (``error`` included)."""
_LIST_SINGLE = 100  # inventories this small list their single-token characters
_CHAR_CLASS_LABELS = {
    "hiragana": "hiragana",
    "katakana": "katakana",
    "halfwidth_katakana": "half-width katakana",
    "kanji": "kanji of the kanji inventory",
    "han": "Han characters outside the kanji inventory",
    "ja_punct": "Japanese punctuation and symbols",
    "fullwidth": "full-width letters and digits",
    "other": "letters of other scripts",
    "neutral": "other symbols and digits",
}


def _by(frame: pl.DataFrame, key: str, col: str = "round_trip") -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for k, v, cnt in frame.group_by([key, col]).len().sort([key, col]).iter_rows():  # sorted: group_by's order varies
        out.setdefault(k, {"tokens": 0})
        out[k]["tokens"] += int(cnt)
        out[k][v] = int(cnt)
    return out


def _class_order(c: str) -> tuple[int, str]:
    """Japanese classes in ``JA_CLASSES`` order (the order of the tables)."""
    return (JA_CLASSES.index(c) if c in JA_CLASSES else len(JA_CLASSES), c)


def cjk_fragment_ids(table: Any) -> list[int]:
    """Partial-UTF-8 tokens holding the lead byte of a U+3000..U+9FFF character (CJK punctuation,
    kana, ideographs): the byte pieces Japanese text breaks into. Tail-only fragments cannot be
    told apart from other scripts' and are not counted."""
    return [int(i) for i in np.flatnonzero(table.partial) if any(0xE3 <= x <= 0xE9 for x in table.bytes[i])]


def _foreign_han_tokens(frame: pl.DataFrame) -> int:
    """Text tokens left out of the Japanese classes for a Han character outside the kanji inventory."""
    rest = frame.filter((pl.col("ja_class") == "") & ~pl.col("kind").is_in(_NOT_TEXT))
    texts = (bytes.fromhex(h).decode("utf-8", "ignore") for h in rest["bytes_hex"].to_list())
    return sum(any(char_class(c) == "han" for c in t) for t in texts if not t.isascii())


def section(
    frame: pl.DataFrame,
    table: Any,
    encode_in_context: Encoder,
    encode: Callable[[str], list[int]],
    samples: dict[str, str] | None = None,
    top_k: int = 1000,
) -> dict:
    """The Japanese part of an audit: tokens per class (and their round-trip classes), character
    coverage of each inventory, fertility on the JA and EN samples, unreachable Japanese tokens and,
    when ``frame`` has a ``rank`` column with values, the Japanese tokens ranked in the top ``top_k``."""
    jf = frame.filter(pl.col("ja_class") != "")
    per = _by(jf, "ja_class")
    sample_name = "`anomtok/data/sample_ja.txt`" if samples is None else "the Japanese sample text"
    samples = samples if samples is not None else {lang: read_sample(lang) for lang in ("ja", "en")}
    inventories = inventory(samples.get("ja", ""))
    chars = sorted({c for v in inventories.values() for c in v})
    single: dict[str, list[int]] = {}
    for i, (b, k) in enumerate(zip(table.bytes, table.kinds)):
        if k not in _NOT_TEXT and 0 < len(b) <= 4:
            s = b.decode("utf-8", "ignore")
            if len(s) == 1 and len(s.encode("utf-8")) == len(b):
                single.setdefault(s, []).append(i)
    fragments = frozenset(np.flatnonzero(table.partial).tolist())
    unk = frozenset(i for i, k in enumerate(table.kinds) if k == "unknown")
    records = coverage(chars, encode_in_context, single, fragments, unk)
    cov = summarize_coverage(records, inventories)
    cov["all"]["label"] = f"all {len(chars):,} characters of these inventories together"
    is_single = {r["char"]: r["single"] for r in records}
    for name, v in cov["by_inventory"].items():
        v["label"] = inventory_label(name, v["chars"], sample_name)
        if v["chars"] <= _LIST_SINGLE:
            v["single_chars"] = "".join(c for c in inventories[name] if is_single[c])
    for name, v in cov["by_class"].items():
        v["label"] = f"class {name}: the {v['chars']:,} {_CHAR_CLASS_LABELS.get(name, name)} among all {len(chars):,}"
    costly = sorted((r for r in records if not r["single"]), key=lambda r: (-r["n_tokens"], r["char"]))
    fert = fertility(samples, encode, fragments, unk)
    if "ja" in fert and "en" in fert and fert["en"]["tokens_per_char"]:
        fert["ja_over_en_tokens_per_char"] = round(fert["ja"]["tokens_per_char"] / fert["en"]["tokens_per_char"], 3)
    bad = jf.filter(pl.col("round_trip").is_in(UNREACHABLE_CLASSES))
    bad_by = _by(bad, "ja_class")
    frag = cjk_fragment_ids(table)
    out: dict[str, Any] = {
        "tokens": jf.height,
        "tokens_by_class": {c: per[c] for c in JA_CLASSES if c in per},
        "foreign_han_tokens": _foreign_han_tokens(frame),
        "kanji_inventory": len(japanese_kanji()),
        "inventory": {k: len(v) for k, v in inventories.items()} | {"all": len(chars)},
        "coverage": cov,
        "costly_chars": costly[:40],
        "fertility": fert,
        "unreachable": {
            "count": bad.height,
            "by_class": {c: bad_by[c]["tokens"] for c in sorted(bad_by, key=_class_order)},
            "examples": bad.select("token_id", "token", "ja_class", "round_trip", "cause", "normalized")
            .head(30)
            .to_dicts(),
        },
        "undecodable_cjk_fragments": len(frag),
    }
    if "rank" in frame.columns and frame["rank"].null_count() < frame.height:
        top = frame.filter((pl.col("rank") <= top_k) & ((pl.col("ja_class") != "") | pl.col("token_id").is_in(frag)))
        top = top.sort("rank")
        out["top_ranked"] = {
            "top_k": top_k,
            "count": top.height,
            "tokens": top.select("rank", "token_id", "token", "ja_class", "round_trip", "kind").head(200).to_dicts(),
        }
    return out
