"""The picture of a temperature sweep: ``sweep.png``.

``plot_sweep(frame, path)`` draws the ``sweep`` frame (:mod:`.sweep_run`) in four panels
against T. matplotlib is imported inside the function, so importing this module is cheap.
"""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl

__all__ = ["plot_sweep"]


def plot_sweep(frame: pl.DataFrame, path: str | os.PathLike, *, title: str = "", metric: str = "score") -> Path:
    """Four panels against T (symmetric-log axis): distinct tokens, entropies, mean anomaly
    percentile, mean log-probability. Uses matplotlib's Agg canvas directly: no pyplot, no
    global state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ..cache import atomic_path

    T = frame["temperature"].to_list()
    fig = Figure(figsize=(10, 7), dpi=110)
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 2, sharex=True)
    panels = [
        (axes[0][0], [("distinct_tokens", "distinct tokens")], "distinct tokens"),
        (
            axes[0][1],
            [("mean_entropy", "model (T=1)"), ("mean_sample_entropy", "sampling distribution")],
            "mean entropy (nats)",
        ),
        (
            axes[1][0],
            [("mean_percentile", "all"), ("mean_percentile_en", "EN prompts"), ("mean_percentile_ja", "JA prompts")],
            f"mean percentile in {metric}\n(0 = most suspicious)",
        ),
        (axes[1][1], [("mean_logprob", "chosen token")], "mean log p(chosen), model at T=1"),
    ]
    for ax, series, ylabel in panels:
        for col, lab in series:
            if col in frame.columns:
                ys = [float("nan") if v is None else v for v in frame[col].to_list()]
                ax.plot(T, ys, marker="o", label=lab)
        ax.set_xscale("symlog", linthresh=1e-3)
        ax.axvline(0.0, color="grey", lw=0.8, ls=":")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        if len(series) > 1:
            ax.legend(fontsize=8)
    axes[1][0].axhline(50.0, color="grey", lw=0.8, ls="--")
    for ax in axes[1]:
        ax.set_xlabel("temperature T (symlog)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    target = Path(path)
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png")
    return target
