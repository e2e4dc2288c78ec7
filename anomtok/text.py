"""Byte-level helpers for token strings: exact bytes, a display form safe to print, Unicode script.

Token strings are untrusted: they may hold control characters, bidi overrides, zero-width
characters and byte sequences that are not valid UTF-8 on their own. Everything here is pure.

>>> display(b"\\xe6\\x97")            # first two bytes of a three-byte character
'\\\\xe6\\\\x97'
>>> display("a\\u202eb".encode())      # a right-to-left override is escaped, not obeyed
'a\\\\u202eb'
>>> token_script("トークン")
'Katakana'
>>> spreadsheet_safe("=SUM(A1)")
"'=SUM(A1)"
"""

from __future__ import annotations

import functools
import unicodedata

import regex

__all__ = [
    "byte_level_decoder",
    "display",
    "is_partial_utf8",
    "char_script",
    "token_script",
    "spreadsheet_safe",
    "SCRIPTS",
]


@functools.lru_cache(maxsize=1)
def byte_level_decoder() -> dict[str, int]:
    """Map of GPT-2 byte-level BPE characters (``Ġ`` = space, ``Ċ`` = newline, ...) to byte values.

    GPT-2 shows each byte as a printable character: printable Latin-1 bytes stand for themselves,
    the 68 others are shifted to U+0100 and up, in byte order.
    """
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    mapping = {chr(b): b for b in keep}
    shift = 0
    for b in range(256):
        if b not in mapping.values():
            mapping[chr(256 + shift)] = b
            shift += 1
    return mapping


# Characters escaped in the display form besides the C0/C1 controls: every format character
# (category Cf: bidi overrides and isolates, zero-width joiners, BOM, soft hyphen, ...), line and
# paragraph separators, private use, unassigned code points and the replacement character.
_ESCAPED_CATEGORIES = {"Cc", "Cf", "Zl", "Zp", "Co", "Cn", "Cs"}
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


@functools.lru_cache(maxsize=65536)
def _display_char(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    cp = ord(ch)
    if 0xDC80 <= cp <= 0xDCFF:  # a byte that is not part of valid UTF-8 (surrogateescape)
        return f"\\x{cp - 0xDC00:02x}"
    if unicodedata.category(ch) in _ESCAPED_CATEGORIES or ch == "\ufffd":
        return f"\\x{cp:02x}" if cp < 0x100 else (f"\\u{cp:04x}" if cp < 0x10000 else f"\\U{cp:08x}")
    return ch


_NEEDS_ESCAPE = regex.compile(r"[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Co}\p{Cn}\p{Cs}\ufffd]")


def display(data: bytes) -> str:
    """A one-line, printable, non-reordering rendering of arbitrary token bytes.

    Invalid UTF-8 bytes become ``\\xNN``; control, format (bidi, zero-width), separator, private
    and unassigned characters become ``\\n``, ``\\xNN``, ``\\uNNNN``. Everything else is kept.
    """
    text = data.decode("utf-8", errors="surrogateescape")
    if _NEEDS_ESCAPE.search(text) is None:
        return text
    return "".join(_display_char(ch) for ch in text)


def is_partial_utf8(data: bytes) -> bool:
    """True when ``data`` is not valid UTF-8 on its own (a fragment of a multi-byte character)."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


# Scripts we name, in the order they are tested. Characters of any other script are reported
# by Unicode's own script name when ``regex`` knows it (see ``char_script``).
SCRIPTS = (
    "Latin",
    "Cyrillic",
    "Greek",
    "Han",
    "Hiragana",
    "Katakana",
    "Hangul",
    "Arabic",
    "Hebrew",
    "Devanagari",
    "Bengali",
    "Gurmukhi",
    "Gujarati",
    "Oriya",
    "Tamil",
    "Telugu",
    "Kannada",
    "Malayalam",
    "Sinhala",
    "Thai",
    "Lao",
    "Tibetan",
    "Myanmar",
    "Khmer",
    "Georgian",
    "Armenian",
    "Ethiopic",
    "Mongolian",
    "Syriac",
    "Thaana",
    "Cherokee",
    "Canadian_Aboriginal",
    "Bopomofo",
    "Yi",
    "Javanese",
    "Balinese",
    "Tifinagh",
    "Vai",
    "Adlam",
    "Nko",
    "Ol_Chiki",
    "Braille",
)
_SCRIPT_RE = regex.compile("|".join(f"(?P<{s}>\\p{{Script={s}}})" for s in SCRIPTS))
_INHERITED_RE = regex.compile(r"\p{Script=Inherited}")
_COMMON_RE = regex.compile(r"\p{Script=Common}")


@functools.lru_cache(maxsize=200_000)
def char_script(ch: str) -> str:
    """Unicode script of one character: a name from ``SCRIPTS``, ``Common``, ``Inherited`` or ``Other``."""
    m = _SCRIPT_RE.match(ch)
    if m is not None:
        return m.lastgroup or "Other"
    if _INHERITED_RE.match(ch):
        return "Inherited"
    if _COMMON_RE.match(ch):  # includes letters of no script: ー, µ, ℓ
        return "Common"
    cat = unicodedata.category(ch)
    if cat[0] in "LMN":  # a letter of a script we do not list: Unicode's name usually starts with it
        word = unicodedata.name(ch, "").split(" ")[0].capitalize()
        if word and word.isalpha():
            try:
                if regex.match(rf"\p{{Script={word}}}", ch):
                    return word
            except regex.error:  # not a script name
                pass
        return "Other"
    return "Common"


def token_script(text: str) -> str:
    """Script of a token: the one script of its letters, ``mixed`` for several, ``Common`` when it
    has only digits, punctuation, symbols or spaces, ``none`` when empty.

    Common and Inherited characters (digits, punctuation, combining marks, the katakana-hiragana
    prolonged sound mark) do not make a token mixed.
    """
    if not text:
        return "none"
    if text.isascii():
        return "Latin" if _ASCII_LETTER.search(text) else "Common"
    found: set[str] = set()
    for ch in text:
        s = char_script(ch)
        if s not in ("Common", "Inherited"):
            found.add(s)
    if not found:
        return "Common"
    if len(found) == 1:
        return found.pop()
    return "mixed"


_ASCII_LETTER = regex.compile(r"[A-Za-z]")

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "|")


def spreadsheet_safe(cell: str) -> str:
    """Neutralise a cell a spreadsheet would read as a formula (CSV injection): prefix ``'``."""
    if cell.startswith(_FORMULA_START):
        return "'" + cell
    return cell
