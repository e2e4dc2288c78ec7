"""The figures of a ranking and its map: matplotlib ``Figure`` objects (Agg), no pyplot, no
global state.

Maps (from ``anomtok.maps.compute_map``), each saying how many points it shows and how they were
chosen:

* ``map_score``     coloured by the under-trained score, top tokens labelled
* ``map_kind``      coloured by token kind (normal, byte, special, unused, ...)
* ``map_script``    coloured by Unicode script (the most frequent ones, the rest grey)
* ``map_japanese``  Japanese tokens by class (``anomtok.japanese.ja_class``: hiragana, katakana,
                    kanji, punctuation, mixed, ...) over the rest in grey, the top ones by score
                    labelled

and two plots of the ranking alone: ``centroid_hist`` (distance to the centroid, both tails marked,
the reference tokens overlaid) and ``score_norm`` (score against norm). Tokens given as
``mark_ids`` (e.g. what negative-temperature sampling produced) are drawn as crosses on each.

Labels go through ``anomtok.maps.fonts``: the fallback chain draws every covered script and the
rest is escaped, so no label shows an empty box; a greedy placer keeps labels from piling up.
Writing them to files is ``anomtok.maps.render``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import polars as pl

from ..errors import InputError
from ..japanese import JA_CLASSES, ja_class
from . import fonts
from .options import MapResult

__all__ = [
    "MAP_VIEWS",
    "KIND_COLORS",
    "JAPANESE_COLORS",
    "join_map",
    "map_figure",
    "centroid_histogram",
    "score_vs_norm",
    "place_labels",
]

MAP_VIEWS = ("score", "kind", "script", "japanese")
KIND_COLORS = {
    "normal": "#c8c8c8",
    "byte": "#1f77b4",
    "special": "#2ca02c",
    "unused": "#d62728",
    "added": "#9467bd",
    "unknown": "#8c564b",
    "padding": "#e377c2",
}
# one colour per class of anomtok.japanese.JA_CLASSES, in its order
JAPANESE_COLORS = dict(zip(JA_CLASSES, ("#e6550d", "#3182bd", "#6baed6", "#31a354", "#8c6d31", "#e7969c", "#756bb1")))
_SCRIPT_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
_NOT_LABELLED = ("unused", "padding")  # thousands of look-alike placeholders: coloured, not labelled
_MARK_STYLE = {"marker": "x", "c": "black", "linewidths": 0.9, "zorder": 6, "gid": "marked"}


def _figure(w: float = 9.0, h: float = 7.5):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), layout=None)
    FigureCanvasAgg(fig)
    return fig


def _text(s: str) -> str:
    return fonts.label_text(s, max_chars=10_000, visible_spaces=False)


def join_map(frame: pl.DataFrame, coords: pl.DataFrame) -> pl.DataFrame:
    """The ranking's rows that are on the map, with their ``x, y, why`` (and ``_ja``, the Japanese
    class of each token). A frame that already has ``x`` and ``y`` is returned as it is."""
    if {"x", "y", "_ja"} <= set(frame.columns):
        return frame
    return coords.join(_with_japanese(frame), on="token_id", how="inner")


def _with_japanese(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with a ``_ja`` column (``anomtok.japanese.ja_class`` of each token, null when it is
    not Japanese), computed once."""
    if "_ja" in frame.columns:
        return frame
    tokens = frame["token"].to_list() if "token" in frame.columns else [""] * frame.height
    ja = [ja_class(t or "") or None for t in tokens]
    return frame.with_columns(_ja=pl.Series(ja, dtype=pl.String))


def _point_size(n: int) -> float:
    return float(np.clip(15000.0 / max(n, 1), 0.15, 14.0))


def _label_candidates(data: pl.DataFrame, k: int, japanese_only: bool = False) -> pl.DataFrame:
    f = data.filter(~pl.col("kind").is_in(_NOT_LABELLED)) if "kind" in data.columns else data
    if japanese_only:
        f = f.filter(pl.col("_ja").is_not_null())
    if "score" in f.columns:
        f = f.sort("score", descending=True, nulls_last=True)
    return f.head(k)


def place_labels(
    ax, items: Sequence[tuple[float, float, str]], *, fontsize: float = 7.0, avoid: Iterable[Any] = ()
) -> tuple[int, int]:
    """Greedy label placement in display space: each ``(x, y, text)`` in order tries offsets at
    growing distances around its point and takes the first whose box overlaps no placed label and
    stays inside the axes; one that fits nowhere is left out. Returns (placed, dropped)."""
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    ax_box = ax.get_window_extent(renderer)
    taken = [tuple(b.extents) for b in avoid]
    pts = ax.transData.transform(np.array([(x, y) for x, y, _ in items], dtype=float).reshape(-1, 2))
    taken += [(px - 2, py - 2, px + 2, py + 2) for px, py in pts]  # the labelled points stay visible
    directions = [(1, 1), (1, -1), (-1, 1), (-1, -1), (1, 0), (-1, 0), (0, 1), (0, -1)]
    placed = dropped = 0
    scale = fig.dpi / 72.0
    pad = 2.0 * scale
    box_style = {"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.75}
    for (x, y, label), (px, py) in zip(items, pts):
        prop = fonts.font_properties_for(label, size=fontsize)
        # the text's size, measured once; candidate boxes are then computed, not laid out again
        probe = ax.annotate(
            label,
            xy=(x, y),
            xytext=(0, 0),
            textcoords="offset points",
            fontproperties=prop,
            parse_math=False,
            ha="left",
            va="bottom",
        )
        ext = probe.get_window_extent(renderer)
        probe.remove()
        w, h = ext.width + 2 * pad, ext.height + 2 * pad
        found = None
        arr = np.array(taken, dtype=float).reshape(-1, 4)
        for r in (5, 12, 22, 36, 54):
            for dx, dy in directions:
                axp, ayp = px + dx * r * scale, py + dy * r * scale
                x0 = axp - pad if dx == 1 else (axp - w + pad if dx == -1 else axp - w / 2)
                y0 = ayp - pad if dy == 1 else (ayp - h + pad if dy == -1 else ayp - h / 2)
                x1, y1 = x0 + w, y0 + h
                if x0 < ax_box.x0 or x1 > ax_box.x1 or y0 < ax_box.y0 or y1 > ax_box.y1:
                    continue
                if arr.size and np.any((arr[:, 0] < x1) & (arr[:, 2] > x0) & (arr[:, 1] < y1) & (arr[:, 3] > y0)):
                    continue
                found = (dx, dy, r)
                taken.append((x0, y0, x1, y1))
                break
            if found:
                break
        if found is None:
            dropped += 1
            continue
        dx, dy, r = found
        ha, va = {1: "left", -1: "right", 0: "center"}[dx], {1: "bottom", -1: "top", 0: "center"}[dy]
        arrow = {"arrowstyle": "-", "lw": 0.5, "color": "#555555", "shrinkA": 0, "shrinkB": 1} if r > 5 else None
        ax.annotate(
            label,
            xy=(x, y),
            xytext=(dx * r, dy * r),
            textcoords="offset points",
            ha=ha,
            va=va,
            fontproperties=prop,
            parse_math=False,
            zorder=8,
            arrowprops=arrow,
            bbox=box_style,
        )
        placed += 1
    return placed, dropped


def _marks(frame: pl.DataFrame, mark_ids: Iterable[int] | None) -> pl.DataFrame | None:
    if not mark_ids:
        return None
    ids = sorted({int(i) for i in mark_ids})
    return frame.filter(pl.col("token_id").is_in(ids))


def _props(text: str, size: float):
    return fonts.font_properties_for(text, size=size)


def _legend(fig, handles: list, x: float) -> None:
    """A legend of the scatter handles with markers of one readable size, whatever the point size."""
    from matplotlib.lines import Line2D

    if not handles:
        return
    proxies = []
    for h in handles:
        marked = h.get_gid() == "marked"
        color = "black" if marked else h.get_facecolor()[0]
        proxies.append(
            Line2D(
                [],
                [],
                linestyle="none",
                marker="x" if marked else "o",
                markersize=6,
                color=color,
                markeredgewidth=1.2 if marked else 0,
                label=h.get_label(),
            )
        )
    labels = "".join(h.get_label() for h in handles)
    fig.legend(handles=proxies, loc="upper left", bbox_to_anchor=(x, 0.92), frameon=False, prop=_props(labels, 8))


def _title(ax, text: str) -> None:
    t = _text(text)
    ax.set_title(t, fontproperties=_props(t, 11))


def _footnote(fig, lines: Sequence[str]) -> None:
    text = "\n".join(_text(s) for s in lines if s)
    fig.text(
        0.01, 0.01, text, color="#333333", ha="left", va="bottom", parse_math=False, fontproperties=_props(text, 7)
    )


def map_figure(
    frame: pl.DataFrame,
    result: MapResult,
    view: str = "score",
    *,
    title: str = "",
    label_top: int = 25,
    mark_ids: Iterable[int] | None = None,
    mark_name: str = "marked tokens",
):
    """One map (``view``: score, kind, script or japanese) as a ``Figure``. ``frame``: the ranking
    (or its ``join_map`` with the coordinates, to share the join between views)."""
    if view not in MAP_VIEWS:
        raise InputError(f"view must be one of {', '.join(MAP_VIEWS)}, not {view!r}")
    data = join_map(frame, result.coords)
    n = data.height
    s = _point_size(n)
    fig = _figure(10.0, 7.5)
    ax = fig.add_axes((0.03, 0.11, 0.66, 0.81))
    ax.set_xticks([])
    ax.set_yticks([])
    handles = []
    if view == "score":
        d = data.sort("score", nulls_last=False)
        sc = ax.scatter(
            d["x"].to_numpy(),
            d["y"].to_numpy(),
            c=d["score"].fill_null(np.nan).to_numpy(),
            cmap="viridis",
            s=s,
            linewidths=0,
            rasterized=True,
        )
        cax = fig.add_axes((0.71, 0.25, 0.02, 0.5))
        fig.colorbar(sc, cax=cax, label="score (cosine to the reference mean)")
    else:
        if view == "kind":
            groups = [
                (k, KIND_COLORS.get(k, "#777777"), pl.col("kind") == k)
                for k in KIND_COLORS
                if k in set(data["kind"].to_list())
            ]
        elif view == "script":
            counts = data.filter(~pl.col("script").is_in(["none", "Common"]))["script"].value_counts(sort=True)
            top = counts["script"].to_list()[: len(_SCRIPT_PALETTE)]
            groups = [("other scripts, digits, symbols, no text", "#d0d0d0", ~pl.col("script").is_in(top))]
            groups += [(sname, col, pl.col("script") == sname) for sname, col in zip(top, _SCRIPT_PALETTE)]
        else:
            groups = [("not Japanese", "#d0d0d0", pl.col("_ja").is_null())]
            groups += [(k, col, pl.col("_ja") == k) for k, col in JAPANESE_COLORS.items()]
        for name, col, cond in groups:
            d = data.filter(cond)
            if d.height == 0:
                continue
            grey = col in ("#c8c8c8", "#d0d0d0")
            h = ax.scatter(
                d["x"].to_numpy(),
                d["y"].to_numpy(),
                c=col,
                s=s if grey else max(1.5, min(2.5 * s, 20.0)),
                linewidths=0,
                rasterized=True,
                zorder=1 if grey else 3,
                label=_text(f"{name} ({d.height:,})"),
            )
            handles.append(h)
    marked = _marks(data, mark_ids)
    if marked is not None and marked.height:
        handles.append(
            ax.scatter(
                marked["x"].to_numpy(),
                marked["y"].to_numpy(),
                s=max(4 * s, 14),
                label=_text(f"{mark_name} ({marked.height:,})"),
                **_MARK_STYLE,
            )
        )
    ax.autoscale_view()
    ax.set_xlim(ax.get_xlim())
    ax.set_ylim(ax.get_ylim())
    _legend(fig, handles, 0.70)
    cand = _label_candidates(data, label_top, japanese_only=(view == "japanese"))
    items = [(float(r["x"]), float(r["y"]), fonts.label_text(r["token"] or "")) for r in cand.iter_rows(named=True)]
    placed, dropped = place_labels(ax, items)
    what = {
        "score": "by under-trained score",
        "kind": "by token kind",
        "script": "by Unicode script",
        "japanese": "Japanese tokens by class",
    }[view]
    _title(ax, f"{title}: embedding map {what}" if title else f"Embedding map {what}")
    st = result.meta.get("settings", {})
    lab = "Japanese tokens" if view == "japanese" else "tokens (unused/padding rows aside)"
    _footnote(
        fig,
        [
            result.description or f"{n:,} points",
            f"UMAP of the input embedding, {st.get('metric', 'cosine')}, n_neighbors={st.get('n_neighbors')}, "
            f"min_dist={st.get('min_dist')}, seed={st.get('seed')}. Labels: the top {len(items)} {lab} by score"
            + (f" ({dropped} left out for lack of room)" if dropped else "")
            + ".",
        ],
    )
    return fig


def centroid_histogram(
    frame: pl.DataFrame,
    *,
    title: str = "",
    tail: float = 0.01,
    list_n: int = 6,
    mark_ids: Iterable[int] | None = None,
    mark_name: str = "marked tokens",
):
    """Histogram of the distance to the centroid; both ``tail`` fractions shaded and named."""
    f = frame.filter(pl.col("centroid_l2").is_not_null())
    if "kind" in f.columns:
        f = f.filter(pl.col("kind") != "padding")
    if f.height == 0:
        raise InputError("no finite centroid distances to plot")
    d = f["centroid_l2"].to_numpy()
    lo, hi = np.quantile(d, [tail, 1 - tail])
    fig = _figure(9.0, 5.5)
    ax = fig.add_axes((0.08, 0.2, 0.88, 0.7))
    bins = np.linspace(d.min(), d.max(), 161) if d.max() > d.min() else 10
    ax.hist(d, bins=bins, histtype="stepfilled", color="#8a8a8a", label=f"all tokens ({d.size:,})")
    if "is_reference" in f.columns and f["is_reference"].any():
        r = f.filter(pl.col("is_reference"))["centroid_l2"].to_numpy()
        ax.hist(r, bins=bins, histtype="step", color="#d62728", lw=1.2, label=f"reference / unused ({r.size:,})")
    marked = _marks(f, mark_ids)
    if marked is not None and marked.height:
        ax.hist(
            marked["centroid_l2"].to_numpy(),
            bins=bins,
            histtype="step",
            color="black",
            lw=1.2,
            label=_text(f"{mark_name} ({marked.height:,})"),
        )
    ax.set_yscale("log")
    ax.axvspan(d.min(), lo, color="#3182bd", alpha=0.15)
    ax.axvspan(hi, d.max(), color="#e6550d", alpha=0.15)
    n_lo, n_hi = int((d <= lo).sum()), int((d >= hi).sum())
    for side, thr, n_side, frame_side, x, ha, col in (
        ("nearest", lo, n_lo, f.sort("centroid_l2").head(list_n), 0.01, "left", "#3182bd"),
        ("farthest", hi, n_hi, f.sort("centroid_l2", descending=True).head(list_n), 0.99, "right", "#e6550d"),
    ):
        names = ", ".join(fonts.label_text(t or "", max_chars=16) for t in frame_side["token"].to_list())
        box = f"{side} {tail:.0%}: {n_side:,} tokens ({'≤' if side == 'nearest' else '≥'} {thr:.3g})\n{names}"
        ax.text(
            x,
            0.97,
            box,
            transform=ax.transAxes,
            ha=ha,
            va="top",
            fontproperties=_props(box, 7),
            color=col,
            parse_math=False,
            bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": col, "alpha": 0.85},
        )
    ax.set_xlabel("L2 distance to the centroid of the input embedding")
    ax.set_ylabel("tokens (log)")
    labels = "".join(ax.get_legend_handles_labels()[1])
    ax.legend(loc="center right", frameon=False, prop=_props(labels, 8))
    _title(ax, f"{title}: distance to the centroid" if title else "Distance to the centroid")
    _footnote(
        fig,
        [
            f"{d.size:,} tokens with a finite vector (padding rows aside); shaded: the nearest and "
            f"farthest {tail:.0%}, where under-trained tokens gather (near, for most tied models)."
        ],
    )
    return fig


def score_vs_norm(
    frame: pl.DataFrame,
    *,
    title: str = "",
    label_top: int = 15,
    mark_ids: Iterable[int] | None = None,
    mark_name: str = "marked tokens",
):
    """The under-trained score against the embedding norm, coloured by kind, top tokens labelled."""
    f = frame.filter(pl.col("score").is_not_null() & pl.col("norm").is_not_null())
    if f.height == 0:
        raise InputError("no rows with both a score and a norm")
    s = _point_size(f.height) * 1.5
    fig = _figure(10.0, 6.5)
    ax = fig.add_axes((0.08, 0.15, 0.62, 0.77))
    ax.margins(0.08)
    handles = []
    for kind, col in KIND_COLORS.items():
        d = f.filter(pl.col("kind") == kind)
        if d.height:
            handles.append(
                ax.scatter(
                    d["norm"].to_numpy(),
                    d["score"].to_numpy(),
                    c=col,
                    s=s,
                    linewidths=0,
                    rasterized=True,
                    zorder=1 if kind == "normal" else 3,
                    label=f"{kind} ({d.height:,})",
                )
            )
    marked = _marks(f, mark_ids)
    if marked is not None and marked.height:
        handles.append(
            ax.scatter(
                marked["norm"].to_numpy(),
                marked["score"].to_numpy(),
                s=max(4 * s, 14),
                label=_text(f"{mark_name} ({marked.height:,})"),
                **_MARK_STYLE,
            )
        )
    ax.autoscale_view()
    ax.set_xlim(ax.get_xlim())
    ax.set_ylim(ax.get_ylim())
    ax.set_xlabel("L2 norm of the input embedding")
    ax.set_ylabel("score (under-trained indicator)")
    _legend(fig, handles, 0.72)
    cand = _label_candidates(f, label_top)
    items = [
        (float(r["norm"]), float(r["score"]), fonts.label_text(r["token"] or "")) for r in cand.iter_rows(named=True)
    ]
    _, dropped = place_labels(ax, items)
    _title(ax, f"{title}: score against norm" if title else "Score against norm")
    _footnote(
        fig,
        [
            f"{f.height:,} tokens. Labels: the top {len(items)} by score, unused/padding rows aside"
            + (f" ({dropped} left out for lack of room)." if dropped else ".")
        ],
    )
    return fig
