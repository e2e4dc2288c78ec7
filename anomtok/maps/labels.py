"""Token labels on a scatter plot: one label per spot, placed without overlap, with short leaders.

Under-trained tokens often sit on top of each other (dozens of them at one point of a map), so
labelling the top tokens one by one draws a fan of labels all pointing at one dot. Instead:

1. ``spot_labels`` walks the tokens by score and gathers those within a few pixels of each other
   into one *spot*, named by its best-scoring token with a count (``×12``: twelve of the tokens
   walked sit there), until there are ``k`` spots;
2. ``place_labels`` puts each label at the nearest free place around its point (growing rings of
   candidate positions in display space), never over another label or a labelled point and never
   outside the axes; a label that fits nowhere is left out and counted.

Characters no installed font draws are escaped (``anomtok.maps.fonts.label_text``) and the labels
that needed it are counted, so the caption can say so.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import fonts

__all__ = ["Label", "spot_labels", "place_labels", "label_note", "longest_label_note"]

_DIRECTIONS = [(1, 1), (1, -1), (-1, 1), (-1, -1), (1, 0), (-1, 0), (0, 1), (0, -1)]
_RINGS = (4, 8, 12, 17, 23, 30, 38, 47, 57)  # points from the labelled point
_BOX = {"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8}


@dataclass(frozen=True)
class Label:
    """One spot to label: where, what (drawable text, ``×n`` included), how many tokens it stands
    for and whether its token needed escapes."""

    x: float
    y: float
    text: str
    count: int
    escaped: bool


def spot_labels(
    ax, x: np.ndarray, y: np.ndarray, tokens: Sequence[str], k: int, *, radius: float = 0.012, max_scan: int = 5000
) -> tuple[list[Label], int]:
    """Up to ``k`` labels for points already sorted best first: a point within ``radius`` (a
    fraction of the axes' diagonal) of an earlier labelled point is counted into its spot. Returns
    the labels and how many points were walked (the counts are of those)."""
    if k <= 0 or len(tokens) == 0:
        return [], 0
    box = ax.get_window_extent()
    radius_px = radius * float(np.hypot(box.width, box.height))
    n = min(len(tokens), max_scan)
    pts = ax.transData.transform(np.column_stack([np.asarray(x[:n], float), np.asarray(y[:n], float)]))
    anchors: list[int] = []
    counts: list[int] = []
    walked = 0
    for i in range(n):
        walked = i + 1
        if anchors:
            d = np.hypot(*(pts[anchors] - pts[i]).T)
            j = int(np.argmin(d))
            if d[j] <= radius_px:
                counts[j] += 1
                continue
        if len(anchors) == k:
            walked = i  # the first point of a (k+1)-th spot ends the walk
            break
        anchors.append(i)
        counts.append(1)
    out = []
    for i, c in zip(anchors, counts):
        raw = tokens[i] or ""
        text = fonts.label_text(raw) + (f" \u00d7{c}" if c > 1 else "")
        out.append(Label(float(x[i]), float(y[i]), text, c, bool(fonts.missing_chars(raw))))
    return out, walked


def label_note(labels: Sequence[Label], walked: int, what: str, dropped: int) -> str:
    """The caption's sentence about the labels: what they are, what ``×n`` means, how many were
    left out and how many fell back to escapes."""
    if not labels:
        return f"No {what} to label."
    s = f"Labels: the best-scoring token of each spot among the top {walked:,} {what} by score"
    if any(lab.count > 1 for lab in labels):
        s += " (\u00d7n: n of them at that spot)"
    s += "."
    if dropped:
        s += f" {dropped} label{'s' * (dropped != 1)} left out for lack of room."
    esc = sum(lab.escaped for lab in labels)
    if esc:
        s += f" {esc} label{'s' * (esc != 1)} with characters no installed font draws, shown as \\u escapes."
    return s


def _crosses(a, b) -> bool:
    """Whether segments ``a`` and ``b`` (pairs of display points) cross at a point inside both."""

    def orient(p, q, r) -> float:
        return (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])

    (p1, p2), (q1, q2) = a, b
    d1, d2 = orient(q1, q2, p1), orient(q1, q2, p2)
    d3, d4 = orient(p1, p2, q1), orient(p1, p2, q2)
    return d1 * d2 < 0 and d3 * d4 < 0


def longest_label_note(what: str) -> str:
    """A ``label_note`` at least as long as any real one (to lay the figure out before labelling)."""
    fake = [Label(0.0, 0.0, "", 2, True)] * 999
    return label_note(fake, 999_999, what, 999)


def place_labels(ax, items: Sequence[Label], *, fontsize: float = 7.0, avoid: Iterable[Any] = ()) -> tuple[int, int]:
    """Put each label at the first free position around its point: rings of growing distance,
    eight directions each; a box overlapping a placed label, a labelled point or ``avoid`` (display
    boxes), or leaving the axes, is not free. Then two labels whose leaders cross trade places when
    both still fit (``_uncross``). Returns (placed, dropped). Lay the figure out first
    (``figstyle.settle``): positions are computed in display space."""
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    ax_box = ax.get_window_extent(renderer)
    bounds = (ax_box.x0, ax_box.y0, ax_box.x1, ax_box.y1)
    scale = fig.dpi / 72.0
    pad = 2.0 * scale
    taken = [tuple(b.extents) for b in avoid]
    pts = ax.transData.transform(np.array([(it.x, it.y) for it in items], dtype=float).reshape(-1, 2))
    dot = 2.5 * scale
    taken += [(px - dot, py - dot, px + dot, py + dot) for px, py in pts]  # the labelled points stay visible
    fixed = len(taken)  # boxes that never move; placed labels' boxes follow
    centre = pts.mean(axis=0) if len(pts) else np.zeros(2)
    placed: list[_Placed] = []
    dropped = 0
    for it, (px, py) in zip(items, pts):
        # outward first: away from the middle of the labelled points, so that leaders do not cross
        out = np.array([px, py]) - centre
        dirs = sorted(_DIRECTIONS, key=lambda d: -(d[0] * out[0] + d[1] * out[1]) / np.hypot(*d))
        prop = fonts.font_properties_for(it.text, size=fontsize)
        w, h, d = renderer.get_text_width_height_descent(it.text, prop, ismath=False)
        _, lp_h, lp_d = renderer.get_text_width_height_descent("lp", prop, ismath=False)
        h = max(h - d, lp_h - lp_d) + max(d, lp_d)  # a line is at least as tall as "lp", as Text lays it out
        w, h = w + 2 * pad, h + 2 * pad
        found = None
        arr = np.array(taken, dtype=float).reshape(-1, 4)
        leaders = [q.leader for q in placed]
        for crossing_ok in (False, True):  # first without crossing a leader already drawn
            for anchor, dx, dy, box in _slots((px, py), dirs, w, h, scale, pad):
                if not _fits(box, bounds, arr):
                    continue
                if not crossing_ok and any(_crosses(((px, py), anchor), other) for other in leaders):
                    continue
                found = _Placed(it, prop, (px, py), anchor, dx, dy, w, h, box, tuple(dirs))
                break
            if found:
                break
        if found is None:
            dropped += 1
            continue
        placed.append(found)
        taken.append(found.box)
    _uncross(placed, taken[:fixed], bounds, scale, pad)
    for q in placed:
        ha, va = {1: "left", -1: "right", 0: "center"}[q.dx], {1: "bottom", -1: "top", 0: "center"}[q.dy]
        off = ((q.anchor[0] - q.point[0]) / scale, (q.anchor[1] - q.point[1]) / scale)
        long = np.hypot(*off) > 5.7  # beyond the first ring (4 points, diagonals 5.66): a leader
        arrow = {"arrowstyle": "-", "lw": 0.5, "color": "#555555", "shrinkA": 0, "shrinkB": 1.5} if long else None
        ax.annotate(
            q.item.text,
            xy=(q.item.x, q.item.y),
            xytext=off,
            textcoords="offset points",
            ha=ha,
            va=va,
            fontproperties=q.prop,
            parse_math=False,
            zorder=10,  # over the marked crosses (9)
            arrowprops=arrow,
            bbox=_BOX,
            gid="label",
        )
    return len(placed), dropped


@dataclass
class _Placed:
    """A placed label in display space: its point, the anchor its text is aligned to (``dx``,
    ``dy``: which side of the anchor the box is on), its size and box."""

    item: Label
    prop: Any
    point: tuple[float, float]
    anchor: tuple[float, float]
    dx: int
    dy: int
    w: float
    h: float
    box: tuple[float, ...]
    dirs: tuple[tuple[int, int], ...]  # its directions, best first

    @property
    def leader(self) -> tuple[tuple[float, float], tuple[float, float]]:
        return (self.point, self.anchor)


def _slots(point, dirs, w: float, h: float, scale: float, pad: float):
    """The candidate places of a ``w`` x ``h`` label around ``point``, nearest first:
    ``(anchor, dx, dy, box)`` on rings of growing distance, ``dirs`` in order on each."""
    px, py = point
    for r in _RINGS:
        for dx, dy in dirs:
            anchor = (px + dx * r * scale, py + dy * r * scale)
            yield anchor, dx, dy, _box(anchor, dx, dy, w, h, pad)


def _box(anchor: tuple[float, float], dx: int, dy: int, w: float, h: float, pad: float) -> tuple[float, ...]:
    ax_, ay_ = anchor
    x0 = ax_ - pad if dx == 1 else (ax_ - w + pad if dx == -1 else ax_ - w / 2)
    y0 = ay_ - pad if dy == 1 else (ay_ - h + pad if dy == -1 else ay_ - h / 2)
    return (x0, y0, x0 + w, y0 + h)


def _fits(box: Sequence[float], bounds: Sequence[float], others: np.ndarray) -> bool:
    """Inside ``bounds`` and overlapping none of ``others`` (an ``(n, 4)`` array of boxes)."""
    x0, y0, x1, y1 = box
    if x0 < bounds[0] or x1 > bounds[2] or y0 < bounds[1] or y1 > bounds[3]:
        return False
    o = others
    return not (o.size and np.any((o[:, 0] < x1) & (o[:, 2] > x0) & (o[:, 1] < y1) & (o[:, 3] > y0)))


def _uncross(
    placed: list[_Placed], fixed: list[tuple[float, ...]], bounds: Sequence[float], scale: float, pad: float
) -> None:
    """Leaders that cross are untangled in place: two such labels trade anchors (each keeps its
    size; the box side follows the anchor) when both boxes still fit and no leader then crosses
    more others; a label whose leader still crosses moves to its nearest free place whose leader
    crosses none. A trade shortens the two leaders' sum (two opposite sides of a convex
    quadrilateral are shorter than its diagonals) and a move removes crossings; the passes are
    bounded too."""

    def others_of(skip: set[int]) -> tuple[list[_Placed], np.ndarray]:
        rest = [q for k, q in enumerate(placed) if k not in skip]
        return rest, np.array(fixed + [q.box for q in rest], dtype=float).reshape(-1, 4)

    for _ in range(len(placed) + 1):
        changed = False
        for i in range(len(placed)):
            for j in range(i + 1, len(placed)):
                a, b = placed[i], placed[j]
                if not _crosses(a.leader, b.leader):
                    continue
                na = _Placed(
                    a.item,
                    a.prop,
                    a.point,
                    b.anchor,
                    b.dx,
                    b.dy,
                    a.w,
                    a.h,
                    _box(b.anchor, b.dx, b.dy, a.w, a.h, pad),
                    a.dirs,
                )
                nb = _Placed(
                    b.item,
                    b.prop,
                    b.point,
                    a.anchor,
                    a.dx,
                    a.dy,
                    b.w,
                    b.h,
                    _box(a.anchor, a.dx, a.dy, b.w, b.h, pad),
                    b.dirs,
                )
                rest, boxes = others_of({i, j})
                if not (_fits(na.box, bounds, np.vstack([boxes, [nb.box]])) and _fits(nb.box, bounds, boxes)):
                    continue
                if _crosses(na.leader, nb.leader):
                    continue
                before = sum(_crosses(q.leader, o.leader) for q in (a, b) for o in rest)
                after = sum(_crosses(q.leader, o.leader) for q in (na, nb) for o in rest)
                if after <= before:
                    placed[i], placed[j] = na, nb
                    changed = True
        for i, q in enumerate(placed):
            rest, boxes = others_of({i})
            if not any(_crosses(q.leader, o.leader) for o in rest):
                continue
            for anchor, dx, dy, box in _slots(q.point, q.dirs, q.w, q.h, scale, pad):
                if _fits(box, bounds, boxes) and not any(_crosses((q.point, anchor), o.leader) for o in rest):
                    placed[i] = _Placed(q.item, q.prop, q.point, anchor, dx, dy, q.w, q.h, box, q.dirs)
                    changed = True
                    break
        if not changed:
            return
