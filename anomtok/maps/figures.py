"""The maps of a ranking: matplotlib ``Figure`` objects (Agg), no pyplot, no global state.

Maps (from ``anomtok.maps.compute_map``), each saying how many points it shows and how they were
chosen:

* ``map_score``     coloured by the under-trained score, top tokens labelled
* ``map_kind``      coloured by token kind (normal, byte, special, unused, ...)
* ``map_script``    coloured by Unicode script (the most frequent ones, the rest grey)
* ``map_japanese``  Japanese tokens by class (``anomtok.japanese.ja_class``: hiragana, katakana,
                    kanji, punctuation, mixed, ...) over the rest in grey, the top ones by score
                    labelled

Tokens given as ``mark_ids`` (e.g. what negative-temperature sampling produced) are drawn as
crosses. Rare categories are drawn on top and larger, so a category of one token is seen; the
legend says when its counts are of a sample. The axes are fitted to the bulk of the points (the few
far-out ones are drawn on the frame's edge, and the caption says how many). Labels: one per spot
of near-identical points, with a count, placed without overlap (``anomtok.maps.labels``). The plots
of the ranking alone (histogram, score against norm) are ``anomtok.maps.rankplots``; writing
figures to files is ``anomtok.maps.render``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import polars as pl

from ..errors import InputError
from ..japanese import JA_CLASSES, ja_class
from . import figstyle as fs
from .figstyle import KIND_COLORS
from .labels import label_note, longest_label_note, place_labels, spot_labels
from .options import MapResult

__all__ = [
    "MAP_VIEWS",
    "KIND_COLORS",
    "JAPANESE_COLORS",
    "join_map",
    "map_figure",
    "label_candidates",
    "marked_rows",
    "sample_note",
]

MAP_VIEWS = ("score", "kind", "script", "japanese")
# one colour per class of anomtok.japanese.JA_CLASSES, in its order
JAPANESE_COLORS = dict(zip(JA_CLASSES, ("#e6550d", "#3182bd", "#6baed6", "#31a354", "#8c6d31", "#e7969c", "#756bb1")))
_SCRIPT_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
_WHAT = {
    "score": "by under-trained score",
    "kind": "by token kind",
    "script": "by Unicode script",
    "japanese": "Japanese tokens by class",
}


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


def label_candidates(data: pl.DataFrame, k: int, japanese_only: bool = False) -> pl.DataFrame:
    """The first ``k`` rows that may be labelled, best score first (unused/padding rows aside)."""
    f = data.filter(~pl.col("kind").is_in(fs.NOT_LABELLED)) if "kind" in data.columns else data
    if japanese_only:
        f = f.filter(pl.col("_ja").is_not_null())
    if "score" in f.columns:  # ties in id order: the same ranking gives the same labels
        by = ["score", "token_id"] if "token_id" in f.columns else ["score"]
        f = f.sort(by, descending=[True, False][: len(by)], nulls_last=True, maintain_order=True)
    return f.head(k)


def marked_rows(frame: pl.DataFrame, mark_ids: Iterable[int] | None) -> pl.DataFrame | None:
    if not mark_ids:
        return None
    ids = sorted({int(i) for i in mark_ids})
    return frame.filter(pl.col("token_id").is_in(ids))


def sample_note(result: MapResult, n: int) -> str | None:
    """The legend's title when the map is a sample: its counts are of the points shown."""
    valid = result.meta.get("valid_rows")
    mode = (result.meta.get("settings") or {}).get("mode")
    if mode == "sample" or (isinstance(valid, int) and valid > n):
        of = f" of {valid:,}" if isinstance(valid, int) else ""
        return f"counts in the sample of {n:,}{of} tokens on this map"
    return None


def _groups(data: pl.DataFrame, view: str) -> list[tuple[str, str, Any]]:
    if view == "kind":
        kinds = set(data["kind"].to_list())
        return [(k, KIND_COLORS.get(k, "#777777"), pl.col("kind") == k) for k in KIND_COLORS if k in kinds]
    if view == "script":
        counts = data.filter(~pl.col("script").is_in(["none", "Common"]))["script"].value_counts(sort=True)
        top = counts["script"].to_list()[: len(_SCRIPT_PALETTE)]
        groups = [("other scripts, digits, symbols, no text", "#d0d0d0", ~pl.col("script").is_in(top))]
        return groups + [(name, col, pl.col("script") == name) for name, col in zip(top, _SCRIPT_PALETTE)]
    groups = [("not Japanese", "#d0d0d0", pl.col("_ja").is_null())]
    return groups + [(k, col, pl.col("_ja") == k) for k, col in JAPANESE_COLORS.items()]


def map_figure(
    frame: pl.DataFrame,
    result: MapResult,
    view: str = "score",
    *,
    title: str = "",
    label_top: int = 25,
    mark_ids: Iterable[int] | None = None,
    mark_name: str = "marked tokens",
    spot_radius: float = 0.012,
):
    """One map (``view``: score, kind, script or japanese) as a ``Figure``. ``frame``: the ranking
    (or its ``join_map`` with the coordinates, to share the join between views). ``label_top``:
    how many spots are labelled at most; ``spot_radius``: how close (a fraction of the axes'
    diagonal) tokens must be to share a label (0: only identical positions)."""
    if view not in MAP_VIEWS:
        raise InputError(f"view must be one of {', '.join(MAP_VIEWS)}, not {view!r}")
    data = join_map(frame, result.coords)
    n = data.height
    s = fs.point_size(n)
    fig = fs.new_figure(10.0, 7.2)
    ax = fig.add_subplot()
    ax.set_xticks([])
    ax.set_yticks([])
    # what must stay in the frame: the tokens that may be labelled and the marked ones
    cand = label_candidates(data, max(label_top * 20, 200), japanese_only=(view == "japanese"))
    marked = marked_rows(data, mark_ids)
    keep_ids = set(cand["token_id"].head(label_top * 4).to_list())
    if marked is not None:
        keep_ids |= set(marked["token_id"].to_list())
    ids = data["token_id"].to_numpy()
    x, y, pinned = fs.fit_limits(ax, data["x"].to_numpy(), data["y"].to_numpy(), keep=np.isin(ids, list(keep_ids)))
    data = data.with_columns(x=pl.Series(x), y=pl.Series(y))
    handles = []
    if view == "score":
        d = data.sort("score", nulls_last=False, maintain_order=True)
        sc = ax.scatter(
            d["x"].to_numpy(),
            d["y"].to_numpy(),
            c=d["score"].fill_null(np.nan).to_numpy(),
            cmap="viridis",
            s=s,
            linewidths=0,
            rasterized=True,
        )
        fig.colorbar(sc, ax=ax, shrink=0.6, pad=0.015, label="score (cosine to the reference mean)")
    else:
        parts = [(name, col, data.filter(cond)) for name, col, cond in _groups(data, view)]
        parts = [p for p in parts if p[2].height]
        by_size = sorted(range(len(parts)), key=lambda i: -parts[i][2].height)
        order = {i: rank for rank, i in enumerate(by_size)}  # the rarer, the higher
        for i, (name, col, d) in enumerate(parts):
            style = fs.category_style(d.height, n, s, col in fs.BULK_GREYS, order[i])
            h = ax.scatter(
                d["x"].to_numpy(),
                d["y"].to_numpy(),
                c=col,
                rasterized=True,
                label=fs.plain(f"{name} ({d.height:,})"),
                **style,
            )
            handles.append(h)
    if marked is not None and marked.height:
        m = data.filter(pl.col("token_id").is_in(marked["token_id"].implode()))
        handles.append(
            ax.scatter(
                m["x"].to_numpy(),
                m["y"].to_numpy(),
                s=max(4 * s, 16),
                label=fs.plain(f"{mark_name} ({m.height:,})"),
                **fs.MARK_STYLE,
            )
        )
    fs.legend(fig, handles, title=sample_note(result, n) if handles else None)
    fs.set_title(fig, f"{title}: embedding map {_WHAT[view]}" if title else f"Embedding map {_WHAT[view]}")
    lab = "Japanese tokens" if view == "japanese" else "tokens (unused/padding rows aside)"
    st = result.meta.get("settings", {})

    def caption(note: str) -> list[str]:
        umap = (
            f"UMAP of the input embedding, {st.get('metric', 'cosine')}, n_neighbors={st.get('n_neighbors')}, "
            f"min_dist={st.get('min_dist')}, seed={st.get('seed')}."
        )
        edge = f" {pinned:,} far-out points drawn on the frame's edge." if pinned else ""
        return [result.description or f"{n:,} points", umap + edge + " " + note]

    # lay out with the longest caption the labels can give, then label in the final display space
    fs.set_caption(fig, caption(longest_label_note(lab)))
    fs.settle(fig)
    cand = label_candidates(data, max(label_top * 20, 200), japanese_only=(view == "japanese"))
    spots, walked = spot_labels(
        ax,
        cand["x"].to_numpy(),
        cand["y"].to_numpy(),
        [t or "" for t in cand["token"].to_list()],
        label_top,
        radius=spot_radius,
    )
    _, dropped = place_labels(ax, spots)
    fs.set_caption(fig, caption(label_note(spots, walked, lab, dropped)))
    fs.freeze(fig)
    return fig
