"""The options of the commands that read the embedding matrix and the tokenizer, and run no
model: ``nearest``, ``audit`` (which ranking it lines up) and ``plot``."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import InputError
from ..inputs import check_int
from .build import check_bools, check_choice, check_part, set_field

if TYPE_CHECKING:  # pragma: no cover
    from ..maps.options import MapOptions
    from ..ranking import RankOptions

__all__ = ["NearestOptions", "AuditOptions", "PlotOptions", "PLOT_FORMATS"]

PLOT_FORMATS = ("png", "svg")


def _unranked() -> RankOptions:
    """The ranking of ``nearest`` and ``audit`` by default: every column but the k-NN search."""
    from ..ranking import RankOptions

    return RankOptions(nn="off")


def _map_options_class() -> type[MapOptions]:
    from ..maps.options import MapOptions

    return MapOptions


@dataclass(frozen=True)
class NearestOptions:
    """``anomtok nearest``: the ``k`` tokens nearest the centroid (``far``: farthest), or the top
    ``k`` by ``metric`` in its suspicious direction; ``rank``: how to rank (no kNN by default)."""

    k: int = 50
    metric: str = "centroid_l2"
    far: bool = False
    include_padding: bool = False
    rank: RankOptions = field(default_factory=lambda: _unranked())

    @staticmethod
    def parts() -> dict[str, type]:
        from ..ranking import RankOptions

        return {"rank": RankOptions}

    def __post_init__(self) -> None:
        from ..ranking import METRICS, RankOptions

        check_int(self.k, "k", 1)
        if self.metric not in METRICS:
            raise InputError(f"unknown metric {self.metric!r}; choose from {', '.join(METRICS)}")
        check_bools(self, "far", "include_padding")
        check_part(self, "rank", RankOptions, _unranked)


@dataclass(frozen=True)
class AuditOptions:
    """``anomtok audit``: ``model``: the model whose ranking is lined up with the audit (default:
    the audited source itself when it holds embeddings); ``no_rank``: line up none; ``rank``: how
    to rank (no kNN by default)."""

    model: str | None = None
    no_rank: bool = False
    rank: RankOptions = field(default_factory=lambda: _unranked())

    @staticmethod
    def parts() -> dict[str, type]:
        from ..ranking import RankOptions

        return {"rank": RankOptions}

    def __post_init__(self) -> None:
        from ..ranking import RankOptions

        check_bools(self, "no_rank")
        if self.model is not None:
            if not isinstance(self.model, (str, os.PathLike)) or not os.fspath(self.model):
                raise InputError(f"model must be a model spec or path, not {self.model!r}")
            if self.no_rank:
                raise InputError("model (--model) and no_rank (--no-rank) contradict each other")
            set_field(self, "model", os.fspath(self.model))
        check_part(self, "rank", RankOptions, _unranked)

    def ranking(self) -> bool | str | None:
        """``anomtok.audit.audit``'s ``ranking`` argument: False, the model spec, or None."""
        return False if self.no_rank else self.model


@dataclass(frozen=True)
class PlotOptions:
    """``anomtok plot``: how to map (``map``: a ``MapOptions``; ``no_map`` skips the UMAP maps),
    how many tokens to label, the formats to write, the device a ranking is computed on, and
    ``html``: also the interactive map ``plots/map.html`` (needs the map)."""

    map: MapOptions = field(default_factory=lambda: _map_options_class()())
    no_map: bool = False
    label_top: int = 25
    formats: tuple[str, ...] = PLOT_FORMATS
    device: str = "auto"
    html: bool = False

    @staticmethod
    def parts() -> dict[str, type]:
        return {"map": _map_options_class()}

    def __post_init__(self) -> None:
        from ..device import resolve_device

        check_part(self, "map", _map_options_class(), _map_options_class())
        check_bools(self, "no_map")
        check_bools(self, "html")
        if self.html and self.no_map:
            raise InputError("html (the interactive map) needs the map: drop no_map")
        check_int(self.label_top, "label_top", 0, 500)
        formats = (self.formats,) if isinstance(self.formats, str) else tuple(self.formats)
        if not formats:
            raise InputError(f"formats must name at least one of {', '.join(PLOT_FORMATS)}")
        for f in formats:
            check_choice(f, "each format", PLOT_FORMATS)
        set_field(self, "formats", formats)
        resolve_device(self.device)
