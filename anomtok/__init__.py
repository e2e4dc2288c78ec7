"""anomtok: find the blind spots of a language model's vocabulary (under-trained "glitch" tokens).

>>> import anomtok
>>> emb = anomtok.load("smollm2-135m")          # any alias, .gguf, .safetensors, folder or hub id
>>> ranking = anomtok.rank(emb, out_dir="out")   # every token, rank 1 = most suspicious
>>> anomtok.nearest(emb, k=20)                   # the 20 tokens nearest to the centroid
>>> anomtok.negtemp(emb, temperature=-0.001, max_new_tokens=16)     # doctest: +SKIP

One function per CLI command (``anomtok.api``): ``nearest``, ``rank``, ``audit``, ``negtemp``,
``sweep``, ``verify``, ``plot``, ``scan``, ``compare``, ``detect``; each takes one options object
(``RankOptions``, ``NegtempOptions``, ... ``ScanOptions``), or keywords that build it.

``audit``, ``verify``, ``scan``, ``compare`` and ``detect`` are also the names of the modules that
implement them (``from anomtok.verify import score_tokens``). ``anomtok.verify`` is that module,
and calling it calls the API function: ``anomtok.verify(model, top=5)`` is
``anomtok.api.verify(model, top=5)`` (the module's class is swapped for a callable one when it is
attached to this package, whichever way it was imported).
"""

import sys
import types
from importlib import import_module
from typing import TYPE_CHECKING, Any

from ._version import __version__

# Public names and the module that owns each: imported on first use (PEP 562), so that
# ``import anomtok`` and ``anomtok --help`` do not pay for torch, transformers or polars.
_LAZY = {
    "load": "loading",
    "nearest": "api",
    "rank": "api",
    "negtemp": "api",
    "sweep": "api",
    "plot": "api",
    "RankOptions": "ranking",
    "NearestOptions": "options",
    "AuditOptions": "options",
    "NegtempOptions": "options",
    "SweepOptions": "options",
    "VerifyOptions": "options",
    "PlotOptions": "options",
    "ScanOptions": "scan",
    "CompareOptions": "options",
    "DetectOptions": "options",
    "SamplerConfig": "generation",
    "GenerationOptions": "generation",
    "MapOptions": "maps",
    "Ranking": "ranking",
    "ModelEmbeddings": "embeddings",
    "Provenance": "embeddings",
    "FileInfo": "embeddings",
    "TokenTable": "tokens",
    "AnomtokError": "errors",
    "LoadError": "errors",
    "InputError": "errors",
}
# Commands whose name is also a module of this package: ``anomtok.<name>`` is that module, callable.
_COMMAND_MODULES = ("audit", "verify", "scan", "compare", "detect")

if TYPE_CHECKING:  # pragma: no cover
    from . import audit, compare, detect, scan, verify
    from .api import nearest, negtemp, plot, rank, sweep
    from .embeddings import FileInfo, ModelEmbeddings, Provenance
    from .errors import AnomtokError, InputError, LoadError
    from .generation import GenerationOptions, SamplerConfig
    from .loading import load
    from .maps import MapOptions
    from .options import (
        AuditOptions,
        CompareOptions,
        DetectOptions,
        NearestOptions,
        NegtempOptions,
        PlotOptions,
        SweepOptions,
        VerifyOptions,
    )
    from .ranking import Ranking, RankOptions
    from .scan import ScanOptions
    from .tokens import TokenTable


class _CommandModule(types.ModuleType):
    """A module named after a command (``anomtok.verify``): still the module, and callable as the
    command's API function (``anomtok.api.verify``)."""

    def _api_function(self) -> Any:
        return getattr(import_module(".api", __name__), self.__name__.rpartition(".")[2])

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._api_function()(*args, **kwargs)

    @property
    def __signature__(self) -> Any:  # inspect.signature(anomtok.verify): the API function's
        import inspect

        return inspect.signature(self._api_function())


class _Package(types.ModuleType):
    """This package: a command module attached to it (by any import of it) becomes callable."""

    def __setattr__(self, name: str, value: Any) -> None:
        if (
            name in _COMMAND_MODULES
            and isinstance(value, types.ModuleType)
            and value.__name__ == f"{__name__}.{name}"
            and not isinstance(value, _CommandModule)
        ):
            value.__class__ = _CommandModule
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> Any:
    if name in _COMMAND_MODULES:
        return import_module(f".{name}", __name__)  # attached (and made callable) by the import
    owner = _LAZY.get(name)
    if owner is None:
        raise AttributeError(f"module 'anomtok' has no attribute {name!r}")
    value = getattr(import_module(f".{owner}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | set(_COMMAND_MODULES))


__all__ = [
    "__version__",
    "load",
    # one function per CLI command
    "nearest",
    "rank",
    "audit",
    "negtemp",
    "sweep",
    "verify",
    "plot",
    "scan",
    "compare",
    "detect",
    # their options
    "RankOptions",
    "NearestOptions",
    "AuditOptions",
    "NegtempOptions",
    "SweepOptions",
    "VerifyOptions",
    "PlotOptions",
    "ScanOptions",
    "CompareOptions",
    "DetectOptions",
    "SamplerConfig",
    "GenerationOptions",
    "MapOptions",
    # data
    "Ranking",
    "ModelEmbeddings",
    "Provenance",
    "FileInfo",
    "TokenTable",
    "AnomtokError",
    "LoadError",
    "InputError",
]
