"""What a map is asked for, what it depends on and what it gives back.

* ``MapOptions``: how to build a map, including the one sampling rule: every valid row when
  ``full=True``, or when ``full`` is None and there are at most ``max_full_rows`` of them (``sample``
  left None); otherwise a stratified sample of ``sample`` (default ``default_sample``) rows.
  ``anomtok plot`` keeps the default ``max_full_rows`` (300,000: the full Gemma 3 vocabulary);
  ``anomtok scan`` passes its ``umap_full_max_rows`` (also 300,000 by default).
* ``MapSettings``: what the coordinates depend on; the cache key (``anomtok.maps.cache``).
* ``MapResult``: the coordinates, the facts that made them, and whether they came from the cache.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import polars as pl

__all__ = ["MapOptions", "MapSettings", "MapResult", "CACHE_VERSION"]

CACHE_VERSION = 2  # 2: seed, n_neighbors and min_dist really reach UMAP (1 dropped them)


@dataclass(frozen=True)
class MapOptions:
    """How to build a map. ``full``: True maps every row, False samples, None (default) maps every
    row when there are at most ``max_full_rows`` (the full Gemma 3 vocabulary, 262k rows, takes
    about 3 minutes on 2 cores), else samples ``sample`` (default ``default_sample``) rows. An
    explicit ``sample`` with ``full=None`` samples. A sample at least as large as the rows is the
    full vocabulary. ``n_epochs=None``: UMAP's default (200 for large inputs)."""

    full: bool | None = None
    sample: int | None = None
    max_full_rows: int = 300_000
    default_sample: int = 50_000
    flag_top: int = 500
    seed: int = 0
    n_neighbors: int = 15
    min_dist: float = 0.1
    n_epochs: int | None = None
    metric: str = "cosine"

    def __post_init__(self) -> None:
        if self.sample is not None and self.sample < 10:
            raise InputError(f"sample must be at least 10 points, not {self.sample}")
        if self.full and self.sample is not None:
            raise InputError("choose either full=True or sample=N, not both")
        if self.n_neighbors < 2:
            raise InputError("n_neighbors must be >= 2")
        if not 0.0 <= self.min_dist <= 1.0:
            raise InputError("min_dist must be in [0, 1]")
        if self.n_epochs is not None and self.n_epochs < 1:
            raise InputError("n_epochs must be >= 1")
        if self.flag_top < 0:
            raise InputError("flag_top must be >= 0")
        from ..inputs import UMAP_SEED_MAX, check_seed

        check_seed(self.seed, hi=UMAP_SEED_MAX)  # UMAP's random_state (numpy's RandomState)

    def mode(self, rows: int) -> tuple[str, int]:
        """("full", rows) or ("sample", n) for a matrix of ``rows`` mapped rows."""
        if self.full:
            return "full", rows
        if self.sample is not None:
            return ("full", rows) if self.sample >= rows else ("sample", self.sample)
        if rows <= self.max_full_rows or self.default_sample >= rows:
            return "full", rows
        return "sample", self.default_sample


@dataclass(frozen=True)
class MapSettings:
    """What the coordinates depend on; a cached map is reused only when these are equal."""

    mode: str  # "full" or "sample"
    sample: int  # requested number of points (rows for "full")
    flag_top: int
    seed: int
    n_neighbors: int
    min_dist: float
    n_epochs: int | None
    metric: str
    matrix: str  # which matrix: "input"
    rows: int
    dim: int
    umap_version: str
    cache_version: int = CACHE_VERSION

    @classmethod
    def make(cls, options: MapOptions, rows_valid: int, rows: int, dim: int) -> MapSettings:
        from .umap import umap_version

        mode, n = options.mode(rows_valid)
        return cls(
            mode=mode,
            sample=n,
            flag_top=options.flag_top,
            seed=options.seed,
            n_neighbors=options.n_neighbors,
            min_dist=options.min_dist,
            n_epochs=options.n_epochs,
            metric=options.metric,
            matrix="input",
            rows=rows,
            dim=dim,
            umap_version=umap_version(),
        )


@dataclass
class MapResult:
    """Coordinates (``token_id, x, y, why``), the settings and facts that made them, and whether
    they came from the cache."""

    coords: pl.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)
    from_cache: bool = False

    @property
    def description(self) -> str:
        return str(self.meta.get("description", ""))
