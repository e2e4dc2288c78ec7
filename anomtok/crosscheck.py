"""Moved to :mod:`anomtok.generation.crosscheck`; this old name re-exports it.

Kept only because ``anomtok.verify`` still imports ``metric_ranks`` from here: once it imports
``from .generation.crosscheck import metric_ranks``, delete this file.
"""

from __future__ import annotations

from .generation.crosscheck import DEFAULT_KS, DEFAULT_TOP_FRACTIONS, CrossCheck, crosscheck, metric_ranks, prompt_group

__all__ = ["CrossCheck", "crosscheck", "metric_ranks", "prompt_group", "DEFAULT_KS", "DEFAULT_TOP_FRACTIONS"]
