"""The result of scoring: :class:`Scores`, the teacher-forced log-probabilities of a list of tokens
(per template and position read), and what follows from them (``p``, the verdicts, a frame)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from .prompts import N_POSITIONS, VERIFY_THRESHOLD

__all__ = ["Scores", "nanmax"]


@dataclass
class Scores:
    """Teacher-forced repetition scores of a list of tokens.

    ``logp[i, j, k]``: log-probability of token i at the k-th position read in template j (NaN
    where template j has fewer positions, or was skipped by ``settle``); ``top_ids[i, j]``: the
    model's greedy choice at template j's answer slot (-1 when skipped)."""

    token_ids: list[int]
    names: tuple[str, ...]
    logp: np.ndarray
    top_ids: np.ndarray
    threshold: float = VERIFY_THRESHOLD
    n_positions: int = N_POSITIONS
    seconds: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def p_positions(self) -> np.ndarray:
        return np.exp(self.logp)

    @property
    def p_template(self) -> np.ndarray:
        """(n_tokens, n_templates): max over each template's positions (NaN: skipped)."""
        return np.exp(nanmax(self.logp, axis=2))

    @property
    def max_logp(self) -> np.ndarray:
        return nanmax(self.logp.reshape(len(self.token_ids), -1), axis=1)

    @property
    def p(self) -> np.ndarray:
        """(n_tokens,): max over templates and positions, the paper's ``max_prob``."""
        return np.exp(self.max_logp)

    @property
    def verified(self) -> np.ndarray:
        return self.p < self.threshold

    @property
    def best_template(self) -> list[str]:
        flat = np.where(np.isnan(self.logp), -np.inf, self.logp).max(axis=2)
        return [self.names[j] for j in np.argmax(flat, axis=1)]

    @property
    def per_second(self) -> float:
        return len(self.token_ids) / self.seconds if self.seconds > 0 else math.inf

    def to_frame(self) -> pl.DataFrame:
        """One row per token: token_id, max_prob, verified, prob_<template>, top_<template>."""
        pt = self.p_template
        cols: dict[str, Any] = {
            "token_id": self.token_ids,
            "max_prob": self.p,
            "verified": self.verified,
            "best_template": self.best_template,
        }
        for j, name in enumerate(self.names):
            cols[f"prob_{name}"] = pt[:, j]
        for j, name in enumerate(self.names):
            cols[f"top_{name}"] = self.top_ids[:, j].astype(np.int64)
        return pl.DataFrame(cols)


def nanmax(a: np.ndarray, axis: int) -> np.ndarray:
    """Max ignoring NaN; NaN where a slice is all NaN (no warning)."""
    m = np.where(np.isnan(a), -np.inf, a).max(axis=axis) if a.size else np.full(a.shape[:axis], np.nan)
    return np.where(m == -np.inf, np.nan, m)
