"""The plots of a ranking alone (no map): ``centroid_histogram`` (distance to the centroid, both
tails marked and their tokens named, the reference tokens overlaid) and ``score_vs_norm`` (the
score against the embedding norm, coloured by kind, the top tokens labelled one per spot). Tokens
given as ``mark_ids`` are drawn as crosses (a third histogram). Layout, title and caption as in
``anomtok.maps.figstyle``; labels as in ``anomtok.maps.labels``.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import polars as pl

from ..errors import InputError
from . import figstyle as fs
from . import fonts
from .figures import label_candidates, marked_rows
from .labels import label_note, longest_label_note, place_labels, spot_labels

__all__ = ["centroid_histogram", "score_vs_norm"]


def centroid_histogram(
    frame: pl.DataFrame,
    *,
    title: str = "",
    tail: float = 0.01,
    list_n: int = 5,
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
    fig = fs.new_figure(9.0, 5.8)
    ax = fig.add_subplot()
    bins = np.linspace(d.min(), d.max(), 161) if d.max() > d.min() else 10
    counts, _, _ = ax.hist(d, bins=bins, histtype="stepfilled", color="#8a8a8a", label=f"all tokens ({d.size:,})")
    if "is_reference" in f.columns and f["is_reference"].any():
        r = f.filter(pl.col("is_reference"))["centroid_l2"].to_numpy()
        ax.hist(r, bins=bins, histtype="step", color="#d62728", lw=1.2, label=f"reference / unused ({r.size:,})")
    marked = marked_rows(f, mark_ids)
    if marked is not None and marked.height:
        ax.hist(
            marked["centroid_l2"].to_numpy(),
            bins=bins,
            histtype="step",
            color="black",
            lw=1.2,
            label=fs.plain(f"{mark_name} ({marked.height:,})"),
        )
    ax.set_yscale("log")
    ax.set_xlim(d.min(), d.max()) if d.max() > d.min() else None
    ax.set_ylim(0.6, max(float(np.max(counts)), 1.0) * 60)  # head room for the two tail boxes
    ax.axvspan(d.min(), lo, color="#3182bd", alpha=0.15, lw=0)
    ax.axvspan(hi, d.max(), color="#e6550d", alpha=0.15, lw=0)
    n_lo, n_hi = int((d <= lo).sum()), int((d >= hi).sum())
    for side, thr, n_side, frame_side, x, ha, col in (
        ("nearest", lo, n_lo, f.sort("centroid_l2").head(list_n), 0.01, "left", "#3182bd"),
        ("farthest", hi, n_hi, f.sort("centroid_l2", descending=True).head(list_n), 0.99, "right", "#e6550d"),
    ):
        names = ", ".join(fonts.label_text(t or "", max_chars=12) for t in frame_side["token"].to_list())
        box = f"{side} {tail:.0%}: {n_side:,} tokens ({'≤' if side == 'nearest' else '≥'} {thr:.3g})\n{names}"
        ax.text(
            x,
            0.97,
            box,
            transform=ax.transAxes,
            ha=ha,
            va="top",
            fontproperties=fs.props(box, 7),
            color=col,
            parse_math=False,
            bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": col, "alpha": 0.9},
            gid="label",
        )
    ax.set_xlabel("L2 distance to the centroid of the input embedding")
    ax.set_ylabel("tokens (log)")
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", frameon=False, prop=fs.props("".join(labels), 8))
    fs.set_title(fig, f"{title}: distance to the centroid" if title else "Distance to the centroid")
    fs.set_caption(
        fig,
        [
            f"{d.size:,} tokens with a finite vector (padding rows aside); shaded: the nearest and farthest "
            f"{tail:.0%}, where under-trained tokens gather (near, for most tied models); boxes: their "
            f"{list_n} most extreme tokens."
        ],
    )
    fs.freeze(fig)
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
    s = fs.point_size(f.height) * 1.5
    fig = fs.new_figure(10.0, 6.5)
    ax = fig.add_subplot()
    ax.margins(0.04)
    handles = []
    parts = [(k, col, f.filter(pl.col("kind") == k)) for k, col in fs.KIND_COLORS.items()]
    parts = [p for p in parts if p[2].height]
    order = {k: rank for rank, (k, _, _) in enumerate(sorted(parts, key=lambda p: -p[2].height))}
    for kind, col, d in parts:
        style = fs.category_style(d.height, f.height, s, col in fs.BULK_GREYS, order[kind])
        handles.append(
            ax.scatter(
                d["norm"].to_numpy(),
                d["score"].to_numpy(),
                c=col,
                rasterized=True,
                label=f"{kind} ({d.height:,})",
                **style,
            )
        )
    marked = marked_rows(f, mark_ids)
    if marked is not None and marked.height:
        handles.append(
            ax.scatter(
                marked["norm"].to_numpy(),
                marked["score"].to_numpy(),
                s=max(4 * s, 16),
                label=fs.plain(f"{mark_name} ({marked.height:,})"),
                **fs.MARK_STYLE,
            )
        )
    ax.autoscale_view()
    ax.set_xlim(ax.get_xlim())
    ax.set_ylim(ax.get_ylim())
    ax.set_xlabel("L2 norm of the input embedding")
    ax.set_ylabel("score (under-trained indicator)")
    fs.legend(fig, handles)
    fs.set_title(fig, f"{title}: score against norm" if title else "Score against norm")
    what = "tokens (unused/padding rows aside)"
    fs.set_caption(fig, [f"{f.height:,} tokens. " + longest_label_note(what)])
    fs.settle(fig)
    cand = label_candidates(f, max(label_top * 20, 200))
    spots, walked = spot_labels(
        ax, cand["norm"].to_numpy(), cand["score"].to_numpy(), [t or "" for t in cand["token"].to_list()], label_top
    )
    _, dropped = place_labels(ax, spots)
    fs.set_caption(fig, [f"{f.height:,} tokens. " + label_note(spots, walked, what, dropped)])
    fs.freeze(fig)
    return fig
