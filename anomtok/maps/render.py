"""Figures to files: every plot of a report folder, written atomically as PNG and/or SVG.

``render_all`` draws the four maps (when a map is given), the centroid histogram and the
score/norm scatter (``anomtok.maps.figures``, ``anomtok.maps.rankplots``); ``save_figure`` writes one figure reproducibly
(no date or software in the file, SVG text as paths with a fixed hash salt).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from ..cache import atomic_path
from ..errors import InputError
from .figstyle import DPI
from .figures import MAP_VIEWS, join_map, map_figure
from .options import MapResult
from .rankplots import centroid_histogram, score_vs_norm

__all__ = ["FORMATS", "save_figure", "render_all"]

FORMATS = ("png", "svg")


def save_figure(fig, stem: str | os.PathLike, formats: Sequence[str] = FORMATS, dpi: int = DPI) -> list[Path]:
    """Write ``stem.png`` / ``stem.svg`` atomically (SVG text as paths, no date: reproducible)."""
    import matplotlib

    out = []
    for fmt in formats:
        if fmt not in FORMATS:
            raise InputError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
        target = Path(f"{stem}.{fmt}")
        meta = {"Date": None} if fmt == "svg" else {"Software": None}
        rc = {"svg.hashsalt": "anomtok", "svg.fonttype": "path"} if fmt == "svg" else {}
        with matplotlib.rc_context(rc), atomic_path(target) as tmp:
            fig.savefig(tmp, format=fmt, dpi=dpi, metadata=meta)
        out.append(target)
    return out


def render_all(
    frame: pl.DataFrame,
    out_dir: str | os.PathLike,
    result: MapResult | None = None,
    *,
    title: str = "",
    label_top: int = 25,
    mark_ids: Iterable[int] | None = None,
    mark_name: str = "marked tokens",
    formats: Sequence[str] = FORMATS,
    progress: Any = None,
) -> dict[str, list[Path]]:
    """Every plot into ``out_dir``: the four maps when ``result`` is given, the histogram and the
    score/norm scatter always. Returns {plot name: [files]}."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    marks = sorted({int(i) for i in mark_ids}) if mark_ids else None
    data = join_map(frame, result.coords) if result is not None else None
    written: dict[str, list[Path]] = {}
    jobs: list[tuple[str, Any]] = []
    if result is not None:
        for view in MAP_VIEWS:
            jobs.append(
                (
                    f"map_{view}",
                    lambda v=view: map_figure(
                        data, result, v, title=title, label_top=label_top, mark_ids=marks, mark_name=mark_name
                    ),
                )
            )
    jobs.append(("centroid_hist", lambda: centroid_histogram(frame, title=title, mark_ids=marks, mark_name=mark_name)))
    jobs.append(
        (
            "score_norm",
            lambda: score_vs_norm(
                frame, title=title, label_top=min(label_top, 15), mark_ids=marks, mark_name=mark_name
            ),
        )
    )
    for name, make in jobs:
        fig = make()
        written[name] = save_figure(fig, out / name, formats)
        if progress:
            progress(name)
    return written
