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
This package imports nothing heavy: the parts' classes (torch's, for ``SamplerConfig``) are imported
when an object is built.

=================  =====================================================================
``build``          ``make_options`` and the field checks every options class runs
``embedding``      ``NearestOptions``, ``AuditOptions``, ``PlotOptions``: the embedding matrix only
``runs``           ``NegtempOptions``, ``SweepOptions``, ``VerifyOptions``: the model is run
``results``        ``CompareOptions``, ``DetectOptions``: written reports, texts
=================  =====================================================================
"""

from __future__ import annotations

from .build import make_options
from .embedding import PLOT_FORMATS, AuditOptions, NearestOptions, PlotOptions
from .results import COMPARE_FORMATS, CompareOptions, DetectOptions
from .runs import NEGTEMP_TEMPERATURE, NegtempOptions, SweepOptions, VerifyOptions

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
    "COMPARE_FORMATS",
]
