"""Fonts for plot labels: every script a glitch token may be in, or a readable escape.

Token labels come in any script. matplotlib (>= 3.6) takes a *list* of font families and, glyph by
glyph, uses the first one that has the glyph; a glyph none of them has is drawn as an empty box and
warned about ("Glyph ... missing from font(s)"). This module

1. finds the font files (``anomtok.maps.fontfiles``: those anomtok's font dependencies install,
   found by their package folders without importing them, then Debian's Noto and Hanazono fonts
   for Cuneiform, Vai, Egyptian hieroglyphs, Han Extension B and the other rarer scripts),
2. registers them with matplotlib's font manager, lazily, on the first call (never at import),
3. builds the fallback chain (``families()``) and reads each font's character map, so that
4. ``label_text()`` can replace every character no font of the chain has with an escape that reads
   the same as ``anomtok.text.display`` (``\\u0f00``): a label never shows an empty box.

>>> label_text("東京")                     # covered: kept
'東京'
>>> label_text(" the")                     # spaces made visible
'␣the'
>>> label_text("\\U00011f04")             # Kawi (Unicode 15): no font of the chain has it
'\\\\U00011f04'

Nothing here changes ``matplotlib.rcParams``: plots pass ``font_properties()`` to each text.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .fontfiles import DEBIAN_PACKAGES, FONT_SPECS, FontSpec, locate

__all__ = [
    "FontSpec",
    "FONT_SPECS",
    "BASE_FAMILY",
    "available_fonts",
    "families",
    "families_for",
    "font_properties",
    "font_properties_for",
    "coverage",
    "missing_chars",
    "is_covered",
    "escape_char",
    "label_text",
    "scripts_covered",
]

log = logging.getLogger(__name__)


# matplotlib's own default font, always present: first in the chain so plots keep its look.
BASE_FAMILY = "DejaVu Sans"

_lock = threading.Lock()


@dataclass(frozen=True)
class _Font:
    family: str
    path: str
    index: int  # face index in a collection (.ttc)


def _open_face(path: str, index: int = 0):
    from matplotlib import ft2font

    try:
        return ft2font.FT2Font(path, face_index=index)
    except TypeError:  # matplotlib < 3.10 reads only the first face of a collection
        if index:
            raise ValueError("this matplotlib cannot open a face of a font collection") from None
        return ft2font.FT2Font(path)


def _register(spec: FontSpec, path: Path) -> _Font | None:
    """Add one face of ``path`` to matplotlib's font manager (as a regular-weight face, whatever
    the default instance of a variable font says, so that matching never warns about weights)."""
    from matplotlib import font_manager as fm

    try:
        faces = getattr(_open_face(str(path)), "num_faces", 1)
        for index in range(faces):
            face = _open_face(str(path), index)
            entry = fm.ttfFontProperty(face)
            if spec.family is not None and entry.name != spec.family:
                continue
            entry = dataclasses.replace(entry, weight=400, style="normal")
            listed = fm.fontManager.ttflist
            if entry not in listed:  # matplotlib's own scan of the system fonts may list it with its weight
                listed[:] = [e for e in listed if not (e.fname == entry.fname and e.index == entry.index)]
                listed.append(entry)
                fm.fontManager._findfont_cached.cache_clear()  # noqa: SLF001 - as FontManager.addfont does
            return _Font(entry.name, str(path), index)
    except (OSError, RuntimeError, ValueError) as exc:
        log.warning("font %s (%s) could not be read: %s", spec.family, path, exc)
        return None
    log.warning("font %s: no face named %r in %s", spec.package, spec.family, path)
    return None


@functools.lru_cache(maxsize=1)
def available_fonts() -> tuple[_Font, ...]:
    """The fonts of the chain that are installed, registered with matplotlib (first call only),
    in fallback order, the base family first. Missing packages are logged once and skipped."""
    from matplotlib import font_manager as fm

    with _lock:
        out = [_Font(BASE_FAMILY, fm.findfont(fm.FontProperties(family=BASE_FAMILY), fallback_to_default=True), 0)]
        found, missing = locate()
        for spec, path in found:
            font = _register(spec, path)
            if font is not None and font not in out:
                out.append(font)
        if missing:
            pip = " ".join(m for m in missing if m not in DEBIAN_PACKAGES)
            deb = " ".join(m for m in missing if m in DEBIAN_PACKAGES)
            how = [f"pip install {pip}"] * bool(pip) + [f"apt-get install {deb} (make setup does)"] * bool(deb)
            log.warning(
                "font packages not installed (labels in their scripts are escaped): %s; %s",
                ", ".join(missing),
                "; ".join(how),
            )
        return tuple(out)


def families() -> list[str]:
    """Family names for matplotlib's per-glyph fallback, in order (``FontProperties(family=...)``)."""
    seen: list[str] = []
    for f in available_fonts():
        if f.family not in seen:
            seen.append(f.family)
    return seen


def font_properties(size: float | None = None, weight: str = "normal"):
    """A ``FontProperties`` with the whole fallback chain; pass it as ``fontproperties=`` to a text."""
    from matplotlib.font_manager import FontProperties

    return FontProperties(family=families(), size=size, weight=weight)


def font_properties_for(text: str, size: float | None = None, weight: str = "normal"):
    """The smallest ``FontProperties`` that draws ``text`` exactly as the whole chain would: the
    families, in chain order, that matplotlib's per-glyph fallback would pick for its characters.
    Much faster to lay out than the full chain (matplotlib looks up every family of the list for
    every text). Characters nobody covers are ignored: pass the text through ``label_text`` first."""
    from matplotlib.font_manager import FontProperties

    return FontProperties(family=families_for(text), size=size, weight=weight)


def families_for(text: str) -> list[str]:
    """Families of the chain that ``text`` needs, in chain order, the base family always first."""
    fams = families()
    need = {0}
    for ch in set(text):
        i = _first_font_with(ord(ch))
        if i is not None:
            need.add(i)
    return [fams[i] for i in sorted(need)]


@functools.lru_cache(maxsize=65536)
def _first_font_with(cp: int) -> int | None:
    for i, cps in enumerate(_family_coverages()):
        if cp in cps:
            return i
    return None


@functools.lru_cache(maxsize=1)
def _family_coverages() -> tuple[frozenset[int], ...]:
    """Code points of each family of ``families()``, in the same order (from the fonts' cmaps)."""
    by_family: dict[str, set[int]] = {}
    for f in available_fonts():
        cps = by_family.setdefault(f.family, set())
        try:
            face = _open_face(f.path, f.index)
        except (OSError, RuntimeError, ValueError):
            continue
        cps.update(cp for cp, glyph in face.get_charmap().items() if glyph)
    return tuple(frozenset(by_family[name]) for name in families())


@functools.lru_cache(maxsize=1)
def coverage() -> frozenset[int]:
    """Every code point at least one font of the chain has a glyph for (from each font's cmap)."""
    out: set[int] = set()
    for cps in _family_coverages():
        out |= cps
    return frozenset(out)


def _needs_no_glyph(ch: str) -> bool:
    # Line breaks and the like are never drawn by a one-line label; matplotlib skips them.
    return ch in "\n\r"


def missing_chars(text: str) -> list[str]:
    """The distinct characters of ``text`` that no font of the chain can draw, in order."""
    cov = coverage()
    out: list[str] = []
    for ch in text:
        if ord(ch) not in cov and not _needs_no_glyph(ch) and ch not in out:
            out.append(ch)
    return out


def is_covered(text: str) -> bool:
    return not missing_chars(text)


def escape_char(ch: str) -> str:
    """``\\u0c95``-style escape of one character, as ``anomtok.text.display`` writes them."""
    cp = ord(ch)
    if cp < 0x100:
        return f"\\x{cp:02x}"
    return f"\\u{cp:04x}" if cp < 0x10000 else f"\\U{cp:08x}"


def _needs_base(ch: str, cat: str) -> bool:
    cp = ord(ch)
    return cat in ("Mn", "Mc", "Me") or 0x1160 <= cp <= 0x11FF or 0xD7B0 <= cp <= 0xD7FF


def label_text(text: str, max_chars: int = 28, visible_spaces: bool = True) -> str:
    """A label that every font chain can draw: uncovered characters become escapes, spaces become
    ``␣`` (a leading space is often the whole difference between two tokens), and a long label
    is cut to ``max_chars`` with ``…``."""
    import unicodedata

    cov = coverage()
    parts: list[str] = []
    for ch in text:
        cat = unicodedata.category(ch)
        if ch == " " and visible_spaces and 0x2423 in cov:
            parts.append("\u2423")
        elif ch in "\n\r\t":
            parts.append({"\n": "\\n", "\r": "\\r", "\t": "\\t"}[ch])
        elif cat in ("Cf", "Cc", "Zl", "Zp") or (cat == "Zs" and ch != " "):  # invisible: say which
            parts.append(escape_char(ch))
        elif ord(ch) in cov:
            if not parts and _needs_base(ch, cat) and 0x25CC in cov:
                parts.append("\u25cc")  # a mark or a conjoining jamo alone: on a dotted circle, as in charts
            parts.append(ch)
        else:
            parts.append(escape_char(ch))
    out = "".join(parts)
    if len(out) > max_chars:
        out = out[: max(1, max_chars - 1)] + "\u2026"
    return out


def scripts_covered(scripts: Iterable[str] | None = None) -> dict[str, bool]:
    """For each Unicode script name (default: ``anomtok.text.SCRIPTS``), whether the chain has a
    glyph for most of its letters (sampled from the Unicode block, checked against the cmaps)."""
    import unicodedata

    import regex

    from ..text import SCRIPTS

    cov = coverage()
    out: dict[str, bool] = {}
    names = list(scripts) if scripts is not None else list(SCRIPTS)
    for name in names:
        try:
            pat = regex.compile(rf"\p{{Script={name}}}")
        except regex.error:
            out[name] = False
            continue
        letters = [
            cp for cp in _candidate_range(name) if pat.match(chr(cp)) and unicodedata.category(chr(cp))[0] in "LS"
        ]
        if not letters:
            out[name] = False
            continue
        hit = sum(cp in cov for cp in letters)
        out[name] = hit >= 0.9 * len(letters)
    return out


def _candidate_range(script: str) -> range:
    # The main block of each script (enough to judge coverage); Han: the unified ideographs.
    blocks = {
        "Latin": (0x41, 0x24F),
        "Greek": (0x370, 0x3FF),
        "Cyrillic": (0x400, 0x4FF),
        "Armenian": (0x530, 0x58F),
        "Hebrew": (0x590, 0x5FF),
        "Arabic": (0x600, 0x6FF),
        "Syriac": (0x700, 0x74F),
        "Thaana": (0x780, 0x7BF),
        "Nko": (0x7C0, 0x7FF),
        "Devanagari": (0x900, 0x97F),
        "Bengali": (0x980, 0x9FF),
        "Gurmukhi": (0xA00, 0xA7F),
        "Gujarati": (0xA80, 0xAFF),
        "Oriya": (0xB00, 0xB7F),
        "Tamil": (0xB80, 0xBFF),
        "Telugu": (0xC00, 0xC7F),
        "Kannada": (0xC80, 0xCFF),
        "Malayalam": (0xD00, 0xD7F),
        "Sinhala": (0xD80, 0xDFF),
        "Thai": (0xE00, 0xE7F),
        "Lao": (0xE80, 0xEFF),
        "Tibetan": (0xF00, 0xFFF),
        "Myanmar": (0x1000, 0x109F),
        "Georgian": (0x10A0, 0x10FF),
        "Hangul": (0xAC00, 0xD7A3),
        "Ethiopic": (0x1200, 0x137F),
        "Cherokee": (0x13A0, 0x13FF),
        "Canadian_Aboriginal": (0x1400, 0x167F),
        "Khmer": (0x1780, 0x17FF),
        "Mongolian": (0x1800, 0x18AF),
        "Hiragana": (0x3041, 0x309F),
        "Katakana": (0x30A0, 0x30FF),
        "Bopomofo": (0x3100, 0x312F),
        "Han": (0x4E00, 0x9FFF),
        "Yi": (0xA000, 0xA48F),
        "Vai": (0xA500, 0xA63F),
        "Javanese": (0xA980, 0xA9DF),
        "Balinese": (0x1B00, 0x1B7F),
        "Tifinagh": (0x2D30, 0x2D7F),
        "Ol_Chiki": (0x1C50, 0x1C7F),
        "Adlam": (0x1E900, 0x1E95F),
        "Cuneiform": (0x12000, 0x1236F),
        "Egyptian_Hieroglyphs": (0x13000, 0x1342E),
        "Coptic": (0x2C80, 0x2CFF),
        "Braille": (0x2800, 0x28FF),
    }
    lo, hi = blocks.get(script, (0, -1))
    return range(lo, hi + 1)
