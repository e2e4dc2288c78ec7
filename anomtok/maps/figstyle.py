"""What every figure of ``anomtok.maps`` shares: a constrained-layout ``Figure`` (Agg, no pyplot),
a title and a caption wrapped to the figure's width and kept inside it, legends with markers of one
readable size, axes limits fitted to the bulk of the data, text in the font fallback chain.

The layout is worked out once the figure's furniture is in place (``settle``), then frozen, so that
labels placed afterwards in display space (``anomtok.maps.labels``) stay where they were put.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import fonts

__all__ = [
    "new_figure",
    "plain",
    "props",
    "wrap",
    "set_title",
    "set_caption",
    "legend",
    "settle",
    "freeze",
    "fit_limits",
    "point_size",
    "CAPTION_SIZE",
    "DPI",
    "KIND_COLORS",
    "BULK_GREYS",
    "MARK_STYLE",
    "NOT_LABELLED",
    "category_style",
]

DPI = 150  # the PNGs' resolution: text is measured (wrapping, labels) where it is drawn
CAPTION_SIZE = 7.5
TITLE_SIZE = 11.5


def new_figure(w: float = 9.0, h: float = 7.0):
    """A ``Figure`` with constrained layout and an Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=DPI, layout="constrained")
    fig.get_layout_engine().set(w_pad=0.06, h_pad=0.06, wspace=0.02, hspace=0.02)
    FigureCanvasAgg(fig)
    return fig


def plain(s: str) -> str:
    """Text of a title, legend or caption: every character drawable (escapes for the rest)."""
    return fonts.label_text(s, max_chars=10_000, visible_spaces=False)


def props(text: str, size: float, weight: str = "normal"):
    return fonts.font_properties_for(text, size=size, weight=weight)


def wrap(fig, text: str, size: float, width_frac: float = 0.95) -> str:
    """``text`` broken into lines (at spaces) no wider than ``width_frac`` of the figure, as the
    renderer measures them; existing line breaks are kept."""
    renderer = fig.canvas.get_renderer()
    limit = fig.bbox.width * width_frac
    prop = props(text, size)

    def width(s: str) -> float:
        return renderer.get_text_width_height_descent(s, prop, ismath=False)[0]

    out: list[str] = []
    for para in text.split("\n"):
        line = ""
        for word in para.split(" "):
            trial = f"{line} {word}" if line else word
            if line and width(trial) > limit:
                out.append(line)
                line = word
            else:
                line = trial
        out.append(line)
    return "\n".join(out)


def set_title(fig, text: str) -> None:
    """The figure's title, left-aligned and wrapped to its width."""
    t = wrap(fig, plain(text), TITLE_SIZE)
    fig.suptitle(t, x=0.01, ha="left", fontproperties=props(t, TITLE_SIZE), parse_math=False)


def set_caption(fig, lines: Sequence[str]) -> None:
    """The caption under the plot: inside the figure, wrapped to its width (the layout makes room).
    Called again, it replaces the text (``settle`` first with the longest text it may have)."""
    text = wrap(fig, "\n".join(plain(s) for s in lines if s), CAPTION_SIZE)
    fig.supxlabel(
        text,
        x=0.01,
        ha="left",
        color="#333333",
        fontproperties=props(text, CAPTION_SIZE),
        parse_math=False,
        multialignment="left",
    )


def legend(fig, handles: list, title: str | None = None) -> None:
    """A legend of the scatter handles, outside the axes on the right, with markers of one
    readable size whatever the point size; ``title`` says what the counts are of."""
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
    labels = "".join(h.get_label() for h in handles) + (title or "")
    leg = fig.legend(
        handles=proxies,
        loc="outside right upper",
        frameon=False,
        prop=props(labels, 8),
        title=wrap(fig, title, 8, width_frac=0.22) if title else None,
        alignment="left",
    )
    if title:
        leg.get_title().set_fontproperties(props(title, 8))
        leg.get_title().set_color("#333333")


def settle(fig) -> None:
    """Run the layout now (everything but the labels is in place), so that display coordinates
    are final when labels are placed."""
    engine = fig.get_layout_engine()
    if engine is not None:
        engine.execute(fig)


def freeze(fig) -> None:
    """Keep the layout as ``settle`` left it: drawing or saving does not move the axes again."""
    settle(fig)
    fig.set_layout_engine("none")


def point_size(n: int) -> float:
    return float(np.clip(15000.0 / max(n, 1), 0.15, 14.0))


def fit_limits(
    ax,
    x: np.ndarray,
    y: np.ndarray,
    keep: np.ndarray | None = None,
    q: float = 0.002,
    reach: float = 0.25,
    pad: float = 0.04,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Axes limits around the bulk of the points (between the ``q`` and ``1 - q`` quantiles of each
    coordinate, with the points within ``reach`` times that span of it, padded), widened to every
    point of ``keep`` (a boolean mask: labelled and marked points stay where they are). Points still
    outside are moved onto the frame's edge; returns the coordinates to draw and how many points
    were moved."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    if not ok.any():
        return x, y, 0
    keep = np.zeros(x.shape, dtype=bool) if keep is None else (np.asarray(keep, dtype=bool) & ok)
    lims = []
    for v in (x, y):
        lo, hi = np.quantile(v[ok], [q, 1.0 - q]) if ok.sum() > 20 else (v[ok].min(), v[ok].max())
        near = v[ok][(v[ok] >= lo - reach * (hi - lo)) & (v[ok] <= hi + reach * (hi - lo))]
        lo, hi = near.min(), near.max()  # the bulk and what lies close to it: only far-out points are moved
        if keep.any():
            lo, hi = min(lo, v[keep].min()), max(hi, v[keep].max())
        span = (hi - lo) or 1.0
        lims.append((lo - pad * span, hi + pad * span))
    (x0, x1), (y0, y1) = lims
    out = ok & ((x < x0) | (x > x1) | (y < y0) | (y > y1))
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    return np.clip(x, x0, x1), np.clip(y, y0, y1), int(out.sum())


# Colours of token kinds (maps and the score/norm plot); the grey ones are the bulk, drawn first.
KIND_COLORS = {
    "normal": "#c8c8c8",
    "byte": "#1f77b4",
    "special": "#2ca02c",
    "unused": "#d62728",
    "added": "#9467bd",
    "unknown": "#8c564b",
    "padding": "#e377c2",
}
BULK_GREYS = ("#c8c8c8", "#d0d0d0")
MARK_STYLE = {"marker": "x", "c": "black", "linewidths": 0.9, "zorder": 9, "gid": "marked"}
NOT_LABELLED = ("unused", "padding")  # thousands of look-alike placeholders: coloured, not labelled


def category_style(count: int, total: int, s: float, grey: bool, order: int) -> dict:
    """Size and drawing order of one category of a scatter: the bulk (grey) at the point size and
    at the bottom; the others larger and the rarer the higher, so that a category of one point
    (a special token) is still seen; rare ones get a thin white rim."""
    if grey:
        return {"s": s, "zorder": 1, "linewidths": 0}
    if count <= max(50, total // 500):
        return {"s": max(3.0 * s, 20.0), "zorder": 3 + order, "edgecolors": "white", "linewidths": 0.4}
    return {"s": max(1.5, min(2.5 * s, 20.0)), "zorder": 3 + order, "linewidths": 0}
