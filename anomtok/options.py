"""The options of every command: one frozen dataclass each, checked once, when it is built.

``anomtok.<command>(subject, options)`` and ``anomtok <command>`` take the same object: the CLI
parses its flags into it, the Python API takes it whole or builds it from keyword arguments
(``make_options``). A bad value is an ``InputError`` naming what is allowed, raised when the object
is built: before anything is read or loaded.

=================  =====================================================================
``rank``           ``RankOptions`` (``anomtok.ranking``)
``nearest``        ``NearestOptions``: k, metric, tail, and the ``RankOptions`` it ranks with
``audit``          ``AuditOptions``: which model's ranking to line up, with ``RankOptions``
``negtemp``        ``NegtempOptions``: a ``SamplerConfig`` and ``GenerationOptions``, prompt files
``sweep``          ``SweepOptions``: temperatures (each a ``SamplerConfig``), ``GenerationOptions``
``verify``         ``VerifyOptions`` (checked by ``anomtok.verify.check_settings``)
``plot``           ``PlotOptions``: a ``MapOptions`` and what to render
``scan``           ``ScanOptions`` (``anomtok.scan``): flat, and builds every step's options
``compare``        ``CompareOptions``
``detect``         ``DetectOptions``: which rows of the glitch list, JSONL field, max rate
=================  =====================================================================

Options made of parts (``NegtempOptions.sampler``, ``.generation``) take the parts' fields as
keywords in ``make_options``: ``make_options(NegtempOptions, temperature=-1, max_new_tokens=16)``.
This module imports nothing heavy: the parts' classes (torch's, for ``SamplerConfig``) are imported
when an object is built.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import InputError
from .inputs import check_int

if TYPE_CHECKING:  # pragma: no cover
    from _typeshed import DataclassInstance

    from .generation.options import GenerationOptions
    from .generation.sampler import SamplerConfig
    from .maps.options import MapOptions
    from .ranking import RankOptions

__all__ = [
    "NearestOptions",
    "AuditOptions",
    "NegtempOptions",
    "SweepOptions",
    "VerifyOptions",
    "PlotOptions",
    "CompareOptions",
    "DetectOptions",
    "make_options",
    "NEGTEMP_TEMPERATURE",
    "PLOT_FORMATS",
]

NEGTEMP_TEMPERATURE = -0.001  # negtemp's default: the least likely token at every step
PLOT_FORMATS = ("png", "svg")
COMPARE_FORMATS = ("table", "markdown", "json")


def _set(obj: Any, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)  # a frozen dataclass normalising its own field


def _part(obj: Any, name: str, cls: type, default: Callable[[], Any]) -> None:
    """Field ``name`` of ``obj`` is a ``cls`` (None: ``default()``)."""
    value = getattr(obj, name)
    if value is None:
        _set(obj, name, default())
    elif not isinstance(value, cls):
        raise InputError(f"{name} must be a {cls.__name__}, not {type(value).__name__}")


def _paths(value: Any, name: str) -> tuple[str, ...]:
    """A tuple of path strings from one path or a sequence of them."""
    if isinstance(value, (str, os.PathLike)):
        value = (value,)
    try:
        items = tuple(value)
    except TypeError:
        raise InputError(f"{name} must be a sequence of paths, not {value!r}") from None
    if any(not isinstance(p, (str, os.PathLike)) or not os.fspath(p) for p in items):
        raise InputError(f"{name} must hold non-empty paths, not {items!r}")
    return tuple(os.fspath(p) for p in items)


def _choice(value: Any, name: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise InputError(f"{name} must be one of {', '.join(choices)}, not {value!r}")


def _bool(obj: Any, *names: str) -> None:
    for name in names:
        if not isinstance(getattr(obj, name), bool):
            raise InputError(f"{name} must be True or False, not {getattr(obj, name)!r}")


def _rank_options(**kw: Any) -> RankOptions:
    from .ranking import RankOptions

    return RankOptions(**kw)


def _field_names(cls: type) -> list[str]:
    return [f.name for f in fields(cls) if f.init]


OptionsT = TypeVar("OptionsT", bound="DataclassInstance")


def make_options(cls: type[OptionsT], options: OptionsT | None = None, **overrides: Any) -> OptionsT:
    """``options`` (default: ``cls()``) with ``overrides`` applied, built (and so checked) once.

    A keyword names a field of ``cls`` or, for options made of parts (``parts()``), a field of
    one part: ``make_options(NegtempOptions, temperature=-1)`` sets ``sampler.temperature``.
    An unknown keyword is an ``InputError`` listing the valid ones."""
    if options is not None and not isinstance(options, cls):
        raise InputError(f"options must be a {cls.__name__}, not {type(options).__name__}")
    if not overrides:
        return options if options is not None else cls()
    own = set(_field_names(cls))
    parts: dict[str, type] = getattr(cls, "parts", dict)()
    top: dict[str, Any] = {}
    routed: dict[str, dict[str, Any]] = {name: {} for name in parts}
    for key, value in overrides.items():
        if key in own:
            top[key] = value
            continue
        owners = [name for name, part in parts.items() if key in _field_names(part)]
        if not owners:
            valid = sorted(own | {f for part in parts.values() for f in _field_names(part)})
            raise InputError(f"unknown option {key!r} for {cls.__name__}; valid: {', '.join(valid)}")
        routed[owners[0]][key] = value
    for name, kw in routed.items():
        if not kw:
            continue
        if name in top:
            raise InputError(f"give either {name}= or its fields ({', '.join(kw)}), not both")
        current: DataclassInstance = getattr(options if options is not None else cls(), name)
        top[name] = replace(current, **kw)
    return replace(options, **top) if options is not None else cls(**top)


@dataclass(frozen=True)
class NearestOptions:
    """``anomtok nearest``: the ``k`` tokens nearest the centroid (``far``: farthest), or the top
    ``k`` by ``metric`` in its suspicious direction; ``rank``: how to rank (no kNN by default)."""

    k: int = 50
    metric: str = "centroid_l2"
    far: bool = False
    include_padding: bool = False
    rank: RankOptions = None  # type: ignore[assignment]  # default RankOptions(nn="off")

    @staticmethod
    def parts() -> dict[str, type]:
        from .ranking import RankOptions

        return {"rank": RankOptions}

    def __post_init__(self) -> None:
        from .ranking import METRICS, RankOptions

        check_int(self.k, "k", 1)
        if self.metric not in METRICS:
            raise InputError(f"unknown metric {self.metric!r}; choose from {', '.join(METRICS)}")
        _bool(self, "far", "include_padding")
        _part(self, "rank", RankOptions, lambda: RankOptions(nn="off"))


@dataclass(frozen=True)
class AuditOptions:
    """``anomtok audit``: ``model``: the model whose ranking is lined up with the audit (default:
    the audited source itself when it holds embeddings); ``no_rank``: line up none; ``rank``: how
    to rank (no kNN by default)."""

    model: str | None = None
    no_rank: bool = False
    rank: RankOptions = None  # type: ignore[assignment]  # default RankOptions(nn="off")

    @staticmethod
    def parts() -> dict[str, type]:
        from .ranking import RankOptions

        return {"rank": RankOptions}

    def __post_init__(self) -> None:
        from .ranking import RankOptions

        _bool(self, "no_rank")
        if self.model is not None:
            if not isinstance(self.model, (str, os.PathLike)) or not os.fspath(self.model):
                raise InputError(f"model must be a model spec or path, not {self.model!r}")
            if self.no_rank:
                raise InputError("model (--model) and no_rank (--no-rank) contradict each other")
            _set(self, "model", os.fspath(self.model))
        _part(self, "rank", RankOptions, lambda: RankOptions(nn="off"))

    def ranking(self) -> Any:
        """``anomtok.audit.audit``'s ``ranking`` argument: False, the model spec, or None."""
        return False if self.no_rank else self.model


@dataclass(frozen=True)
class NegtempOptions:
    """``anomtok negtemp``: how a token is chosen (``sampler``, default ``T = -0.001``, no filter),
    how generation runs (``generation``: tokens, seed, batch, timeout, device, dtype) and which
    prompt files to read (default: the packaged English and Japanese prompts)."""

    sampler: SamplerConfig = None  # type: ignore[assignment]  # default SamplerConfig(-0.001)
    generation: GenerationOptions = None  # type: ignore[assignment]  # default GenerationOptions()
    prompt_files: tuple[str, ...] = ()

    @staticmethod
    def parts() -> dict[str, type]:
        from .generation.options import GenerationOptions
        from .generation.sampler import SamplerConfig

        return {"sampler": SamplerConfig, "generation": GenerationOptions}

    def __post_init__(self) -> None:
        from .generation.options import GenerationOptions
        from .generation.sampler import SamplerConfig

        _part(self, "sampler", SamplerConfig, lambda: SamplerConfig(temperature=NEGTEMP_TEMPERATURE))
        _part(self, "generation", GenerationOptions, GenerationOptions)
        _set(self, "prompt_files", _paths(self.prompt_files, "prompt_files"))

    def feature_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``anomtok.generation.negtemp`` these options set."""
        g = self.generation
        return {
            "config": self.sampler,
            "max_new_tokens": g.max_new_tokens,
            "seed": g.seed,
            "batch_size": g.batch_size,
            "stop_at_eos": g.stop_at_eos,
            "timeout_s": g.timeout_s,
            "device": g.device,
            "dtype": g.dtype,
            "device_map": g.device_map,
        }


@dataclass(frozen=True)
class SweepOptions:
    """``anomtok sweep``: the temperatures (each checked as a ``SamplerConfig``), how generation
    runs (``generation``, default 32 tokens; ``timeout_s`` is per temperature), the ranking metric
    of the anomaly percentile, the prompt files and ``n_prompts`` taken from each (0 = all)."""

    temperatures: tuple[float, ...] = None  # type: ignore[assignment]  # default: generation.SWEEP_TEMPERATURES
    generation: GenerationOptions = None  # type: ignore[assignment]  # default GenerationOptions(max_new_tokens=32)
    metric: str = "score"
    prompt_files: tuple[str, ...] = ()
    n_prompts: int = 4

    @staticmethod
    def parts() -> dict[str, type]:
        from .generation.options import GenerationOptions

        return {"generation": GenerationOptions}

    def __post_init__(self) -> None:
        from .generation.options import GenerationOptions, check_metric
        from .generation.sampler import SamplerConfig
        from .generation.sweep_run import SWEEP_TEMPERATURES

        temps = SWEEP_TEMPERATURES if self.temperatures is None else self.temperatures
        temps = (temps,) if isinstance(temps, (int, float)) else tuple(temps)
        if not temps:
            raise InputError("no temperatures to sweep")
        _set(self, "temperatures", tuple(SamplerConfig(temperature=t).temperature for t in temps))
        _part(self, "generation", GenerationOptions, lambda: GenerationOptions(max_new_tokens=32))
        if self.generation.stop_at_eos:
            raise InputError("sweep always generates max_new_tokens tokens: stop_at_eos must be False")
        check_metric(self.metric)
        _set(self, "prompt_files", _paths(self.prompt_files, "prompt_files"))
        check_int(self.n_prompts, "n_prompts", 0, hint=" (0 = every prompt of each file)")

    def feature_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``anomtok.generation.sweep`` these options set."""
        g = self.generation
        return {
            "temperatures": list(self.temperatures),
            "max_new_tokens": g.max_new_tokens,
            "seed": g.seed,
            "batch_size": g.batch_size,
            "metric": self.metric,
            "device": g.device,
            "dtype": g.dtype,
            "device_map": g.device_map,
            "timeout_s": g.timeout_s,
        }


@dataclass(frozen=True)
class VerifyOptions:
    """``anomtok verify``: the candidates (the ``top`` tokens of each of ``metrics``, default all,
    among ``kinds``; or exactly ``token_ids``), ``random_sample`` base-rate tokens, the verdict's
    ``threshold`` and how the probabilities are read (see ``anomtok.verify``)."""

    metrics: tuple[str, ...] = ()
    top: int = 20
    random_sample: int = 30
    kinds: tuple[str, ...] = ("normal",)
    token_ids: tuple[int, ...] | None = None
    threshold: float = 0.01
    n_positions: int = 3
    batch_size: int = 32
    settle: bool = False
    seed: int = 0
    device: str = "auto"
    dtype: str = "auto"

    def __post_init__(self) -> None:
        from .verify import check_settings

        for name in ("metrics", "kinds"):
            value = getattr(self, name)
            _set(self, name, (value,) if isinstance(value, str) else tuple(value))
        if self.token_ids is not None:
            ids = tuple(self.token_ids)
            if not ids or any(isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in ids):
                raise InputError(f"token_ids must be token ids (integers >= 0), not {self.token_ids!r}")
            _set(self, "token_ids", ids)
        _bool(self, "settle")
        check_settings(
            metrics=self.metrics,
            top=self.top,
            random_sample=self.random_sample,
            kinds=self.kinds,
            threshold=self.threshold,
            n_positions=self.n_positions,
            batch_size=self.batch_size,
            seed=self.seed,
            device=self.device,
            dtype=self.dtype,
        )

    def feature_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``anomtok.verify.verify`` these options set."""
        return {
            "metrics": list(self.metrics) or None,
            "top": self.top,
            "random_sample": self.random_sample,
            "kinds": self.kinds,
            "token_ids": list(self.token_ids) if self.token_ids is not None else None,
            "threshold": self.threshold,
            "n_positions": self.n_positions,
            "batch_size": self.batch_size,
            "settle": self.settle,
            "seed": self.seed,
            "device": self.device,
            "dtype": self.dtype,
        }


@dataclass(frozen=True)
class PlotOptions:
    """``anomtok plot``: how to map (``map``: a ``MapOptions``; ``no_map`` skips the UMAP maps),
    how many tokens to label, the formats to write, the device a ranking is computed on, and
    ``html``: also the interactive map ``plots/map.html`` (needs the map)."""

    map: MapOptions = None  # type: ignore[assignment]  # default MapOptions()
    no_map: bool = False
    label_top: int = 25
    formats: tuple[str, ...] = PLOT_FORMATS
    device: str = "auto"
    html: bool = False

    @staticmethod
    def parts() -> dict[str, type]:
        return {"map": _map_options_class()}

    def __post_init__(self) -> None:
        from .device import resolve_device

        _part(self, "map", _map_options_class(), _map_options_class())
        _bool(self, "no_map")
        _bool(self, "html")
        if self.html and self.no_map:
            raise InputError("html (the interactive map) needs the map: drop no_map")
        check_int(self.label_top, "label_top", 0, 500)
        formats = (self.formats,) if isinstance(self.formats, str) else tuple(self.formats)
        if not formats:
            raise InputError(f"formats must name at least one of {', '.join(PLOT_FORMATS)}")
        for f in formats:
            _choice(f, "each format", PLOT_FORMATS)
        _set(self, "formats", formats)
        resolve_device(self.device)


def _map_options_class() -> type:
    from .maps.options import MapOptions

    return MapOptions


@dataclass(frozen=True)
class CompareOptions:
    """``anomtok compare``: how many shared tokens to list per pair, and the format: ``table``
    (aligned tables for a terminal), ``markdown`` or ``json``; None: a table on the terminal, and for
    a file ``json`` when its name ends in ``.json``, else ``markdown``."""

    top: int = 25
    format: str | None = None

    def __post_init__(self) -> None:
        check_int(self.top, "top", 1, 10_000)
        if self.format is not None:
            _choice(self.format, "format", COMPARE_FORMATS)


@dataclass(frozen=True)
class DetectOptions:
    """``anomtok detect``: which rows of a glitch table to look for (``top``, ``min_score``,
    ``include_special``), the JSONL ``field`` holding the text (given: every input is JSONL;
    default: ``text`` for .jsonl/.ndjson inputs, others are plain text), and ``max_rate``, the
    glitch rate above which the run counts as exceeded."""

    field: str | None = None
    top: int | None = None
    min_score: float | None = None
    include_special: bool = False
    max_rate: float = 0.0

    def __post_init__(self) -> None:
        if self.field is not None and (not isinstance(self.field, str) or not self.field):
            raise InputError(f"field must be a JSON field name (dotted path allowed), not {self.field!r}")
        if self.top is not None:
            check_int(self.top, "top", 1)
        m = self.min_score
        if m is not None and (isinstance(m, bool) or not isinstance(m, (int, float)) or not math.isfinite(m)):
            raise InputError(f"min_score must be a finite number, not {m!r}")
        r = self.max_rate
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0.0 <= r <= 1.0:
            raise InputError(f"max_rate must be a number from 0 to 1, not {r!r}")
        _bool(self, "include_special")
