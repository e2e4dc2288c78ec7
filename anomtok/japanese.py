"""Japanese script classes, Japanese character inventories, coverage and fertility.

Pure helpers: they take texts, or a function that encodes texts, never a model. ``ja_class`` is the
one Japanese classifier of anomtok: the audit, the map's Japanese selection and its Japanese view all
use it.

>>> ja_class("ひらがな"), ja_class("カタカナ"), ja_class("ｶﾀｶﾅ"), ja_class("漢字"), ja_class("〆")
('hiragana', 'katakana', 'halfwidth_katakana', 'kanji', 'kanji')
>>> ja_class("、"), ja_class("１２"), ja_class("ー"), ja_class("東京タワー"), ja_class("AIモデル")
('ja_punct', 'fullwidth', 'katakana', 'mixed', 'mixed')
>>> ja_class("这"), ja_class("一个"), ja_class("中国证券投资基金业协会"), ja_class("abc")
('', '', '', '')

Classes (``JA_CLASSES``):

* ``hiragana``, ``katakana`` (with ``ー`` and the katakana extensions), ``halfwidth_katakana``;
* ``kanji``: Han characters of the kanji inventory only (``japanese_kanji``, the kanji in common
  Japanese use: the level-1 kanji of JIS X 0208, the Jōyō and the Jinmeiyō kanji, and 々 〆 〇 仝).
  A token of such kanji and no kana may as well be Chinese (中国, 会社): the tokenizer cannot tell;
* ``ja_punct``: the CJK symbols and punctuation block, ``・ … ‥ ※``, full- and half-width punctuation;
* ``fullwidth``: full-width Latin letters and digits (``ＡＢＣ``, ``１２``);
* ``mixed``: two of these classes (``東京タワー``), or one with letters of another script
  (``AIモデル``: Latin and katakana);
* ``""``: no Japanese character, or a Han character outside the kanji inventory (simplified-only
  ``这``, ``们``, ``个``; rare kanji such as ``薔``) and no kana: such a token is not counted as
  Japanese, even when it also holds kanji (``一个``). With kana it is ``mixed``.

Spaces, ASCII digits, ASCII punctuation and other symbols are neutral. The prolonged sound mark
``ー`` goes with any kana (``すごーい`` is hiragana); alone, or with kanji only, it is katakana.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path

from .text import char_script

__all__ = [
    "JA_CLASSES",
    "ja_class",
    "char_class",
    "japanese_kanji",
    "jis_x0208_kanji",
    "joyo_kanji",
    "jinmeiyo_kanji",
    "BASIC_HIRAGANA",
    "BASIC_KATAKANA",
    "KANA_RANGES",
    "INVENTORIES",
    "inventory",
    "inventory_label",
    "sample_path",
    "read_sample",
    "coverage",
    "summarize_coverage",
    "fertility",
]

JA_CLASSES = ("hiragana", "katakana", "halfwidth_katakana", "kanji", "ja_punct", "fullwidth", "mixed")
_KANA = frozenset({"hiragana", "katakana", "halfwidth_katakana"})

#: The 46 basic hiragana (the gojūon table and ん, no small, voiced or obsolete forms), and katakana.
BASIC_HIRAGANA = "あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわをん"
BASIC_KATAKANA = "".join(chr(ord(c) + 0x60) for c in BASIC_HIRAGANA)
# Kana inventories: hiragana ぁ..ゖ ゝゞ, katakana ァ..ヺ ーヽヾ, half-width katakana ｦ..ﾟ.
KANA_RANGES = {
    "hiragana": ((0x3041, 0x3096), (0x309D, 0x309E)),
    "katakana": ((0x30A1, 0x30FA), (0x30FC, 0x30FE)),
    "halfwidth_katakana": ((0xFF66, 0xFF9F),),
}
_PROLONGED = "\u30fc"
_SHIME = "\u3006"  # 〆: Common in Unicode, a kanji in use
_EXTRA_PUNCT = frozenset("\u30fb\u2026\u2025\u203b")  # ・ … ‥ ※


# ---------------------------------------------------------------------------------- kanji in use
def _jis_row(row: int) -> list[str]:
    """The characters of one row (ku) of JIS X 0208, decoded by Python's ``iso2022_jp`` codec (which
    encodes exactly ASCII, JIS X 0201 Roman and JIS X 0208).

    >>> _jis_row(16)[:5], len(_jis_row(47))
    (['亜', '唖', '娃', '阿', '哀'], 51)
    """
    out = []
    for cell in range(1, 95):
        try:
            out.append(bytes([0x1B, 0x24, 0x42, 0x20 + row, 0x20 + cell]).decode("iso2022_jp"))
        except UnicodeDecodeError:
            pass
    return out


@functools.cache
def jis_x0208_kanji(level: int = 1) -> frozenset[str]:
    """The 2,965 level-1 kanji of JIS X 0208 (rows 16–47, the kanji of common use), or the 3,390
    of level 2 (rows 48–84, rarer ones by radical; Chinese 个 and 很 are there too).

    >>> len(jis_x0208_kanji(1)), len(jis_x0208_kanji(2)), "个" in jis_x0208_kanji(2)
    (2965, 3390, True)
    """
    rows = range(16, 48) if level == 1 else range(48, 85)
    return frozenset(c for r in rows for c in _jis_row(r))


@functools.lru_cache(maxsize=1)
def joyo_kanji() -> tuple[str, ...]:
    """The 2,136 Jōyō kanji (2010), from the ``kanji-lists`` package."""
    from kanji_lists import JOYO

    return tuple(sorted(JOYO))


@functools.lru_cache(maxsize=1)
def jinmeiyo_kanji() -> tuple[str, ...]:
    """The Jinmeiyō kanji (kanji for personal names, not Jōyō), from the ``kanji-lists`` package."""
    from kanji_lists import JINMEIYO

    return tuple(sorted(JINMEIYO))


@functools.lru_cache(maxsize=1)
def japanese_kanji() -> frozenset[str]:
    """The kanji inventory (3,299 characters): the kanji in common Japanese use, i.e. the level-1
    kanji of JIS X 0208, the Jōyō and the Jinmeiyō kanji, and the Han marks of JIS X 0208 row 1
    (々 〆 〇 仝). Simplified-only characters (这 们 个) are not in it, and neither are rarer kanji
    (level 2 of JIS X 0208 such as 薔, where Chinese 个 and 很 are too; the non-BMP 𠮷; 﨑).

    >>> k = japanese_kanji()
    >>> [c in k for c in "東京国会々〆这们个"]
    [True, True, True, True, True, True, False, False, False]
    """
    marks = {c for c in _jis_row(1) if c == _SHIME or char_script(c) == "Han"}
    return jis_x0208_kanji(1) | frozenset(joyo_kanji()) | frozenset(jinmeiyo_kanji()) | marks


# ---------------------------------------------------------------------------------- classes
@functools.lru_cache(maxsize=100_000)
def char_class(ch: str) -> str:
    """Japanese class of one character (a class of ``JA_CLASSES`` but ``mixed``), ``han`` for a Han
    character outside the kanji inventory, ``other`` for a letter of another script, ``neutral`` for
    spaces, digits, ASCII punctuation and symbols.

    >>> [char_class(c) for c in "の ア ｱ 東 这 、 １ a ①".split()]
    ['hiragana', 'katakana', 'halfwidth_katakana', 'kanji', 'han', 'ja_punct', 'fullwidth', 'other', 'neutral']
    """
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
    if ch == _SHIME or char_script(ch) == "Han":
        return "kanji" if ch in japanese_kanji() else "han"
    if 0x3000 <= cp <= 0x303F or 0xFF01 <= cp <= 0xFF65 or ch in _EXTRA_PUNCT:
        return "ja_punct"
    if ch.isalpha():
        return "other"
    return "neutral"


def ja_class(text: str) -> str:
    """Japanese class of a token's text (see the module docstring); ``""`` when not Japanese.

    >>> ja_class("すごーい"), ja_class(" 2026年"), ja_class("GPUの"), ja_class("这の"), ja_class("東ー")
    ('hiragana', 'kanji', 'mixed', 'mixed', 'mixed')
    """
    if text.isascii():
        return ""
    found: set[str] = set()
    other = han = prolonged = False
    for ch in text:
        if ch == _PROLONGED:
            prolonged = True
            continue
        c = char_class(ch)
        if c == "other":
            other = True
        elif c == "han":
            han = True
        elif c != "neutral":
            found.add(c)
    if han and not found & _KANA:
        return ""
    if prolonged and not found & _KANA:
        found.add("katakana")
    if not found:
        return ""
    if other or han or len(found) > 1:
        return "mixed"
    return found.pop()


# ---------------------------------------------------------------------------------- inventories
#: What each inventory is (``inventory_label`` puts the count in front).
INVENTORIES = {
    "sample": "distinct non-ASCII characters of {sample}",
    "hiragana_basic": "basic hiragana (あ … ん: the gojūon and ん, no small or voiced forms)",
    "katakana_basic": "basic katakana (ア … ン: the gojūon and ン, no small or voiced forms)",
    "hiragana": "hiragana (U+3041–U+3096 and ゝ ゞ: small and voiced forms included)",
    "katakana": "katakana (U+30A1–U+30FA and ー ヽ ヾ: small and voiced forms included)",
    "halfwidth_katakana": "half-width katakana (U+FF66–U+FF9F)",
    "joyo": "Jōyō kanji (package kanji-lists)",
}


def inventory_label(name: str, n: int, sample: str = "the Japanese sample") -> str:
    """What an inventory is, with its size.

    >>> inventory_label("hiragana_basic", 46)
    'the 46 basic hiragana (あ … ん: the gojūon and ん, no small or voiced forms)'
    """
    return f"the {n:,} " + INVENTORIES[name].format(sample=sample)


def sample_path(lang: str) -> Path:
    """The packaged sample text ``anomtok/data/sample_{lang}.txt``."""
    from .resources import data_file

    return data_file(f"sample_{lang}.txt")


def read_sample(lang: str) -> str:
    return sample_path(lang).read_text(encoding="utf-8")


def inventory(sample: str | None = None, joyo: Sequence[str] | None = None) -> dict[str, list[str]]:
    """The character inventories by name (``INVENTORIES``), each complete and sorted: they overlap
    (の is in ``sample``, ``hiragana_basic`` and ``hiragana``). ``sample``: every printable
    non-ASCII character of the Japanese sample text; ``joyo``: the Jōyō kanji.

    >>> inv = inventory("の東", joyo=["東", "京"])
    >>> inv["sample"], inv["joyo"], len(inv["hiragana_basic"]), len(inv["hiragana"]), len(inv["katakana"])
    (['の', '東'], ['京', '東'], 46, 88, 93)
    """
    text = read_sample("ja") if sample is None else sample
    out = {
        "sample": sorted({c for c in text if not c.isascii() and c.isprintable()}),
        "hiragana_basic": sorted(BASIC_HIRAGANA),
        "katakana_basic": sorted(BASIC_KATAKANA),
    }
    for name, ranges in KANA_RANGES.items():
        out[name] = [chr(cp) for lo, hi in ranges for cp in range(lo, hi + 1)]
    out["joyo"] = sorted(joyo_kanji() if joyo is None else set(joyo))
    return out


# ---------------------------------------------------------------------------------- measures
Encoder = Callable[[list[str]], list[list[int]]]


def coverage(
    chars: Sequence[str],
    encode: Encoder,
    single_char_ids: dict[str, list[int]],
    fragment_ids: frozenset[int] = frozenset(),
    unk_ids: frozenset[int] = frozenset(),
) -> list[dict]:
    """One record per character: ``in_vocab`` (a non-special token spells exactly this character),
    ``n_tokens`` (tokens the tokenizer spends on it, in a neutral context), ``single`` (one token,
    not the unknown token),
    ``byte_pieces`` (the encoding uses tokens that are not whole characters: byte-fallback pieces
    or byte-level fragments), ``unk`` (it uses the unknown token), ``class`` (``char_class``).

    >>> enc = lambda texts: [[1] if t == "あ" else [7, 8, 9] for t in texts]
    >>> [r["n_tokens"] for r in coverage(["あ", "𠮷"], enc, {"あ": [1]}, frozenset({7, 8, 9}))]
    [1, 3]
    """
    ids = encode(list(chars))
    out = []
    for ch, got in zip(chars, ids):
        out.append(
            {
                "char": ch,
                "codepoint": f"U+{ord(ch):04X}",
                "class": char_class(ch),
                "in_vocab": bool(single_char_ids.get(ch)),
                "n_tokens": len(got),
                "single": len(got) == 1 and got[0] not in unk_ids,
                "byte_pieces": any(i in fragment_ids for i in got),
                "unk": any(i in unk_ids for i in got),
            }
        )
    return out


def summarize_coverage(records: list[dict], inventories: dict[str, list[str]]) -> dict:
    """Counts for every record (``all``), per inventory and per character class: chars,
    single-token, in vocabulary, byte pieces, unk, and the histogram of token costs."""
    by_char = {r["char"]: r for r in records}

    def stats(chars: list[str]) -> dict:
        rs = [by_char[c] for c in chars if c in by_char]
        hist: dict[str, int] = {}
        for r in rs:
            key = str(r["n_tokens"]) if r["n_tokens"] < 4 else "4+"
            hist[key] = hist.get(key, 0) + 1
        n = len(rs)
        single = sum(r["single"] for r in rs)
        return {
            "chars": n,
            "single_token": single,
            "single_token_pct": round(100 * single / n, 2) if n else None,
            "in_vocab": sum(r["in_vocab"] for r in rs),
            "byte_pieces": sum(r["byte_pieces"] for r in rs),
            "unk": sum(r["unk"] for r in rs),
            "mean_tokens": round(sum(r["n_tokens"] for r in rs) / n, 3) if n else None,
            "tokens_histogram": dict(sorted(hist.items())),
        }

    classes: dict[str, list[str]] = {}
    for r in records:
        classes.setdefault(r["class"], []).append(r["char"])
    return {
        "all": stats([r["char"] for r in records]),
        "by_inventory": {k: stats(v) for k, v in inventories.items() if v},
        "by_class": {k: stats(v) for k, v in sorted(classes.items())},
    }


def fertility(
    texts: dict[str, str],
    encode: Callable[[str], list[int]],
    fragment_ids: frozenset[int] = frozenset(),
    unk_ids: frozenset[int] = frozenset(),
) -> dict[str, dict]:
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
            "chars": n_chars,
            "bytes": n_bytes,
            "tokens": len(ids),
            "tokens_per_char": round(len(ids) / n_chars, 4) if n_chars else None,
            "tokens_per_byte": round(len(ids) / n_bytes, 4) if n_bytes else None,
            "chars_per_token": round(n_chars / len(ids), 4) if ids else None,
            "byte_piece_tokens": sum(i in fragment_ids for i in ids),
            "unk_tokens": sum(i in unk_ids for i in ids),
        }
    return out
