"""Known-answer tests for anomtok.text: byte-level mapping, display form, UTF-8 fragments,
scripts and spreadsheet neutralisation."""

from __future__ import annotations

import doctest

import pytest

import anomtok.text
from anomtok.text import byte_level_decoder, char_script, display, is_partial_utf8, spreadsheet_safe, token_script

# ----------------------------------------------------------------------------- byte-level map


def _gpt2_bytes_to_unicode() -> dict[int, str]:
    """The reference implementation from openai/gpt-2 encoder.py, verbatim in substance."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def test_byte_level_decoder_is_a_bijection_over_256_bytes():
    m = byte_level_decoder()
    assert len(m) == 256
    assert sorted(m.values()) == list(range(256))
    assert all(len(ch) == 1 for ch in m)


def test_byte_level_decoder_known_characters():
    m = byte_level_decoder()
    assert m["Ġ"] == 0x20
    assert m["Ċ"] == 0x0A
    assert m["ĉ"] == 0x09
    assert m["!"] == 0x21
    assert m["~"] == 0x7E
    assert m["Ā"] == 0x00
    assert m["ÿ"] == 0xFF
    assert m["¡"] == 0xA1
    assert m["®"] == 0xAE
    assert m["ġ"] == 0x7F  # DEL follows the 33 shifted bytes 0x00-0x20
    assert m["ł"] == 0xA0  # no-break space
    assert m["Ń"] == 0xAD  # soft hyphen is the last shifted byte: U+0100 + 67
    assert " " not in m and "\n" not in m and "\xad" not in m
    # the 68 shifted characters are exactly U+0100..U+0143
    assert sorted(ord(c) for c in m if ord(c) >= 0x100) == list(range(0x100, 0x144))


def test_byte_level_decoder_matches_gpt2_reference():
    ref = _gpt2_bytes_to_unicode()
    assert {ch: b for b, ch in ref.items()} == byte_level_decoder()


def test_byte_level_decoder_round_trips_a_gpt2_token():
    m = byte_level_decoder()
    inverse = {b: ch for ch, b in m.items()}
    data = b" \n\x00\xff\xad" + "東京".encode()
    shown = "".join(inverse[b] for b in data)
    assert bytes(m[c] for c in shown) == data
    assert "".join(inverse[b] for b in b" hello\n") == "ĠhelloĊ"


# ----------------------------------------------------------------------------- display


@pytest.mark.parametrize(
    "data, expected",
    [
        (b"\xe3\x81", "\\xe3\\x81"),  # first two bytes of a 3-byte character
        (b"\xff", "\\xff"),
        (b"\x80abc", "\\x80abc"),  # lone continuation byte
        (b"\x00", "\\x00"),
        (b"\x01\x1f", "\\x01\\x1f"),
        (b"\x7f", "\\x7f"),
        (b"\x1b[31m", "\\x1b[31m"),  # ANSI escape
        (b"a\nb", "a\\nb"),
        (b"\t", "\\t"),
        (b"\r\n", "\\r\\n"),
        ("a\u202eb".encode(), "a\\u202eb"),  # right-to-left override
        ("\u2066x\u2069".encode(), "\\u2066x\\u2069"),  # isolates
        ("\u200b".encode(), "\\u200b"),  # zero-width space
        ("a\u200db".encode(), "a\\u200db"),  # zero-width joiner
        ("\ufeffBOM".encode(), "\\ufeffBOM"),
        ("\u00ad".encode(), "\\xad"),  # soft hyphen (Cf)
        ("\u2028".encode(), "\\u2028"),  # line separator
        ("\u0085".encode(), "\\x85"),  # C1 control (NEL)
        ("\ue000".encode(), "\\ue000"),  # private use
        ("\U000f0000".encode(), "\\U000f0000"),  # supplementary private use
        ("\ufffd".encode(), "\\ufffd"),
        ("東京".encode(), "東京"),
        ("トークン".encode(), "トークン"),
        ("Привет".encode(), "Привет"),
        ("😀".encode(), "😀"),
        ("e\u0301".encode(), "e\u0301"),  # combining mark kept
        (b" hello world ", " hello world "),
        (b"", ""),
    ],
)
def test_display_known_answers(data, expected):
    assert display(data) == expected


def test_display_mixed_valid_and_invalid():
    # valid Japanese, then a truncated character, then a valid ASCII letter
    assert display("日本".encode() + b"\xe8\xaa" + b"x") == "日本\\xe8\\xaax"


def test_display_output_is_single_line_and_free_of_controls_and_bidi():
    import unicodedata

    hostile = bytes(range(256)) + "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c".encode()
    out = display(hostile)
    for ch in out:
        assert unicodedata.category(ch) not in {"Cc", "Cf", "Zl", "Zp", "Cs", "Co"}, repr(ch)


# ----------------------------------------------------------------------------- partial UTF-8


@pytest.mark.parametrize(
    "data, expected",
    [
        (b"\x80", True),  # lone continuation byte
        (b"\xbf", True),
        (b"\xe3\x81", True),  # truncated 3-byte sequence
        (b"\xe3", True),
        (b"\xf0\x9f\x98", True),  # truncated 4-byte sequence
        (b"\xc0\xaf", True),  # overlong
        (b"\xff", True),
        (b"\xed\xa0\x80", True),  # encoded surrogate
        ("こ".encode(), False),
        ("hello 東京 😀".encode(), False),
        (b"\x00", False),
        (b"", False),
    ],
)
def test_is_partial_utf8(data, expected):
    assert is_partial_utf8(data) is expected


# ----------------------------------------------------------------------------- scripts


@pytest.mark.parametrize(
    "text, expected",
    [
        ("ひらがな", "Hiragana"),
        ("カタカナ", "Katakana"),
        ("ｶﾀｶﾅ", "Katakana"),  # half-width katakana
        ("ガ", "Katakana"),
        ("カ\u3099", "Katakana"),  # katakana + combining voiced mark (Inherited)
        ("漢字", "Han"),
        ("々", "Han"),
        ("東京で", "mixed"),  # Han + Hiragana
        ("abc123", "Latin"),
        (" hello", "Latin"),
        ("é", "Latin"),
        ("e\u0301", "Latin"),  # Latin + combining acute
        ("123", "Common"),
        ("!?.,", "Common"),
        (" ", "Common"),
        ("\u0301", "Common"),  # a combining mark alone: Inherited only
        ("", "none"),
        ("Привет", "Cyrillic"),
        ("한국어", "Hangul"),
        ("नमस्ते", "Devanagari"),
        ("ಕನ್ನಡ", "Kannada"),
        ("Ελλάδα", "Greek"),
        ("abcабв", "mixed"),  # Latin + Cyrillic
        ("😀", "Common"),
    ],
)
def test_token_script(text, expected):
    assert token_script(text) == expected


@pytest.mark.parametrize(
    "ch, expected",
    [
        ("a", "Latin"),
        ("Я", "Cyrillic"),
        ("東", "Han"),
        ("あ", "Hiragana"),
        ("ア", "Katakana"),
        ("한", "Hangul"),
        ("1", "Common"),
        (" ", "Common"),
        ("\u0301", "Inherited"),
        ("\u3099", "Inherited"),
    ],
)
def test_char_script(ch, expected):
    assert char_script(ch) == expected


_PROLONGED = "ー"  # U+30FC: Script=Common (used by both kana scripts), General_Category=Lm


def test_prolonged_sound_mark_alone_is_common():
    assert char_script(_PROLONGED) == "Common"
    assert token_script(_PROLONGED) == "Common"


def test_katakana_with_prolonged_sound_mark_is_katakana():
    assert token_script("トークン") == "Katakana"
    assert token_script("ラーメン") == "Katakana"
    assert token_script("ｺｰﾋｰ") == "Katakana"  # half-width, with U+FF70 (also Common, Lm)


def test_common_script_letters_do_not_make_a_token_mixed():
    assert token_script("µm") == "Latin"


def test_text_module_doctests():
    result = doctest.testmod(anomtok.text)
    assert result.attempted >= 4
    assert result.failed == 0


# ----------------------------------------------------------------------------- spreadsheet


@pytest.mark.parametrize(
    "cell, expected",
    [
        ("=SUM(A1)", "'=SUM(A1)"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("-", "'-"),
        ("@cmd", "'@cmd"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("\nx", "'\nx"),
        ("|x", "'|x"),
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
    ],
)
def test_spreadsheet_safe_prefixes_formula_starts(cell, expected):
    assert spreadsheet_safe(cell) == expected


@pytest.mark.parametrize(
    "cell", ["", "hello", " =1+1", "a=b", "1+1", "'=already", "東京", "\\t", "\\xe3\\x81", "\u202eevil", "x-"]
)
def test_spreadsheet_safe_leaves_safe_strings_alone(cell):
    assert spreadsheet_safe(cell) == cell
