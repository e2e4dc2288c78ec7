"""Maps of a model's input embedding (UMAP, cosine, seeded) and the plots of its ranking.

>>> from anomtok.maps import plot_model                                   # doctest: +SKIP
>>> plot_model("smollm2-135m", "out/smollm2")     # ranks, maps, renders out/smollm2/plots  # doctest: +SKIP

What lives where (compute → cache → render), one idea per module:

- ``options``: ``MapOptions`` (how to build a map, with the one rule that decides between the
  full vocabulary and a sample), ``MapSettings`` (what the coordinates depend on: the cache key)
  and ``MapResult`` (the coordinates and their facts);
- ``select``: which rows are mapped and why (``select_rows``, ``required_reasons``,
  ``Selection``): every valid row, or a stratified sample that keeps every flagged, reference,
  Japanese and marked token;
- ``umap``: the UMAP call (``umap_coords``; umap-learn is imported when it runs);
- ``cache``: ``umap.parquet``, keyed on the settings and a digest of the matrix or the model's
  source files (``load_map``, ``write_map``, ``matrix_digest``, ``source_matches``);
- ``compute``: ``compute_map``, the map from the cache or computed (select → UMAP → cache);
- ``fonts``: the font fallback chain for labels in any script (``label_text`` escapes the rest);
- ``fontfiles``: which font files (PyPI packages, then Debian's Noto and Hanazono) and where;
- ``figstyle``: what every figure shares (constrained layout, title and caption inside the figure,
  legends, axes fitted to the data, sizes and colours of categories);
- ``labels``: token labels, one per spot of near-identical points with a count, placed without
  overlap;
- ``figures``: the four maps; ``rankplots``: the centroid histogram and score against norm;
- ``render``: figures to PNG/SVG files, reproducibly (``render_all``, ``save_figure``);
- ``html``: the interactive map, one self-contained HTML file (``render_html``; Bokeh, inlined);
- ``plot``: ``plot_model``, the one library function behind ``anomtok plot`` and the plots
  step of ``anomtok scan``: ranking (reused or computed), map (cached or computed), render.

Names are imported on first use: ``import anomtok.maps`` pulls in neither polars nor matplotlib.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

# Public names and the module that owns each (PEP 562: imported on first use).
_LAZY = {
    "MapOptions": "options",
    "MapSettings": "options",
    "MapResult": "options",
    "CACHE_VERSION": "options",
    "Selection": "select",
    "required_reasons": "select",
    "select_rows": "select",
    "umap_coords": "umap",
    "CACHE_NAME": "cache",
    "matrix_digest": "cache",
    "source_fingerprint": "cache",
    "source_matches": "cache",
    "write_map": "cache",
    "read_map": "cache",
    "cache_matches": "cache",
    "load_map": "cache",
    "compute_map": "compute",
    "MAP_VIEWS": "figures",
    "KIND_COLORS": "figures",
    "JAPANESE_COLORS": "figures",
    "join_map": "figures",
    "map_figure": "figures",
    "centroid_histogram": "rankplots",
    "score_vs_norm": "rankplots",
    "place_labels": "labels",
    "FORMATS": "render",
    "save_figure": "render",
    "render_all": "render",
    "HTML_NAME": "html",
    "render_html": "html",
    "plot_model": "plot",
    "PlotResult": "plot",
    "read_ids": "plot",
    "NEGTEMP_FILE": "plot",
    "PLOTS_DIR": "plot",
}

if TYPE_CHECKING:  # pragma: no cover
    from .cache import (
        CACHE_NAME,
        cache_matches,
        load_map,
        matrix_digest,
        read_map,
        source_fingerprint,
        source_matches,
        write_map,
    )
    from .compute import compute_map
    from .figures import JAPANESE_COLORS, KIND_COLORS, MAP_VIEWS, join_map, map_figure
    from .html import HTML_NAME, render_html
    from .labels import place_labels
    from .options import CACHE_VERSION, MapOptions, MapResult, MapSettings
    from .plot import NEGTEMP_FILE, PLOTS_DIR, PlotResult, plot_model, read_ids
    from .rankplots import centroid_histogram, score_vs_norm
    from .render import FORMATS, render_all, save_figure
    from .select import Selection, required_reasons, select_rows
    from .umap import umap_coords

__all__ = [
    "MapOptions",
    "MapSettings",
    "MapResult",
    "CACHE_VERSION",
    "Selection",
    "required_reasons",
    "select_rows",
    "umap_coords",
    "CACHE_NAME",
    "matrix_digest",
    "source_fingerprint",
    "source_matches",
    "write_map",
    "read_map",
    "cache_matches",
    "load_map",
    "compute_map",
    "MAP_VIEWS",
    "KIND_COLORS",
    "JAPANESE_COLORS",
    "join_map",
    "map_figure",
    "centroid_histogram",
    "score_vs_norm",
    "place_labels",
    "FORMATS",
    "save_figure",
    "render_all",
    "HTML_NAME",
    "render_html",
    "plot_model",
    "PlotResult",
    "read_ids",
    "NEGTEMP_FILE",
    "PLOTS_DIR",
]


def __getattr__(name: str) -> Any:
    owner = _LAZY.get(name)
    if owner is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{owner}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
