"""The options of a generation run, checked before any model is loaded.

``GenerationOptions`` holds how ``negtemp`` and ``sweep`` generate (tokens, seed, batch,
timeout, device, dtype) and raises ``InputError`` for a bad value when built; ``check_metric``
checks the sweep's ranking metric, and again against a ranking once one is at hand.

>>> GenerationOptions(max_new_tokens=16).batch_size
8
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..errors import InputError
from ..inputs import check_int, check_seed
from .loop import MAX_BATCH_SIZE, MAX_NEW_TOKENS

__all__ = ["GenerationOptions", "DTYPE_NAMES", "check_metric"]

DTYPE_NAMES = ("auto", "float32", "bfloat16", "float16")


@dataclass(frozen=True)
class GenerationOptions:
    """How a generation run goes, checked when built (before any model is loaded): every bad
    value is an ``InputError`` naming what is allowed."""

    max_new_tokens: int = 64
    seed: int = 0
    batch_size: int = 8
    timeout_s: float | None = None
    stop_at_eos: bool = False
    device: str = "auto"
    dtype: str = "auto"
    device_map: str | None = None

    def __post_init__(self) -> None:
        check_int(self.max_new_tokens, "max_new_tokens", 1, MAX_NEW_TOKENS)
        check_seed(self.seed)
        check_int(self.batch_size, "batch_size", 1, MAX_BATCH_SIZE)
        t = self.timeout_s
        if t is not None and (isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t <= 0):
            raise InputError(f"timeout_s must be a positive number of seconds (or None: no limit), not {t!r}")
        if self.dtype not in DTYPE_NAMES:
            raise InputError(f"dtype must be one of {', '.join(DTYPE_NAMES)}, not {self.dtype!r}")
        if self.device_map not in (None, "auto"):
            raise InputError(f"device_map must be None or 'auto', not {self.device_map!r}")
        from ..device import resolve_device

        resolve_device(self.device)


def check_metric(metric: Any, ranking: Any = None) -> str:
    """``metric`` is one of the ranking metrics (and, given a ranking, one it has values of)."""
    from ..ranking import METRICS, Ranking

    if metric not in METRICS:
        raise InputError(f"unknown metric {metric!r}; choose from {', '.join(METRICS)}")
    if ranking is not None:
        frame = ranking.frame if isinstance(ranking, Ranking) else ranking
        if metric not in frame.columns or frame[metric].drop_nulls().len() == 0:
            why = " (ranked with --nn off: give --ranking from `anomtok rank`)" if metric == "nn_cos" else ""
            raise InputError(f"the ranking has no values of {metric}{why}")
    return metric
