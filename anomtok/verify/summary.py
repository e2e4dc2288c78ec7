"""What a verification run reports: the precision and lift of each metric, the base rate and the
reference sanity row (:func:`summarize`), and its files ``verified.csv``, ``verify.json`` and
``meta.json`` (:func:`write_outputs`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl

from .._version import __version__
from ..provenance import run_info
from ..ranking import Ranking

__all__ = ["summarize", "write_outputs"]


def summarize(
    out: pl.DataFrame,
    tops: dict[int, set[str]],
    rnd: list[int],
    refs: list[int],
    metrics: Sequence[str],
    top: int,
    threshold: float,
    sizes: dict[str, int],
) -> dict[str, Any]:
    ver = dict(zip(out["token_id"].to_list(), out["verified"].to_list()))
    base = [ver[t] for t in rnd]
    base_rate = sum(base) / len(base) if base else None
    ref = [ver[t] for t in refs]
    prec: dict[str, Any] = {}
    for m in metrics:
        mine = [t for t, ms in tops.items() if m in ms]
        if not mine:
            continue
        p = sum(ver[t] for t in mine) / len(mine)
        prec[m] = {
            "n": len(mine),
            "verified": int(sum(ver[t] for t in mine)),
            "precision": round(p, 4),
            "lift": round(p / base_rate, 4) if base_rate else None,
        }
    n_ver = int(out["verified"].sum())
    return {
        "n_candidates": out.height,
        "n_verified": n_ver,
        "base_rate": {
            "n": len(base),
            "verified": int(sum(base)),
            "rate": round(base_rate, 4) if base_rate is not None else None,
        },
        "precision": prec,
        # sanity row: reference tokens are never candidates; most of them should verify
        "reference": {"n": len(ref), "verified": int(sum(ref)), "rate": round(sum(ref) / len(ref), 4) if ref else None},
        "top": top,
        "verified_share_per_metric": {
            m: round(sum(1 for t, ms in tops.items() if m in ms and ver[t]) / n_ver, 4) for m in prec
        }
        if n_ver
        else {},
    }


def write_outputs(
    out_dir: Any, frame: pl.DataFrame, summary: dict[str, Any], lm: Any, emb: Any, rk: Any, settings: dict[str, Any]
) -> None:
    from ..export import write_csv, write_json
    from ..outputs import make_dir

    out = make_dir(out_dir)
    write_csv(frame, out / "verified.csv")
    write_json(summary, out / "verify.json")
    write_json(
        {
            "anomtok_version": __version__,
            **run_info("verify"),
            "model": emb.provenance.to_dict(),
            "generation_model": lm.describe(),
            "ranking": getattr(rk, "meta", {}).get("settings") if isinstance(rk, Ranking) else "given",
            "settings": settings,
            "outputs": ["verified.csv", "verify.json", "meta.json"],
        },
        out / "meta.json",
    )
