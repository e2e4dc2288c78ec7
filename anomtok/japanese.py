"""Japanese script classes, a Japanese character inventory, coverage and fertility.

Pure helpers: they take texts, or a function that encodes texts, never a model.

>>> ja_class("ひらがな"), ja_class("カタカナ"), ja_class("ｶﾀｶﾅ"), ja_class("漢字")
('hiragana', 'katakana', 'halfwidth_katakana', 'kanji')
>>> ja_class("、"), ja_class("ＡＢＣ"), ja_class("東京タワー"), ja_class(" 2026年"), ja_class("GPUの"), ja_class("abc")
('ja_punct', 'fullwidth', 'mixed', 'kanji', 'mixed', '')

Classes (``JA_CLASSES``): ``hiragana``, ``katakana``, ``halfwidth_katakana``, ``kanji`` (every Han
character: Chinese-only characters count too), ``ja_punct`` (the CJK symbols and punctuation block,
``・``, ``…``, ``‥``, ``※``, and full-/half-width punctuation), ``fullwidth`` (full-width Latin letters
and digits), ``mixed`` (two of these classes, or one with letters of another script); ``""`` when
the text has no Japanese character. Spaces, ASCII digits and ASCII punctuation are neutral; the
prolonged sound mark ``ー`` goes with any kana (alone it is katakana).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import polars as pl

from .errors import InputError
from .text import char_script

__all__ = [
    "JA_CLASSES", "ja_class", "char_class", "inventory", "joyo_kanji", "sample_path", "read_sample",
    "coverage", "summarize_coverage", "fertility", "section", "render_section", "KANA_RANGES",
]

JA_CLASSES = ("hiragana", "katakana", "halfwidth_katakana", "kanji", "ja_punct", "fullwidth", "mixed")

# Kana of the inventory: hiragana ぁ..ゖ ゝゞ, katakana ァ..ヺ ーヽヾ, half-width katakana ｦ..ﾟ.
KANA_RANGES = ((0x3041, 0x3096), (0x309D, 0x309E), (0x30A1, 0x30FA), (0x30FC, 0x30FE), (0xFF66, 0xFF9F))
_PROLONGED = "\u30fc"
_EXTRA_PUNCT = frozenset("\u30fb\u2026\u2025\u203b")  # ・ … ‥ ※


@functools.lru_cache(maxsize=100_000)
def char_class(ch: str) -> str:
    """Japanese class of one character (a class of ``JA_CLASSES`` but ``mixed``), ``other`` for a
    letter of another script, ``neutral`` for spaces, digits, ASCII punctuation and symbols."""
    cp = ord(ch)
    if 0x3041 <= cp <= 0x309F:
        return "hiragana"
    if cp == 0x30FB:
        return "ja_punct"
    if 0x30A0 <= cp <= 0x30FF or 0x31F0 <= cp <= 0x31FF:
        return "katakana"
    if 0xFF66 <= cp <= 0xFF9F:
        return "halfwidth_katakana"
    if 0xFF10 <= cp <= 0xFF19 or 0xFF21 <= cp <= 0xFF3A or 0xFF41 <= cp <= 0xFF5A:
        return "fullwidth"
    if cp == 0x3006 or char_script(ch) == "Han":  # 〆 is Common in Unicode, a kanji in use
        return "kanji"
    if 0x3000 <= cp <= 0x303F or 0xFF01 <= cp <= 0xFF65 or ch in _EXTRA_PUNCT:
        return "ja_punct"
    if ch.isalpha():
        return "other"
    return "neutral"


def ja_class(text: str) -> str:
    """Japanese class of a token's text (see the module docstring)."""
    if text.isascii():
        return ""
    found: set[str] = set()
    other = prolonged = False
    for ch in text:
        if ch == _PROLONGED:
            prolonged = True
            continue
        c = char_class(ch)
        if c == "other":
            other = True
        elif c != "neutral":
            found.add(c)
    if prolonged and not (found & {"hiragana", "katakana", "halfwidth_katakana"}):
        found.add("katakana")
    if not found:
        return ""
    if other or len(found) > 1:
        return "mixed"
    return found.pop()


# ---------------------------------------------------------------------------------- inventory
def joyo_kanji() -> tuple[str, ...]:
    """The 2,136 Jōyō kanji from the ``kanji-lists`` package when it is installed, else ``()``."""
    try:
        from kanji_lists import JOYO
    except ImportError:
        return ()
    return tuple(sorted(JOYO))


def sample_path(lang: str) -> Path:
    """The packaged sample text ``anomtok/data/sample_{lang}.txt``."""
    from .resources import data_file

    return data_file(f"sample_{lang}.txt")


def read_sample(lang: str) -> str:
    return sample_path(lang).read_text(encoding="utf-8")


def inventory(sample: str | None = None, joyo: Sequence[str] | None = None) -> dict[str, list[str]]:
    """Characters to check, by origin: ``sample`` (every character of the Japanese sample text but
    ASCII and control characters), ``kana`` (``KANA_RANGES``), ``joyo`` (the Jōyō kanji; empty when
    no package provides the list). A character is listed once, under its first origin."""
    text = read_sample("ja") if sample is None else sample
    joyo = joyo_kanji() if joyo is None else tuple(joyo)
    seen: set[str] = set()
    out: dict[str, list[str]] = {"sample": [], "kana": [], "joyo": []}
    sample_chars = sorted({c for c in text if not c.isascii() and c.isprintable()})
    kana = [chr(cp) for lo, hi in KANA_RANGES for cp in range(lo, hi + 1)]
    for origin, chars in (("sample", sample_chars), ("kana", kana), ("joyo", sorted(joyo))):
        for c in chars:
            if c not in seen:
                seen.add(c)
                out[origin].append(c)
    return out


# ---------------------------------------------------------------------------------- measures
Encoder = Callable[[list[str]], list[list[int]]]


def coverage(chars: Sequence[str], encode: Encoder, single_char_ids: dict[str, list[int]],
             fragment_ids: frozenset[int] = frozenset(), unk_ids: frozenset[int] = frozenset()) -> list[dict]:
    """One record per character: ``in_vocab`` (a non-special token spells exactly this character),
    ``n_tokens`` (tokens the tokenizer spends on it, in a neutral context), ``single`` (one token,
    not the unknown token),
    ``byte_pieces`` (the encoding uses tokens that are not whole characters: byte-fallback pieces
    or byte-level fragments), ``unk`` (it uses the unknown token), ``class``.

    >>> enc = lambda texts: [[1] if t == "あ" else [7, 8, 9] for t in texts]
    >>> [r["n_tokens"] for r in coverage(["あ", "𠮷"], enc, {"あ": [1]}, frozenset({7, 8, 9}))]
    [1, 3]
    """
    ids = encode(list(chars))
    out = []
    for ch, got in zip(chars, ids):
        out.append({
            "char": ch, "codepoint": f"U+{ord(ch):04X}", "class": ja_class(ch) or "other",
            "in_vocab": bool(single_char_ids.get(ch)), "n_tokens": len(got),
            "single": len(got) == 1 and got[0] not in unk_ids,
            "byte_pieces": any(i in fragment_ids for i in got), "unk": any(i in unk_ids for i in got),
        })
    return out


def summarize_coverage(records: list[dict], origins: dict[str, list[str]]) -> dict:
    """Counts per origin and per class: chars, single-token, in vocabulary, byte pieces, unk,
    and the histogram of token costs."""
    by_char = {r["char"]: r for r in records}

    def stats(chars: list[str]) -> dict:
        rs = [by_char[c] for c in chars if c in by_char]
        hist: dict[str, int] = {}
        for r in rs:
            key = str(r["n_tokens"]) if r["n_tokens"] < 4 else "4+"
            hist[key] = hist.get(key, 0) + 1
        n = len(rs)
        single = sum(r["single"] for r in rs)
        return {"chars": n, "single_token": single, "single_token_pct": round(100 * single / n, 2) if n else None,
                "in_vocab": sum(r["in_vocab"] for r in rs), "byte_pieces": sum(r["byte_pieces"] for r in rs),
                "unk": sum(r["unk"] for r in rs), "mean_tokens": round(sum(r["n_tokens"] for r in rs) / n, 3) if n else None,
                "tokens_histogram": dict(sorted(hist.items()))}

    classes: dict[str, list[str]] = {}
    for r in records:
        classes.setdefault(r["class"], []).append(r["char"])
    all_chars = [r["char"] for r in records]
    return {"all": stats(all_chars), "by_origin": {k: stats(v) for k, v in origins.items() if v},
            "by_class": {k: stats(v) for k, v in sorted(classes.items())}}


def fertility(texts: dict[str, str], encode: Callable[[str], list[int]],
              fragment_ids: frozenset[int] = frozenset(), unk_ids: frozenset[int] = frozenset()) -> dict[str, dict]:
    """Tokens per character and per UTF-8 byte of each text, with the byte pieces (tokens that are
    not whole characters) and unknown tokens among them.

    >>> fertility({"en": "abcd"}, lambda t: [1, 2])["en"]["tokens_per_char"]
    0.5
    """
    out = {}
    for name, text in texts.items():
        ids = encode(text)
        n_chars, n_bytes = len(text), len(text.encode("utf-8"))
        out[name] = {
            "chars": n_chars, "bytes": n_bytes, "tokens": len(ids),
            "tokens_per_char": round(len(ids) / n_chars, 4) if n_chars else None,
            "tokens_per_byte": round(len(ids) / n_bytes, 4) if n_bytes else None,
            "chars_per_token": round(n_chars / len(ids), 4) if ids else None,
            "byte_piece_tokens": sum(i in fragment_ids for i in ids),
            "unk_tokens": sum(i in unk_ids for i in ids),
        }
    return out


# ---------------------------------------------------------------------------------- audit section
_NOT_TEXT = ("special", "unused", "unknown", "padding")
_BAD = ("unreachable-single", "unreachable-multi", "unreachable-empty", "error")


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


def section(frame: pl.DataFrame, table: Any, encode_in_context: Encoder, encode: Callable[[str], list[int]],
            samples: dict[str, str] | None = None, top_k: int = 1000) -> dict:
    """The Japanese part of an audit: tokens per class (and their round-trip classes), character
    coverage of the inventory, fertility on the JA and EN samples, unreachable Japanese tokens and,
    when ``frame`` has a ``rank`` column with values, the Japanese tokens ranked in the top ``top_k``."""
    jf = frame.filter(pl.col("ja_class") != "")
    per = _by(jf, "ja_class")
    samples = samples if samples is not None else {lang: read_sample(lang) for lang in ("ja", "en")}
    origins = inventory(samples.get("ja", ""))
    chars = [c for v in origins.values() for c in v]
    single: dict[str, list[int]] = {}
    for i, (b, k) in enumerate(zip(table.bytes, table.kinds)):
        if k not in _NOT_TEXT and 0 < len(b) <= 4:
            s = b.decode("utf-8", "ignore")
            if len(s) == 1 and len(s.encode("utf-8")) == len(b):
                single.setdefault(s, []).append(i)
    fragments = frozenset(np.flatnonzero(table.partial).tolist())
    unk = frozenset(i for i, k in enumerate(table.kinds) if k == "unknown")
    records = coverage(chars, encode_in_context, single, fragments, unk)
    costly = sorted((r for r in records if not r["single"]), key=lambda r: (-r["n_tokens"], r["char"]))
    fert = fertility(samples, encode, fragments, unk)
    if "ja" in fert and "en" in fert and fert["en"]["tokens_per_char"]:
        fert["ja_over_en_tokens_per_char"] = round(fert["ja"]["tokens_per_char"] / fert["en"]["tokens_per_char"], 3)
    bad = jf.filter(pl.col("round_trip").is_in(_BAD))
    frag = cjk_fragment_ids(table)
    inv = set(chars)
    kanji = jf.filter(pl.col("ja_class") == "kanji")["bytes_hex"].to_list()
    out: dict[str, Any] = {
        "tokens": jf.height,
        "tokens_by_class": {c: per[c] for c in JA_CLASSES if c in per},
        "kanji_tokens_within_inventory": sum(
            all(c in inv for c in bytes.fromhex(h).decode("utf-8", "ignore").strip()) for h in kanji),
        "inventory": {k: len(v) for k, v in origins.items()} | {"joyo_source": "kanji-lists" if origins["joyo"] else None},
        "coverage": summarize_coverage(records, origins),
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


def _pct(a: int | None, b: int | None) -> str:
    return f"{100 * a / b:.1f}%" if a is not None and b else "-"


def render_section(sec: dict, code: Callable[[str], str]) -> list[str]:
    """Markdown lines of the Japanese section (``code`` renders a token safely)."""
    lines = ["## Japanese", ""]
    lines += ["Tokens per Japanese class (`kanji` counts every Han token, Chinese-only ones too; "
              f"{sec['kanji_tokens_within_inventory']:,} kanji tokens use only inventory characters):", "",
              "| class | tokens | reachable | unreachable | undecodable |", "|---|---:|---:|---:|---:|"]
    for c, v in sec["tokens_by_class"].items():
        unr = sum(v.get(k, 0) for k in _BAD)
        lines.append(f"| {c} | {v['tokens']:,} | {v.get('reachable', 0):,} | {unr:,} | {v.get('undecodable', 0):,} |")
    lines.append(f"| **all** | {sec['tokens']:,} | | {sec['unreachable']['count']:,} | |")
    inv, cov = sec["inventory"], sec["coverage"]
    joyo = f"{inv['joyo']:,} more Jōyō kanji (package {inv['joyo_source']})" if inv["joyo_source"] else "no Jōyō list (install `kanji-lists`)"
    lines += ["", f"### Character coverage", "",
              f"Inventory: {inv['sample']:,} characters of `anomtok/data/sample_ja.txt` (all but ASCII), {inv['kana']:,} more kana, {joyo}. "
              "A character is *single* when encoding it mid-text gives one token.", "",
              "| characters | count | single token | in vocabulary | mean tokens | byte pieces | tokens: 1 / 2 / 3 / 4+ |",
              "|---|---:|---:|---:|---:|---:|---|"]
    rows = [("all", cov["all"])] + [(f"origin: {k}", v) for k, v in cov["by_origin"].items()] + \
           [(f"class: {k}", v) for k, v in cov["by_class"].items()]
    for name, v in rows:
        h = v["tokens_histogram"]
        hist = " / ".join(str(h.get(k, 0)) for k in ("1", "2", "3", "4+"))
        lines.append(f"| {name} | {v['chars']:,} | {v['single_token']:,} ({v['single_token_pct']}%) | {v['in_vocab']:,} | "
                     f"{v['mean_tokens']} | {v['byte_pieces']:,} | {hist} |")
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
