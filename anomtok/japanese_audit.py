"""The Japanese section of a tokenizer audit (``anomtok.audit``): Japanese tokens per class
(``anomtok.japanese.ja_class``), character coverage of each inventory, fertility on the samples,
unreachable Japanese tokens and the Japanese tokens high in the embedding ranking."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import polars as pl

from .japanese import (JA_CLASSES, Encoder, char_class, coverage, fertility, inventory, inventory_label, japanese_kanji,
                       read_sample, summarize_coverage)

__all__ = ["section", "render_section", "cjk_fragment_ids"]

_NOT_TEXT = ("special", "unused", "unknown", "padding")
_BAD = ("unreachable-single", "unreachable-multi", "unreachable-empty", "error")
_LIST_SINGLE = 100  # inventories this small list their single-token characters
_CHAR_CLASS_LABELS = {"hiragana": "hiragana", "katakana": "katakana", "halfwidth_katakana": "half-width katakana",
                      "kanji": "kanji of the kanji inventory", "han": "Han characters outside the kanji inventory",
                      "ja_punct": "Japanese punctuation and symbols", "fullwidth": "full-width letters and digits",
                      "other": "letters of other scripts", "neutral": "other symbols and digits"}


def _by(frame: pl.DataFrame, key: str, col: str = "round_trip") -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for k, v, cnt in frame.group_by([key, col]).len().iter_rows():
        out.setdefault(k, {"tokens": 0})
        out[k]["tokens"] += int(cnt)
        out[k][v] = int(cnt)
    return out


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


def section(frame: pl.DataFrame, table: Any, encode_in_context: Encoder, encode: Callable[[str], list[int]],
            samples: dict[str, str] | None = None, top_k: int = 1000) -> dict:
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
    bad = jf.filter(pl.col("round_trip").is_in(_BAD))
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
        "unreachable": {"count": bad.height, "by_class": {k: v["tokens"] for k, v in _by(bad, "ja_class").items()},
                        "examples": bad.select("token_id", "token", "ja_class", "round_trip", "cause", "normalized").head(30).to_dicts()},
        "undecodable_cjk_fragments": len(frag),
    }
    if "rank" in frame.columns and frame["rank"].null_count() < frame.height:
        top = frame.filter((pl.col("rank") <= top_k) & ((pl.col("ja_class") != "") | pl.col("token_id").is_in(frag)))
        top = top.sort("rank")
        out["top_ranked"] = {"top_k": top_k, "count": top.height,
                             "tokens": top.select("rank", "token_id", "token", "ja_class", "round_trip", "kind").head(200).to_dicts()}
    return out


def render_section(sec: dict, code: Callable[[str], str]) -> list[str]:
    """Markdown lines of the Japanese section (``code`` renders a token safely)."""
    lines = ["## Japanese", ""]
    lines += ["Tokens per Japanese class (`anomtok.japanese.ja_class`). `kanji` tokens hold only characters of the "
              f"kanji inventory (the {sec['kanji_inventory']:,} kanji in common Japanese use: JIS X 0208 level 1, Jōyō, "
              "Jinmeiyō, 々〆〇仝) "
              "and may be Chinese too; the "
              f"{sec['foreign_han_tokens']:,} tokens with a Han character outside it (Chinese-only 这, or a rare kanji) "
              "and no kana are not counted as Japanese.", "",
              "| class | tokens | reachable | unreachable | undecodable |", "|---|---:|---:|---:|---:|"]
    for c, v in sec["tokens_by_class"].items():
        unr = sum(v.get(k, 0) for k in _BAD)
        lines.append(f"| {c} | {v['tokens']:,} | {v.get('reachable', 0):,} | {unr:,} | {v.get('undecodable', 0):,} |")
    lines.append(f"| **all** | {sec['tokens']:,} | | {sec['unreachable']['count']:,} | |")
    cov = sec["coverage"]
    lines += ["", "### Character coverage", "",
              "Each row is one inventory of characters, complete (the inventories overlap); the class rows split "
              f"{cov['all']['label']} by `char_class`. A character is *single* when encoding it mid-text gives one "
              "token that is not the unknown token.", "",
              "| characters | count | single token | in vocabulary | mean tokens | byte pieces | tokens: 1 / 2 / 3 / 4+ |",
              "|---|---:|---:|---:|---:|---:|---|"]
    for v in [cov["all"], *cov["by_inventory"].values(), *cov["by_class"].values()]:
        h = v["tokens_histogram"]
        hist = " / ".join(str(h.get(k, 0)) for k in ("1", "2", "3", "4+"))
        lines.append(f"| {v['label']} | {v['chars']:,} | {v['single_token']:,} ({v['single_token_pct']}%) | "
                     f"{v['in_vocab']:,} | {v['mean_tokens']} | {v['byte_pieces']:,} | {hist} |")
    listed = [v for v in cov["by_inventory"].values() if "single_chars" in v]
    if listed:
        lines += [""] + [f"- One token among {v['label']}: {' '.join(code(c) for c in v['single_chars']) or 'none'}"
                         for v in listed]
    if sec["costly_chars"]:
        lines += ["", "Characters that are not one token (costliest first): " + ", ".join(
            f"{code(r['char'])} {r['codepoint']} = {r['n_tokens']}{' (unknown)' if r['unk'] else ''}"
            for r in sec["costly_chars"][:20])]
    f = sec["fertility"]
    if "ja" in f and "en" in f:
        lines += ["", "### Fertility", "", "| | Japanese sample | English sample |", "|---|---:|---:|"]
        for key, label in (("chars", "characters"), ("bytes", "UTF-8 bytes"), ("tokens", "tokens"),
                           ("tokens_per_char", "tokens per character"), ("tokens_per_byte", "tokens per byte"),
                           ("chars_per_token", "characters per token"), ("byte_piece_tokens", "byte-piece tokens"),
                           ("unk_tokens", "unknown tokens")):
            a, b = f["ja"][key], f["en"][key]
            fmt = (lambda x: f"{x:,}") if isinstance(a, int) else (lambda x: f"{x}")
            lines.append(f"| {label} | {fmt(a)} | {fmt(b)} |")
        if "ja_over_en_tokens_per_char" in f:
            lines += ["", f"Japanese costs {f['ja_over_en_tokens_per_char']}x the tokens per character of English."]
    u = sec["unreachable"]
    lines += ["", "### Unreachable and undecodable Japanese tokens", "",
              f"{u['count']:,} Japanese tokens are unreachable ({', '.join(f'{k}: {v:,}' for k, v in u['by_class'].items()) or 'none'}); "
              f"{sec['undecodable_cjk_fragments']:,} undecodable byte pieces hold the lead byte of a kana/CJK character."]
    if u["examples"]:
        lines += ["", "| id | token | class | round trip | cause | normalized |", "|---:|---|---|---|---|---|"]
        lines += [f"| {r['token_id']} | {code(r['token'])} | {r['ja_class']} | {r['round_trip']} | {r['cause']} | "
                  f"{code(r['normalized']) if r['normalized'] else ''} |" for r in u["examples"][:20]]
    if "top_ranked" in sec:
        t = sec["top_ranked"]
        lines += ["", f"### Japanese tokens in the top {t['top_k']:,} of the embedding ranking", "",
                  f"{t['count']:,} Japanese tokens (or kana/CJK byte pieces) rank in the top {t['top_k']:,}."]
        if t["tokens"]:
            lines += ["", "| rank | id | token | class | round trip | kind |", "|---:|---:|---|---|---|---|"]
            lines += [f"| {r['rank']} | {r['token_id']} | {code(r['token'])} | {r['ja_class'] or 'fragment'} | "
                      f"{r['round_trip']} | {r['kind']} |" for r in t["tokens"][:50]]
    return lines + [""]
