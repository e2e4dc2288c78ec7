"""Which tokens a verification run scores: the top tokens of each ranking metric, a seeded random
base-rate sample and a reference sanity sample (:func:`select_candidates`), and the settings of a
run checked before anything loads (:func:`check_settings`)."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import polars as pl

from ..errors import InputError
from ..ranking import METRICS, order_by
from .prompts import N_POSITIONS, VERIFY_THRESHOLD, check_positions
from .scoring import DEFAULT_BATCH_SIZE, check_batch_size

__all__ = ["MAX_CANDIDATES", "select_candidates", "check_settings"]

MAX_CANDIDATES = 20_000


def select_candidates(
    frame: pl.DataFrame, metrics: Sequence[str], top: int, kinds: Sequence[str], random_n: int, seed: int, n_vocab: int
) -> tuple[dict[int, set[str]], list[int], list[int]]:
    """(metric tops, random base-rate sample, reference sanity sample).

    Reference tokens (``is_reference``: what the default score was told is unused) are never
    metric candidates nor part of the base rate: verifying them would partly check what the
    score was given. They get a sanity sample of their own (any kind), reported apart."""
    in_vocab = pl.col("token_id") < n_vocab
    is_ref = pl.col("is_reference") if "is_reference" in frame.columns else pl.lit(False)
    pool = frame.filter(pl.col("kind").is_in(list(kinds)) & in_vocab & ~is_ref)
    tops: dict[int, set[str]] = {}
    for m in metrics:
        valid = pool.filter(pl.col(m).is_not_null() & pl.col(m).is_not_nan())
        for t in order_by(valid, m, include_padding=True).head(top)["token_id"].to_list():
            tops.setdefault(int(t), set()).add(m)
    ids = sorted(pool["token_id"].to_list())
    rnd = sorted(random.Random(seed).sample(ids, min(random_n, len(ids)))) if random_n else []
    refs = sorted(frame.filter(in_vocab & is_ref)["token_id"].to_list())
    ref_sample = sorted(random.Random(seed + 1).sample(refs, min(top, len(refs)))) if metrics else []
    return tops, rnd, ref_sample


def check_settings(
    *,
    metrics: Sequence[str] | None = None,
    top: int = 20,
    random_sample: int = 30,
    kinds: Sequence[str] = ("normal",),
    threshold: float = VERIFY_THRESHOLD,
    n_positions: int = N_POSITIONS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    seed: int = 0,
    device: str = "auto",
    dtype: str = "auto",
) -> None:
    """The settings of ``verify`` checked before anything loads (``anomtok.options.VerifyOptions``
    checks with this too): an ``InputError`` naming what is allowed."""
    from ..generation import GenerationOptions
    from ..tokens import KINDS

    if not isinstance(threshold, (int, float)) or not 0.0 < threshold < 1.0 or not math.isfinite(threshold):
        raise InputError(f"threshold must be in (0, 1), not {threshold}")
    if not isinstance(top, int) or not 1 <= top <= 5000:
        raise InputError(f"top must be an integer from 1 to 5000, not {top!r}")
    if not isinstance(random_sample, int) or not 0 <= random_sample <= 5000:
        raise InputError(f"random_sample must be an integer from 0 to 5000, not {random_sample!r}")
    check_positions(n_positions)
    check_batch_size(batch_size)
    GenerationOptions(seed=seed, device=device, dtype=dtype)  # seed, device, dtype: before any loading
    unknown = [m for m in metrics or [] if m not in METRICS]
    if unknown:
        raise InputError(f"unknown metric(s) {', '.join(map(str, unknown))}; choose from {', '.join(METRICS)}")
    bad_kinds = [k for k in kinds if k not in KINDS]
    if bad_kinds or not kinds:
        raise InputError(f"kinds must be among {', '.join(KINDS)}, not {', '.join(map(str, bad_kinds)) or 'none'}")
