"""The Python API, one function per CLI command (``anomtok rank`` = ``anomtok.rank``)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import polars as pl

from .embeddings import ModelEmbeddings
from .errors import InputError
from .export import write_ranking
from .loading import load
from .ranking import RankOptions, Ranking, order_by
from .ranking import rank as _rank
from .steps import rank_key

__all__ = ["rank", "nearest"]

ModelLike = "str | os.PathLike | ModelEmbeddings"


def _embeddings(model: Any) -> ModelEmbeddings:
    return model if isinstance(model, ModelEmbeddings) else load(model)


def rank(model: Any, out_dir: str | os.PathLike | None = None, options: RankOptions | None = None,
         progress: Any = None) -> Ranking:
    """Rank every token of ``model`` (a spec for ``anomtok.load`` or loaded embeddings).

    With ``out_dir``, also write ``ranked.csv``, ``ranked.parquet`` and ``meta.json`` there,
    committed together with the ``rank`` step's marker (``.steps/rank.json``), so that ``scan``
    reuses them when the model and the settings are the same (see ``anomtok.steps``).
    """
    started = time.perf_counter()
    emb = _embeddings(model)
    opts = options or RankOptions()
    result = _rank(emb, opts, progress=progress)
    if out_dir is not None:
        key = rank_key(emb.provenance.to_dict(), opts)
        paths = write_ranking(result, Path(out_dir), step_key=key, started=started)
        result.meta["outputs"] = {k: str(v) for k, v in paths.items()}
    return result


def nearest(model: Any, k: int = 50, metric: str = "centroid_l2", far: bool = False,
            include_padding: bool = False, options: RankOptions | None = None) -> pl.DataFrame:
    """The ``k`` tokens nearest to the centroid (``far=True``: farthest), or the top ``k`` by any
    metric of the ranking in its suspicious direction (``far`` flips it)."""
    if k < 1:
        raise InputError("k must be >= 1")
    if isinstance(model, Ranking):
        frame = model.frame
    else:
        opts = options or RankOptions(nn="off")
        frame = rank(model, options=opts).frame
    return order_by(frame, metric, far=far, include_padding=include_padding).head(k)
