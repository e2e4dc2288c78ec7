"""Which font files label the plots, and where they are: the fallback chain of ``anomtok.maps.fonts``.

Two sources, in this order:

1. fonts bundled by PyPI packages that anomtok depends on (``FONT_SPECS``: found by their package
   folders, without importing the packages, which change matplotlib's settings when imported);
2. fonts of Debian packages (``SYSTEM_SPECS``), for the scripts that no PyPI package covers but
   that glitch tokens are often in: Cuneiform, Vai, Egyptian hieroglyphs (``fonts-noto-core``), Han
   beyond the CJK fonts, Extension B and later included (``fonts-hanazono``), and then every other
   script of ``fonts-noto-core`` (``SYSTEM_GLOBS``: Tibetan, Syriac, Thaana, Cherokee, Ol Chiki,
   Coptic, Mongolian, ...). ``make setup`` installs them (``apt-get``) when they are missing.

A missing file is skipped (the characters only it has are escaped) and named once in a warning.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

__all__ = ["FontSpec", "FONT_SPECS", "SYSTEM_SPECS", "SYSTEM_GLOBS", "SYSTEM_FONT_DIRS", "DEBIAN_PACKAGES", "locate"]


@dataclass(frozen=True)
class FontSpec:
    """One font of the chain. ``module`` set: the file is inside that pip package's folder
    (``package`` is its pip name); ``module`` None: a system font file under ``SYSTEM_FONT_DIRS``
    (``package`` is the Debian package that installs it). ``family`` None: whatever the file says."""

    package: str
    module: str | None
    file: str
    family: str | None
    scripts: tuple[str, ...]  # what it is in the chain for (documentation and ``scripts_covered``)


_NOTO_SCRIPTS = (
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
    "Khmer",
    "Myanmar",
    "Georgian",
    "Armenian",
    "Ethiopic",
)

# The PyPI fonts, in fallback order, so that every machine, CI included, renders the same labels.
# Noto Sans CJK comes last among the CJK fonts: it is a variable font whose default instance is
# thin, so it only supplies the Han characters that IPAexGothic and NanumGothic lack.
FONT_SPECS: tuple[FontSpec, ...] = (
    FontSpec(
        "matplotlib-fontja", "matplotlib_fontja", "fonts/ipaexg.ttf", "IPAexGothic", ("Hiragana", "Katakana", "Han")
    ),
    FontSpec("koreanize-matplotlib", "koreanize_matplotlib", "fonts/NanumGothic.ttf", "NanumGothic", ("Hangul",)),
    FontSpec("manimgx-fonts", "manimgx_fonts", "NotoSans[wght].ttf", "Noto Sans", ("Latin", "Greek", "Cyrillic")),
    *(
        FontSpec("manimgx-fonts", "manimgx_fonts", f"NotoSans{s}[wght].ttf", f"Noto Sans {s}", (s,))
        for s in _NOTO_SCRIPTS
    ),
    FontSpec("manimgx-fonts", "manimgx_fonts", "NotoSansSymbols[wght].ttf", "Noto Sans Symbols", ()),
    FontSpec(
        "manimgx-fonts-cjk",
        "manimgx_fonts_cjk",
        "NotoSansCJK-VF.otf.ttc",
        "Noto Sans CJK JP",
        ("Han", "Hangul", "Bopomofo"),
    ),
    FontSpec("manimgx-fonts", "manimgx_fonts", "NotoEmoji[wght].ttf", "Noto Emoji", ()),
)

SYSTEM_FONT_DIRS: tuple[str, ...] = ("/usr/share/fonts", "/usr/local/share/fonts")
_NOTO = "truetype/noto"

# Debian fonts for scripts no PyPI font package has, named first (the list, by how often
# they occur among glitch tokens), then the rest of fonts-noto-core (SYSTEM_GLOBS).
SYSTEM_SPECS: tuple[FontSpec, ...] = (
    FontSpec("fonts-noto-core", None, f"{_NOTO}/NotoSansCuneiform-Regular.ttf", "Noto Sans Cuneiform", ("Cuneiform",)),
    FontSpec("fonts-noto-core", None, f"{_NOTO}/NotoSansVai-Regular.ttf", "Noto Sans Vai", ("Vai",)),
    FontSpec(
        "fonts-noto-core",
        None,
        f"{_NOTO}/NotoSansEgyptianHieroglyphs-Regular.ttf",
        "Noto Sans Egyptian Hieroglyphs",
        ("Egyptian_Hieroglyphs",),
    ),
    FontSpec("fonts-noto-core", None, f"{_NOTO}/NotoSerifTibetan-Regular.ttf", "Noto Serif Tibetan", ("Tibetan",)),
    FontSpec("fonts-noto-core", None, f"{_NOTO}/NotoSansSymbols2-Regular.ttf", "Noto Sans Symbols2", ()),
    FontSpec("fonts-noto-core", None, f"{_NOTO}/NotoSansMath-Regular.ttf", "Noto Sans Math", ()),
    # Hanazono Mincho: A has the BMP's ideographs (Extension A included), B those of plane 2
    # (Extensions B to F), which no CJK font of the chain has.
    FontSpec("fonts-hanazono", None, "truetype/hanazono/HanaMinA.ttf", "HanaMinA", ("Han",)),
    FontSpec("fonts-hanazono", None, "truetype/hanazono/HanaMinB.ttf", "HanaMinB", ("Han",)),
)
# (package, pattern under a system font dir): every matching file, sorted by name, after the above;
# style variants of a script already in the chain add nothing and are skipped.
SYSTEM_GLOBS: tuple[tuple[str, str], ...] = (("fonts-noto-core", f"{_NOTO}/NotoSans*-Regular.ttf"),)
_SKIP_VARIANTS = ("Display", "Mono", "AdlamUnjoined")


def _variant(stem: str) -> bool:
    """A style variant of a script font (``NotoSans<stem>-Regular.ttf``): Display, Mono, the regional
    Tifinagh styles."""
    return stem.startswith(_SKIP_VARIANTS) or (stem.startswith("Tifinagh") and stem != "Tifinagh")


DEBIAN_PACKAGES: tuple[str, ...] = tuple(dict.fromkeys(s.package for s in SYSTEM_SPECS))


def _module_dir(module: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _system_file(rel: str, dirs: tuple[str, ...]) -> Path | None:
    for d in dirs:
        p = Path(d) / rel
        if p.is_file():
            return p
    return None


def locate(dirs: tuple[str, ...] = SYSTEM_FONT_DIRS) -> tuple[list[tuple[FontSpec, Path]], list[str]]:
    """The chain's font files that exist, in fallback order, and the packages (pip or Debian) of
    those that do not."""
    found: list[tuple[FontSpec, Path]] = []
    missing: list[str] = []
    for spec in FONT_SPECS:
        folder = _module_dir(spec.module) if spec.module else None
        path = folder / spec.file if folder is not None else None
        if path is not None and path.is_file():
            found.append((spec, path))
        elif spec.package not in missing:
            missing.append(spec.package)
    named = set()
    for spec in SYSTEM_SPECS:
        path = _system_file(spec.file, dirs)
        if path is not None:
            found.append((spec, path))
            named.add(path.name)
        elif spec.package not in missing:
            missing.append(spec.package)
    for package, pattern in SYSTEM_GLOBS:
        for d in dirs:
            for path in sorted(Path(d).glob(pattern)):
                stem = path.name.removeprefix("NotoSans").removesuffix("-Regular.ttf")
                if path.name in named or not stem or _variant(stem):
                    continue
                named.add(path.name)
                found.append((FontSpec(package, None, str(path.relative_to(d)), None, ()), path))
    return found, missing
