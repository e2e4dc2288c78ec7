"""The interactive map: one self-contained HTML file with every mapped token (``map.html``).

Rendered with Bokeh (WebGL scatter, its hover, pan/zoom and widgets; BokehJS inlined, so the file
opens offline) from the cached coordinates (``umap.parquet``) and the ranking frame only: compute
→ cache → render. The columns are stored compactly: numbers as typed arrays (Bokeh sends them
gzip-compressed in base64), categories as small integer codes with their names once, and the
token texts and bytes of the whole vocabulary as two byte blobs, decoded by the page's script
(``map.js``, package data). Token texts are shown in their escaped display form
(``anomtok.text.display``: controls, bidi overrides and partial UTF-8 as ``\\x..``/``\\u....``), and
every text reaches the page as text, never as markup.

>>> from anomtok.maps.html import render_html                          # doctest: +SKIP
>>> render_html(ranking.frame, map_result, "out/map.html", title="gemma-3-270m")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from ..cache import atomic_write_text
from ..errors import InputError
from ..japanese import JA_CLASSES, ja_class
from ..text import display
from .options import MapResult

__all__ = ["HTML_NAME", "VIEWS", "map_columns", "render_html", "read_counts"]

HTML_NAME = "map.html"
VIEWS = ("score", "kind", "script", "japanese")  # the colourings, in the menu's order
_GREY = "#d0d0d0"
_SCRIPT_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
_NOT_SCRIPTS = ("none", "Common")  # no letters: digits, symbols, empty
_MODEL_ID = re.compile(r'"id":"(p\d+)"')
_QUOTED_ID = re.compile(r'"(p\d+)"')
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def read_counts(path: str | os.PathLike) -> dict[int, int]:
    """{token id: count} from a ``negtemp_tokens.csv`` (``token_id`` and ``count`` columns)."""
    try:
        t = pl.read_csv(path, columns=["token_id", "count"], schema_overrides={"token_id": pl.Int64})
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise InputError(f"{path}: not a table with token_id and count columns ({exc.__class__.__name__})") from exc
    return {int(i): int(c) for i, c in zip(t["token_id"].to_list(), t["count"].to_list()) if i is not None}


def _codes(values: list[str | None], names: list[str]) -> np.ndarray:
    index = {n: i for i, n in enumerate(names)}
    return np.array([index[v] for v in values], dtype=np.uint8 if len(names) < 256 else np.uint16)


def _category(values: list[str], colors: Mapping[str, str], order: list[str]) -> dict[str, Any]:
    """Codes and the legend of one categorical view: ``order`` are the names (code = position)."""
    counts = {n: 0 for n in order}
    for v in values:
        counts[v] += 1
    return {"names": order, "colors": [colors.get(n, _GREY) for n in order], "counts": [counts[n] for n in order]}


def _kind_colors() -> dict[str, str]:
    """The static maps' colours (kinds, and Japanese classes as ``ja:<class>``), so both agree."""
    from . import JAPANESE_COLORS, KIND_COLORS

    return {**KIND_COLORS, **{f"ja:{k}": v for k, v in JAPANESE_COLORS.items()}}


def map_columns(
    frame: pl.DataFrame, coords: pl.DataFrame, negtemp: Mapping[int, int] | None = None
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, Any]]:
    """(point columns, vocabulary blobs, facts) for the page.

    Points: the mapped tokens ordered by score (highest drawn last), with ``x, y`` (float32),
    ``id``, ``rank``, ``score``, the codes of ``kind``, ``script`` and ``ja`` (Japanese class),
    ``flag`` (flagged) and ``neg`` (negative-temperature count). Blobs, for every token id of the
    vocabulary: ``text`` (display forms, UTF-8, joined by new lines, which a display form never
    holds) and ``bytes`` with ``offsets`` (the token's exact bytes are ``bytes[off[i]:off[i+1]]``)."""
    need = {"token_id", "bytes_hex", "kind", "script", "score", "rank"}
    missing = need - set(frame.columns)
    if missing:
        raise InputError(f"the ranking has no {', '.join(sorted(missing))} column (made by an older anomtok?)")
    f = frame.sort("token_id")
    V = f.height
    if V == 0 or f["token_id"][0] != 0 or f["token_id"][-1] != V - 1 or f["token_id"].n_unique() != V:
        raise InputError("the ranking's token_id column must hold every id from 0 to V-1 once")
    raw = [bytes.fromhex(h or "") for h in f["bytes_hex"].to_list()]
    shown = [display(b) for b in raw]
    text_blob = np.frombuffer("\n".join(shown).encode("utf-8"), dtype=np.uint8)
    offsets = np.zeros(V + 1, dtype=np.uint32)
    np.cumsum([len(b) for b in raw], out=offsets[1:])
    byte_blob = np.frombuffer(b"".join(raw), dtype=np.uint8)

    c = coords.select("token_id", "x", "y").join(f, on="token_id", how="inner")
    c = c.sort([pl.col("score").is_not_nan() & pl.col("score").is_not_null(), "score", "token_id"], nulls_last=False)
    ids = c["token_id"].to_numpy()
    tokens = c["token"].to_list() if "token" in c.columns else [shown[i] for i in ids]
    ja = [ja_class(t or "") or "not Japanese" for t in tokens]
    colors = _kind_colors()
    kinds = c["kind"].fill_null("unknown").to_list()
    known_kinds = [k for k in colors if not k.startswith("ja:")]
    kind_order = sorted(set(kinds), key=lambda k: (k != "normal", known_kinds.index(k) if k in known_kinds else 99, k))
    scripts = c["script"].fill_null("none").to_list()
    counts: dict[str, int] = {}
    for s in scripts:
        counts[s] = counts.get(s, 0) + 1
    by_count = sorted(counts, key=lambda s: (-counts[s], s))
    top = [s for s in by_count if s not in _NOT_SCRIPTS][: len(_SCRIPT_PALETTE)]
    script_order = top + [s for s in by_count if s not in top]
    ja_order = ["not Japanese", *JA_CLASSES]
    views = {
        "kind": _category(kinds, {**colors, "normal": colors.get("normal", "#c8c8c8")}, kind_order),
        "script": _category(scripts, dict(zip(top, _SCRIPT_PALETTE)), script_order),
        "japanese": _category(ja, {k: colors.get(f"ja:{k}", _GREY) for k in JA_CLASSES}, ja_order),
    }
    views["kind"]["grey"] = [k == "normal" for k in kind_order]
    views["script"]["grey"] = [s not in top for s in script_order]
    views["script"]["grey_label"] = "other scripts, digits, symbols, no text"
    views["japanese"]["grey"] = [k == "not Japanese" for k in ja_order]
    score = c["score"].cast(pl.Float32).fill_null(np.nan).to_numpy()
    finite = score[np.isfinite(score)]
    neg = np.zeros(c.height, dtype=np.uint16)
    if negtemp:
        neg = np.array([min(int(negtemp.get(int(i), 0)), 65535) for i in ids], dtype=np.uint16)
    flagged = c["flagged"].fill_null(False).to_numpy() if "flagged" in c.columns else np.zeros(c.height, bool)
    points = {
        "x": c["x"].cast(pl.Float32).to_numpy(),
        "y": c["y"].cast(pl.Float32).to_numpy(),
        "id": ids.astype(np.int32),
        "rank": c["rank"].fill_null(0).to_numpy().astype(np.int32),
        "score": score.astype(np.float32),
        "kind": _codes(kinds, kind_order),
        "script": _codes(scripts, script_order),
        "ja": _codes(ja, ja_order),
        "flag": flagged.astype(np.uint8),
        "neg": neg,
    }
    vocab = {"text": text_blob, "bytes": byte_blob, "offsets": offsets}
    facts = {
        "vocab": V,
        "points": int(c.height),
        "views": views,
        "score_low": float(finite.min()) if finite.size else 0.0,
        "score_high": float(finite.max()) if finite.size else 1.0,
        "flagged": int(flagged.sum()),
        "negtemp": int((neg > 0).sum()),
    }
    return points, vocab, facts


def _point_size(n: int) -> float:
    return float(np.clip(600.0 / np.sqrt(max(n, 1)), 1.6, 7.0))


def _js() -> str:
    return resources.files("anomtok.maps").joinpath("map.js").read_text(encoding="utf-8")


def _stable_ids(html: str, library_js: str) -> str:
    """Bokeh names the document and its elements with random UUIDs, and its models ``p1001``, ...
    from a counter that runs on across documents: number both in order of appearance instead, so
    the same inputs give the same file."""
    seen: dict[str, str] = {}
    for u in _UUID.findall(html):
        if u not in seen and u not in library_js:
            seen[u] = f"{len(seen):08x}-0000-4000-8000-000000000000"
    html = _UUID.sub(lambda m: seen.get(m.group(0), m.group(0)), html)
    cut = html.rfind("<body>")  # the document and its embedding, after BokehJS
    head, tail = html[:cut], html[cut:]
    ids: dict[str, str] = {}
    for m in _MODEL_ID.finditer(tail):  # in the document's order
        ids.setdefault(m.group(1), f"p{1000 + len(ids)}")
    return head + _QUOTED_ID.sub(lambda m: f'"{ids.get(m.group(1), m.group(1))}"', tail)


def render_html(
    frame: pl.DataFrame,
    result: MapResult,
    path: str | os.PathLike,
    *,
    title: str = "",
    negtemp: Mapping[int, int] | None = None,
) -> Path:
    """Write the interactive map of ``result`` (coordinates) and ``frame`` (the ranking) to ``path``,
    atomically. ``negtemp``: {token id: times emitted at negative temperature} (marked with
    crosses and shown on hover). Returns the path."""
    from bokeh.document import Document
    from bokeh.embed import file_html
    from bokeh.layouts import column, row
    from bokeh.models import (
        ColumnDataSource,
        CustomJS,
        CustomJSHover,
        Div,
        HoverTool,
        LinearColorMapper,
        Range1d,
        Select,
        TextInput,
    )
    from bokeh.plotting import figure
    from bokeh.resources import INLINE

    points, vocab, facts = map_columns(frame, result.coords, negtemp)
    n = facts["points"]
    size = _point_size(n)
    src = ColumnDataSource(
        {
            **points,
            "c": np.zeros(n, np.float32),
            "sz": np.full(n, size, np.float32),
            "t": np.zeros(n, np.uint8),
            "b": np.zeros(n, np.uint8),
        },
        name="anomtok-points",
    )
    text_src = ColumnDataSource({"text": vocab["text"]}, name="anomtok-text")
    bytes_src = ColumnDataSource({"bytes": vocab["bytes"]}, name="anomtok-bytes")
    off_src = ColumnDataSource({"offsets": vocab["offsets"]}, name="anomtok-offsets")
    empty = {"x": np.zeros(0, np.float32), "y": np.zeros(0, np.float32), "id": np.zeros(0, np.int32)}
    hi_src = ColumnDataSource(dict(empty), name="anomtok-highlight")
    marked = points["neg"] > 0
    neg_src = ColumnDataSource({k: points[k][marked] for k in ("x", "y", "id")}, name="anomtok-negtemp")
    mapper = LinearColorMapper(palette=["#440154"], low=0, high=1, nan_color="#bbbbbb", name="anomtok-mapper")
    # fixed ranges around the points (a search zooms by setting them; Reset comes back here)
    lo = np.array([points["x"].min(), points["y"].min()]) if n else np.zeros(2)
    hi = np.array([points["x"].max(), points["y"].max()]) if n else np.ones(2)
    pad = 0.04 * np.maximum(hi - lo, 1e-6)
    p = figure(
        x_range=Range1d(float(lo[0] - pad[0]), float(hi[0] + pad[0])),
        y_range=Range1d(float(lo[1] - pad[1]), float(hi[1] + pad[1])),
        output_backend="webgl",
        sizing_mode="stretch_both",
        tools="pan,wheel_zoom,box_zoom,reset,save",
        active_scroll="wheel_zoom",
        name="anomtok-figure",
        min_height=400,
    )
    p.axis.visible = False
    p.grid.visible = False
    p.toolbar.logo = None
    dots = p.scatter(
        "x", "y", source=src, size="sz", fill_color={"field": "c", "transform": mapper}, line_color=None, name="points"
    )
    if facts["negtemp"]:
        p.scatter(
            "x", "y", source=neg_src, marker="x", size=max(7.0, 2.5 * size), line_color="black", line_width=1.2,
            legend_label=f"negative-temperature tokens ({facts['negtemp']:,})", name="negtemp",
        )  # fmt: skip
        p.legend.click_policy = "hide"
        p.legend.location = "top_left"
    p.scatter(
        "x", "y", source=hi_src, marker="circle", size=max(16.0, 4 * size), fill_color=None, line_color="#ff00aa",
        line_width=3, name="highlight",
    )  # fmt: skip
    # hover: the page's script gives the text of the fields that are codes or live in the blobs
    # (``t`` and ``b`` are zero columns standing for the token text and bytes)
    fields = {"t": "token", "b": "bytes", "kind": "kind", "script": "script", "ja": "ja", "flag": "flagged"}
    code = "return window.anomtokMap ? window.anomtokMap.hover('%s', special_vars.index) : '';"
    formatters = {f"@{k}": CustomJSHover(code=code % v) for k, v in fields.items()}
    tooltips = [
        ("token", "@t{custom}"),
        ("id", "@id"),
        ("bytes", "@b{custom}"),
        ("kind", "@kind{custom}"),
        ("script", "@script{custom}"),
        ("Japanese", "@ja{custom}"),
        ("score", "@score{0.0000}"),
        ("rank", "@rank{0,0}"),
        ("flagged", "@flag{custom}"),
        ("neg. temperature", "@neg"),
    ]
    p.add_tools(
        HoverTool(
            renderers=[dots], tooltips=tooltips, formatters=formatters, limit=3, sort_by=[("$index", "descending")]
        )
    )  # type: ignore[arg-type]
    select = Select(title="colour by", value="score", options=list(VIEWS), width=140, name="anomtok-view")
    search = TextInput(title="find a token (text or id), Enter", width=260, name="anomtok-search")
    status = Div(text="", name="anomtok-status", width=420)
    legend = Div(text="", name="anomtok-legend", width=260, styles={"font-size": "12px"})
    head = Div(
        text="", name="anomtok-title", styles={"font-size": "14px", "font-weight": "bold"}, sizing_mode="stretch_width"
    )
    settings = result.meta.get("settings", {})
    facts = {
        **facts,
        "title": title,
        "description": result.description,
        "umap": {k: settings.get(k) for k in ("metric", "n_neighbors", "min_dist", "seed")},
        "size": size,
    }
    args = dict(
        src=src, text=text_src, bytes=bytes_src, offsets=off_src, hi=hi_src, mapper=mapper, plot=p,
        select=select, search=search, status=status, legend=legend, head=head, facts=json.dumps(facts),
    )  # fmt: skip
    select.js_on_change("value", CustomJS(code="window.anomtokMap.colour(cb_obj.value);"))
    search.js_on_change("value", CustomJS(code="window.anomtokMap.search(cb_obj.value);"))
    doc = Document()
    doc.add_root(column(head, row(select, search, status), row(p, legend, sizing_mode="stretch_both"),
                        sizing_mode="stretch_both"))  # fmt: skip
    doc.js_on_event("document_ready", CustomJS(args=args, code=_js()))
    page_title = f"{title} — token map" if title else "anomtok token map"
    html = file_html(doc, INLINE, page_title)
    html = _stable_ids(html, "".join(INLINE.js_raw))
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(target, html)
    return target
